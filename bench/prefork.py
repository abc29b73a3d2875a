"""(a') The fork-once worker (`rqworker --prefork`) against bare RQ, no-op jobs.

Tracked: TrackedJob on a PreforkWorker (its horse runs job after job, replaced every
1,000), with `manage.py record_events` beside it; its time runs until every record says
finished, as in bench/throughput.py. Bare: RQ's own Queue + Job on RQ's forking Worker
(a horse per job: what --prefork replaces; target 3x) and on SimpleWorker (no fork at all:
how close the fork-once worker comes to not forking, with tracking's cost on top).
"""

from __future__ import annotations

import os

from redis import Redis
from rq import SimpleWorker, Worker

from workers.runtime.prefork import PreforkWorker

from .common import Result
from .throughput import PROCESS, _pair, record_events_process


def run(connection: Redis) -> list[Result]:
    count = int(os.environ.get("BENCH_JOBS", "2000"))
    with record_events_process():
        results = [
            _pair(
                connection,
                "prefork vs Worker (forking)",
                (Worker, PreforkWorker),
                count,
                PROCESS,
                name=f"throughput prefork tracked/bare Worker (forking), {PROCESS}",
                target=">= 3",
            ),
            _pair(
                connection,
                "prefork vs SimpleWorker",
                (SimpleWorker, PreforkWorker),
                count,
                PROCESS,
                name=f"throughput prefork tracked/bare SimpleWorker, {PROCESS}",
                target=">= 0.75",
            ),
        ]
    connection.flushdb()
    return results
