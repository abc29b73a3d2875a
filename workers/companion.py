"""The thread a jobsite worker runs beside its jobs: liveness, recorder and watchdog."""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import connections

from .recorder import Recorder
from .tracking import ALIVE_KEY, WORKERS_SET, mark_alive, redis_connection
from .watchdog import abandoned_jobs_fail

if TYPE_CHECKING:
    from rq.worker import BaseWorker

log = logging.getLogger(__name__)


class Companion:
    def __init__(self, worker: BaseWorker, *, record: bool = True) -> None:
        self.worker_name = worker.name
        self.record = record
        # A connection of its own: the worker's pool stays untouched by this thread.
        self.connection = redis_connection()
        self.recorder = Recorder(self.connection, name=worker.name, batch_size=settings.JOBSITE["RECORDER_BATCH"])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"jobsite-companion-{worker.name}", daemon=True)

    def start(self) -> None:
        self.connection.sadd(WORKERS_SET, self.worker_name)
        mark_alive(self.connection, self.worker_name)
        self._thread.start()

    def stop(self, *, drain: bool = False) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        try:
            if drain and self.record:
                self.recorder.drain()
            self.connection.delete(ALIVE_KEY.format(self.worker_name))
            self.connection.srem(WORKERS_SET, self.worker_name)
        finally:
            connections.close_all()

    def _run(self) -> None:
        alive_every = max(settings.JOBSITE["WORKER_ALIVE_TTL"] / 3, 0.5)
        watchdog_every = settings.JOBSITE["WATCHDOG_INTERVAL"]
        next_alive = next_watchdog = 0.0
        failures = 0
        try:
            while not self._stop.is_set():
                try:
                    now = time.monotonic()
                    if now >= next_alive:
                        mark_alive(self.connection, self.worker_name)
                        next_alive = now + alive_every
                    if now >= next_watchdog:
                        abandoned_jobs_fail(self.connection)
                        if self.record:
                            self.recorder.claim_stale()
                        next_watchdog = now + watchdog_every
                    if self.record:
                        applied = self.recorder.step(block_ms=int(min(alive_every, 0.5) * 1000))
                        if 0 < applied < self.recorder.batch_size:
                            # Let events gather: one transaction for many jobs takes far less
                            # from the jobs running beside this thread than one per job.
                            self._stop.wait(settings.JOBSITE.get("RECORDER_PAUSE", 0.2))
                    else:
                        self._stop.wait(min(alive_every, 0.5))
                    failures = 0
                except Exception:
                    # Redis or the database is away: jobs go on, events wait in Redis.
                    failures += 1
                    log.exception("jobsite companion of %s: will retry", self.worker_name)
                    connections.close_all()
                    self._stop.wait(min(0.5 * 2**failures, 10))
        finally:
            connections.close_all()
