"""Reads for the dashboard, the admin and the API: records, errors, counts."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from django.conf import settings
from django.db.models import Count, F, Max, Min, Q, QuerySet, Sum
from django.db.models.functions import TruncHour
from django.utils import timezone
from rq.queue import Queue
from rq.suspension import is_suspended
from rq.worker import Worker

from .models import JobError, JobLogLine, JobMetric, JobRecord, JobStatus
from .pausing import paused_queues
from .tracking import WORKERS_SET, TrackedJob, TrackedQueue, is_alive, redis_connection


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


def dead_letter_list(*, filters: JobFilter | None = None, cursor: str | None = None, limit: int = 50) -> Page:
    base = filters or JobFilter()
    return job_list(
        filters=JobFilter(**{**base.__dict__, "status": JobStatus.DEAD}),
        cursor=cursor,
        limit=limit,
    )


def dead_letter_count() -> int:
    return JobRecord.objects.filter(status=JobStatus.DEAD, discarded_at__isnull=True).count()


def job_ids_get(*, filters: JobFilter, limit: int) -> list[str]:
    """Job ids matching ``filters``, newest first, at most ``limit``: bulk actions act on these."""
    qs = job_queryset(filters=filters).order_by("-enqueued_at", "-pk")
    return list(qs.values_list("job_id", flat=True)[:limit])


# RQ's end state of a job -> the record status that says the same.
_SETTLED = {"finished": JobStatus.FINISHED, "failed": JobStatus.DEAD, "stopped": JobStatus.STOPPED,
            "canceled": JobStatus.CANCELED}  # fmt: skip


def job_is_settled(*, record: JobRecord) -> bool:
    """The record has ended and RQ agrees: no retry under way and no outcome the recorder
    has yet to apply (it lags by up to a second). A polled panel of this job can stop."""
    if not record.is_ended:
        return False
    status = redis_connection().hget(TrackedJob.key_for(record.job_id), "status")
    return status is None or _SETTLED.get(status.decode()) == record.status


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


# --- dead letters grouped by failure ------------------------------------------------------


@dataclass(frozen=True)
class FailureGroup:
    fingerprint: str
    exc_type: str
    func: str
    message: str
    count: int
    first_seen: datetime
    last_seen: datetime


def dead_letter_groups(*, queue: str = "", limit: int = 100) -> list[FailureGroup]:
    """Dead letters grouped by the fingerprint of their last failure, most recent first.

    The groups are counted on the records' ``last_fingerprint`` (an index of the dead
    letters alone, so no join with the error history); a group's exception, message and
    function are those of its latest dead letter.
    """
    dead = JobRecord.objects.filter(status=JobStatus.DEAD, discarded_at__isnull=True)
    if queue:
        dead = dead.filter(queue=queue)
    groups = list(
        dead.exclude(last_fingerprint="")  # no failure recorded: in the plain list only
        .values("last_fingerprint")
        .annotate(count=Count("*"), first_seen=Min("ended_at"), last_seen=Max("ended_at"))
        .order_by("-last_seen", "last_fingerprint")[:limit]
    )
    if not groups:
        return []
    latest_of_group = Q()
    for group in groups:
        latest_of_group |= Q(last_fingerprint=group["last_fingerprint"], ended_at=group["last_seen"])
    latest: dict[str, tuple[int, str]] = {}  # fingerprint -> (record id, function) of its latest dead letter
    for pk, fp, func in dead.filter(latest_of_group).order_by("id").values_list("pk", "last_fingerprint", "func"):
        latest[fp] = (pk, func)
    errors = {
        job_id: (exc_type, message)
        for job_id, exc_type, message in JobError.objects.filter(
            job_id__in=[pk for pk, _ in latest.values()], attempt=F("job__attempts")
        ).values_list("job_id", "exc_type", "message")
    }
    result = []
    for group in groups:
        pk, func = latest.get(group["last_fingerprint"], (0, ""))
        exc_type, message = errors.get(pk, ("", ""))
        result.append(
            FailureGroup(
                fingerprint=group["last_fingerprint"],
                exc_type=exc_type,
                func=func,
                message=message,
                count=group["count"],
                first_seen=group["first_seen"],
                last_seen=group["last_seen"],
            )
        )
    return result


# --- live queue and worker facts (Redis) plus roll-ups ---------------------------------


@dataclass(frozen=True)
class WorkerInfo:
    name: str
    hostname: str
    pid: int | None
    queues: list[str]
    state: str
    current_job_id: str | None
    last_heartbeat: datetime | None
    birth: datetime | None
    successful: int
    failed: int

    @property
    def is_busy(self) -> bool:
        return self.state == "busy"


def worker_list() -> list[WorkerInfo]:
    """Live RQ workers; a jobsite worker whose liveness key lapsed (killed) is left out."""
    connection = redis_connection()
    ours = {name.decode() for name in connection.smembers(WORKERS_SET)}
    suspended = is_suspended(connection)
    found: list[WorkerInfo] = []
    for worker in Worker.all(connection=connection, job_class=TrackedJob, queue_class=TrackedQueue):
        if worker.name in ours and not is_alive(connection, worker.name):
            continue
        state = worker.get_state()
        if suspended and state != "busy":
            state = "suspended"
        found.append(
            WorkerInfo(
                name=worker.name,
                hostname=worker.hostname or "",
                pid=worker.pid,
                queues=worker.queue_names(),
                state=state,
                current_job_id=worker.get_current_job_id() if state == "busy" else None,
                last_heartbeat=worker.last_heartbeat,
                birth=worker.birth_date,
                successful=worker.successful_job_count,
                failed=worker.failed_job_count,
            )
        )
    return sorted(found, key=lambda w: w.name)


def queue_names() -> list[str]:
    """The configured queues in priority order, then any other queue RQ knows of."""
    names = list(settings.JOBSITE_QUEUES)
    extra = {q.name for q in Queue.all(connection=redis_connection())} - set(names)
    return names + sorted(extra)


@dataclass(frozen=True)
class QueueStats:
    name: str
    length: int = 0
    scheduled: int = 0
    started: int = 0
    deferred: int = 0
    retrying: int = 0
    dead: int = 0
    paused_since: datetime | None = None
    workers_busy: int = 0
    workers_idle: int = 0
    finished_hour: int = 0
    failed_hour: int = 0
    finished_day: int = 0
    failed_day: int = 0

    @property
    def paused(self) -> bool:
        return self.paused_since is not None

    @property
    def throughput_hour(self) -> float:
        """Jobs finished per minute over the last hour."""
        return self.finished_hour / 60

    @property
    def throughput_day(self) -> float:
        return self.finished_day / (24 * 60)

    @property
    def failure_rate_hour(self) -> float | None:
        return failure_rate(self.failed_hour, self.finished_hour)

    @property
    def failure_rate_day(self) -> float | None:
        return failure_rate(self.failed_day, self.finished_day)


def failure_rate(failed: int, finished: int) -> float | None:
    """Share of attempts that failed, in percent; None when nothing ran."""
    attempts = failed + finished
    return 100.0 * failed / attempts if attempts else None


@dataclass(frozen=True)
class Bucket:
    start: datetime
    finished: int = 0
    failed: int = 0
    dead: int = 0

    @property
    def failure_rate(self) -> float | None:
        return failure_rate(self.failed, self.finished)


@dataclass(frozen=True)
class Rollup:
    """One window of the roll-ups: the chart's buckets and each queue's (finished, failed)."""

    series: list[Bucket]
    by_queue: dict[str, tuple[int, int]]


def rollup_get(*, window: Literal["hour", "day"] = "hour", queue: str = "", now: datetime | None = None) -> Rollup:
    """The last hour per minute, or the last 24 hours per hour, in one query on the roll-ups.

    The series runs oldest bucket first with empty buckets included; the per-queue sums
    cover the whole window to the second (the last 60 minutes, the last 24 hours). The
    database sums per bucket and queue, so a day is 24 rows a queue, not 1,440.
    """
    step = timedelta(minutes=1) if window == "hour" else timedelta(hours=1)
    count = 60 if window == "hour" else 24
    now_ = (now or timezone.now()).astimezone(UTC)
    last = now_.replace(second=0, microsecond=0)
    if window == "day":
        last = last.replace(minute=0)
    first = last - step * (count - 1)  # never before `since`: the series is inside the window
    since = now_ - step * count
    qs = JobMetric.objects.filter(minute__gte=since)
    if queue:
        qs = qs.filter(queue=queue)
    rows = (
        qs.annotate(bucket=F("minute") if window == "hour" else TruncHour("minute", tzinfo=UTC))
        .values("bucket", "queue")
        .annotate(finished=Sum("finished"), failed=Sum("failed"), dead=Sum("dead"))
    )
    sums: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])
    by_queue: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row in rows:
        finished, failed, dead = row["finished"] or 0, row["failed"] or 0, row["dead"] or 0
        per_queue = by_queue[row["queue"]]
        per_queue[0] += finished
        per_queue[1] += failed
        index = int((row["bucket"] - first) // step)
        if 0 <= index < count:
            acc = sums[index]
            acc[0] += finished
            acc[1] += failed
            acc[2] += dead
    series = [Bucket(first + step * i, *sums[i]) if i in sums else Bucket(first + step * i) for i in range(count)]
    return Rollup(series=series, by_queue={name: (f, x) for name, (f, x) in by_queue.items()})


def throughput_series_get(
    *, window: Literal["hour", "day"] = "hour", queue: str = "", now: datetime | None = None
) -> list[Bucket]:
    """Finished and failed per bucket from the roll-ups: the last hour per minute, or the
    last 24 hours per hour. Oldest bucket first; empty buckets included."""
    return rollup_get(window=window, queue=queue, now=now).series


@dataclass(frozen=True)
class Overview:
    queues: list[QueueStats]
    totals: QueueStats
    workers: list[WorkerInfo]
    suspended: bool
    hour: Rollup
    day: Rollup
    at: datetime = field(default_factory=timezone.now)


def queue_stats_get(
    *,
    names: list[str] | None = None,
    workers: list[WorkerInfo] | None = None,
    hour: Rollup | None = None,
    day: Rollup | None = None,
) -> list[QueueStats]:
    """Per queue: live Redis lengths and registries, waiting-state counts, rates from roll-ups.

    Nothing here counts the job history: retrying and dead use indexed counts over
    those statuses only, and rates read the per-minute JobMetric roll-ups.
    """
    names = names if names is not None else queue_names()
    workers = workers if workers is not None else worker_list()
    connection = redis_connection()
    with connection.pipeline(transaction=False) as pipe:
        for name in names:
            queue = TrackedQueue(name, connection=connection)
            pipe.llen(queue.key)
            for registry in (queue.scheduled_job_registry, queue.started_job_registry, queue.deferred_job_registry):
                pipe.zcard(registry.key)
        live = pipe.execute()
    paused = paused_queues(connection)
    waiting = defaultdict(int)
    for row in (
        JobRecord.objects.filter(status=JobStatus.RETRYING, queue__in=names).values("queue").annotate(n=Count("id"))
    ):
        waiting[(row["queue"], JobStatus.RETRYING)] = row["n"]
    for row in (
        JobRecord.objects.filter(status=JobStatus.DEAD, discarded_at__isnull=True, queue__in=names)
        .values("queue")
        .annotate(n=Count("id"))
    ):
        waiting[(row["queue"], JobStatus.DEAD)] = row["n"]
    now_ = timezone.now()
    hour_sums = (hour or rollup_get(window="hour", now=now_)).by_queue
    day_sums = (day or rollup_get(window="day", now=now_)).by_queue
    stats = []
    for i, name in enumerate(names):
        length, scheduled, started, deferred = live[i * 4 : i * 4 + 4]
        listening = [w for w in workers if name in w.queues]
        stats.append(
            QueueStats(
                name=name,
                length=length,
                scheduled=scheduled,
                started=started,
                deferred=deferred,
                retrying=waiting[(name, JobStatus.RETRYING)],
                dead=waiting[(name, JobStatus.DEAD)],
                paused_since=paused.get(name),
                workers_busy=sum(1 for w in listening if w.is_busy),
                workers_idle=sum(1 for w in listening if not w.is_busy),
                finished_hour=hour_sums.get(name, (0, 0))[0],
                failed_hour=hour_sums.get(name, (0, 0))[1],
                finished_day=day_sums.get(name, (0, 0))[0],
                failed_day=day_sums.get(name, (0, 0))[1],
            )
        )
    return stats


def overview_get() -> Overview:
    workers = worker_list()
    now_ = timezone.now()
    hour, day = rollup_get(window="hour", now=now_), rollup_get(window="day", now=now_)
    queues = queue_stats_get(workers=workers, hour=hour, day=day)
    totals = QueueStats(
        name="all queues",
        **{
            attr: sum(getattr(q, attr) for q in queues)
            for attr in (
                "length",
                "scheduled",
                "started",
                "deferred",
                "retrying",
                "dead",
                "finished_hour",
                "failed_hour",
                "finished_day",
                "failed_day",
            )
        },  # fmt: skip
        workers_busy=sum(1 for w in workers if w.is_busy),
        workers_idle=sum(1 for w in workers if not w.is_busy),
    )
    return Overview(
        queues=queues,
        totals=totals,
        workers=workers,
        suspended=is_suspended(redis_connection()),
        hour=hour,
        day=day,
    )


@dataclass(frozen=True)
class Registry:
    name: str
    count: int
    items: list[tuple[str, JobRecord | None]]


def queue_registries_get(*, name: str, limit: int = 20) -> list[Registry]:
    """The jobs RQ holds for a queue right now: waiting in it, scheduled, running, deferred."""
    connection = redis_connection()
    queue = TrackedQueue(name, connection=connection)
    listing: list[tuple[str, int, list[str]]] = [
        ("queued", queue.count, queue.get_job_ids(0, limit - 1)),
    ]
    for label, registry in (
        ("scheduled", queue.scheduled_job_registry),
        ("started", queue.started_job_registry),
        ("deferred", queue.deferred_job_registry),
    ):
        count = registry.get_job_count(cleanup=False)
        listing.append((label, count, registry.get_job_ids(0, limit - 1, cleanup=False)))
    ids = {job_id for _, _, job_ids in listing for job_id in job_ids}
    records = {r.job_id: r for r in JobRecord.objects.filter(job_id__in=ids)}
    return [Registry(label, count, [(i, records.get(i)) for i in job_ids]) for label, count, job_ids in listing]


def function_names(*, days: int = 7) -> list[str]:
    """Job functions seen lately (from the roll-ups, not the history): filter suggestions.

    Cached for a minute: the list changes rarely and the distinct scan is not free."""
    from django.core.cache import cache

    def load() -> list[str]:
        since = timezone.now() - timedelta(days=days)
        qs = JobMetric.objects.filter(minute__gte=since).values_list("func", flat=True).distinct().order_by("func")
        return list(qs[:500])

    return list(cache.get_or_set(f"jobsite:function-names:{days}", load, 60) or [])
