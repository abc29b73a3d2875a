"""The RQ integration: job, queue and worker classes that record every transition.

Each transition appends one event to the jobsite stream inside the pipeline RQ already
uses for it, so tracking costs no extra round trip and never waits on the database.
"""

from __future__ import annotations

import logging
import os
import signal
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connections
from django_rq.queues import DjangoRQ
from redis import Redis
from rq.job import Job
from rq.job import JobStatus as RQStatus
from rq.utils import now
from rq.worker import SimpleWorker, Worker

from . import events
from .models import JobStatus
from .retry import policy_for

log = logging.getLogger(__name__)

# Keys of job.meta that jobsite owns.
META_ATTEMPT = "jobsite_attempt"
META_MAX_ATTEMPTS = "jobsite_max_attempts"
META_RETRY = "jobsite_retry"
META_KEY = "jobsite_key"
META_ORIGIN = "jobsite_origin"
META_PARENT = "jobsite_parent"

WORKERS_SET = "jobsite:workers"
ALIVE_KEY = "jobsite:alive:{}"

# RQ statuses set outside a worker's own failure/success handling, as jobsite names them.
_WAITING = {
    RQStatus.QUEUED: JobStatus.QUEUED,
    RQStatus.SCHEDULED: JobStatus.SCHEDULED,
    RQStatus.DEFERRED: JobStatus.DEFERRED,
    RQStatus.CANCELED: JobStatus.CANCELED,
    # Held back by a concurrency limit: waiting, like a job whose dependency has not run.
    RQStatus.RATE_LIMITED: JobStatus.DEFERRED,
}


def _epoch(moment: datetime | None) -> float | None:
    return moment.timestamp() if moment else None


class TrackedJob(Job):
    """An RQ job that reports its transitions to the jobsite stream."""

    # Set while a worker handles this job's failure: the status writes RQ makes then
    # (FAILED, STOPPED, the retry's SCHEDULED) are reported once, by the worker.
    _jobsite_quiet = False
    _jobsite_next_at: datetime | None = None
    _jobsite_retry_delay: float | None = None

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
        described = {
            "q": self.origin,
            "f": events.bounded(str(func), 255),
            "args": events.safe_repr(tuple(args)),
            "kwargs": events.safe_repr(dict(kwargs)),
            "key": self.meta.get(META_KEY),
            "origin": self.meta.get(META_ORIGIN),
            "parent": self.meta.get(META_PARENT),
            "max": self.meta.get(META_MAX_ATTEMPTS),
            "enq": _epoch(self.enqueued_at or self.created_at),
            "timeout": self.timeout,
        }
        # Empty values say nothing the recorder does not assume: a smaller event to send.
        return {name: value for name, value in described.items() if value is not None and value != ""}

    def set_status(self, status: RQStatus, pipeline: Any = None) -> None:
        super().set_status(status, pipeline=pipeline)
        if self._jobsite_quiet:
            return
        name = _WAITING.get(status)
        if name is None:
            if status == RQStatus.FAILED:
                # Failed outside a jobsite worker (RQ's own abandoned-job cleanup).
                self._report_failure(
                    pipeline if pipeline is not None else self.connection,
                    status=JobStatus.DEAD,
                    failure=("AbandonedJobError", "the job was abandoned by its worker", ""),
                    worker=self.worker_name or "",
                )
            return
        event: dict[str, Any] = {"e": name, "id": self.id, "a": self.attempt + 1, **self.descriptor()}
        if name == JobStatus.SCHEDULED and self._jobsite_next_at:
            event["next"] = _epoch(self._jobsite_next_at)
        events.append(pipeline if pipeline is not None else self.connection, event)

    def prepare_for_execution(self, worker_name: str, pipeline: Any) -> None:
        super().prepare_for_execution(worker_name, pipeline)
        self.meta[META_ATTEMPT] = self.attempt + 1
        pipeline.hset(self.key, "meta", self.serializer.dumps(self.meta))
        events.append(
            pipeline,
            {
                "e": JobStatus.STARTED,
                "id": self.id,
                "a": self.attempt,
                "w": worker_name,
                "start": _epoch(self.started_at),
                **self.descriptor(),
            },
        )

    def get_retry_interval(self) -> float:  # type: ignore[override]
        # The worker computed this attempt's backoff (with its jitter) when it reported
        # the failure; the retry must wait exactly what the record says.
        if self._jobsite_retry_delay is not None:
            return self._jobsite_retry_delay
        return super().get_retry_interval()

    def _report_failure(self, pipeline: Any, *, status: str, failure: tuple[str, str, str], worker: str) -> None:
        exc_type, message, traceback_text = failure
        ended = now()
        event: dict[str, Any] = {
            "e": status,
            "id": self.id,
            "a": max(self.attempt, 1),
            "w": worker,
            "xt": events.bounded(exc_type, 255),
            "xm": events.bounded(message),
            "tb": events.bounded(traceback_text, settings.JOBSITE["TRACEBACK_LIMIT"]),
            "start": _epoch(self.started_at),
            "end": _epoch(ended),
            **self.descriptor(),
        }
        if status == JobStatus.RETRYING and self._jobsite_retry_delay is not None:
            event["next"] = _epoch(ended + timedelta(seconds=self._jobsite_retry_delay))
        events.append(pipeline, event)


