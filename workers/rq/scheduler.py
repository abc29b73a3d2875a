"""RQ's scheduler as a jobsite worker runs it."""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from rq.job import JobStatus as RQStatus
from rq.scheduler import RQScheduler

from .. import events
from ..statuses import JobStatus
from .job import TrackedJob

log = logging.getLogger(__name__)


class WorkerScheduler(RQScheduler):
    """RQ's scheduler, which reports the jobs it queues and ends when its worker is gone.

    RQ moves due jobs (retries after their backoff, jobs enqueued for later) to their queue
    as plain RQ jobs, so no `queued` event was written and the record said retrying or
    scheduled until a worker started the job. And RQ forks the scheduler from the worker
    and never looks back: a worker killed with SIGKILL left it running as an orphan,
    re-taking the queues' scheduler locks and moving due jobs for good.
    """

    _worker_pid: int | None = None
    LOOKAHEAD = 5  # seconds: jobs falling due while RQ looks are reported too

    def start(self) -> Any:
        self._worker_pid = os.getpid()  # the fork below is our child
        return super().start()

    def enqueue_scheduled_jobs(self) -> None:
        if self._worker_pid is not None and os.getppid() != self._worker_pid:
            log.warning("scheduler %s: its worker (pid %s) is gone; stopping", self.name, self._worker_pid)
            self._stop_requested = True  # RQ's loop stops and releases the locks next round
            return
        if not self._scheduled_job_registries and self._acquired_locks:
            self.prepare_registries()
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
