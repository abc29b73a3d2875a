"""The RQ queue class: its jobs are TrackedJobs, keyed jobs take their place in line, and
paused queues (workers/rq/pausing.py) are skipped when a worker dequeues."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from django_rq.queues import DjangoRQ
from redis import Redis
from rq.exceptions import DequeueTimeout
from rq.intermediate_queue import IntermediateQueue
from rq.job import Job
from rq.job import JobStatus as RQStatus

from .. import events
from ..ordering.keys import key_enqueue
from ..redis import META_KEY
from ..statuses import JobStatus
from .job import TrackedJob
from .pausing import PAUSE_POLL_SECONDS, is_paused, paused_queues


class TrackedQueue(DjangoRQ):
    """A django-rq queue whose jobs are TrackedJobs and whose schedule times are reported."""

    job_class = TrackedJob

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("job_class", TrackedJob)
        super().__init__(*args, **kwargs)

    def enqueue_job(self, job: Job, pipeline: Any = None, at_front: bool = False, unique: bool = False) -> Job:
        if job.meta.get(META_KEY):
            if pipeline is not None or unique:
                raise ValueError("keyed jobs are enqueued on their own (no pipeline, no unique=)")
            return key_enqueue(self, job, at_front=at_front)
        job = super().enqueue_job(job, pipeline=pipeline, at_front=at_front, unique=unique)
        if (job.has_rate_limit or unique) and isinstance(job, TrackedJob):
            # RQ writes these statuses without set_status: report the job here.
            status = JobStatus.QUEUED if job.get_status(refresh=False) == RQStatus.QUEUED else JobStatus.DEFERRED
            events.append(pipeline if pipeline is not None else self.connection, job.waiting_event(status))
        return job

    def schedule_job(self, job: Job, datetime: datetime, pipeline: Any = None, unique: bool = False) -> Job:
        job._jobsite_next_at = datetime  # type: ignore[attr-defined]
        return super().schedule_job(job, datetime, pipeline=pipeline, unique=unique)

    @classmethod
    def dequeue_any(  # type: ignore[override]
        cls, queues: Any, timeout: int | None, connection: Redis, **kwargs: Any
    ) -> tuple[Job, Any] | None:
        """RQ's dequeue, skipping paused queues: their jobs wait."""
        queues = list(queues)
        paused = paused_queues(connection)
        active = [q for q in queues if q.name not in paused]
        if not active:
            if timeout is None:
                return None  # a burst worker with only paused queues has nothing to do
            time.sleep(min(timeout, PAUSE_POLL_SECONDS))
            raise DequeueTimeout(timeout, [q.key for q in queues])
        # Block briefly, not for the worker's whole dequeue timeout, so a pause or a
        # resume takes effect within seconds.
        capped = None if timeout is None else min(timeout, PAUSE_POLL_SECONDS)
        result = super().dequeue_any(active, capped, connection=connection, **kwargs)
        if result is not None and is_paused(connection, result[1].name):
            # Paused while this worker was blocked on the queue: put the job back in front.
            job, queue = result
            with connection.pipeline() as pipe:
                pipe.lrem(IntermediateQueue.get_intermediate_queue_key(queue.key), 1, job.id)
                pipe.lpush(queue.key, job.id)
                pipe.execute()
            raise DequeueTimeout(timeout or 0, [q.key for q in queues])
        return result
