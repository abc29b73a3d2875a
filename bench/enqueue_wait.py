"""(f) What JOBSITE["ENQUEUE_WAIT"] costs: ``workers.enqueue`` latency, p50 and p95, with
WAIT for one replica against without, alternating call by call.

Needs a replica of the benchmark's Redis (scripts/bench.sh starts one). An enqueue is two
round trips to the master; WAIT adds a third (the probe and WAIT, pipelined) and the
master's round trip to the replica (REPLCONF GETACK), hence the target of 1.5. The timeout
is generous here, so that no call is refused and every one is timed.
"""

from __future__ import annotations

import os
import time

from django.conf import settings
from redis import Redis

from workers import enqueue

from .common import Result, log, not_available, percentile

QUEUE = "default"
LABEL = "enqueue latency ENQUEUE_WAIT 1 replica/none"
TARGET = "<= 1.5"


def run(connection: Redis) -> list[Result]:
    if not int(connection.info("replication").get("connected_slaves", 0)):
        return [not_available(f"{LABEL}, p50", TARGET, "the benchmark's Redis has no replica")]
    count = int(os.environ.get("BENCH_ENQUEUES", "3000"))
    connection.flushdb()
    plain_settings = {**settings.JOBSITE, "ENQUEUE_WAIT": None}
    wait_settings = {**settings.JOBSITE, "ENQUEUE_WAIT": {"replicas": 1, "timeout_ms": 1000}}
    calls = {"plain": plain_settings, "wait": wait_settings}
    original = settings.JOBSITE
    samples: dict[str, list[float]] = {"plain": [], "wait": []}
    clock = time.perf_counter
    try:
        for n in range(100 + count):  # the first 100 of each warm up imports and pools
            for name in ("plain", "wait") if n % 2 else ("wait", "plain"):
                settings.JOBSITE = calls[name]
                start = clock()
                enqueue("bench.jobs.noop", queue=QUEUE)
                if n >= 100:
                    samples[name].append(clock() - start)
    finally:
        settings.JOBSITE = original
    connection.flushdb()
    stats = {name: {q: percentile(values, q) for q in (0.5, 0.95)} for name, values in samples.items()}
    log(
        "enqueue latency: without WAIT p50 {:.3f} ms p95 {:.3f} ms, with WAIT p50 {:.3f} ms p95 {:.3f} ms".format(
            stats["plain"][0.5] * 1e3, stats["plain"][0.95] * 1e3, stats["wait"][0.5] * 1e3, stats["wait"][0.95] * 1e3
        )
    )
    return [
        Result(
            name=f"{LABEL}, {label}",
            ratio=stats["wait"][q] / stats["plain"][q],
            target=TARGET,
            detail={
                "plain_ms": round(stats["plain"][q] * 1e3, 3),
                "wait_ms": round(stats["wait"][q] * 1e3, 3),
                "calls_each": len(samples["plain"]),
            },
            note=f"no WAIT {stats['plain'][q] * 1e3:.2f} ms, WAIT {stats['wait'][q] * 1e3:.2f} ms",
        )
        for q, label in ((0.5, "p50"), (0.95, "p95"))
    ]
