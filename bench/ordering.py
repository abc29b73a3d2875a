"""(d) Ordered (keyed) / unordered throughput with 4 worker processes.

The same jobs (20 keys x 25 jobs of 10 ms, enqueued key by key) run once without a key
and once with ``enqueue(..., key=...)``, on 4 `manage.py rqworker --simple` processes.
Throughput is jobs over the time from the first enqueue to the last job done. The ordered
run is checked: a key's jobs must never overlap and must run in enqueue order; where they
do not (ordering not built on this branch), the ratio is reported as not available.
"""

from __future__ import annotations

import time

from redis import Redis

from workers import enqueue

from .common import Result, log, not_available
from .workerproc import rqworkers

WORKERS, KEYS, PER_KEY, WORK = 4, 20, 25, 0.01
TARGET = ">= 0.8"
NAME = "ordered/unordered throughput, 4 workers"


def _run(connection: Redis, keyed: bool, timeout: float) -> tuple[float, int, int]:
    """(jobs per second, overlaps, keys out of order)."""
    for name in connection.scan_iter("bench:*"):
        connection.delete(name)
    total = KEYS * PER_KEY
    start = time.perf_counter()
    for k in range(KEYS):
        for seq in range(PER_KEY):
            options = {"key": f"bench-key-{k}"} if keyed else {}
            enqueue("bench.jobs.step", f"k{k}", seq, WORK, **options)
    while int(connection.get("bench:done") or 0) < total:
        if time.perf_counter() - start > timeout:
            raise TimeoutError(f"{int(connection.get('bench:done') or 0)} of {total} jobs done after {timeout:.0f} s")
        time.sleep(0.01)
    seconds = time.perf_counter() - start
    out_of_order = sum(
        1
        for k in range(KEYS)
        if [int(x) for x in connection.lrange(f"bench:order:k{k}", 0, -1)] != list(range(PER_KEY))
    )
    return total / seconds, int(connection.get("bench:overlaps") or 0), out_of_order


def run(connection: Redis) -> list[Result]:
    connection.flushdb()
    # RQ's scheduler in one of them is enough.
    argvs = [["--simple", "--name", f"bench-order-{n}", *([] if n == 0 else ["--without-scheduler"]), "default"]
             for n in range(WORKERS)]  # fmt: skip
    try:
        with rqworkers(connection, *argvs):
            unordered, _, _ = _run(connection, keyed=False, timeout=120)
            log(f"ordering: unordered {unordered:.0f} jobs/s")
            try:
                ordered, overlaps, out_of_order = _run(connection, keyed=True, timeout=180)
            except TimeoutError as exc:
                return [not_available(NAME, TARGET, f"keyed jobs did not all run: {exc}")]
            log(f"ordering: ordered {ordered:.0f} jobs/s, {overlaps} overlaps, {out_of_order} keys out of order")
    finally:
        connection.flushdb()
    if overlaps or out_of_order:
        return [
            not_available(
                NAME,
                TARGET,
                f"ordering is not enforced on this branch ({overlaps} overlapping runs of one key, "
                f"{out_of_order} of {KEYS} keys out of order)",
            )
        ]
    return [
        Result(
            name=NAME,
            ratio=ordered / unordered,
            target=TARGET,
            detail={
                "ordered_jobs_per_s": round(ordered, 1),
                "unordered_jobs_per_s": round(unordered, 1),
                "keys": KEYS,
                "jobs_per_key": PER_KEY,
                "job_seconds": WORK,
            },  # fmt: skip
            note=f"{KEYS}x{PER_KEY} jobs of {WORK * 1000:.0f} ms: unordered {unordered:.0f}/s, ordered {ordered:.0f}/s",
        )
    ]
