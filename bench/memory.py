"""(i) A worker's memory over a long life: its resident set after 100,000 jobs against
after 1,000.

One `rqworker --simple` (jobs run in the worker process itself, recorder in the worker: the
process where anything a job or the tracking keeps would pile up) takes 100,000 no-op jobs
(``BENCH_MEMORY_JOBS``), enqueued before it starts. Its VmRSS is read when 1,000 records say
finished, then every 10,000, and at the end. Target: within 10 % of the 1,000-job figure.
The forking worker's own process runs no job; its work horses live for one job each.
"""

from __future__ import annotations

import os
import time

from redis import Redis

from workers.models import JobRecord, JobStatus
from workers.redis import STREAM_GROUP, STREAM_KEY
from workers.rq.job import TrackedJob
from workers.rq.queue import TrackedQueue

from .common import Result, log
from .workerproc import empty_job_history, rqworkers, rss_kib

QUEUE, FIRST, EVERY = "default", 1000, 10_000


def run(connection: Redis) -> list[Result]:
    total = int(os.environ.get("BENCH_MEMORY_JOBS", "100000"))
    if total < 2 * FIRST:
        raise ValueError(f"BENCH_MEMORY_JOBS must be at least {2 * FIRST}, not {total}")
    connection.flushdb()
    connection.xgroup_create(STREAM_KEY, STREAM_GROUP, id="0", mkstream=True)
    empty_job_history()
    queue = TrackedQueue(QUEUE, connection=connection, job_class=TrackedJob)
    for start in range(0, total, 1000):
        queue.enqueue_many([TrackedQueue.prepare_data("bench.jobs.noop") for _ in range(min(1000, total - start))])
    samples: dict[int, int] = {}
    started = time.monotonic()
    with rqworkers(connection, ["--simple", QUEUE]) as (worker,):
        finished = JobRecord.objects.filter(status=JobStatus.FINISHED)
        mark = FIRST
        deadline = time.monotonic() + 3600
        while True:
            done = finished.count()
            if done >= mark or done >= total:
                samples[done] = rss_kib(worker.pid)
                log(f"memory: {done} jobs finished, worker VmRSS {samples[done] / 1024:.1f} MiB")
                if done >= total:
                    break
                mark = (mark // EVERY + 1) * EVERY
            if time.monotonic() > deadline or worker.poll() is not None:
                raise RuntimeError(f"the worker stopped or stalled at {done} of {total} jobs")
            time.sleep(0.2)
    first = samples[min(samples)]
    last = samples[max(samples)]
    connection.flushdb()
    return [
        Result(
            name=f"worker memory after {total // 1000}k jobs / after {FIRST // 1000}k, rqworker --simple",
            ratio=last / first,
            target="<= 1.10",
            detail={"rss_kib_by_jobs": samples, "seconds": round(time.monotonic() - started, 1)},
            note=f"VmRSS {first / 1024:.1f} MiB -> {last / 1024:.1f} MiB",
        )
    ]
