"""(d) Ordered (keyed) / unordered throughput with 4 worker processes.

The same jobs (20 keys x 25 jobs of 10 ms, enqueued key by key) run once without a key
and once with ``enqueue(..., key=...)``, on 4 `manage.py rqworker --simple` processes.
Throughput is jobs over the time from the first enqueue to the last job done. The ordered
run is checked: a key's jobs must never overlap and must run in enqueue order; where they
do not (ordering not built on this branch), the ratio is reported as not available.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from redis import Redis
from rq.worker import Worker

from workers import enqueue

from .common import Result, log, not_available

ROOT = Path(__file__).resolve().parent.parent
WORKERS, KEYS, PER_KEY, WORK = 4, 20, 25, 0.01
TARGET = ">= 0.8"
NAME = "ordered/unordered throughput, 4 workers"


def _start_workers(connection: Redis) -> list[subprocess.Popen[bytes]]:
    processes = []
    for n in range(WORKERS):
        extra = [] if n == 0 else ["--without-scheduler"]
        processes.append(
            subprocess.Popen(
                [sys.executable, "manage.py", "rqworker", "--simple", "--name", f"bench-order-{n}", *extra, "default"],
                cwd=ROOT,
                env=os.environ.copy(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    deadline = time.monotonic() + 60
    while len(Worker.all(connection=connection)) < WORKERS:
        if time.monotonic() > deadline:
            raise RuntimeError("the benchmark's workers did not start within 60 s")
        time.sleep(0.1)
    return processes


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


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
    processes = _start_workers(connection)
    try:
        unordered, _, _ = _run(connection, keyed=False, timeout=120)
        log(f"ordering: unordered {unordered:.0f} jobs/s")
        try:
            ordered, overlaps, out_of_order = _run(connection, keyed=True, timeout=180)
        except TimeoutError as exc:
            return [not_available(NAME, TARGET, f"keyed jobs did not all run: {exc}")]
        log(f"ordering: ordered {ordered:.0f} jobs/s, {overlaps} overlaps, {out_of_order} keys out of order")
    finally:
        _stop(processes)
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
