"""(a') Redis round trips and commands per job: bare RQ against jobsite's worker, counted.

Bare: rq's own Queue + Job and ``SimpleWorker``. Tracked: ``TrackedQueue`` + ``TrackedJob``
and ``TrackingSimpleWorker`` with its recorder off (as ``rqworker --no-recorder``: the
recorder's traffic is not the worker's). Each side runs burst jobs that finish (a no-op)
and jobs that fail (an exception; no retry on either side) on the same private Redis.

- **round trips**: requests the worker's connections send (``CountingConnection``, a
  redis-py ``Connection`` counting ``send_packed_command``, given to both sides through
  their connection pool): a command, a pipeline, a MULTI/EXEC block or a Lua call is one.
- **commands**: what Redis executed for those connections, MULTI, EXEC and the commands a
  Lua script calls included (what ``INFO commandstats`` counts), read from ``MONITOR`` so
  that the commands of the worker's companion thread (liveness, watchdogs: paced by time,
  not by jobs) are left out. ``INFO commandstats`` before and after each run is kept in the
  detail as a cross-check: for bare RQ, alone on the server, it agrees with ``MONITOR``; for
  jobsite it adds the companion's commands of those seconds.

A run of 2N jobs minus a run of N, divided by N, leaves what one more job costs (the
worker's start and stop cancel out). Counts, not times: the figures are the same on a
loaded machine, which is why tests/workers/test_roundtrips.py can hold the worker to them.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections import Counter
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from django.conf import settings
from redis import Connection, ConnectionPool, Redis
from rq import Queue, SimpleWorker
from rq.job import Job

from workers.redis import PAUSED_KEY, STREAM_GROUP, STREAM_KEY
from workers.rq.job import TrackedJob
from workers.rq.queue import TrackedQueue
from workers.runtime.worker import TrackingMixin, TrackingSimpleWorker

from .common import Result, log

QUEUE = "default"  # a configured queue: the tracked side must be a real jobsite queue
FUNCS = {"finishing": "bench.jobs.noop", "failing": "bench.jobs.fail"}
# Bare RQ plus this many round trips per job is the target (issue 15).
EXTRA_ALLOWED = 1


@dataclass
class Tally:
    """What the connections of one pool sent: requests, and the local ports they used."""

    round_trips: int = 0
    ports: set[int] = field(default_factory=set)


class CountingConnection(Connection):
    """A redis-py connection that counts each request it sends (one per command, pipeline,
    transaction or script call) in its class's ``tally``: a subclass per client counted."""

    tally: Tally

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        tally = type(self).tally
        tally.round_trips += 1
        super().send_packed_command(command, check_health)
        if self._sock is not None:
            tally.ports.add(self._sock.getsockname()[1])


def counting_client(url: str) -> tuple[Redis, Tally]:
    """A client of ``url`` whose every connection counts into the returned tally."""
    tally = Tally()
    connection_class = type("CountingConnection", (CountingConnection,), {"tally": tally})
    pool = ConnectionPool.from_url(url, connection_class=connection_class)
    return Redis(connection_pool=pool), tally


