"""`manage.py rqworker` processes for the benchmarks that need a real, long-running worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from redis import Redis
from rq import Worker

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def rqworkers(connection: Redis, *argvs: list[str]) -> Iterator[list[subprocess.Popen[bytes]]]:
    """An `rqworker ARGV` process per argv, all registered with RQ before this yields;
    stopped (warm shutdown, then killed after 30 s) when it returns."""
    count = len(argvs)
    processes = [
        subprocess.Popen(
            [sys.executable, "manage.py", "rqworker", *argv],
            cwd=ROOT,
            env=os.environ.copy(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for argv in argvs
    ]
    try:
        deadline = time.monotonic() + 60
        while len(Worker.all(connection=connection)) < count:
            if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                raise RuntimeError(f"the {count} rqworker processes did not all start within 60 s")
            time.sleep(0.1)
        yield processes
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def rss_kib(pid: int) -> int:
    """The process's resident set (VmRSS), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def empty_job_history() -> None:
    """Every record, error, log line, roll-up and status count gone (TRUNCATE: the ORM's
    delete of 100,000 records would collect them in Python first)."""
    from django.db import connection

    from workers.models import JobError, JobLogLine, JobMetric, JobMetricTotal, JobRecord, JobStatusCount

    models = (JobLogLine, JobError, JobRecord, JobMetric, JobMetricTotal, JobStatusCount)
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(m._meta.db_table for m in models)} CASCADE")
