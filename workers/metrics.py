"""Reads of the roll-ups and of live Redis facts: rates, charts, runtime percentiles, workers.

Every rate, chart and runtime table reads ``JobMetric`` (one row per minute, queue and
function), never the job history, so their cost does not grow with the number of jobs
recorded. Runtime percentiles come from the fixed histogram buckets the recorder keeps in
each row, interpolated the way Prometheus' ``histogram_quantile`` does.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Max, Q, QuerySet, Sum
from django.utils import timezone
from rq import Queue
from rq.worker import Worker, WorkerStatus

from .models import (
    RUNTIME_BUCKET_FIELDS,
    RUNTIME_BUCKETS,
    WAITING_STATUSES,
    JobMetric,
    JobMetricTotal,
    JobRecord,
    JobStatus,
)
from .tracking import redis_connection

_COUNTERS = ("enqueued", "started", "finished", "failed", "dead", "runtime_total")

# Statuses whose records are few at any time (work in flight and dead letters), so counting
# them by the status index stays cheap however long the history is.
OPEN_STATUSES = (*WAITING_STATUSES, JobStatus.STARTED, JobStatus.RETRYING, JobStatus.DEAD)


def runtime_percentile(buckets: Sequence[int], q: float, *, runtime_max: float | None = None) -> float | None:
    """The ``q`` quantile (0..1) of runtimes counted in ``buckets`` (one count per bucket of
    RUNTIME_BUCKETS plus the overflow bucket); None when nothing was counted.

    Linear interpolation inside the bucket the rank falls in, as Prometheus does; the
    answer never exceeds the largest runtime seen, when that is known.
    """
    if not 0 <= q <= 1:
        raise ValueError(f"q must be between 0 and 1, not {q!r}")
    total = sum(buckets)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    value = float(RUNTIME_BUCKETS[-1])
    for index, count in enumerate(buckets):
        if count and seen + count >= rank:
            if index >= len(RUNTIME_BUCKETS):
                value = runtime_max if runtime_max is not None else float(RUNTIME_BUCKETS[-1])
                break
            lower = float(RUNTIME_BUCKETS[index - 1]) if index else 0.0
            upper = float(RUNTIME_BUCKETS[index])
            value = lower + (upper - lower) * max(rank - seen, 0) / count
            break
        seen += count
    return min(value, runtime_max) if runtime_max is not None else value


def failed_share(failed: int, finished: int) -> float | None:
    """Failed attempts / attempts that ended (finished or failed); None when none ended."""
    ended = finished + failed
    return failed / ended if ended else None


@dataclass(frozen=True)
class Rates:
    """What happened in a window, for one queue (or all: ``queue == ""``)."""

    queue: str
    since: datetime
    until: datetime
    enqueued: int = 0
    finished: int = 0
    failed: int = 0
    dead: int = 0

    @property
    def minutes(self) -> float:
        return max((self.until - self.since).total_seconds() / 60, 1.0)

    @property
    def throughput_per_minute(self) -> float:
        """Finished jobs per minute over the window."""
        return self.finished / self.minutes

    @property
    def failure_rate(self) -> float | None:
        return failed_share(self.failed, self.finished)


@dataclass(frozen=True)
class MinutePoint:
    minute: datetime
    enqueued: int
    finished: int
    failed: int
    dead: int


@dataclass(frozen=True)
class FunctionRuntime:
    """One row of the per-function runtime table."""

    queue: str
    func: str
    enqueued: int
    finished: int
    failed: int
    dead: int
    runs: int  # attempts that ended with a runtime (finished or failed)
    runtime_total: float
    runtime_max: float
    buckets: tuple[int, ...] = field(repr=False)

    @property
    def mean(self) -> float | None:
        return self.runtime_total / self.runs if self.runs else None

    @property
    def p50(self) -> float | None:
        return runtime_percentile(self.buckets, 0.5, runtime_max=self.runtime_max)

    @property
    def p95(self) -> float | None:
        return runtime_percentile(self.buckets, 0.95, runtime_max=self.runtime_max)

    @property
    def failure_rate(self) -> float | None:
        return failed_share(self.failed, self.finished)


def _window(since: datetime, until: datetime | None, queue: str | None, func: str | None) -> QuerySet[JobMetric]:
    qs = JobMetric.objects.filter(minute__gte=since)
    if until is not None:
        qs = qs.filter(minute__lt=until)
    if queue:
        qs = qs.filter(queue=queue)
    if func:
        qs = qs.filter(func=func)
    return qs


def _sums(names: Sequence[str]) -> dict[str, Sum]:
    return {name: Sum(name) for name in names}


def metric_rates(*, since: datetime, until: datetime | None = None, queue: str | None = None) -> list[Rates]:
    """Enqueued / finished / failed / dead per queue over [since, until), from the roll-ups.

    Every configured queue gets a row (zeros when idle), configured ones first in order.
    """
    end = until or timezone.now()
    rows = {
        row["queue"]: row
        for row in _window(since, until, queue, None).values("queue").annotate(**_sums(_COUNTERS)).order_by()
    }
    names = [queue] if queue else [*settings.JOBSITE_QUEUES, *sorted(set(rows) - set(settings.JOBSITE_QUEUES))]
    return [
        Rates(
            queue=name,
            since=since,
            until=end,
            **{k: int(rows.get(name, {}).get(k) or 0) for k in ("enqueued", "finished", "failed", "dead")},
        )
        for name in names
    ]


def metric_rates_total(*, since: datetime, until: datetime | None = None) -> Rates:
    """All queues together over [since, until)."""
    per_queue = metric_rates(since=since, until=until)
    return Rates(
        queue="",
        since=since,
        until=until or timezone.now(),
        enqueued=sum(r.enqueued for r in per_queue),
        finished=sum(r.finished for r in per_queue),
        failed=sum(r.failed for r in per_queue),
        dead=sum(r.dead for r in per_queue),
    )


def metric_series(
    *,
    since: datetime,
    until: datetime | None = None,
    queue: str | None = None,
    func: str | None = None,
    step_minutes: int = 1,
) -> list[MinutePoint]:
    """Counts per ``step_minutes`` from ``since`` to ``until`` (now), zero-filled: a chart's points."""
    if step_minutes < 1:
        raise ValueError("step_minutes must be >= 1")
    end = until or timezone.now()
    start = since.replace(second=0, microsecond=0)
    step = timedelta(minutes=step_minutes)
    slots: dict[datetime, list[int]] = {}
    moment = start
    while moment < end:
        slots[moment] = [0, 0, 0, 0]
        moment += step
    rows = (
        _window(start, end, queue, func)
        .values("minute")
        .annotate(**_sums(("enqueued", "finished", "failed", "dead")))
        .order_by("minute")
    )
    for row in rows:
        slot = start + step * int((row["minute"] - start) / step)
        if slot in slots:
            counts = slots[slot]
            for i, name in enumerate(("enqueued", "finished", "failed", "dead")):
                counts[i] += int(row[name] or 0)
    return [MinutePoint(moment, *counts) for moment, counts in slots.items()]


