"""The RQ integration: job, queue and worker classes that record every transition.

Each transition appends one event to the jobsite stream inside the pipeline RQ already
uses for it, so tracking costs no extra round trip and never waits on the database.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connections
from django_rq.queues import DjangoRQ
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT
from rq.exceptions import DequeueTimeout
from rq.intermediate_queue import IntermediateQueue
from rq.job import Job
from rq.job import JobStatus as RQStatus
from rq.scheduler import RQScheduler
from rq.utils import now
from rq.worker import SimpleWorker, Worker

from . import events
from .conf import setting
from .forkguard import FORK_GUARD
from .joblogs import captured_logs
from .models import JobStatus
from .pausing import PAUSE_POLL_SECONDS, is_paused, paused_queues
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


def key_job_ended(job: Job, *, status: str) -> None:
    """Hand a keyed job's key on once its outcome is committed (see workers/ordering.py)."""
    if job.meta.get(META_KEY):
        from .ordering import key_job_ended as _ended

        _ended(job, status=status)


def _epoch(moment: datetime | None) -> float | None:
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
        super().__init__(id, connection=connection, serializer=serializer or settings.JOBSITE_SERIALIZER)

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

    def perform(self) -> Any:
        # What the job logs while it runs is kept with its record (workers/joblogs.py).
        with captured_logs(self):
            return super().perform()

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
            "tb": events.bounded(traceback_text, setting("TRACEBACK_LIMIT")),
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

    def enqueue_job(self, job: Job, pipeline: Any = None, at_front: bool = False, unique: bool = False) -> Job:
        if job.meta.get(META_KEY):
            if pipeline is not None or unique:
                raise ValueError("keyed jobs are enqueued on their own (no pipeline, no unique=)")
            from .ordering import key_enqueue

            return key_enqueue(self, job, at_front=at_front)
        job = super().enqueue_job(job, pipeline=pipeline, at_front=at_front, unique=unique)
        if job.has_rate_limit or unique:
            # RQ writes these statuses without set_status: report the job here.
            status = JobStatus.QUEUED if job.get_status(refresh=False) == RQStatus.QUEUED else JobStatus.DEFERRED
            events.append(
                pipeline if pipeline is not None else self.connection,
                {"e": status, "id": job.id, "a": job.attempt + 1, **job.descriptor()},  # type: ignore[attr-defined]
            )
        return job

    def schedule_job(self, job: Job, datetime: datetime, pipeline: Any = None, unique: bool = False) -> Job:
        job._jobsite_next_at = datetime  # type: ignore[attr-defined]
        return super().schedule_job(job, datetime, pipeline=pipeline, unique=unique)

    @classmethod
    def dequeue_any(  # type: ignore[override]
        cls, queues: Any, timeout: int | None, connection: Redis, **kwargs: Any
    ) -> tuple[Job, Any] | None:
        """RQ's dequeue, skipping paused queues (workers/pausing.py): their jobs wait."""
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


