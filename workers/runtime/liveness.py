"""Which workers are alive: jobsite workers keep a short liveness key; plain RQ workers
only have RQ's own heartbeat. The one answer every page, metric and alert reads."""

from __future__ import annotations

import os
from datetime import datetime

from redis import Redis
from rq.worker import BaseWorker, Worker

from ..conf import setting
from ..redis import ALIVE_KEY, WORKERS_SET


def mark_alive(connection: Redis, worker_name: str, *, running: str | None = None) -> bool:
    """Refresh the liveness key (naming the job the worker runs now, if any), and the
    worker's place among jobsite workers: a Redis that came back empty learns both again.
    Returns whether the key was still there (False: it had expired, and the watchdogs may
    have presumed the worker dead)."""
    with connection.pipeline(transaction=False) as pipe:
        pipe.sadd(WORKERS_SET, worker_name)
        pipe.set(
            ALIVE_KEY.format(worker_name), f"{os.getpid()} {running or ''}", ex=setting("WORKER_ALIVE_TTL"), get=True
        )
        return pipe.execute()[1] is not None


def is_alive(connection: Redis, worker_name: str) -> bool:
    return bool(connection.exists(ALIVE_KEY.format(worker_name)))


def running_job(connection: Redis, worker_name: str) -> str | None:
    """The job a live jobsite worker said it runs at its last heartbeat; None if idle or dead."""
    value = connection.get(ALIVE_KEY.format(worker_name))
    if not value:
        return None
    _pid, _, job_id = value.decode().partition(" ")  # type: ignore[union-attr]
    return job_id or None


def is_jobsite_worker(connection: Redis, worker_name: str) -> bool:
    """Whether a jobsite worker registered under this name (alive or not)."""
    return bool(connection.sismember(WORKERS_SET, worker_name))


def jobsite_worker_names(connection: Redis) -> set[str]:
    """Every jobsite worker that registered (alive or not)."""
    return {name.decode() for name in connection.smembers(WORKERS_SET)}  # type: ignore[union-attr]


def live_workers(connection: Redis, *, now: datetime, **filters: object) -> list[BaseWorker]:
    """RQ's registered workers that are alive now (``filters``: ``queue=`` for one queue's).

    A jobsite worker is alive while its liveness key is (a killed one is gone within
    WORKER_ALIVE_TTL); a plain RQ worker while its own heartbeat is recent.
    """
    ours = jobsite_worker_names(connection)
    live: list[BaseWorker] = []
    for worker in Worker.all(connection=connection, **filters):  # type: ignore[arg-type]
        if worker.name in ours:
            if is_alive(connection, worker.name):
                live.append(worker)
        elif worker.last_heartbeat is None or (now - worker.last_heartbeat).total_seconds() < worker.worker_ttl:
            live.append(worker)
    return live