def function_runtime_list(
    *, since: datetime | None = None, until: datetime | None = None, queue: str | None = None
) -> list[FunctionRuntime]:
    """Per queue and function: counts, mean / max / p50 / p95 runtime; slowest p95 first.

    Without ``since``: all-time, from the totals the recorder keeps (JobMetricTotal).
    """
    qs: QuerySet[JobMetric] | QuerySet[JobMetricTotal]
    if since is None:
        qs = JobMetricTotal.objects.filter(queue=queue) if queue else JobMetricTotal.objects.all()
    else:
        qs = _window(since, until, queue, None)
    rows = (
        qs.values("queue", "func")
        .annotate(
            **_sums(("enqueued", "finished", "failed", "dead", "runtime_total", *RUNTIME_BUCKET_FIELDS)),
            runtime_max_=Max("runtime_max"),
        )
        .order_by()
    )
    table = [
        FunctionRuntime(
            queue=row["queue"],
            func=row["func"],
            enqueued=int(row["enqueued"] or 0),
            finished=int(row["finished"] or 0),
            failed=int(row["failed"] or 0),
            dead=int(row["dead"] or 0),
            runs=sum(int(row[name] or 0) for name in RUNTIME_BUCKET_FIELDS),
            runtime_total=float(row["runtime_total"] or 0.0),
            runtime_max=float(row["runtime_max_"] or 0.0),
            buckets=tuple(int(row[name] or 0) for name in RUNTIME_BUCKET_FIELDS),
        )
        for row in rows
    ]
    return sorted(table, key=lambda r: (-(r.p95 or -1.0), r.queue, r.func))


def job_status_counts() -> dict[tuple[str, str], int]:
    """Records per (queue, status) for work in flight and undiscarded dead letters.

    Ended statuses other than dead are not counted: their totals are the roll-ups'
    finished counters, and counting them would scan the history.
    """
    rows = (
        JobRecord.objects.filter(status__in=OPEN_STATUSES)
        .exclude(Q(status=JobStatus.DEAD) & Q(discarded_at__isnull=False))
        .values("queue", "status")
        .annotate(n=Count("*"))  # COUNT(*): answered from the jobrecord_open index alone
        .order_by()
    )
    return {(row["queue"], row["status"]): row["n"] for row in rows}


# --- live facts from Redis -------------------------------------------------------------


@dataclass(frozen=True)
class QueueLive:
    name: str
    queued: int
    started: int
    scheduled: int
    deferred: int
    failed: int
    finished: int


def queue_live_list() -> list[QueueLive]:
    """Each configured queue's length and RQ registries, read from Redis now."""
    connection = redis_connection()
    result = []
    for name in settings.JOBSITE_QUEUES:
        queue = Queue(name, connection=connection)
        result.append(
            QueueLive(
                name=name,
                queued=queue.count,
                started=queue.started_job_registry.count,
                scheduled=queue.scheduled_job_registry.count,
                deferred=queue.deferred_job_registry.count,
                failed=queue.failed_job_registry.count,
                finished=queue.finished_job_registry.count,
            )
        )
    return result


@dataclass(frozen=True)
class WorkerLive:
    name: str
    state: str  # busy, idle or suspended
    queues: tuple[str, ...]
    successful: int
    failed: int
    working_seconds: float


def worker_live_list() -> list[WorkerLive]:
    """Workers registered in Redis now (RQ drops one whose heartbeat key expired)."""
    result = []
    for worker in Worker.all(connection=redis_connection()):
        raw = worker.get_state()
        state = raw.value if isinstance(raw, WorkerStatus) else str(raw)
        if state not in ("busy", "suspended"):
            state = "idle"  # started or idle: waiting for work
        result.append(
            WorkerLive(
                name=worker.name,
                state=state,
                queues=tuple(worker.queue_names()),
                successful=worker.successful_job_count,
                failed=worker.failed_job_count,
                working_seconds=float(worker.total_working_time),
            )
        )
    return sorted(result, key=lambda w: w.name)


def worker_state_counts() -> dict[str, int]:
    """How many workers are busy, idle and suspended."""
    counts: dict[str, int] = defaultdict(int, {"busy": 0, "idle": 0, "suspended": 0})
    for worker in worker_live_list():
        counts[worker.state] += 1
    return dict(counts)
