"""The jobsite worker classes: RQ's workers with jobsite's failure policy, reported
outcomes, RQ's scheduler as ``WorkerScheduler`` and a companion thread beside the jobs."""

from __future__ import annotations

import logging
import signal
import time
from types import FrameType
from typing import Any

from django.db import close_old_connections, connections
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq.callbacks import execute_failure_callback
from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT
from rq.exceptions import AbandonedJobError
from rq.job import Job
from rq.job import JobStatus as RQStatus
from rq.utils import now as utcnow
from rq.worker import SimpleWorker, Worker

from .. import events, redaction
from ..conf import setting
from ..ordering.keys import key_job_ended
from ..redis import META_ATTEMPT, META_RUN_BASE
from ..rq.failures import STOPPED_MID_JOB, describe_failure
from ..rq.forkguard import FORK_GUARD
from ..rq.retry import retry_decision
from ..rq.scheduler import WorkerScheduler
from ..statuses import JobStatus
from .companion import Companion

log = logging.getLogger(__name__)


class TrackingMixin:
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
        call = redaction.call_of(job)
        job._jobsite_exc_info = (  # type: ignore[attr-defined]
            f"{exc_type.__module__}.{exc_type.__qualname__}" if exc_type else "Exception",
            call.text(str(value)),
        )
        # RQ logs the traceback and hands the arguments to log handlers: redacted as well.
        with redaction.redacting_logs(self.log, call):  # type: ignore[attr-defined]
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
        # Redacted before RQ keeps it (the job's failure result) or anything reports it.
        exc_string = redaction.call_of(job).text(events.storable(exc_string))
        if getattr(self, "_jobsite_cold_stop", None) and not exc_string.startswith(STOPPED_MID_JOB):
            # A simple worker stopped cold: the SystemExit went through the job itself.
            exc_string = f"{STOPPED_MID_JOB}: {self._jobsite_cold_stop}\n{exc_string}"
            job._jobsite_exc_info = None  # type: ignore[attr-defined]
        decision = retry_decision(job, stopped=self._stopped_job_id == job.id)  # type: ignore[attr-defined]
        status = decision.status
        job.retries_left = decision.retries_left or None
        job._jobsite_retry_delay = decision.delay  # type: ignore[attr-defined]
        failure = describe_failure(exc_string, getattr(job, "_jobsite_exc_info", None), job.timeout)
        if status == JobStatus.DEAD:
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
            job.report_failure(
                pipeline if pipeline is not None else self.connection,  # type: ignore[attr-defined]
                status=status,
                failure=failure,
                worker=self.name,  # type: ignore[attr-defined]
            )

    def handle_job_retry(self, job: Job, queue: Any, retry: Any, started_job_registry: Any, execution: Any) -> None:
        # The job returned RQ's `Retry`: RQ's own rule, reported as such (TrackedJob.set_status).
        job._jobsite_returned_retry = True  # type: ignore[attr-defined]
        try:
            super().handle_job_retry(job, queue, retry, started_job_registry, execution)  # type: ignore[misc]
        finally:
            job._jobsite_returned_retry = False  # type: ignore[attr-defined]

    def handle_job_success(self, job: Job, queue: Any, started_job_registry: Any, execution: Any) -> None:
        if job.repeats_left:
            # RQ's `Repeat` runs the job again: a new run, whose failures count afresh
            # (RQ's Repeat.schedule saves the meta with the job).
            job.meta[META_RUN_BASE] = int(job.meta.get(META_ATTEMPT, 0))
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
            job.report_finished(
                pipeline if pipeline is not None else self.connection,  # type: ignore[attr-defined]
                worker=self.name,  # type: ignore[attr-defined]
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

    def prepare_execution(self, job: Job) -> Any:
        self._jobsite_current: Job | None = job  # the job a cold stop would interrupt
        return super().prepare_execution(job)  # type: ignore[misc]

    def request_force_stop(self, signum: int, frame: FrameType | None) -> None:
        """A cold stop (a second SIGTERM/SIGINT): RQ kills the work horse and exits, leaving
        the job `started` for a watchdog or RQ's cleanup to find much later, and judged by
        whoever happened to be alive. End the attempt here instead, as interrupted, with the
        retry decision, before the worker exits."""
        horse = self.horse_pid  # type: ignore[attr-defined]
        job = getattr(self, "_jobsite_current", None) if horse else None
        execution = getattr(self, "execution", None)
        try:
            super().request_force_stop(signum, frame)  # type: ignore[misc]
        except SystemExit:
            reason = f"cold shutdown: {signal.Signals(signum).name} received twice"
            self._jobsite_cold_stop = reason
            if job is not None:
                self._jobsite_interrupted(job, execution, reason)
            raise

    def _jobsite_interrupted(self, job: Job, execution: Any, reason: str) -> None:
        """Fail the attempt a killed work horse was running, as bare RQ's cleanup would
        (failure callback included), with jobsite's retry decision."""
        signal.alarm(0)  # the horse monitor's alarm must not go off while this is written
        queue = next((q for q in self.queues if q.name == job.origin), None)  # type: ignore[attr-defined]
        if queue is None:
            queue = self.queue_class(job.origin, connection=self.connection, job_class=self.job_class)  # type: ignore[attr-defined]
        try:
            execute_failure_callback(job, self.death_penalty_class, AbandonedJobError, AbandonedJobError(), None)  # type: ignore[attr-defined]
        except Exception:
            self.log.exception("failure callback of interrupted job %s raised", job.id)  # type: ignore[attr-defined]
        try:
            job.ended_at = job.ended_at or utcnow()
            self.handle_job_failure(
                job,
                queue,
                started_job_registry=queue.started_job_registry,
                exc_string=f"{STOPPED_MID_JOB}: {reason}",
                execution=execution,
            )
        except Exception:
            # Redis is away: the job stays `started` for the watchdog, as before.
            log.exception("could not record the interrupted attempt of job %s", job.id)

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
        companion = Companion(self, record=self.run_recorder)  # type: ignore[arg-type]
        companion.start()
        try:
            return super().work(burst=burst, **kwargs)  # type: ignore[misc]
        finally:
            companion.stop(drain=burst)


class TrackingWorker(TrackingMixin, Worker):  # type: ignore[misc]
    """The forking worker: each job runs in a work horse, so a crash costs one attempt."""

    def fork_work_horse(self, job: Job, queue: Any) -> None:
        # The horse must open its own database connections, never share the parent's, and
        # must not be forked while the companion thread is inside a transaction.
        with FORK_GUARD:
            connections.close_all()
            super().fork_work_horse(job, queue)


class TrackingSimpleWorker(TrackingMixin, SimpleWorker):  # type: ignore[misc]
    """Runs jobs in the worker process itself: faster, but a crash takes the worker down."""
