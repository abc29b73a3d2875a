"""(h) Finish-to-record latency: how long after a job ends its record says so.

Two `rqworker --simple` processes, each with its recorder in the worker (the `rqworker`
default), take no-op jobs that this process enqueues at a steady 200 per second for 20 s.
Meanwhile it reads, every 10 ms, the records that say `finished` since its last read; a
job's latency is when its record was first seen so, less the job's `ended_at` (the worker's
clock; the same machine). So it is what a reader of the dashboard waits, commit included,
plus up to 10 ms of polling. Target: p95 < 250 ms.
"""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime, timedelta

from redis import Redis

from workers import enqueue
from workers.models import JobRecord, JobStatus
from workers.redis import STREAM_GROUP, STREAM_KEY

from .common import Result, log, percentile
from .workerproc import empty_job_history, rqworkers

RATE, SECONDS, WORKERS = 200, 20.0, 2
QUEUE = "default"


def _produce(total: int, failures: list[BaseException]) -> None:
    try:
        started = time.monotonic()
        for n in range(total):
            pause = started + n / RATE - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            enqueue("bench.jobs.noop", queue=QUEUE)
    except BaseException as exc:  # reported by run()
        failures.append(exc)


def run(connection: Redis) -> list[Result]:
    total = int(float(os.environ.get("BENCH_LAG_SECONDS", SECONDS)) * RATE)
    connection.flushdb()
    connection.xgroup_create(STREAM_KEY, STREAM_GROUP, id="0", mkstream=True)
    empty_job_history()
    lags: dict[str, float] = {}
    with rqworkers(connection, *[["--simple", QUEUE]] * WORKERS):
        failures: list[BaseException] = []
        producer = threading.Thread(target=_produce, args=(total, failures))
        since = datetime.now(UTC) - timedelta(seconds=1)
        producer.start()
        deadline = time.monotonic() + SECONDS + 120
        while len(lags) < total and time.monotonic() < deadline and not failures:
            read_from = datetime.now(UTC) - timedelta(seconds=2)  # a batch stamped, not yet committed
            rows = JobRecord.objects.filter(status=JobStatus.FINISHED, updated_at__gte=since)
            seen = time.time()
            for job_id, ended_at in rows.values_list("job_id", "ended_at"):
                if job_id not in lags and ended_at is not None:
                    lags[job_id] = seen - ended_at.timestamp()
            since = read_from
            time.sleep(0.01)
        producer.join()
    if failures:
        raise failures[0]
    if len(lags) < total:
        raise RuntimeError(f"only {len(lags)} of {total} records said finished within 120 s of the last job")
    values = list(lags.values())
    p50, p95, p99 = (percentile(values, q) * 1000 for q in (0.5, 0.95, 0.99))
    log(f"finish-to-record at {RATE} jobs/s: p50 {p50:.0f} ms, p95 {p95:.0f} ms, p99 {p99:.0f} ms ({total} jobs)")
    connection.flushdb()
    return [
        Result(
            name=f"finish-to-record latency p95 in ms, {RATE} jobs/s, {WORKERS} rqworker --simple",
            ratio=p95,
            target="<= 250",
            detail={"jobs": total, "p50_ms": round(p50, 1), "p95_ms": round(p95, 1), "p99_ms": round(p99, 1)},
            note=f"{total} no-op jobs: p50 {p50:.0f} ms, p95 {p95:.0f} ms, p99 {p99:.0f} ms",
        )
    ]
