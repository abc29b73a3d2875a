"""RQ's scheduler as a jobsite worker runs it."""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import time
from datetime import datetime
from typing import Any

from rq.job import JobStatus as RQStatus
from rq.scheduler import RQScheduler

from .. import events
from ..conf import setting
from ..redis import REDIS_DOWN, RedisOutage, backoff
from ..statuses import JobStatus
from .job import TrackedJob

log = logging.getLogger(__name__)


class WorkerScheduler(RQScheduler):
    """RQ's scheduler, which reports the jobs it queues and ends when its worker is gone.

    RQ moves due jobs (retries after their backoff, jobs enqueued for later) to their queue
    as plain RQ jobs, so no `queued` event was written and the record said retrying or
    scheduled until a worker started the job. And RQ forks the scheduler from the worker
    and never looks back: a worker killed with SIGKILL left it running as an orphan,
    re-taking the queues' scheduler locks and moving due jobs for good. And RQ's loop ends
    the scheduler process on any Redis error (its heartbeat, its lock release on stopping).

    A forked copy of a process with threads can also hang for good: a lock one of the
    worker's threads held at the fork (the standard library has module-level ones, as
    ``_strptime``'s cache) stays held in the copy. So the scheduler process marks itself
    alive in memory it shares with its worker (no Redis needed, so an outage does not look
    like a hang), and its worker replaces a scheduler that stopped doing so (``stuck_for``).
    """

    _worker_pid: int | None = None
    _alive_at: Any = None  # time.monotonic() of the scheduler process's last sign of life
    LOOKAHEAD = 5  # seconds: jobs falling due while RQ looks are reported too
    STOP_TRIES = 3  # a scheduler stopping while Redis is away leaves its locks to expire

    def start(self) -> Any:
        self._worker_pid = os.getpid()  # the fork below is our child
        self._alive_at = multiprocessing.RawValue(ctypes.c_double, time.monotonic())
        return super().start()

    @property
    def should_reacquire_locks(self) -> bool:
        # RQ looks for the queues' locks this scheduler lacks every 2 minutes. When two
        # workers start together they share the queues' locks out; the other one dies, the
        # watchdog releases its locks, and its queues' due jobs (retries among them) waited
        # up to those 2 minutes though this scheduler runs. Every MAINTENANCE_INTERVAL, as
        # a worker without a scheduler process of its own looks.
        if set(self._queue_names) <= set(self._acquired_locks):
            return False
        if not self.lock_acquisition_time:
            return True
        return (datetime.now() - self.lock_acquisition_time).total_seconds() >= setting("MAINTENANCE_INTERVAL")

    def _alive(self) -> None:
        if self._alive_at is not None:
            self._alive_at.value = time.monotonic()  # the clock is the machine's, not the process's

    def stuck_for(self) -> float:
        """Seconds since the scheduler process last showed a sign of life, while it runs
        (0 when it is not running, or is not a process of this worker's)."""
        process = self._process
        if self._alive_at is None or process is None or not process.is_alive():
            return 0.0
        return max(time.monotonic() - self._alive_at.value, 0.0)

    def _worker_gone(self) -> bool:
        if self._worker_pid is not None and os.getppid() != self._worker_pid:
            if not self._stop_requested:
                log.warning("scheduler %s: its worker (pid %s) is gone; stopping", self.name, self._worker_pid)
            self._stop_requested = True
        return self._stop_requested

    def work(self) -> None:
        """RQ's loop (register, keep the locks, move due jobs, every ``interval``), but a
        Redis outage is waited out, with the scheduler's locks re-taken when Redis is back
        (one that came back empty forgot them), and a stop never waits for Redis for long."""
        self._install_signal_handlers()
        outage = RedisOutage(f"scheduler {self.name}")
        failures = 0
        registered = False
        while not self._worker_gone():
            self._alive()
            try:
                if not registered:
                    self.register_birth()
                    registered = True
                if self.should_reacquire_locks:
                    self.acquire_locks()
                self.heartbeat()
                self.enqueue_scheduled_jobs()
            except REDIS_DOWN as exc:
                failures += 1
                outage.began(exc)
                registered = False
                self._sleep(backoff(failures))
                continue
            failures = 0
            outage.ended()
            self._sleep(self.interval)
        self._stop_unless_redis_is_away()

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._worker_gone() and (left := deadline - time.monotonic()) > 0:
            self._alive()
            time.sleep(min(left, 0.2))

    def _stop_unless_redis_is_away(self) -> None:
        for tries in range(1, self.STOP_TRIES + 1):
            try:
                self.stop()
                return
            except REDIS_DOWN as exc:
                if tries == self.STOP_TRIES:
                    log.warning(
                        "scheduler %s: Redis is unavailable while stopping (%s); its locks expire on their own",
                        self.name,
                        exc,
                    )
                    return
                time.sleep(backoff(tries))

    def enqueue_scheduled_jobs(self) -> None:
        if self._worker_gone():
            return
        if not self._scheduled_job_registries and self._acquired_locks:
            self.prepare_registries()
        self._alive()
        until = int(time.time()) + self.LOOKAHEAD
        due = [job_id for registry in self._scheduled_job_registries for job_id in registry.get_jobs_to_schedule(until)]
        super().enqueue_scheduled_jobs()
        if due:
            self._report_queued(due)

    def _report_queued(self, job_ids: list[str]) -> None:
        """A `queued` event for each of these jobs that RQ has just put in its queue.

        One a worker started meanwhile is harmless: the event names the attempt about to
        run, and within an attempt the recorder never moves a status backwards.
        """
        jobs = TrackedJob.fetch_many(job_ids, connection=self.connection, serializer=self.serializer)
        with self.connection.pipeline(transaction=False) as pipe:
            for job in jobs:
                if isinstance(job, TrackedJob) and job.get_status(refresh=False) == RQStatus.QUEUED:
                    events.append(pipe, job.waiting_event(JobStatus.QUEUED))
            pipe.execute()
