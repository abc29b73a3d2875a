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
from rq.queue import Queue
from rq.utils import now

from .. import events, redaction
from ..conf import serializer as configured_serializer
from ..conf import setting
from ..redis import META_ATTEMPT, META_KEY, META_ORIGIN, META_PARENT
from ..statuses import FROM_RQ_WAITING, JobStatus
from .claims import claim_revoke
from .joblogs import captured_logs
from .retry import has_rq_retry, max_attempts_of, retry_decision

# What the record says of an attempt RQ's own cleanup found abandoned (its worker stopped
# heartbeating and nobody failed the job sooner).
ABANDONED = ("AbandonedJobError", "the job was abandoned by its worker (no heartbeat); found by RQ's cleanup")


def epoch(moment: datetime | None) -> float | None:
    return moment.timestamp() if moment else None


class TrackedJob(Job):
    """An RQ job that reports its transitions to the jobsite stream."""

    # Set while a worker handles this job's failure: the status writes RQ makes then
    # (FAILED, STOPPED, the retry's SCHEDULED) are reported once, by the worker.
    _jobsite_quiet = False
    _jobsite_next_at: datetime | None = None
    _jobsite_retry_delay: float | None = None
    # Set by a jobsite worker while RQ handles a job that returned RQ's `Retry` object.
    _jobsite_returned_retry = False
    # Set when RQ's abandoned-job cleanup was turned into a retry (see set_status).
    _jobsite_retried_instead = False

    def __init__(self, id: str | None = None, connection: Redis | None = None, serializer: Any = None) -> None:
        # Producers, workers and services read payloads with the one configured serializer.
        super().__init__(id, connection=connection, serializer=serializer or configured_serializer())

    @property
    def attempt(self) -> int:
        """Attempts started so far (the running one included)."""
        return int(self.meta.get(META_ATTEMPT, 0))

    def descriptor(self, *, waiting: bool = False) -> dict[str, Any]:
        """What a record needs to exist: queue, function, arguments (redacted) and origin.

        ``waiting``: the job waits for its next attempt (its max attempts count that one).
        """
        call = redaction.call_of(self)  # an undeserializable payload still gets its record
        args_repr = events.safe_repr(call.args, clean=call.text)
        kwargs_repr = events.safe_repr(call.kwargs, clean=call.text)
        described = {
            "q": self.origin,
            "f": events.fitted(call.func, 255),
            "args": args_repr,
            "kwargs": kwargs_repr,
            # From the same redacted values, each text cleaned as the reprs are.
            events.ARGS_JSON: events.json_arguments(
                call.args, call.kwargs, reprs=(args_repr, kwargs_repr), clean=call.text
            ),
            "key": self.meta.get(META_KEY),
            "origin": self.meta.get(META_ORIGIN),
            "parent": self.meta.get(META_PARENT),
            "max": max_attempts_of(self, waiting=waiting),
            "enq": epoch(self.enqueued_at or self.created_at),
            "timeout": self.timeout,
        }
        # Empty values say nothing the recorder does not assume: a smaller event to send.
        return {name: value for name, value in described.items() if value is not None and value != ""}

    def get_call_string(self) -> str | None:
        # RQ keeps this "description" in Redis and its workers log it: redacted too.
        return redaction.call_of(self).call_string(max_length=75)

    def waiting_event(self, status: str) -> dict[str, Any]:
        """The event of this job waiting for its next attempt (queued, deferred, ...)."""
        next_at = epoch(self._jobsite_next_at) if status == JobStatus.SCHEDULED else None
        return events.waiting(
            status, job_id=self.id, attempt=self.attempt + 1, descriptor=self.descriptor(waiting=True), next_at=next_at
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
            if self._jobsite_returned_retry:
                # RQ's own rule for a job that returned `Retry`: its retries are used up.
                failure = ("RetriesExhausted", "the job returned Retry after its last retry", "")
                self.report_failure(target, status=JobStatus.DEAD, failure=failure, worker=self.worker_name or "")
            else:
                self._abandoned(target)

    def _abandoned(self, pipeline: Any) -> None:
        """Failed outside a jobsite worker: RQ's abandoned-job cleanup (``StartedJobRegistry
        .cleanup``) got to a job whose worker died before a jobsite watchdog did. The same
        retry decision as every other failed attempt: retried while attempts are left.

        RQ goes on to file the job as failed and release its dependents; a job retried here
        skips both (``_handle_failure``, ``get_status``, ``send_webhooks``).
        """
        decision = retry_decision(self)
        self._jobsite_retry_delay = decision.delay
        worker = self.worker_name or ""
        if worker:
            claim_revoke(pipeline, self.id, attempt=self.attempt, worker=worker)
        self.report_failure(pipeline, status=decision.status, failure=(*ABANDONED, ABANDONED[1]), worker=worker)
        if decision.status != JobStatus.RETRYING:
            self.failure_ttl = max(self.failure_ttl or 0, setting("DEAD_JOB_TTL"))
            return
        # RQ's own queue: the retry only schedules or re-queues the job (nothing of jobsite's
        # queue class applies to that, and its events are quiet here).
        queue = Queue(self.origin, connection=self.connection, job_class=type(self), serializer=self.serializer)
        self.retries_left = decision.retries_left
        self._jobsite_quiet = True
        try:
            self.retry(queue, pipeline)
        finally:
            self._jobsite_quiet = False
        self._jobsite_retried_instead = True

    def _handle_failure(self, exc_string: str, pipeline: Any, *args: Any, **kwargs: Any) -> None:
        if self._jobsite_retried_instead:
            return  # retried, not failed: not for the failed registry
        super()._handle_failure(exc_string, pipeline, *args, **kwargs)

    def get_status(self, refresh: bool = True) -> RQStatus:
        status = super().get_status(refresh)
        if self._jobsite_retried_instead and not refresh:
            # RQ's cleanup next releases the dependents of what it takes for a failed job,
            # judging by this cached status (with its own Job class for them): a parent
            # retried instead must hold them, as a stopped one does.
            return RQStatus.STOPPED
        return status

    def send_webhooks(self, status: Any, *, exc_string: str | None = None) -> None:
        if self._jobsite_retried_instead and status == RQStatus.FAILED:
            return
        super().send_webhooks(status, exc_string=exc_string)

    def prepare_for_execution(self, worker_name: str, pipeline: Any) -> None:
        super().prepare_for_execution(worker_name, pipeline)
        self.meta[META_ATTEMPT] = self.attempt + 1
        pipeline.hset(self.key, "meta", self.serializer.dumps(self.meta))
        if self.retries_left is not None and not has_rq_retry(self):
            # Left by jobsite's last retry: were this attempt abandoned, RQ's cleanup would
            # retry it by that count and skip the retry decision (see set_status).
            self.retries_left = None
            pipeline.hdel(self.key, "retries_left")
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
        call = redaction.call_of(self)
        events.append(
            pipeline,
            events.finished(
                job_id=self.id,
                attempt=max(self.attempt, 1),
                worker=worker,
                result=events.safe_repr(call.result(self._result), clean=call.text),
                start=epoch(self.started_at),
                end=epoch(self.ended_at),
                descriptor=self.descriptor(),
            ),
        )

    def report_failure(self, pipeline: Any, *, status: str, failure: tuple[str, str, str], worker: str) -> None:
        call = redaction.call_of(self)
        exc_type, message, traceback_text = failure
        failure = (exc_type, call.text(message), call.text(traceback_text))
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
