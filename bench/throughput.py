"""(a) Tracked / bare RQ throughput on the same worker class, no-op jobs.

Bare: rq's own Queue + Job and SimpleWorker / Worker. Tracked: TrackedJob (events in RQ's
pipelines) and TrackingSimpleWorker / TrackingWorker. The tracked time runs until every
job's record says finished, so the recorder has to keep up for the ratio to be good.

Where the recorder runs is said on every row:
- "record_events process": `manage.py record_events` beside the worker (the worker runs
  with its recorder off, as `rqworker --no-recorder` does); the time includes its catch-up.
- "recorder in the worker": the worker's companion thread, as `rqworker` does by default;
  the time includes the burst worker's final drain.

Runs go bare, tracked, tracked, bare with half the jobs each, so that a change in the
machine's load hits both sides alike; each side's rate is its jobs over its total time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from redis import Redis
from rq import Queue, SimpleWorker, Worker
from rq.job import Job

from workers.models import JobRecord, JobStatus
from workers.recording.consumer import drain
from workers.redis import STREAM_GROUP, STREAM_KEY
from workers.rq.job import TrackedJob
from workers.runtime.worker import TrackingMixin, TrackingSimpleWorker, TrackingWorker

from .common import Result, log, stopwatch

QUEUE = "default"  # a configured queue: the tracked side must be a real jobsite queue
ROOT = Path(__file__).resolve().parent.parent
PROCESS, THREAD = "record_events process", "recorder in the worker"


def _wait_recorded(ids: list[str], status: str | None, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    qs = JobRecord.objects.filter(job_id__in=ids)
    if status:
        qs = qs.filter(status=status)
    while qs.count() != len(ids):
        if time.monotonic() > deadline:
            raise AssertionError(f"only {qs.count()} of {len(ids)} jobs recorded as {status or 'existing'}")
        time.sleep(0.02)


def _round(connection: Redis, worker_class: type[Worker], count: int, recorder: str | None) -> float:
    """Jobs per second for one burst run; ``recorder`` None means bare RQ."""
    connection.flushdb()
    # The flush took the recorders' consumer group with it; a running record_events
    # would not make it again.
    connection.xgroup_create(STREAM_KEY, STREAM_GROUP, id="0", mkstream=True)
    job_class = Job if recorder is None else TrackedJob
    queue = Queue(QUEUE, connection=connection, job_class=job_class)
    ids = [job.id for job in queue.enqueue_many([Queue.prepare_data("bench.jobs.noop") for _ in range(count)])]
    if recorder == THREAD:
        drain(connection)  # the enqueue events belong to (b), not to the worker
    elif recorder == PROCESS:
        _wait_recorded(ids, None)
    worker = worker_class([queue], connection=connection, job_class=job_class, name=f"bench-{uuid.uuid4().hex[:8]}")
    TrackingMixin.run_recorder = recorder != PROCESS
    try:
        with stopwatch() as elapsed:
            worker.work(burst=True, with_scheduler=False, logging_level="WARNING")
            if recorder == PROCESS:
                _wait_recorded(ids, JobStatus.FINISHED)
    finally:
        TrackingMixin.run_recorder = True
    if recorder is not None:
        _wait_recorded(ids, JobStatus.FINISHED, timeout=0)
    elif Queue(QUEUE, connection=connection).finished_job_registry.count != count:
        raise AssertionError("bare run did not finish every job")
    return count / elapsed()


def _pair(
    connection: Redis, label: str, classes: tuple[type[Worker], type[Worker]], count: int, recorder: str
) -> Result:
    half = count // 2
    seconds = {"bare": 0.0, "tracked": 0.0}
    runs: dict[str, list[float]] = {"bare": [], "tracked": []}
    for side in ("bare", "tracked", "tracked", "bare"):
        tracked = side == "tracked"
        rate = _round(connection, classes[tracked], half, recorder if tracked else None)
        runs[side].append(round(rate, 1))
        seconds[side] += half / rate
        log(f"throughput {label} ({recorder}): {side} {rate:.0f} jobs/s")
    bare_rate, tracked_rate = 2 * half / seconds["bare"], 2 * half / seconds["tracked"]
    return Result(
        name=f"throughput tracked/bare, {label}, {recorder}",
        ratio=tracked_rate / bare_rate,
        target=">= 0.90",
        detail={
            "jobs_each_side": 2 * half,
            "bare_jobs_per_s": round(bare_rate, 1),
            "tracked_jobs_per_s": round(tracked_rate, 1),
            "runs_jobs_per_s": runs,
            "recorder": recorder,
        },
        note=f"{2 * half} no-op jobs: bare {bare_rate:.0f}/s, tracked {tracked_rate:.0f}/s",
    )


def run(connection: Redis) -> list[Result]:
    count = int(os.environ.get("BENCH_JOBS", "2000"))
    simple = (SimpleWorker, TrackingSimpleWorker)
    forking = (Worker, TrackingWorker)
    results = [_pair(connection, "SimpleWorker", simple, count, THREAD)]
    recorder = subprocess.Popen(
        [sys.executable, "manage.py", "record_events"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,  # it complains while a bare run flushes Redis under it
        env=os.environ.copy(),
    )
    try:
        results.append(_pair(connection, "SimpleWorker", simple, count, PROCESS))
        results.append(_pair(connection, "Worker (forking)", forking, count, PROCESS))
    finally:
        recorder.send_signal(signal.SIGTERM)
        recorder.wait(timeout=30)
    connection.flushdb()
    return results
