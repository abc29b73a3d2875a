"""Reads of job records: filtered lists (keyset-paginated), one job, its errors, log lines
and timeline."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from django.db.models import Q, QuerySet

from ..models import JobError, JobLogLine, JobRecord
from ..redis import connection as redis_connection
from ..rq.job import TrackedJob
from ..statuses import FROM_RQ_ENDED, JobStatus


@dataclass(frozen=True)
class JobFilter:
    status: str = ""
    queue: str = ""
    func: str = ""
    q: str = ""
    since: datetime | None = None
    until: datetime | None = None
    # A dead-letter failure group: the fingerprint of the job's last failed attempt.
    fingerprint: str = ""

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
    if filters.fingerprint:
        qs = qs.filter(last_fingerprint=filters.fingerprint)
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


def job_id_is_valid(job_id: object) -> bool:
    """Could this be a job id at all? (PostgreSQL refuses NUL in text: never ask it.)"""
    return isinstance(job_id, str) and 0 < len(job_id) <= 128 and "\x00" not in job_id


def job_get(*, job_id: str) -> JobRecord | None:
    if not job_id_is_valid(job_id):
        return None
    return JobRecord.objects.filter(job_id=job_id).first()


def job_errors(*, job_id: str) -> list[JobError]:
    return list(JobError.objects.filter(job__job_id=job_id).order_by("attempt"))


def job_ids_get(*, filters: JobFilter, limit: int) -> list[str]:
    """Job ids matching ``filters``, newest first, at most ``limit``: bulk actions act on these."""
    qs = job_queryset(filters=filters).order_by("-enqueued_at", "-pk")
    return list(qs.values_list("job_id", flat=True)[:limit])


def job_is_settled(*, record: JobRecord) -> bool:
    """The record has ended and RQ agrees: no retry under way and no outcome the recorder
    has yet to apply (it lags by up to a second). A polled panel of this job can stop."""
    if not record.is_ended:
        return False
    status = redis_connection().hget(TrackedJob.key_for(record.job_id), "status")
    return status is None or FROM_RQ_ENDED.get(status.decode()) == record.status


def job_log_lines(*, job_id: str, limit: int = 1000) -> list[JobLogLine]:
    return list(JobLogLine.objects.filter(job__job_id=job_id).order_by("attempt", "seq")[:limit])


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    label: str
    status: str
    detail: str = ""


def job_timeline_get(*, record: JobRecord, errors: list[JobError]) -> list[TimelineEntry]:
    """The moments of a job's life that its record and error history keep, oldest first."""
    entries: list[TimelineEntry] = []
    if record.enqueued_at:
        entries.append(TimelineEntry(record.enqueued_at, "enqueued", JobStatus.QUEUED, f"on {record.queue}"))
    for error in errors:
        status = JobStatus.DEAD if error.attempt >= record.attempts and record.status == JobStatus.DEAD else "failed"
        entries.append(TimelineEntry(error.failed_at, f"attempt {error.attempt} failed", status, error.exc_type))
    if record.started_at:
        entries.append(
            TimelineEntry(record.started_at, f"attempt {record.attempts} started", JobStatus.STARTED, record.worker)
        )
    if record.ended_at and record.status != JobStatus.RETRYING:
        entries.append(TimelineEntry(record.ended_at, record.status, record.status))
    if record.status == JobStatus.RETRYING and record.scheduled_for:
        entries.append(TimelineEntry(record.scheduled_for, "next attempt due", JobStatus.RETRYING))
    if record.discarded_at:
        entries.append(TimelineEntry(record.discarded_at, "discarded", "discarded"))
    return sorted(entries, key=lambda e: e.at)