class CommandLog(threading.Thread):
    """Every command Redis executes while it runs (MONITOR), with the client that sent it;
    a command a Lua script calls counts for the client whose script it is."""

    STOP = "jobsite-bench-monitor-stop"

    def __init__(self, url: str) -> None:
        super().__init__(name="bench-monitor", daemon=True)
        self.client = Redis.from_url(url)
        self.by_port: Counter[int] = Counter()
        self._ready = threading.Event()

    def __enter__(self) -> CommandLog:
        self.start()
        if not self._ready.wait(10):
            raise RuntimeError("MONITOR did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        Redis.from_url(settings.REDIS_URL).echo(self.STOP)
        self.join(timeout=30)

    def run(self) -> None:
        port = 0
        with self.client.monitor() as monitor:
            self._ready.set()
            while True:
                entry = monitor.next_command()
                if entry["command"].startswith(f"ECHO {self.STOP}"):
                    return
                if entry["client_type"] != "lua":
                    port = int(entry["client_port"] or 0)
                self.by_port[port] += 1

    def commands_of(self, tally: Tally) -> int:
        return sum(count for port, count in self.by_port.items() if port in tally.ports)


def _commandstats(connection: Redis) -> int:
    stats = connection.info("commandstats")
    return sum(int(value["calls"]) for value in stats.values())


@dataclass
class Counted:
    round_trips: int
    commands: int
    all_clients: int  # INFO commandstats before/after: the companion and this bench included
    job_ids: list[str]


def burst(
    side: str, outcome: str, count: int, *, commands: bool = True, paused: dict[str, str] | None = None
) -> Counted:
    """Run ``count`` jobs that end as ``outcome`` through a burst worker of ``side`` ("bare"
    or "tracked") on the configured (private) Redis, which this empties first.

    ``paused`` (tracked side): queue name -> the value of its entry in the paused-queues
    hash (written as given, malformed or not); the worker listens to those queues too,
    each holding ``count`` jobs that must still be there afterwards."""
    url = settings.REDIS_URL
    plain = Redis.from_url(url)
    plain.flushdb()
    plain.xgroup_create(STREAM_KEY, STREAM_GROUP, id="0", mkstream=True)
    tracked = side == "tracked"
    job_class: type[Job] = TrackedJob if tracked else Job
    queue_class: type[Queue] = TrackedQueue if tracked else Queue
    names = [QUEUE, *(paused or {})]
    for name in names:
        jobs = queue_class(name, connection=plain, job_class=job_class).enqueue_many(
            [Queue.prepare_data(FUNCS[outcome]) for _ in range(count)]
        )
        if name == QUEUE:
            job_ids = [job.id for job in jobs]
    if paused:
        plain.hset(PAUSED_KEY, mapping=paused)
    connection, tally = counting_client(url)
    queues = [queue_class(name, connection=connection, job_class=job_class) for name in names]
    worker_class = TrackingSimpleWorker if tracked else SimpleWorker
    worker = worker_class(
        queues, connection=connection, job_class=job_class, queue_class=queue_class,
        name=f"bench-{uuid.uuid4().hex[:8]}",
    )  # fmt: skip
    TrackingMixin.run_recorder = False
    rq_log = logging.getLogger("rq.worker")
    level = rq_log.level  # work() sets it for the whole process: given back below
    before = _commandstats(plain)
    try:
        with CommandLog(url) if commands else nullcontext() as command_log:
            # The failing jobs' tracebacks: counted, not logged.
            worker.work(burst=True, with_scheduler=False, logging_level="CRITICAL")
    finally:
        TrackingMixin.run_recorder = True
        rq_log.setLevel(level)
    all_clients = _commandstats(plain) - before
    for name in names:
        queue = queue_class(name, connection=plain, job_class=job_class)
        ended = queue.finished_job_registry if outcome == "finishing" else queue.failed_job_registry
        expected = (count, 0) if name == QUEUE else (0, count)  # (ended, still queued)
        if (ended.count, queue.count) != expected:
            raise AssertionError(f"{side} {outcome}, queue {name}: {ended.count} ended, {queue.count} queued")
    connection.close()
    plain.close()
    counted = command_log.commands_of(tally) if command_log is not None else 0
    return Counted(tally.round_trips, counted, all_clients, job_ids)


class PerJob(NamedTuple):
    round_trips: float
    commands: float
    all_clients: float  # INFO commandstats: bare RQ's equals ``commands``; tracked adds its companion's


def per_job(side: str, outcome: str, count: int = 10, **options: Any) -> PerJob:
    """What one job costs a ``side`` worker: a run of 2 x ``count`` jobs less a run of
    ``count``, over ``count`` (the worker's start and stop cancel out). ``options`` go to
    ``burst``."""
    small = burst(side, outcome, count, **options)
    large = burst(side, outcome, 2 * count, **options)
    return PerJob(
        (large.round_trips - small.round_trips) / count,
        (large.commands - small.commands) / count,
        (large.all_clients - small.all_clients) / count,
    )


def run(connection: Redis) -> list[Result]:
    count = int(os.environ.get("BENCH_ROUNDTRIP_JOBS", "20"))
    results = []
    for outcome in FUNCS:
        bare_trips, bare_commands, bare_all = per_job("bare", outcome, count)
        trips, commands, tracked_all = per_job("tracked", outcome, count)
        log(
            f"round trips per {outcome} job: bare {bare_trips:g} ({bare_commands:g} commands), "
            f"tracked {trips:g} ({commands:g} commands)"
        )
        results.append(
            Result(
                name=f"Redis round trips per job tracked - bare, SimpleWorker, {outcome} job",
                ratio=trips - bare_trips,
                target=f"<= {EXTRA_ALLOWED}",
                detail={
                    "jobs_each_run": [count, 2 * count],
                    "bare_round_trips": bare_trips,
                    "tracked_round_trips": trips,
                    "bare_commands": bare_commands,
                    "tracked_commands": commands,
                    # INFO commandstats before/after, every client: the cross-check.
                    "commandstats_bare": bare_all,
                    "commandstats_tracked_with_companion": tracked_all,
                },
                note=(
                    f"bare {bare_trips:g} round trips ({bare_commands:g} commands), tracked {trips:g} ({commands:g})"
                ),
            )
        )
    connection.flushdb()
    return results
