"""(a) Tracked / bare RQ throughput on the same worker class, no-op jobs.

Bare: rq's own Queue + Job and SimpleWorker / Worker. Tracked: TrackedJob (events in RQ's
pipelines) and TrackingSimpleWorker / TrackingWorker, whose companion thread runs the
recorder in the worker process, as `manage.py rqworker` does by default. The tracked
time runs until every job's record is written: the burst worker's final drain is inside
the stopwatch, and the benchmark checks that all records say finished.

Rounds alternate bare and tracked so that noise from other processes on the machine
hits both; each side keeps its best round.
"""

from __future__ import annotations

import os
import uuid

from redis import Redis
from rq import Queue, SimpleWorker, Worker
from rq.job import Job

from workers.models import JobRecord, JobStatus
from workers.recorder import drain
from workers.tracking import TrackedJob, TrackingSimpleWorker, TrackingWorker

from .common import Result, log, stopwatch

QUEUE = "default"  # a configured queue: the tracked side must be a real jobsite queue


def _fill(connection: Redis, job_class: type[Job], count: int) -> list[str]:
    queue = Queue(QUEUE, connection=connection, job_class=job_class)
    jobs = queue.enqueue_many([Queue.prepare_data("bench.jobs.noop") for _ in range(count)])
    return [job.id for job in jobs]


def _run(connection: Redis, worker_class: type[Worker], job_class: type[Job]) -> None:
    queue = Queue(QUEUE, connection=connection, job_class=job_class)
    worker = worker_class([queue], connection=connection, job_class=job_class, name=f"bench-{uuid.uuid4().hex[:8]}")
    worker.work(burst=True, with_scheduler=False, logging_level="WARNING")


def _round(connection: Redis, worker_class: type[Worker], job_class: type[Job], count: int, tracked: bool) -> float:
    connection.flushdb()
    ids = _fill(connection, job_class, count)
    if tracked:
        drain(connection)  # the enqueue events belong to (b), not to the worker
    with stopwatch() as elapsed:
        _run(connection, worker_class, job_class)
    seconds = elapsed()
    if tracked:
        finished = JobRecord.objects.filter(job_id__in=ids, status=JobStatus.FINISHED).count()
        if finished != count:
            raise AssertionError(f"tracked run recorded {finished} of {count} jobs as finished")
    elif Queue(QUEUE, connection=connection).finished_job_registry.count != count:
        raise AssertionError("bare run did not finish every job")
    return count / seconds


def run(connection: Redis) -> list[Result]:
    count = int(os.environ.get("BENCH_JOBS", "2000"))
    rounds = int(os.environ.get("BENCH_ROUNDS", "2"))
    results = []
    pairs = (
        ("SimpleWorker", SimpleWorker, TrackingSimpleWorker),
        ("Worker (forking)", Worker, TrackingWorker),
    )
    for label, bare_class, tracked_class in pairs:
        bare: list[float] = []
        tracked: list[float] = []
        for n in range(rounds):
            bare.append(_round(connection, bare_class, Job, count, tracked=False))
            tracked.append(_round(connection, tracked_class, TrackedJob, count, tracked=True))
            log(f"throughput {label} round {n + 1}: bare {bare[-1]:.0f} jobs/s, tracked {tracked[-1]:.0f} jobs/s")
        results.append(
            Result(
                name=f"throughput tracked/bare, {label}, {count} no-op jobs",
                ratio=max(tracked) / max(bare),
                target=">= 0.90",
                detail={
                    "bare_jobs_per_s": [round(x, 1) for x in bare],
                    "tracked_jobs_per_s": [round(x, 1) for x in tracked],
                    "recorder": "in the worker's companion thread; tracked time includes the final drain",
                },
                note=f"bare {max(bare):.0f}/s, tracked {max(tracked):.0f}/s (best of {rounds})",
            )
        )
    connection.flushdb()
    return results
