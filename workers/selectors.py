"""Reads for the dashboard, the admin and the API: records, errors, counts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from django.db.models import Q, QuerySet

from .models import JobError, JobRecord, JobStatus


@dataclass(frozen=True)
class JobFilter:
    status: str = ""
    queue: str = ""
    func: str = ""
    q: str = ""
    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        if self.status and self.status not in JobStatus.values:
            raise ValueError(f"unknown status {self.status!r}; one of: {', '.join(JobStatus.values)}")


@dataclass(frozen=True)
class Page:
    items: list[JobRecord]
    next_cursor: str | None


def job_queryset(*, filters: JobFilter) -> QuerySet[JobRecord]:
    qs = JobRecord.objects.all()
    if filters.status:
        qs = qs.filter(status=filters.status)
        if filters.status == JobStatus.DEAD:
            qs = qs.filter(discarded_at__isnull=True)
    if filters.queue:
        qs = qs.filter(queue=filters.queue)
    if filters.func:
        qs = qs.filter(func=filters.func)
    if filters.since:
        qs = qs.filter(enqueued_at__gte=filters.since)
    if filters.until:
        qs = qs.filter(enqueued_at__lt=filters.until)
    if filters.q:
        qs = qs.filter(
            Q(job_id=filters.q)
            | Q(args_repr__icontains=filters.q)
            | Q(kwargs_repr__icontains=filters.q)
            | Q(last_error__icontains=filters.q)
        )
    return qs


def _encode_cursor(record: JobRecord) -> str:
    stamp = record.enqueued_at.timestamp() if record.enqueued_at else 0.0
    return f"{stamp:.6f}_{record.pk}"


def _decode_cursor(cursor: str) -> tuple[float, int]:
    try:
        stamp, pk = cursor.split("_", 1)
        return float(stamp), int(pk)
    except ValueError as exc:
        raise ValueError(f"malformed page cursor {cursor[:40]!r}") from exc


def job_list(*, filters: JobFilter, cursor: str | None = None, limit: int = 50) -> Page:
    """Newest first, keyset-paginated on (enqueued_at, id): stable while new jobs arrive."""
    qs = job_queryset(filters=filters).filter(enqueued_at__isnull=False)
    if cursor:
        stamp, pk = _decode_cursor(cursor)
        moment = datetime.fromtimestamp(stamp, tz=UTC)
        qs = qs.filter(Q(enqueued_at__lt=moment) | Q(enqueued_at=moment, pk__lt=pk))
    rows = list(qs.order_by("-enqueued_at", "-pk")[: limit + 1])
    next_cursor = _encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return Page(items=rows[:limit], next_cursor=next_cursor)


def job_get(*, job_id: str) -> JobRecord | None:
    return JobRecord.objects.filter(job_id=job_id).first()


def job_errors(*, job_id: str) -> list[JobError]:
    return list(JobError.objects.filter(job__job_id=job_id).order_by("attempt"))


def dead_letter_list(*, filters: JobFilter | None = None, cursor: str | None = None, limit: int = 50) -> Page:
    base = filters or JobFilter()
    return job_list(
        filters=JobFilter(**{**base.__dict__, "status": JobStatus.DEAD}),
        cursor=cursor,
        limit=limit,
    )


def dead_letter_count() -> int:
    return JobRecord.objects.filter(status=JobStatus.DEAD, discarded_at__isnull=True).count()
