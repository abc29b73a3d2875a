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
from rq.utils import as_text, get_version

from .. import events
from ..ordering.keys import key_enqueue
from ..redis import META_KEY
from ..statuses import JobStatus
from .job import TrackedJob
from .pausing import PAUSE_POLL_SECONDS, is_paused, paused_names, pop_unpaused


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
        """RQ's dequeue, skipping paused queues: their jobs wait.

        A job ready on a queue not paused is popped with the pause check in one Lua call
        (``pop_unpaused``), the round trip RQ's own LMOVE or LPOP would make. Only when
        none is ready does a worker (not a burst one) block, as RQ does, on the queues not
        paused, briefly, so that a pause or a resume takes effect within seconds."""
        queues = list(queues)
        # RQ's way: one queue moves its job to its intermediate list (the worker removes it
        # from there as the job starts), several queues pop.
        single = len(queues) == 1 and get_version(connection) >= (6, 2, 0)
        intermediate = IntermediateQueue.get_intermediate_queue_key(queues[0].key) if single else None
        while True:
            popped = pop_unpaused(connection, [(q.name, q.key) for q in queues], intermediate=intermediate)
            if popped is None:
                if timeout is None:
                    return None  # a burst worker with nothing ready has nothing to do
                popped = cls._blocking_pop(queues, timeout, connection, single=single)
            result = cls._fetch_dequeued_job(connection, *popped, **kwargs)
            if result is not None:
                return result  # else the job's hash is gone (RQ's way: pop the next one)

    @classmethod
    def _blocking_pop(cls, queues: list[Any], timeout: int, connection: Redis, *, single: bool) -> tuple[str, str]:
        """Block on the queues not paused, at most PAUSE_POLL_SECONDS; DequeueTimeout if
        nothing came. A job that came from a queue paused meanwhile goes back in front."""
        paused = paused_names(connection)
        active = [q for q in queues if q.name not in paused]
        if not active:
            time.sleep(min(timeout, PAUSE_POLL_SECONDS))
            raise DequeueTimeout(timeout, [q.key for q in queues])
        capped = min(timeout, PAUSE_POLL_SECONDS)
        if single:
            queue_key, job_id = map(as_text, cls.lmove(connection, active[0].key, capped))
        else:
            queue_key, job_id = map(as_text, cls.lpop([q.key for q in active], capped, connection=connection))
        queue = next(q for q in active if q.key == queue_key)
        if is_paused(connection, queue.name):
            # Paused while this worker was blocked on the queue: put the job back in front.
            with connection.pipeline() as pipe:
                if single:
                    pipe.lrem(IntermediateQueue.get_intermediate_queue_key(queue_key), 1, job_id)
                pipe.lpush(queue_key, job_id)
                pipe.execute()
            raise DequeueTimeout(timeout, [q.key for q in queues])
        return queue_key, job_id
