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
from ..redis import ALIVE_KEY, REDIS_DOWN, WORKERS_SET, RedisOutage, backoff, new_connection
from ..rq.claims import Claim, claim_holder
from ..rq.forkguard import FORK_GUARD
from .liveness import is_alive, mark_alive
from .reconcile import reconcile_due
from .watchdog import OwnWork, abandoned_jobs_fail, dead_scheduler_locks_release, lost_jobs_requeue, vanished_jobs_end

if TYPE_CHECKING:
    from rq.worker import BaseWorker

log = logging.getLogger(__name__)


class Companion:
    def __init__(self, worker: BaseWorker, *, record: bool = True, outage: RedisOutage | None = None) -> None:
        self.worker = worker
        self.worker_name = worker.name
        self.record = record
        # The worker's own: a Redis outage is logged once for the whole process.
        self.outage = outage or RedisOutage(f"jobsite companion of {worker.name}")
        # A client of its own: the recorder blocks on the stream, the worker's stays free.
        self.connection = new_connection()
        self.recorder = Recorder(self.connection, name=worker.name, batch_size=setting("RECORDER_BATCH"))
        self._stop = threading.Event()
        self._next_watchdog = 0.0
        self._vanished_after = 0
        self._beaten = False
        self._last_beat = 0.0  # time.monotonic() of the last beat that got through
        # time.monotonic() before which this companion's watchdogs judge no worker dead.
        self._judge_after = 0.0
        self._own = OwnWork(worker.name, self._running)
        self._thread = threading.Thread(target=self._run, name=f"jobsite-companion-{worker.name}", daemon=True)
        # Liveness has a thread of its own: a recorder batch waiting on a busy database
        # (SQLite's write lock can take seconds) must not make a live worker look dead,
        # or the watchdog would fail, and so re-run, the job it is running.
        self._beat = threading.Thread(target=self._heartbeat, name=f"jobsite-alive-{worker.name}", daemon=True)

    def beat(self) -> None:
        """Mark the worker alive, naming the job it runs (raises if Redis is away), and tell
        the worker when the others may have presumed it dead: its liveness key had expired
        (a host cut off, a process frozen for longer than WORKER_ALIVE_TTL), or the claim of
        the attempt it runs was taken by a watchdog."""
        executions = list(getattr(self.worker, "executions", {}).values())
        was_alive = mark_alive(self.connection, self.worker_name, running=executions[0].job_id if executions else None)
        expired, self._beaten = not was_alive and self._beaten, True
        moment, last = time.monotonic(), self._last_beat
        self._last_beat = moment
        if expired:
            # Out of touch with Redis for longer than WORKER_ALIVE_TTL (a link down raises
            # nothing: commands wait), so the others may have been too, and TCP's
            # retransmission backoff can keep them out about as long again after the link is
            # back: judge nobody dead before their beats could get through.
            self._judge_after = moment + (moment - last) + setting("WORKER_ALIVE_TTL")
        notice = getattr(self.worker, "jobsite_presumed_dead", None)
        if notice is None:
            return
        claim: Claim | None = getattr(self.worker, "_jobsite_claim", None)
        holder = claim_holder(self.connection, claim) if claim is not None else None
        if claim is not None and holder is not None:
            notice(f"the claim of job {claim.job_id} attempt {claim.attempt} was taken: {holder}", taken=claim)
        elif expired:
            notice(f"its liveness key had expired: no heartbeat reached Redis for {setting('WORKER_ALIVE_TTL')} s")

    def start_liveness(self) -> None:
        """Start the liveness thread; the worker marks itself alive first (``beat``)."""
        if self._beat.ident is None:
            self._beat.start()

    def start(self) -> None:
        """Start the recorder and watchdog thread (and liveness, if not yet started). The
        worker does so once it has forked its scheduler process: this thread imports and
        parses lazily, and a lock it held at a fork would stay held in the copy."""
        self.start_liveness()
        if self._thread.ident is None:
            self._thread.start()

    def stop(self, *, drain: bool = False) -> None:
        self._stop.set()
        for thread, wait in ((self._thread, 10), (self._beat, 5)):
            if thread.ident is not None:
                thread.join(timeout=wait)
        try:
            if drain and self.record:
                self.recorder.drain()
            self.connection.delete(ALIVE_KEY.format(self.worker_name))
            self.connection.srem(WORKERS_SET, self.worker_name)
        except REDIS_DOWN as exc:
            # Stopping while Redis is away: the liveness key expires on its own, and the
            # events wait in Redis for the next recorder.
            log.warning("jobsite companion of %s: Redis is unavailable while stopping (%s)", self.worker_name, exc)
        finally:
            with FORK_GUARD:
                connections.close_all()

    @staticmethod
    def _alive_every() -> float:
        return max(setting("WORKER_ALIVE_TTL") / 3, 0.5)

    def _heartbeat(self) -> None:
        # While Redis is away it tries again at the same pace: beating late after an outage
        # would make a live worker look dead to the watchdogs of the others.
        while not self._stop.wait(self._alive_every()):
            try:
                self.beat()
            except REDIS_DOWN as exc:
                self.outage.began(exc)
            except Exception:
                log.exception("jobsite companion of %s: could not mark alive; will retry", self.worker_name)
            else:
                self.outage.ended()

    def _running(self) -> set[str]:
        """The jobs the worker runs now, from its memory: RQ's executions (registered before
        Redis hears of them) and the attempt's claim (held until its outcome is in Redis)."""
        running = {execution.job_id for execution in list(getattr(self.worker, "executions", {}).values())}
        claim: Claim | None = getattr(self.worker, "_jobsite_claim", None)
        if claim is not None:
            running.add(claim.job_id)
        return running

    def _may_judge(self) -> bool:
        """Whether this worker may judge others dead now: not within the grace after it was
        out of touch itself (``beat``), and not out of touch right now (its own liveness key
        gone: what it sees of the others is as stale)."""
        return time.monotonic() >= self._judge_after and is_alive(self.connection, self.worker_name)

    def _watchdogs(self) -> None:
        """Every WATCHDOG_INTERVAL: fail orphaned jobs, put back lost ones, end vanished
        ones, free locks and keys."""
        moment = time.monotonic()
        if moment < self._next_watchdog or not self._may_judge():
            return
        ended_at = self.outage.ended_at
        if self.outage.ongoing or (ended_at is not None and moment - ended_at < setting("WORKER_ALIVE_TTL")):
            # Every liveness key may have expired during the outage: judge no worker dead
            # before the live ones have had time to beat again.
            return
        with FORK_GUARD:
            abandoned_jobs_fail(self.connection, may_judge=self._may_judge, own=self._own)
            lost_jobs_requeue(self.connection)
            _ended, self._vanished_after = vanished_jobs_end(self.connection, after=self._vanished_after)
        dead_scheduler_locks_release(self.connection)
        keys_watchdog(self.connection)  # Redis only: no guard needed
        self._next_watchdog = moment + setting("WATCHDOG_INTERVAL")
        try:  # a pass that fails must not hold up the recorder this loop also runs
            reconcile_due(self.connection, owner=self.worker_name)  # takes the fork guard itself
        except REDIS_DOWN:
            raise  # an outage: the loop around this waits it out and logs it once
        except Exception:
            log.exception("jobsite companion of %s: reconciliation pass failed; will retry", self.worker_name)

    def _run(self) -> None:
        try:
            if self.record:
                block_ms = int(min(self._alive_every(), 0.5) * 1000)
                self.recorder.run(self._stop, between=self._watchdogs, block_ms=block_ms, outage=self.outage)
                return
            failures = 0
            while not self._stop.is_set():
                try:
                    self._watchdogs()
                except REDIS_DOWN as exc:
                    failures += 1
                    self.outage.began(exc)
                except Exception:  # the database is away: try again later
                    failures += 1
                    log.exception("jobsite companion of %s: will retry", self.worker_name)
                else:
                    failures = 0
                    self.outage.ended()
                self._stop.wait(backoff(failures) if failures else 0.5)
        finally:
            with FORK_GUARD:
                connections.close_all()
