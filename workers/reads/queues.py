"""Per-queue and overview figures: live facts from Redis beside rates from the roll-ups."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Count
from django.utils import timezone
from rq.suspension import is_suspended

from ..models import JobRecord
from ..redis import connection as redis_connection
from ..rq.pausing import paused_queues
from ..statuses import JobStatus
from .live import WorkerInfo, queue_live_list, queue_names, worker_list
from .rollups import Rollup, failure_rate, rollup_get
from .unapplied import unapplied_count


@dataclass(frozen=True)
class QueueStats:
    name: str
    length: int = 0
    scheduled: int = 0
    started: int = 0
    deferred: int = 0
    retrying: int = 0
    dead: int = 0
    paused: bool = False
    paused_since: datetime | None = None  # None while paused: its entry holds no time
    workers_busy: int = 0
    workers_idle: int = 0
    finished_hour: int = 0
    failed_hour: int = 0
    finished_day: int = 0
    failed_day: int = 0

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


@dataclass(frozen=True)
class Overview:
    queues: list[QueueStats]
    totals: QueueStats
    workers: list[WorkerInfo]
    suspended: bool
    hour: Rollup
    day: Rollup
    unapplied_events: int = 0  # tracking events the recorder set aside (reads/unapplied.py)
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

    Waiting and running are RQ's queue length and started registry, as ``rq info`` counts
    them. RQ's scheduled registry holds both jobs waiting for their time and retries
    waiting for their backoff: ``retrying`` are the records waiting for a retry and
    ``scheduled`` the rest of the registry, so the two add up to what RQ holds.
    """
    names = names if names is not None else queue_names()
    workers = workers if workers is not None else worker_list()
    live = queue_live_list(names)
    paused = paused_queues(redis_connection())
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
    for name, counts in zip(names, live, strict=True):
        listening = [w for w in workers if name in w.queues]
        retrying = waiting[(name, JobStatus.RETRYING)]
        stats.append(
            QueueStats(
                name=name,
                length=counts.queued,
                scheduled=max(counts.scheduled - retrying, 0),
                started=counts.started,
                deferred=counts.deferred,
                retrying=retrying,
                dead=waiting[(name, JobStatus.DEAD)],
                paused=name in paused,
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
        unapplied_events=unapplied_count(),
    )
