"""The thread a jobsite worker runs beside its jobs: liveness, recorder, watchdogs and
reconciliation with RQ."""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from django.db import connections

from ..conf import setting
from ..ordering.watchdog import keys_watchdog
from ..recording.consumer import Recorder
from ..redis import ALIVE_KEY, WORKERS_SET, new_connection
from ..rq.forkguard import FORK_GUARD
from .liveness import mark_alive
from .reconcile import reconcile_due
from .watchdog import abandoned_jobs_fail, dead_scheduler_locks_release, lost_jobs_requeue

if TYPE_CHECKING:
    from rq.worker import BaseWorker

log = logging.getLogger(__name__)


class Companion:
    def __init__(self, worker: BaseWorker, *, record: bool = True) -> None:
        self.worker_name = worker.name
        self.record = record
        # A client of its own: the recorder blocks on the stream, the worker's stays free.
        self.connection = new_connection()
        self.recorder = Recorder(self.connection, name=worker.name, batch_size=setting("RECORDER_BATCH"))
        self._stop = threading.Event()
        self._next_watchdog = 0.0
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

    @staticmethod
    def _alive_every() -> float:
        return max(setting("WORKER_ALIVE_TTL") / 3, 0.5)

    def _heartbeat(self) -> None:
        while not self._stop.wait(self._alive_every()):
            try:
                mark_alive(self.connection, self.worker_name)
            except Exception:
                log.warning("jobsite companion of %s: could not mark alive; will retry", self.worker_name)

    def _watchdogs(self) -> None:
        """Every WATCHDOG_INTERVAL: fail orphaned jobs, put back lost ones, free locks and keys."""
        moment = time.monotonic()
        if moment < self._next_watchdog:
            return
        with FORK_GUARD:
            abandoned_jobs_fail(self.connection)
            lost_jobs_requeue(self.connection)
        dead_scheduler_locks_release(self.connection)
        keys_watchdog(self.connection)  # Redis only: no guard needed
        self._next_watchdog = moment + setting("WATCHDOG_INTERVAL")
        try:  # a pass that fails must not hold up the recorder this loop also runs
            reconcile_due(self.connection, owner=self.worker_name)  # takes the fork guard itself
        except Exception:
            log.exception("jobsite companion of %s: reconciliation pass failed; will retry", self.worker_name)

    def _run(self) -> None:
        try:
            if self.record:
                block_ms = int(min(self._alive_every(), 0.5) * 1000)
                self.recorder.run(self._stop, between=self._watchdogs, block_ms=block_ms)
                return
            failures = 0
            while not self._stop.is_set():
                try:
                    self._watchdogs()
                    failures = 0
                except Exception:  # Redis or the database is away: try again later
                    failures += 1
                    log.exception("jobsite companion of %s: will retry", self.worker_name)
                self._stop.wait(min(0.5 * 2**failures, 10) if failures else 0.5)
        finally:
            with FORK_GUARD:
                connections.close_all()
