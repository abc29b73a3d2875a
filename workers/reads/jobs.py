"""Reads of job records: filtered lists (keyset-paginated, searched with ``reads.search``)
with their totals, one job, its errors, log lines and timeline."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.db import connection
from django.db.models import F, Q, QuerySet

from ..conf import setting
from ..models import AuditAction, AuditEntry, AuditOutcome, JobError, JobLogLine, JobOrigin, JobRecord
from ..redis import connection as redis_connection
from ..rq.job import TrackedJob
from ..statuses import ENDED_STATUSES, FROM_RQ_ENDED, WAITING_STATUSES, JobStatus
from .search import Search, parse
from .search_sql import Unindexed, guessed, search_q


def search_parse(text: str) -> Search:
    """Parse a search of job records (``reads.search``); raises ``SearchError``."""
    return parse(text, choices={"status": JobStatus.values, "origin": JobOrigin.values})


@dataclass(frozen=True)
class JobFilter:
    status: str = ""
    queue: str = ""
    func: str = ""
    since: datetime | None = None
    until: datetime | None = None
    # A dead-letter failure group: the fingerprint of the job's last failed attempt.
    fingerprint: str = ""
    search: Search = field(default_factory=Search)

    def __post_init__(self) -> None:
        if self.status and self.status not in JobStatus.values:
            raise ValueError(f"unknown status {self.status!r}; one of: {', '.join(JobStatus.values)}")


@dataclass(frozen=True)
class Total:
    """How many jobs match: exact up to EXACT_COUNT_LIMIT, else the planner's estimate."""

    count: int
    exact: bool = True
    estimated: bool = False  # False and not exact: "more than <count>" (no estimate at hand)

    def __str__(self) -> str:
        if self.exact:
            return f"{self.count:,}"
        if not self.estimated:
            return f"more than {self.count:,}"
        if self.count >= 999_500:
            return f"about {self.count / 1_000_000:.1f} M"
        return f"about {self.count / 1000:.0f} k" if self.count >= 10_000 else f"about {self.count:,}"


@dataclass(frozen=True)
class Page:
    items: list[JobRecord]
    next_cursor: str | None
    total: Total | None = None

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
    if filters.search:
        qs = qs.filter(search_q(filters.search))
    return qs


def newest_first(qs: QuerySet[JobRecord], *, search: Search, total: Total | None) -> QuerySet[JobRecord]:
    """``qs`` newest first. When a search the planner has to guess at matches few rows (the
    exact total says so), sort those rows rather than walk the history looking for them."""
    if total is not None and total.exact and guessed(search):
        return qs.order_by(Unindexed(F("enqueued_at")).desc(), "-pk")
    return qs.order_by("-enqueued_at", "-pk")


def job_total(qs: QuerySet[JobRecord], *, limit: int | None = None) -> Total:
    """How many rows ``qs`` has: counted up to ``limit`` (EXACT_COUNT_LIMIT), above it the
    PostgreSQL planner's estimate. Never a COUNT(*) over the whole history."""
    limit = limit or setting("EXACT_COUNT_LIMIT")
    bounded = qs.order_by()[: limit + 1]
    count = bounded.count()
    if count <= limit:
        return Total(count)
    estimate = _planner_rows(qs) if connection.vendor == "postgresql" else 0
    if estimate > limit:
        return Total(estimate, exact=False, estimated=True)
    return Total(limit, exact=False)


def _planner_rows(qs: QuerySet[JobRecord]) -> int:
    sql, params = qs.order_by().values("pk").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


def _encode_cursor(record: JobRecord) -> str:
    stamp = record.enqueued_at.timestamp() if record.enqueued_at else 0.0
    return f"{stamp:.6f}_{record.pk}"


def _decode_cursor(cursor: str) -> tuple[float, int]:
    try:
        stamp, pk = cursor.split("_", 1)
        return float(stamp), int(pk)
    except ValueError as exc:
        raise ValueError(f"malformed page cursor {cursor[:40]!r}") from exc


