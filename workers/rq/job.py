"""The RQ job class that reports its transitions to the jobsite stream.

Each transition appends one event (``workers.events``) inside the pipeline RQ already
uses for it, so tracking costs no extra round trip and never waits on the database.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from redis import Redis
from rq.job import Job
from rq.job import JobStatus as RQStatus
from rq.utils import now

from .. import events
from ..conf import serializer as configured_serializer
from ..redis import META_ATTEMPT, META_KEY, META_MAX_ATTEMPTS, META_ORIGIN, META_PARENT
from ..statuses import FROM_RQ_WAITING, JobStatus
from .joblogs import captured_logs


def epoch(moment: datetime | None) -> float | None:
    return moment.timestamp() if moment else None


class TrackedJob(Job):
    """An RQ job that reports its transitions to the jobsite stream."""

    # Set while a worker handles this job's failure: the status writes RQ makes then
    # (FAILED, STOPPED, the retry's SCHEDULED) are reported once, by the worker.
    _jobsite_quiet = False
    _jobsite_next_at: datetime | None = None
    _jobsite_retry_delay: float | None = None

    def __init__(self, id: str | None = None, connection: Redis | None = None, serializer: Any = None) -> None:
        # Producers, workers and services read payloads with the one configured serializer.
        super().__init__(id, connection=connection, serializer=serializer or configured_serializer())

    @property
    def attempt(self) -> int:
        """Attempts started so far (the running one included)."""
        return int(self.meta.get(META_ATTEMPT, 0))

    def descriptor(self) -> dict[str, Any]:
        """What a record needs to exist: queue, function, arguments and origin."""
        try:
            func, args, kwargs = self.func_name, self.args, self.kwargs
        except Exception as exc:  # undeserializable payload: still record the job
            func, args, kwargs = f"<undeserializable: {type(exc).__name__}>", (), {}
        args_repr, kwargs_repr = events.safe_repr(tuple(args)), events.safe_repr(dict(kwargs))
        described = {
            "q": self.origin,
            "f": events.bounded(str(func), 255),
            "args": args_repr,
            "kwargs": kwargs_repr,
            events.ARGS_JSON: events.json_arguments(args, kwargs, reprs=(args_repr, kwargs_repr)),
            "key": self.meta.get(META_KEY),
            "origin": self.meta.get(META_ORIGIN),
            "parent": self.meta.get(META_PARENT),
            "max": self.meta.get(META_MAX_ATTEMPTS),
            "enq": epoch(self.enqueued_at or self.created_at),
            "timeout": self.timeout,
        }
        # Empty values say nothing the recorder does not assume: a smaller event to send.
        return {name: value for name, value in described.items() if value is not None and value != ""}

    def waiting_event(self, status: str) -> dict[str, Any]:
        """The event of this job waiting for its next attempt (queued, deferred, ...)."""
        next_at = epoch(self._jobsite_next_at) if status == JobStatus.SCHEDULED else None
        return events.waiting(
            status, job_id=self.id, attempt=self.attempt + 1, descriptor=self.descriptor(), next_at=next_at
        )

    def set_status(self, status: RQStatus, pipeline: Any = None) -> None:
        super().set_status(status, pipeline=pipeline)
        if self._jobsite_quiet:
            return
        target = pipeline if pipeline is not None else self.connection
        name = FROM_RQ_WAITING.get(status)
        if name is not None:
            events.append(target, self.waiting_event(name))
        elif status == RQStatus.FAILED:
            # Failed outside a jobsite worker (RQ's own abandoned-job cleanup).
            self.report_failure(
                target,
                status=JobStatus.DEAD,
                failure=("AbandonedJobError", "the job was abandoned by its worker", ""),
                worker=self.worker_name or "",
            )

    def prepare_for_execution(self, worker_name: str, pipeline: Any) -> None:
        super().prepare_for_execution(worker_name, pipeline)
        self.meta[META_ATTEMPT] = self.attempt + 1
        pipeline.hset(self.key, "meta", self.serializer.dumps(self.meta))
        events.append(
            pipeline,
            events.started(
                job_id=self.id,
                attempt=self.attempt,
                worker=worker_name,
                start=epoch(self.started_at),
                descriptor=self.descriptor(),
            ),
        )

    def perform(self) -> Any:
        # What the job logs while it runs is kept with its record (workers/rq/joblogs.py).
        with captured_logs(self):
            return super().perform()

    def get_retry_interval(self) -> float:  # type: ignore[override]
        # The worker computed this attempt's backoff (with its jitter) when it reported
        # the failure; the retry must wait exactly what the record says.
        if self._jobsite_retry_delay is not None:
            return self._jobsite_retry_delay
        return super().get_retry_interval()

    def report_finished(self, pipeline: Any, *, worker: str) -> None:
        events.append(
            pipeline,
            events.finished(
                job_id=self.id,
                attempt=max(self.attempt, 1),
                worker=worker,
                result=events.safe_repr(self._result),
                start=epoch(self.started_at),
                end=epoch(self.ended_at),
                descriptor=self.descriptor(),
            ),
        )

    def report_failure(self, pipeline: Any, *, status: str, failure: tuple[str, str, str], worker: str) -> None:
        ended = now()
        next_at = None
        if status == JobStatus.RETRYING and self._jobsite_retry_delay is not None:
            next_at = epoch(ended + timedelta(seconds=self._jobsite_retry_delay))
        events.append(
            pipeline,
            events.failed(
                status,
                job_id=self.id,
                attempt=max(self.attempt, 1),
                worker=worker,
                failure=failure,
                start=epoch(self.started_at),
                end=epoch(ended),
                descriptor=self.descriptor(),
                next_at=next_at,
            ),
        )