def describe_failure(exc_string: str, exc_info: tuple[Any, Any] | None, timeout: float | None) -> tuple[str, str, str]:
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

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # RQ runs maintenance (which also takes over the scheduler of a dead worker) every
        # 10 minutes: retries of a crashed scheduler's queues would stall that long.
        kwargs.setdefault("maintenance_interval", setting("MAINTENANCE_INTERVAL"))
        super().__init__(*args, **kwargs)

    @property
    def dequeue_timeout(self) -> int:
        # An idle worker blocks on its queues this long; wake up for maintenance on time.
        return max(1, min(super().dequeue_timeout, int(self.maintenance_interval)))  # type: ignore[misc,attr-defined]

    def _start_scheduler(
        self,
        burst: bool = False,
        logging_level: str | None = "INFO",
        date_format: str = DEFAULT_LOGGING_DATE_FORMAT,
        log_format: str = DEFAULT_LOGGING_FORMAT,
    ) -> None:
        # As RQ's, but the scheduler is named after its worker, so that the watchdog can
        # release the scheduler lock of a dead worker at once instead of after its TTL.
        self.scheduler = WorkerScheduler(
            self.queues,  # type: ignore[attr-defined]
            connection=self.connection,  # type: ignore[attr-defined]
            logging_level=logging_level if logging_level is not None else self.log.level,  # type: ignore[attr-defined]
            date_format=date_format,
            log_format=log_format,
            serializer=self.serializer,  # type: ignore[attr-defined]
            name=self.name,  # type: ignore[attr-defined]
        )
        self.scheduler.acquire_locks()
        if self.scheduler.acquired_locks:
            if burst:
                try:
                    self.scheduler.register_birth()
                    self.scheduler.enqueue_scheduled_jobs()
                finally:
                    self.scheduler.release_locks()
                    self.scheduler.register_death()
            else:
                self.scheduler.start()

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
        # RQ stores the traceback UTF-8 encoded: a message with lone surrogates (bytes decoded
        # with surrogateescape) made that raise in the horse, losing the job's real error.
        exc_string = events.storable(exc_string)
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
            job.failure_ttl = max(job.failure_ttl or 0, setting("DEAD_JOB_TTL"))
        self._jobsite_failing: tuple[Any, str, tuple[str, str, str]] | None = (job, status, failure)
        job._jobsite_quiet = True  # type: ignore[attr-defined]
        try:
            super().handle_job_failure(  # type: ignore[misc]
                job, queue, started_job_registry=started_job_registry, exc_string=exc_string, execution=execution
            )
        finally:
            job._jobsite_quiet = False  # type: ignore[attr-defined]
            self._jobsite_failing = None
        key_job_ended(job, status=status)

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
        self._jobsite_succeeding: Any = job
        try:
            super().handle_job_success(job, queue, started_job_registry, execution)  # type: ignore[misc]
        finally:
            self._jobsite_succeeding = None
        key_job_ended(job, status=JobStatus.FINISHED)

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

    def execute_job(self, job: Job, queue: Any) -> None:
        try:
            super().execute_job(job, queue)  # type: ignore[misc]
        except (RedisConnectionError, RedisTimeoutError) as exc:
            # RQ quits the whole worker on a Redis error while it runs a job. Wait for Redis
            # instead, then make sure this job's attempt ends: if its outcome never reached
            # Redis it is still `started` under this live worker, and nobody else would
            # ever fail it.
            self.log.warning("Redis lost while running job %s (%s); waiting for it", job.id, exc)  # type: ignore[attr-defined]
            self._jobsite_wait_for_redis()
            if job.get_status(refresh=True) == RQStatus.STARTED:
                self.handle_job_failure(
                    job,
                    queue,
                    started_job_registry=queue.started_job_registry,
                    exc_string=f"RedisConnectionLost: Redis became unreachable while the job ran ({exc})",
                    execution=getattr(self, "execution", None),
                )

    def _jobsite_wait_for_redis(self) -> None:
        delay = 0.5
        while not self._stop_requested:  # type: ignore[attr-defined]
            try:
                self.connection.ping()  # type: ignore[attr-defined]
                return
            except (RedisConnectionError, RedisTimeoutError):
                time.sleep(delay)
                delay = min(delay * 2, 10)

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

    def work(self, burst: bool = False, **kwargs: Any) -> bool:  # type: ignore[override]
        from .companion import Companion

        companion = Companion(self, record=self.run_recorder)  # type: ignore[arg-type]
        companion.start()
        try:
            return super().work(burst=burst, **kwargs)  # type: ignore[misc]
        finally:
            companion.stop(drain=burst)


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
                    events.append(pipe, {"e": JobStatus.QUEUED, "id": job.id, "a": job.attempt + 1, **job.descriptor()})
            pipe.execute()


class TrackingWorker(_TrackingMixin, Worker):  # type: ignore[misc]
    """The forking worker: each job runs in a work horse, so a crash costs one attempt."""

    def fork_work_horse(self, job: Job, queue: Any) -> None:
        # The horse must open its own database connections, never share the parent's, and
        # must not be forked while the companion thread is inside a transaction.
        with FORK_GUARD:
            connections.close_all()
            super().fork_work_horse(job, queue)


class TrackingSimpleWorker(_TrackingMixin, SimpleWorker):  # type: ignore[misc]
    """Runs jobs in the worker process itself: faster, but a crash takes the worker down."""


def redis_connection() -> Redis:
    """A connection of jobsite's own to the configured Redis."""
    return Redis.from_url(settings.REDIS_URL, socket_timeout=30, socket_connect_timeout=5, health_check_interval=30)


def mark_alive(connection: Redis, worker_name: str) -> None:
    connection.set(ALIVE_KEY.format(worker_name), os.getpid(), ex=setting("WORKER_ALIVE_TTL"))


def is_alive(connection: Redis, worker_name: str) -> bool:
    return bool(connection.exists(ALIVE_KEY.format(worker_name)))