class TrackedQueue(DjangoRQ):
    """A django-rq queue whose jobs are TrackedJobs and whose schedule times are reported."""

    job_class = TrackedJob

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("job_class", TrackedJob)
        super().__init__(*args, **kwargs)

    def schedule_job(self, job: Job, datetime: datetime, pipeline: Any = None, unique: bool = False) -> Job:
        job._jobsite_next_at = datetime  # type: ignore[attr-defined]
        return super().schedule_job(job, datetime, pipeline=pipeline, unique=unique)


def describe_failure(exc_string: str, exc_info: tuple[Any, Any] | None, timeout: int | None) -> tuple[str, str, str]:
    """(exception type, message an operator can read, traceback) for one failed attempt."""
    if exc_string.startswith("Work-horse terminated unexpectedly"):
        return ("WorkerDied", f"worker died: {_horse_death(exc_string)}", exc_string)
    if exc_string.startswith("Job stopped by user"):
        return ("JobStopped", "stopped by an operator; the work horse was terminated", exc_string)
    if exc_info is not None:
        exc_type, message = exc_info
    else:
        last = exc_string.strip().splitlines()[-1] if exc_string.strip() else "unknown error"
        exc_type, _, message = last.partition(": ")
    if exc_type.endswith("JobTimeoutException"):
        message = f"timed out after {timeout} s" if timeout else "timed out"
    return (exc_type, message, exc_string)


def _horse_death(exc_string: str) -> str:
    marker = "(signal "
    if marker in exc_string:
        number = int(exc_string.split(marker, 1)[1].split(")", 1)[0])
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        return f"the work horse was killed by {name} ({number}) mid-job"
    return "the work horse exited unexpectedly mid-job (" + exc_string.split("; ")[1] + ")"


