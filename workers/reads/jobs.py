"""Reads of job records: filtered lists (keyset-paginated), one job, its errors, log lines
and timeline."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from django.db.models import Q, QuerySet

from ..models import AuditAction, AuditEntry, AuditOutcome, JobError, JobLogLine, JobRecord
from ..redis import connection as redis_connection
from ..rq.job import TrackedJob
from ..statuses import ENDED_STATUSES, FROM_RQ_ENDED, WAITING_STATUSES, JobStatus


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

    @property
    def first_cursor(self) -> str | None:
        """Where this page begins (its first row): what ``job_count_newer`` counts from."""
        return _encode_cursor(self.items[0]) if self.items else None


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


def job_count_newer(*, filters: JobFilter, cursor: str | None, cap: int) -> int:
    """How many jobs matching ``filters`` come before the row at ``cursor`` in the list's
    order (newest first), counting no further than ``cap``: the jobs that arrived above a
    first page shown from that row (every matching job when that page was empty)."""
    qs = job_queryset(filters=filters).filter(enqueued_at__isnull=False)
    if cursor:
        stamp, pk = _decode_cursor(cursor)
        moment = datetime.fromtimestamp(stamp, tz=UTC)
        qs = qs.filter(Q(enqueued_at__gt=moment) | Q(enqueued_at=moment, pk__gt=pk))
    return qs[:cap].count()


def job_count_capped(*, filters: JobFilter, cap: int) -> int:
    """How many jobs match ``filters``, counting no further than ``cap``: cheap however
    long the history is."""
    return job_queryset(filters=filters)[:cap].count()


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


def job_attempt_text(*, record: JobRecord) -> str:
    """Where the job stands in its attempts, counting only attempts that ran."""
    ran = record.attempts_started
    of = f" of {record.max_attempts}" if record.max_attempts else ""
    if record.status in WAITING_STATUSES:
        if ran:
            return f"attempt {ran + 1}{of} next"
        return f"not run yet · up to {record.max_attempts} attempts" if record.max_attempts else "not run yet"
    if not ran:
        return "never ran"
    return f"attempt {ran}{of}"


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    label: str
    status: str
    detail: str = ""
    # What happened first when two entries share a moment (ORDER).
    order: int = 0


# Ties on time are broken by what happens first: an operator's action before what it
# causes, an attempt's start before its end, a failed attempt before the dead letter it makes.
ORDER = {"enqueued": 0, "operator": 1, "started": 2, "failed": 3, "ended": 4, "due": 5, "discarded": 6}

# How the timeline words an operator's action on the job (audit trail) before "by <who>".
_ACTION_WORDS: dict[str, str] = {
    AuditAction.JOB_RETRY: "retried",
    AuditAction.JOB_CANCEL: "canceled",
    AuditAction.JOB_STOP: "stop requested",
    AuditAction.JOB_RUN_AGAIN: "run again",
    AuditAction.DEAD_LETTER_DISCARD: "discarded",
}


def job_actions_get(*, job_id: str, limit: int = 200) -> list[AuditEntry]:
    """What operators did to this job (alone or in a bulk action), oldest first."""
    if not job_id_is_valid(job_id):
        return []
    done = AuditEntry.objects.filter(target_kind="job", target_id=job_id, outcome=AuditOutcome.OK)
    return list(reversed(done.order_by("-at", "-id")[:limit]))  # the latest, should there be more


def job_timeline_get(
    *, record: JobRecord, errors: list[JobError], actions: list[AuditEntry] | None = None
) -> list[TimelineEntry]:
    """The moments of a job's life that its record, its error history and the audit trail
    (``actions``: read here when not given) keep, in the order they happened."""
    if actions is None:
        actions = job_actions_get(job_id=record.job_id)
    entries: list[TimelineEntry] = []
    if record.enqueued_at:
        entries.append(
            TimelineEntry(record.enqueued_at, "enqueued", JobStatus.QUEUED, f"on {record.queue}", ORDER["enqueued"])
        )
    for action in actions:
        words = _ACTION_WORDS.get(action.action, action.get_action_display())
        detail = action.detail + (" (bulk action)" if action.parent_id else "")
        entries.append(TimelineEntry(action.at, f"{words} by {action.actor}", "operator", detail, ORDER["operator"]))
    for error in errors:
        label = f"attempt {error.attempt} failed"
        entries.append(TimelineEntry(error.failed_at, label, "failed", error.exc_type, ORDER["failed"]))
    ran = record.attempts_started
    if record.started_at and ran:  # started_at belongs to the last attempt that ran
        label = f"attempt {ran} started"
        entries.append(TimelineEntry(record.started_at, label, JobStatus.STARTED, record.worker, ORDER["started"]))
    if record.ended_at and record.status in ENDED_STATUSES:
        ended = record.ended_at
        last = errors[-1] if errors else None
        if record.status in (JobStatus.DEAD, JobStatus.STOPPED) and last and last.attempt == record.attempts:
            # The failure and the end are one moment, stamped twice a few microseconds apart.
            ended = max(ended, last.failed_at)
        entries.append(TimelineEntry(ended, record.status, record.status, "", ORDER["ended"]))
    if record.status == JobStatus.RETRYING and record.scheduled_for:
        entries.append(TimelineEntry(record.scheduled_for, "next attempt due", JobStatus.RETRYING, "", ORDER["due"]))
    discarded_by_operator = any(a.action == AuditAction.DEAD_LETTER_DISCARD for a in actions)
    if record.discarded_at and not discarded_by_operator:
        entries.append(TimelineEntry(record.discarded_at, "discarded", "discarded", "", ORDER["discarded"]))
    return sorted(entries, key=lambda e: (e.at, e.order))
