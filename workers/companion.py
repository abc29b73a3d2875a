"""The thread a jobsite worker runs beside its jobs: liveness, recorder and watchdog."""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from django.db import connections

from .conf import setting
from .forkguard import FORK_GUARD
from .ordering import keys_watchdog
from .recorder import Recorder
from .tracking import ALIVE_KEY, WORKERS_SET, mark_alive, redis_connection
from .watchdog import abandoned_jobs_fail, dead_scheduler_locks_release, lost_jobs_requeue

if TYPE_CHECKING:
    from rq.worker import BaseWorker

log = logging.getLogger(__name__)


class Companion:
    def __init__(self, worker: BaseWorker, *, record: bool = True) -> None:
        self.worker_name = worker.name
        self.record = record
        # A connection of its own: the worker's pool stays untouched by this thread.
        self.connection = redis_connection()
        self.recorder = Recorder(self.connection, name=worker.name, batch_size=setting("RECORDER_BATCH"))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"jobsite-companion-{worker.name}", daemon=True)
        # Liveness has a thread of its own: a recorder batch waiting on a busy database
        # (SQLite's write lock can take seconds) must not make a live worker look dead,
        # or the watchdog would fail, and so re-run, the job it is running.
        self._beat = threading.Thread(target=self._heartbeat, name=f"jobsite-alive-{worker.name}", daemon=True)

    def start(self) -> None:
        self.connection.sadd(WORKERS_SET, self.worker_name)
        mark_alive(self.connection, self.worker_name)
        self._beat.start()
        self._thread.start()

    def stop(self, *, drain: bool = False) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._beat.join(timeout=5)
        try:
            if drain and self.record:
                self.recorder.drain()
            self.connection.delete(ALIVE_KEY.format(self.worker_name))
            self.connection.srem(WORKERS_SET, self.worker_name)
        finally:
            with FORK_GUARD:
                connections.close_all()

    def _heartbeat(self) -> None:
        alive_every = max(setting("WORKER_ALIVE_TTL") / 3, 0.5)
        while not self._stop.wait(alive_every):
            try:
                mark_alive(self.connection, self.worker_name)
            except Exception:
                log.warning("jobsite companion of %s: could not mark alive; will retry", self.worker_name)

    def _run(self) -> None:
        alive_every = max(setting("WORKER_ALIVE_TTL") / 3, 0.5)
        watchdog_every = setting("WATCHDOG_INTERVAL")
        next_watchdog = 0.0
        failures = 0
        try:
            while not self._stop.is_set():
                try:
                    now = time.monotonic()
                    if now >= next_watchdog:
                        with FORK_GUARD:
                            abandoned_jobs_fail(self.connection)
                            lost_jobs_requeue(self.connection)
                        dead_scheduler_locks_release(self.connection)
                        keys_watchdog(self.connection)  # Redis only: no guard needed
                        if self.record:
                            self.recorder.claim_stale()
                        next_watchdog = now + watchdog_every
                    if self.record:
                        applied = self.recorder.step(block_ms=int(min(alive_every, 0.5) * 1000))
                        if 0 < applied < self.recorder.batch_size:
                            # Let events gather: one transaction for many jobs takes far less
                            # from the jobs running beside this thread than one per job.
                            self._stop.wait(setting("RECORDER_PAUSE", 0.2))
                    else:
                        self._stop.wait(min(alive_every, 0.5))
                    failures = 0
                except Exception:
                    # Redis or the database is away: jobs go on, events wait in Redis.
                    failures += 1
                    log.exception("jobsite companion of %s: will retry", self.worker_name)
                    with FORK_GUARD:
                        connections.close_all()
                    self._stop.wait(min(0.5 * 2**failures, 10))
        finally:
            with FORK_GUARD:
                connections.close_all()