class _TrackingMixin:
    """What a jobsite worker adds to RQ's: failure policy, reported outcomes, a companion."""

    run_recorder = True

    def handle_exception(self, job: Job, *exc_info: Any) -> None:
        exc_type, value = exc_info[0], exc_info[1]
        job._jobsite_exc_info = (  # type: ignore[attr-defined]
            f"{exc_type.__module__}.{exc_type.__qualname__}" if exc_type else "Exception",
            str(value),
        )
        super().handle_exception(job, *exc_info)  # type: ignore[misc]

    def handle_job_failure(
        self, job: Job, queue: Any, started_job_registry: Any = None, exc_string: str = "", execution: Any = None
    ) -> None:
        if not self.is_horse:  # type: ignore[attr-defined]
            # The horse counted the attempt in its own copy of the job; read it back.
            try:
                job.meta = job.get_meta(refresh=True)
            except Exception:
                log.warning("could not refresh meta of job %s", job.id)
        stopped = self._stopped_job_id == job.id  # type: ignore[attr-defined]
        policy = policy_for(job.origin, job.meta.get(META_RETRY))
        max_attempts = int(job.meta.get(META_MAX_ATTEMPTS) or policy.max_attempts)
        attempt = max(job.attempt, 1)  # type: ignore[attr-defined]
        retries_left = 0 if stopped else max(max_attempts - attempt, 0)
        job.retries_left = retries_left or None
        job._jobsite_retry_delay = policy.delay(attempt) if retries_left else None  # type: ignore[attr-defined]
        failure = describe_failure(exc_string, getattr(job, "_jobsite_exc_info", None), job.timeout)
        if stopped:
            status = JobStatus.STOPPED
        elif retries_left:
            status = JobStatus.RETRYING
        else:
            status = JobStatus.DEAD
            job.failure_ttl = max(job.failure_ttl or 0, settings.JOBSITE["DEAD_JOB_TTL"])
        self._jobsite_failing = (job, status, failure)
        job._jobsite_quiet = True  # type: ignore[attr-defined]
        try:
            super().handle_job_failure(  # type: ignore[misc]
                job, queue, started_job_registry=started_job_registry, exc_string=exc_string, execution=execution
            )
        finally:
            job._jobsite_quiet = False  # type: ignore[attr-defined]
            self._jobsite_failing = None

    def increment_failed_job_count(self, pipeline: Any = None) -> None:
        super().increment_failed_job_count(pipeline)  # type: ignore[misc]
        failing = getattr(self, "_jobsite_failing", None)
        if failing is not None:
            job, status, failure = failing
            job._report_failure(
                pipeline if pipeline is not None else self.connection,  # type: ignore[attr-defined]
                status=status,
                failure=failure,
                worker=self.name,  # type: ignore[attr-defined]
            )

    def handle_job_success(self, job: Job, queue: Any, started_job_registry: Any, execution: Any) -> None:
        self._jobsite_succeeding = job
        try:
            super().handle_job_success(job, queue, started_job_registry, execution)  # type: ignore[misc]
        finally:
            self._jobsite_succeeding = None

    def increment_successful_job_count(self, pipeline: Any = None) -> None:
        super().increment_successful_job_count(pipeline)  # type: ignore[misc]
        job = getattr(self, "_jobsite_succeeding", None)
        if job is not None:
            events.append(
                pipeline if pipeline is not None else self.connection,  # type: ignore[attr-defined]
                {
                    "e": JobStatus.FINISHED,
                    "id": job.id,
                    "a": max(job.attempt, 1),
                    "w": self.name,  # type: ignore[attr-defined]
                    "res": events.safe_repr(job._result),
                    "start": _epoch(job.started_at),
                    "end": _epoch(job.ended_at),
                    **job.descriptor(),
                },
            )

    def perform_job(self, job: Job, queue: Any, execution: Any) -> bool:
        # A job is a unit of work like a request: no stale connection goes in or out.
        close_old_connections()
        try:
            return super().perform_job(job, queue, execution)  # type: ignore[misc]
        finally:
            if self.is_horse:  # type: ignore[attr-defined]
                connections.close_all()
            else:
                close_old_connections()

    def work(self, burst: bool = False, **kwargs: Any) -> bool:
        from .companion import Companion

        companion = Companion(self, record=self.run_recorder)  # type: ignore[arg-type]
        companion.start()
        try:
            return super().work(burst=burst, **kwargs)  # type: ignore[misc]
        finally:
            companion.stop(drain=burst)


class TrackingWorker(_TrackingMixin, Worker):
    """The forking worker: each job runs in a work horse, so a crash costs one attempt."""

    def fork_work_horse(self, job: Job, queue: Any) -> None:
        # The horse must open its own database connections, never share the parent's.
        connections.close_all()
        super().fork_work_horse(job, queue)


class TrackingSimpleWorker(_TrackingMixin, SimpleWorker):
    """Runs jobs in the worker process itself: faster, but a crash takes the worker down."""


def redis_connection() -> Redis:
    """A connection of jobsite's own to the configured Redis."""
    return Redis.from_url(settings.REDIS_URL, socket_timeout=30, socket_connect_timeout=5, health_check_interval=30)


def mark_alive(connection: Redis, worker_name: str) -> None:
    connection.set(ALIVE_KEY.format(worker_name), os.getpid(), ex=settings.JOBSITE["WORKER_ALIVE_TTL"])


def is_alive(connection: Redis, worker_name: str) -> bool:
    return bool(connection.exists(ALIVE_KEY.format(worker_name)))
