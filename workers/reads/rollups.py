"""Reads of the roll-ups: rates, charts, runtime percentiles, counts of open work.

Every rate, chart and runtime table reads ``JobMetric`` (one row per minute, queue and
function) or the all-time ``JobMetricTotal``, and the counts of open work read
``JobStatusCount`` (kept by triggers), never the job history, so their cost does not grow
with the number of jobs recorded. Runtime percentiles come from the fixed
histogram buckets the recorder keeps in each row, interpolated the way Prometheus'
``histogram_quantile`` does. A failure rate is one unit everywhere: a share from 0 to 1.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from django.db.models import F, Max, QuerySet, Sum
from django.db.models.functions import TruncHour
from django.utils import timezone

from .. import conf
from ..models import RUNTIME_BUCKET_FIELDS, RUNTIME_BUCKETS, JobMetric, JobMetricTotal, JobStatusCount

_COUNTERS = ("enqueued", "started", "finished", "failed", "dead", "runtime_total")


def failure_rate(failed: int, finished: int) -> float | None:
    """Failed attempts / attempts that ended (finished or failed), 0 to 1; None when none ended."""
    ended = finished + failed
    return failed / ended if ended else None


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
        return failure_rate(self.failed, self.finished)


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
        return failure_rate(self.failed, self.finished)


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
    configured = conf.queue_names()
    names = [queue] if queue else [*configured, *sorted(set(rows) - set(configured))]
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

    Read from ``JobStatusCount``, which database triggers keep as the job table changes
    (its shards summed): a few dozen rows however long the history and however many dead
    letters wait. Ended statuses other than dead are not counted: their totals are the
    roll-ups' finished counters. A pair whose count is 0 is left out; a negative count
    would mean the triggers were bypassed (``services.counts.job_status_counts_rebuild``).
    """
    rows = JobStatusCount.objects.values("queue", "status").annotate(total=Sum("n")).order_by()
    return {(row["queue"], row["status"]): int(row["total"]) for row in rows if row["total"]}


def function_names(*, days: int = 7) -> list[str]:
    """Job functions seen lately (from the roll-ups, not the history): filter suggestions.

    Cached for a minute: the list changes rarely and the distinct scan is not free."""
    from django.core.cache import cache

    def load() -> list[str]:
        since = timezone.now() - timedelta(days=days)
        qs = JobMetric.objects.filter(minute__gte=since).values_list("func", flat=True).distinct().order_by("func")
        return list(qs[:500])

    return list(cache.get_or_set(f"jobsite:function-names:{days}", load, 60) or [])