def job_list(*, filters: JobFilter, cursor: str | None = None, limit: int = 50, count: bool = False) -> Page:
    """Newest first, keyset-paginated on (enqueued_at, id): stable while new jobs arrive.
    With ``count``, the page says how many jobs match the filter in all (``Total``)."""
    qs = job_queryset(filters=filters).filter(enqueued_at__isnull=False)
    after = _decode_cursor(cursor) if cursor else None
    total = None
    if guessed(filters.search):
        few = _few_newest(qs, after=after, limit=limit)
        if isinstance(few, Page):
            return few if count else Page(items=few.items, next_cursor=few.next_cursor)
        total = few
    if total is None and count:
        total = job_total(qs)
    if after:
        moment, pk = datetime.fromtimestamp(after[0], tz=UTC), after[1]
        qs = qs.filter(Q(enqueued_at__lt=moment) | Q(enqueued_at=moment, pk__lt=pk))
    rows = list(newest_first(qs, search=filters.search, total=total)[: limit + 1])
    next_cursor = _encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return Page(items=rows[:limit], next_cursor=next_cursor, total=total if count else None)


def _few_newest(qs: QuerySet[JobRecord], *, after: tuple[float, int] | None, limit: int) -> Page | Total:
    """A page and its exact total in one query, when a search the planner has to guess at
    matches at most EXACT_COUNT_LIMIT jobs: those are found through the search's own
    indexes, counted and sorted (by id and time only; then the page's rows are read),
    instead of walking the history newest first looking for them. When more match, their
    Total (an estimate): the caller walks."""
    bound = setting("EXACT_COUNT_LIMIT")
    matches, params = qs.order_by().values("id", "enqueued_at")[: bound + 1].query.sql_with_params()
    where, where_params = "", []
    if after:
        moment = datetime.fromtimestamp(after[0], tz=UTC)
        where = "WHERE w.enqueued_at < %s OR (w.enqueued_at = %s AND w.id < %s)"
        where_params = [moment, moment, after[1]]
    table = JobRecord._meta.db_table
    # The matches' ids and times are counted and sorted; only the page's rows are read whole.
    sql = (
        f"SELECT j.*, c.jobsite_total FROM (SELECT w.id, w.enqueued_at, w.jobsite_total FROM"
        f" (SELECT m.id, m.enqueued_at, COUNT(*) OVER () AS jobsite_total FROM ({matches}) m) w {where}"
        f" ORDER BY w.enqueued_at DESC, w.id DESC LIMIT %s) c JOIN {table} j ON j.id = c.id"
        " ORDER BY c.enqueued_at DESC, c.id DESC"
    )
    rows = list(JobRecord.objects.raw(sql, [*params, *where_params, limit + 1]))
    if not rows:
        return Page(items=[], next_cursor=None, total=Total(0)) if after is None else job_total(qs)
    total = int(getattr(rows[0], "jobsite_total"))  # noqa: B009  (a column of the raw query)
    if total > bound:
        estimate = _planner_rows(qs) if connection.vendor == "postgresql" else 0
        return Total(estimate, exact=False, estimated=True) if estimate > bound else Total(bound, exact=False)
    next_cursor = _encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return Page(items=rows[:limit], next_cursor=next_cursor, total=Total(total))


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


def job_filter_from_fields(fields: dict[str, str]) -> JobFilter:
    """The filter a bulk operation keeps as JSON (``status``, ``q``, ``fingerprint``), rebuilt;
    raises ``SearchError`` or ``ValueError`` when it no longer parses."""
    return JobFilter(
        status=str(fields.get("status") or ""),
        fingerprint=str(fields.get("fingerprint") or ""),
        search=search_parse(str(fields.get("q") or "")),
    )


def job_pks_after(*, filters: JobFilter, after_pk: int, limit: int) -> list[tuple[int, str]]:
    """(primary key, job id) of the jobs matching ``filters`` past ``after_pk``, in key
    order, at most ``limit``: a bulk operation walks its jobs with these."""
    qs = job_queryset(filters=filters).filter(pk__gt=after_pk).order_by("pk")
    return list(qs.values_list("pk", "job_id")[:limit])


def job_ids_get(*, filters: JobFilter, limit: int) -> list[str]:
    """Job ids matching ``filters``, newest first, at most ``limit``: bulk actions act on these."""
    qs = job_queryset(filters=filters)
    total = job_total(qs) if guessed(filters.search) else None
    return list(newest_first(qs, search=filters.search, total=total).values_list("job_id", flat=True)[:limit])


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
