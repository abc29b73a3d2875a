"""The jobsite worker classes: RQ's workers with jobsite's failure policy, reported
outcomes, RQ's scheduler as ``WorkerScheduler`` and a companion thread beside the jobs.

RQ's work loop quits the worker on any Redis error outside its blocking dequeue (and
``rqworker`` then exits): every call the loop makes to Redis goes through
``_jobsite_until_redis_answers`` here, which waits the outage out instead. Only an
operator's signal stops a jobsite worker.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable
from types import FrameType
from typing import Any, TypeVar

from django.db import close_old_connections, connections
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from rq.callbacks import execute_failure_callback
from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT
from rq.exceptions import AbandonedJobError, StopRequested
from rq.executions import Execution
from rq.job import Job
from rq.job import JobStatus as RQStatus
from rq.utils import now as utcnow
from rq.worker import SimpleWorker, Worker, WorkerStatus

from .. import events, redaction
from ..conf import setting
from ..ordering.keys import key_job_ended
from ..redis import (
    ALIVE_KEY,
    META_ATTEMPT,
    META_RUN_BASE,
    REDIS_DOWN,
    REQUEUE_GUARD_KEY,
    REQUEUE_GUARD_SECONDS,
    RedisOutage,
    backoff,
    raise_if_failing_over,
)
from ..rq.claims import Claim, ClaimLost, FencedRedis, claim_take_over_dead, claim_take_queued, claim_taken
from ..rq.failures import STOPPED_MID_JOB, describe_failure
from ..rq.forkguard import FORK_GUARD
from ..rq.retry import retry_decision
from ..rq.scheduler import WorkerScheduler
from ..statuses import JobStatus
from .companion import Companion
from .liveness import is_alive, is_jobsite_worker, mark_alive

log = logging.getLogger(__name__)
T = TypeVar("T")


class NameTaken(ValueError):
    """A live worker holds this worker's name (RQ's own refusal is a ValueError too)."""


def _process_runs(pid: str) -> bool:
    """Whether ``pid`` is a process of this host other than this one (a restarted container
    often has its predecessor's pid)."""
    if not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


# A work horse whose outcome was dropped (its claim taken) exits with this status.
CLAIM_LOST_EXIT = 75
# A work horse that could not start its job (Redis went away as it marked it `started`, and
# the job is not that): no attempt was made, and its worker puts the job back.
NOT_STARTED_EXIT = 76
# A scheduler process with no sign of life for this many WORKER_ALIVE_TTL is replaced, and
# one asked to stop is killed after SCHEDULER_STOP_WAIT seconds.
SCHEDULER_STUCK_TTLS = 3
SCHEDULER_STOP_WAIT = 5
# A job whose hash Redis no longer has (it came back without its data).
GONE = "its hash is gone (Redis came back without its data)"


class TrackingMixin:
    """What a jobsite worker adds to RQ's: failure policy, reported outcomes, a companion."""

    run_recorder = True
    connection: Any  # RQ's; swapped for a FencedRedis while an outcome is written

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # RQ runs maintenance (which also takes over the scheduler of a dead worker) every
        # 10 minutes: retries of a crashed scheduler's queues would stall that long.
        kwargs.setdefault("maintenance_interval", setting("MAINTENANCE_INTERVAL"))
        # One per worker process: its loop, pubsub thread and companion log an outage once.
        # Made before RQ's __init__, which already calls Redis (CLIENT SETNAME).
        self._jobsite_outage = RedisOutage("worker")
        self._jobsite_registered = self._jobsite_check_registration = False
        self._jobsite_execution: Any = None
        self._jobsite_attempt = 0  # the attempt execute_job is starting
        self._jobsite_horse_status: int | None = None
        # The job whose start reached Redis (perform_job), and why the last one did not start.
        self._jobsite_prepared: Job | None = None
        self._jobsite_not_started: str | None = None
        # The claim of the attempt this worker runs now (workers/rq/claims.py), the claim
        # whose dropped outcome was logged, and why the worker must register again before
        # it takes another job (set by the companion: the worker was presumed dead).
        self._jobsite_claim: Claim | None = None
        self._jobsite_dropped: Claim | None = None
        self._jobsite_presumed_dead: str | None = None
        self._jobsite_companion: Companion | None = None  # while work() runs
        super().__init__(*args, **kwargs)

    # --- Redis outages: waited out wherever RQ would quit --------------------------------

    def _jobsite_until_redis_answers(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``call(*args, **kwargs)``, tried again while Redis is away (0.5 s doubling to 10 s;
        the outage logged once). An operator's stop request ends the wait."""
        failures = 0
        while True:
            try:
                result = call(*args, **kwargs)
            except REDIS_DOWN as exc:
                if self._stop_requested:  # type: ignore[attr-defined]
                    raise StopRequested() from exc
                failures += 1
                self._jobsite_outage.began(exc)
                self._jobsite_check_registration = True
                self._jobsite_sleep(backoff(failures))
                continue
            self._jobsite_outage.ended()
            # A work horse leaves registering to its worker, which waits out the same outage.
            if self._jobsite_check_registration and self._jobsite_registered and not self.is_horse:  # type: ignore[attr-defined]
                self._jobsite_register_again()
            return result

    def _jobsite_sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stop_requested and (left := deadline - time.monotonic()) > 0:  # type: ignore[attr-defined]
            time.sleep(min(left, 0.2))

    def _jobsite_register_again(self) -> None:
        """After an outage: a Redis that came back empty has forgotten this worker, and pages,
        metrics and alerts would count it gone; register it again."""
        try:
            if not self.connection.hexists(self.key, "birth"):  # type: ignore[attr-defined]
                self.log.info("Worker %s: Redis came back without this worker; registering it again", self.name)  # type: ignore[attr-defined]
                self._jobsite_register()
            self._jobsite_check_registration = False
        except REDIS_DOWN:
            pass  # away again: the next call that gets through tries again

    def _jobsite_register(self) -> None:
        self.connection.delete(self.key)  # type: ignore[attr-defined]
        super().register_birth()  # type: ignore[misc]
        super().set_state(self.get_state())  # type: ignore[misc,attr-defined]
        mark_alive(self.connection, self.name)  # type: ignore[attr-defined]

    # --- presumed dead: a claim taken, an outcome fenced off ------------------------------

    def jobsite_presumed_dead(self, reason: str, *, taken: Claim | None = None) -> None:
        """Called by the companion (its thread) when this worker's liveness key had expired
        or the claim of its running attempt was taken: the watchdogs presumed it dead, and
        may have given its job to another worker. It takes no job until it has registered
        again (``dequeue_job_and_maintain_ttl``); a work horse still running a job that is
        no longer its own is stopped (its outcome would be dropped anyway)."""
        if self._jobsite_presumed_dead is None:
            self._jobsite_presumed_dead = reason
            self.log.warning(  # type: ignore[attr-defined]
                "Worker %s: presumed dead by the other workers (%s); taking no job until it has registered again",
                self.name,  # type: ignore[attr-defined]
                reason,
            )
        horse = getattr(self, "horse_pid", 0)
        if taken is not None and taken == self._jobsite_claim and horse:
            self.log.warning(  # type: ignore[attr-defined]
                "Worker %s: abandoning job %s: attempt %s was claimed again elsewhere; stopping its work horse",
                self.name,  # type: ignore[attr-defined]
                taken.job_id,
                taken.attempt,
            )
            try:
                self.kill_horse()  # type: ignore[attr-defined]
            except OSError:
                pass  # the horse has just ended

    def _jobsite_rejoin(self) -> None:
        reason = self._jobsite_presumed_dead
        # Between jobs: an execution left in its set was ended by whoever took the job over.
        self.connection.delete(self.executions_key)  # type: ignore[attr-defined]
        self._jobsite_register()
        self._jobsite_presumed_dead = None
        self.log.warning(  # type: ignore[attr-defined]
            "Worker %s: registered again after being presumed dead (%s); taking jobs again",
            self.name,  # type: ignore[attr-defined]
            reason,
        )

    def _jobsite_fenced(self, job: Job, call: Callable[..., T], *args: Any, ahead: bool = True) -> T | None:
        """``call(*args)``, writing to Redis only while this execution's claim on the job holds.

        Every transaction it makes WATCHes the claim (``FencedRedis``); once the claim is
        someone else's (a watchdog presumed this worker dead and the job was retried),
        nothing is written: no status, result, registry move or event that could overwrite
        the newer attempt. Jobs without a claim (plain RQ's) are not fenced.

        ``ahead``: the claim is checked before ``call`` runs (one round trip, which its first
        transaction then needs no more), so that a claim already lost leaves RQ's code out.
        Not ahead, the check rides the first WATCH of ``call``'s first transaction (RQ's
        success transaction WATCHes the job's dependents): no round trip of its own."""
        claim = self._jobsite_claim
        connection = self.connection  # type: ignore[attr-defined]
        if claim is None or claim.job_id != job.id or isinstance(connection, FencedRedis):
            return call(*args)
        fenced = FencedRedis(connection, claim)
        if ahead and (holder := fenced.arm()) is not None:
            self._jobsite_drop(claim, holder)
            return None
        self.connection = fenced
        try:
            return call(*args)
        except ClaimLost as lost:
            self._jobsite_drop(claim, lost.holder)
            return None
        finally:
            self.connection = connection
            fenced.disarm()
            if fenced.lost is not None:  # held back inside RQ, which logs and goes on
                self._jobsite_drop(claim, fenced.lost.holder)

    def _jobsite_outcome_dropped(self) -> bool:
        connection = self.connection  # type: ignore[attr-defined]
        return isinstance(connection, FencedRedis) and connection.lost is not None

    def _jobsite_drop(self, claim: Claim, holder: str | None) -> None:
        if self._jobsite_dropped == claim:
            return  # logged once per attempt
        self._jobsite_dropped = claim
        if self.is_horse:  # type: ignore[attr-defined]
            return  # its worker logs it, once, from the horse's exit status (CLAIM_LOST_EXIT)
        self.log.warning(  # type: ignore[attr-defined]
            "Worker %s: dropped its late outcome of job %s attempt %s: the job was claimed again (%s)",
            self.name,  # type: ignore[attr-defined]
            claim.job_id,
            claim.attempt,
            holder or "by another worker",
        )

    def _set_ip_address(self, connection: Any) -> None:
        self._jobsite_outage.who = f"worker {self.name}"  # type: ignore[attr-defined]
        self._jobsite_until_redis_answers(super()._set_ip_address, connection)  # type: ignore[misc]

    def bootstrap(self, *args: Any, **kwargs: Any) -> None:
        super().bootstrap(*args, **kwargs)  # type: ignore[misc]
        self._jobsite_registered = True

    def register_birth(self) -> None:
        self._jobsite_until_redis_answers(super().register_birth)  # type: ignore[misc]

    def _jobsite_name_freed(self) -> None:
        """Free this worker's name from a predecessor that is gone. RQ refuses a name whose
        registration has no death date for that registration's whole TTL (7 minutes): a unit
        with a fixed ``--name`` restarted after its process was killed (SIGKILL, the OOM
        killer) would fail to start all that while. A jobsite worker's name is free once its
        holder is gone: its process no longer runs (on this host), or its liveness key has
        expired (on another). A live holder keeps it (``NameTaken``): two workers may not
        share a name. What the predecessor left started, the companion fails as a leftover
        (``watchdog.abandoned_jobs_fail``)."""
        connection = self.connection  # type: ignore[attr-defined]
        key, name = self.key, self.name  # type: ignore[attr-defined]
        deadline = time.monotonic() + setting("WORKER_ALIVE_TTL") + 1
        while True:
            host, pid, death = connection.hmget(key, "hostname", "pid", "death")
            if host is None or death is not None or not is_jobsite_worker(connection, name):
                return  # free, ended, or a plain RQ worker's: RQ's own rule
            alive = connection.get(ALIVE_KEY.format(name))
            holder = (alive or pid or b"").decode(errors="replace").partition(" ")[0]
            here = host.decode(errors="replace") == self.hostname  # type: ignore[attr-defined]
            # On this host, the process tells; elsewhere, its liveness key.
            if (here and not _process_runs(holder)) or (not here and alive is None):
                self.log.warning(  # type: ignore[attr-defined]
                    "Worker %s: the previous worker of this name (pid %s on %s) is gone; taking its name over",
                    name,
                    holder or "?",
                    host.decode(errors="replace"),
                )
                connection.delete(key)
                return
            if time.monotonic() >= deadline:
                raise NameTaken(
                    f"a worker named {name!r} is running already (pid {holder or '?'} on "
                    f"{host.decode(errors='replace')}); two workers may not share a name: give this one another --name"
                )
            time.sleep(0.5)  # bounded: WORKER_ALIVE_TTL at most

    def subscribe(self) -> None:
        self._jobsite_until_redis_answers(super().subscribe)  # type: ignore[misc]

    def set_state(self, state: str, pipeline: Any = None) -> None:
        if pipeline is not None or self.is_horse:  # type: ignore[attr-defined]
            return super().set_state(state, pipeline=pipeline)  # type: ignore[misc]
        self._jobsite_until_redis_answers(super().set_state, state)  # type: ignore[misc]

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        if pipeline is not None or self.is_horse:  # type: ignore[attr-defined]
            return super().heartbeat(timeout, pipeline=pipeline)  # type: ignore[misc]
        self._jobsite_until_redis_answers(self._jobsite_heartbeat, timeout)

    def _jobsite_heartbeat(self, timeout: int | None) -> None:
        # RQ sends its heartbeat's three commands one by one, three times per job: one
        # request each instead (the same commands, not a transaction).
        with self.connection.pipeline(transaction=False) as pipeline:
            super().heartbeat(timeout, pipeline=pipeline)  # type: ignore[misc]
            pipeline.execute()

    def check_for_suspension(self, burst: bool) -> None:
        if self._jobsite_companion is not None:
            self._jobsite_companion.start()
        self._jobsite_until_redis_answers(super().check_for_suspension, burst)  # type: ignore[misc]

    def run_maintenance_tasks(self) -> None:
        self._jobsite_replace_stuck_scheduler()
        self._jobsite_until_redis_answers(super().run_maintenance_tasks)  # type: ignore[misc]

    def _jobsite_replace_stuck_scheduler(self) -> None:
        """Kill a scheduler process that has shown no sign of life for SCHEDULER_STUCK_TTLS
        x WORKER_ALIVE_TTL: RQ's maintenance (which runs next) starts a new one, which takes
        the locks at once (they carry this worker's name). Left alone, a hung scheduler
        would hold the queues' scheduler locks with no due job ever moved again: retries
        and jobs enqueued for later would wait for good."""
        scheduler = self.scheduler  # type: ignore[attr-defined]
        if not isinstance(scheduler, WorkerScheduler):
            return
        stuck, process = scheduler.stuck_for(), scheduler._process
        if process is None or stuck < SCHEDULER_STUCK_TTLS * setting("WORKER_ALIVE_TTL"):
            return
        self._jobsite_kill_scheduler(process, f"has shown no sign of life for {stuck:.0f} s; replacing it")

    def stop_scheduler(self) -> None:
        # As RQ's (SIGTERM, then wait), but a scheduler that does not end in time is killed:
        # RQ waits for it with no limit, so a hung one kept its worker from ever stopping.
        scheduler = self.scheduler  # type: ignore[attr-defined]
        process = scheduler._process if scheduler is not None else None
        if process is None or process.pid is None:
            return
        with contextlib.suppress(OSError):
            os.kill(process.pid, signal.SIGTERM)
        process.join(timeout=SCHEDULER_STOP_WAIT)
        if process.is_alive():
            self._jobsite_kill_scheduler(process, f"did not stop within {SCHEDULER_STOP_WAIT} s; killed")

    def _jobsite_kill_scheduler(self, process: Any, why: str) -> None:
        self.log.warning("Worker %s: its scheduler process (pid %s) %s", self.name, process.pid, why)  # type: ignore[attr-defined]
        process.kill()
        process.join(timeout=SCHEDULER_STOP_WAIT)  # SIGKILL ends even a stopped process

    def dequeue_job_and_maintain_ttl(self, timeout: int | None, max_idle_time: int | None = None) -> Any:
        if self._jobsite_presumed_dead is not None:
            self._jobsite_until_redis_answers(self._jobsite_rejoin)
        # RQ waits out a connection error while it blocks on the queues, but not a fail-over
        # in progress (the server turned replica: UNBLOCKED, then READONLY): that ended it.
        dequeued = self._jobsite_until_redis_answers(self._jobsite_dequeue, timeout, max_idle_time)
        if self._jobsite_presumed_dead is not None:
            # Noticed while blocked on the queues: the job just popped runs after that.
            self._jobsite_until_redis_answers(self._jobsite_rejoin)
        return dequeued

    def _jobsite_dequeue(self, timeout: int | None, max_idle_time: int | None) -> Any:
        try:
            return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)  # type: ignore[misc]
        except ResponseError as exc:
            raise_if_failing_over(exc)
            raise

    def maintain_heartbeats(self, job: Job, execution: Any) -> None:
        try:
            super().maintain_heartbeats(job, execution)  # type: ignore[misc]
        except REDIS_DOWN as exc:
            # The horse goes on with its job: the next beat tries again, and the attempt is
            # checked when the horse is done (execute_job).
            self._jobsite_outage.began(exc)
        else:
            self._jobsite_outage.ended()

    def set_shutdown_requested_date(self) -> None:
        try:
            super().set_shutdown_requested_date()  # type: ignore[misc]
        except REDIS_DOWN:
            pass  # only shown on pages; the stop itself goes on

    def _pubsub_exception_handler(self, exc: Exception, pubsub: Any, pubsub_thread: Any) -> None:
        if not isinstance(exc, REDIS_DOWN):
            return super()._pubsub_exception_handler(exc, pubsub, pubsub_thread)  # type: ignore[misc]
        # RQ's handler logs every retry (and lets a timeout end the thread, and with it
        # the stop-job commands): wait quietly; redis-py subscribes again on reconnecting.
        self._jobsite_outage.began(exc)
        time.sleep(2.0)

    def teardown(self) -> None:
        try:
            super().teardown()  # type: ignore[misc]
        except REDIS_DOWN as exc:
            # Stopping on an operator's signal while Redis is away: what is left expires.
            self.log.warning(  # type: ignore[attr-defined]
                "Worker %s: Redis is unavailable while stopping (%s); its registration expires on its own",
                self.name,  # type: ignore[attr-defined]
                exc,
            )
            thread = getattr(self, "pubsub_thread", None)
            if thread is not None:
                thread.stop()

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
        self._jobsite_until_redis_answers(self.scheduler.acquire_locks)
        if self.scheduler.acquired_locks:
            if burst:
                self._jobsite_until_redis_answers(self._jobsite_schedule_once)
            else:
                self.scheduler.start()
        if self._jobsite_companion is not None:
            self._jobsite_companion.start()  # after the fork: see work()

    def _jobsite_schedule_once(self) -> None:
        assert self.scheduler is not None
        try:
            self.scheduler.register_birth()
            self.scheduler.enqueue_scheduled_jobs()
        finally:
            try:
                self.scheduler.release_locks()
                self.scheduler.register_death()
            except REDIS_DOWN:
                pass  # the locks expire on their own

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
        if (
            not self.is_horse  # type: ignore[attr-defined]
            and exc_string.startswith("Work-horse terminated unexpectedly")
            and job.get_status(refresh=False) == RQStatus.QUEUED
        ):
            # The horse died before it could start the job (it could not reach Redis, say):
            # no attempt was made, and execute_job puts the job back in its queue.
            self.log.warning("Worker %s: job %s: its work horse ended before starting it", self.name, job.id)  # type: ignore[attr-defined]
            return
        self._jobsite_fenced(job, self._jobsite_fail, job, queue, started_job_registry, exc_string, execution)

    def _jobsite_fail(self, job: Job, queue: Any, started_job_registry: Any, exc_string: str, execution: Any) -> None:
        if not self.is_horse and not isinstance(self, SimpleWorker):  # type: ignore[attr-defined]
            # The horse counted the attempt in its own copy of the job; read it back. (A
            # simple worker ran the job in this very object.)
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
        if not self._jobsite_outcome_dropped():
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
        self._jobsite_fenced(job, self._jobsite_retry, job, queue, retry, started_job_registry, execution)

    def _jobsite_retry(self, job: Job, queue: Any, retry: Any, started_job_registry: Any, execution: Any) -> None:
        # The job returned RQ's `Retry`: RQ's own rule, reported as such (TrackedJob.set_status).
        job._jobsite_returned_retry = True  # type: ignore[attr-defined]
        try:
            super().handle_job_retry(job, queue, retry, started_job_registry, execution)  # type: ignore[misc]
        finally:
            job._jobsite_returned_retry = False  # type: ignore[attr-defined]

    def handle_job_success(self, job: Job, queue: Any, started_job_registry: Any, execution: Any) -> None:
        # RQ's success transaction WATCHes the job's dependents first: the claim's check rides it.
        self._jobsite_fenced(job, self._jobsite_succeed, job, queue, started_job_registry, execution, ahead=False)

    def _jobsite_succeed(self, job: Job, queue: Any, started_job_registry: Any, execution: Any) -> None:
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
        attempt = int(getattr(job, "attempt", 0)) + 1  # the horse counts it in its own copy
        outages = self._jobsite_outage.count
        self._jobsite_execution = self._jobsite_horse_status = None
        self._jobsite_prepared = self._jobsite_not_started = None
        self._jobsite_attempt = attempt
        try:
            self._jobsite_execute(job, queue, attempt, outages)
        finally:
            self._jobsite_claim = None

    def _jobsite_execute(self, job: Job, queue: Any, attempt: int, outages: int) -> None:
        try:
            # Redis away here: the job did not start, and goes back to its queue (below).
            # The claim is taken as the execution is registered (prepare_execution).
            super().execute_job(job, queue)  # type: ignore[misc]
        except REDIS_DOWN as exc:
            # RQ quits the whole worker on a Redis error while it runs a job. Wait for Redis
            # instead, then make sure this job's attempt ends.
            self._jobsite_outage.began(exc)
            reason = f"RedisConnectionLost: Redis became unreachable while the job ran ({exc})"
        else:
            if self._jobsite_not_started:
                reason = f"not started: {self._jobsite_not_started}"
            elif self._jobsite_outage.count == outages and not self._jobsite_horse_status:
                return  # the usual case: the attempt's outcome is in Redis
            elif self._jobsite_outage.count == outages:
                # The horse died and RQ has failed the attempt, unless the job's hash is gone.
                reason = f"Work-horse terminated unexpectedly; waitpid returned {self._jobsite_horse_status}; "
            else:
                reason = "RedisConnectionLost: Redis became unreachable while the job ran"
        if reason.startswith("RedisConnectionLost"):
            self.log.warning(  # type: ignore[attr-defined]
                "Worker %s: job %s met a Redis outage; its attempt is settled once Redis answers",
                self.name,  # type: ignore[attr-defined]
                job.id,
            )
        if self._jobsite_execution is None:  # RQ keeps it before Redis has saved it
            executions = self.executions.values()  # type: ignore[attr-defined]
            self._jobsite_execution = next((e for e in executions if e.job_id == job.id), None)
        try:
            self._jobsite_until_redis_answers(
                self._jobsite_fenced, job, self._jobsite_attempt_end, job, queue, attempt, reason
            )
        finally:
            if self._jobsite_execution is not None:
                self.executions.pop(self._jobsite_execution.id, None)  # type: ignore[attr-defined]

    def _jobsite_attempt_end(self, job: Job, queue: Any, attempt: int, reason: str) -> None:
        """End an attempt that met a Redis outage, if its outcome never reached Redis.

        Still `started` under this live worker, nobody else would ever fail it: it fails
        here (and is retried or dead). Still `queued`, it never started: it goes back to
        its queue. Its hash gone (Redis came back without its data), there is nothing left
        to fail or retry: it is recorded lost. Anything else is no longer this attempt's.
        """
        standing = self._jobsite_standing(job)
        if standing == GONE:
            self._jobsite_report_lost(job, attempt)
            return
        if standing == RQStatus.QUEUED.value:
            self._jobsite_put_back(job, queue)
            return
        if standing != RQStatus.STARTED.value:
            # Its outcome reached Redis, or it is no longer this worker's (canceled, taken
            # by another worker, a status written by hand): this worker's execution of it,
            # if RQ has not ended it, must not stay in the started registry.
            if self._jobsite_execution is not None:
                with self.connection.pipeline() as pipe:  # type: ignore[attr-defined]
                    self._jobsite_execution.delete(job=job, pipeline=pipe)
                    pipe.execute()
            return
        self.handle_job_failure(
            job, queue, started_job_registry=queue.started_job_registry, exc_string=reason,
            execution=self._jobsite_execution,
        )  # fmt: skip
        if job.get_status(refresh=True) == RQStatus.STARTED:
            # RQ logs and drops a failure it could not write: Redis went away again.
            raise RedisConnectionError(f"the failure of job {job.id} could not be saved")

    def _jobsite_put_back(self, job: Job, queue: Any) -> None:
        """Popped from its queue, never started (Redis went away in between, so the job did
        not run): back to the front of its queue, unless a watchdog is putting it back."""
        connection = self.connection  # type: ignore[attr-defined]
        if connection.lpos(queue.key, job.id) is not None:
            return
        if not connection.set(REQUEUE_GUARD_KEY.format(job.id), 1, nx=True, ex=REQUEUE_GUARD_SECONDS):
            return
        self.log.warning("Worker %s: job %s never started; putting it back in its queue", self.name, job.id)  # type: ignore[attr-defined]
        with connection.pipeline() as pipe:
            if self._jobsite_execution is not None:
                self._jobsite_execution.delete(job=job, pipeline=pipe)
            pipe.lrem(queue.intermediate_queue_key, 1, job.id)
            pipe.lpush(queue.key, job.id)
            pipe.execute()

    def _jobsite_report_lost(self, job: Job, attempt: int) -> None:
        name: str = self.name  # type: ignore[attr-defined]
        detail = f"it ran on {name}; Redis came back without it (restarted without its data, or failed over)"
        self.log.warning("Worker %s: job %s: %s (%s)", name, job.id, events.LOST_REASON, detail)  # type: ignore[attr-defined]
        descriptor = job.descriptor()  # type: ignore[attr-defined]
        with self.connection.pipeline() as pipe:  # type: ignore[attr-defined]
            if self._jobsite_execution is not None:
                self._jobsite_execution.delete(job=job, pipeline=pipe)
            events.append(
                pipe, events.lost(job_id=job.id, attempt=attempt, worker=name, detail=detail, descriptor=descriptor)
            )
            pipe.execute()
        key_job_ended(job, status=JobStatus.DEAD)

    def prepare_execution(self, job: Job) -> Any:
        """RQ's (``rq.executions.prepare_execution``), with the attempt's claim taken in the
        same transaction as the execution is registered: no round trip of its own, and no
        moment when one is in Redis without the other."""
        self._jobsite_current: Job | None = job  # the job a cold stop would interrupt
        claim = Claim(job.id, self._jobsite_attempt, self.name)  # type: ignore[attr-defined]
        with self.connection.pipeline() as pipeline:  # type: ignore[attr-defined]
            execution = Execution.create(job, self.get_heartbeat_ttl(job), pipeline=pipeline, worker_name=self.name)  # type: ignore[attr-defined]
            self.executions[execution.id] = execution  # type: ignore[attr-defined]
            self.set_state(WorkerStatus.BUSY, pipeline=pipeline)
            claim_take_queued(pipeline, claim, timeout=job.timeout)
            taken = pipeline.execute()[-1]
        # Kept for the outage path: the execution RQ registered, to delete when the job is lost.
        self._jobsite_execution = execution
        # The worker holds the claim once it is in Redis: until then the companion's beat
        # would take the job's previous (revoked) claim for this one's, taken.
        self._jobsite_claim, held = claim_taken(claim, taken)
        if held is not None:
            connection = self.connection  # type: ignore[attr-defined]
            self._jobsite_claim, held = claim_take_over_dead(
                connection, claim, held, timeout=job.timeout, alive=lambda worker: is_alive(connection, worker)
            )
        if held is not None:
            # Only a take that reached Redis late, or a live worker's claim on this attempt
            # (the job delivered twice), meets this: the attempt is someone else's.
            self.log.warning("Worker %s: job %s attempt %s is claimed by %s", self.name, job.id, claim.attempt, held)  # type: ignore[attr-defined]
        return execution

    def prepare_job_execution(self, job: Job, remove_from_intermediate_queue: bool = False) -> None:
        if self._jobsite_prepared is not job:  # perform_job has done it (_jobsite_start)
            super().prepare_job_execution(job, remove_from_intermediate_queue)  # type: ignore[misc]

    def _jobsite_start(self, job: Job) -> bool:
        """RQ's ``prepare_job_execution`` (the job marked `started`, its attempt counted),
        done before RQ's ``perform_job``, which fails the attempt on any error in it: a Redis
        error there is no failure of the job, which has not run.

        Redis away as the start is sent, the horse waits for it, then reads the job: the
        start reached Redis before the connection failed (a timeout on the reply), and the
        job runs; it did not, and the start is sent again (the same values: the transaction
        is idempotent, so one that reaches Redis late changes nothing). The job no longer
        waiting for this worker (its hash gone with Redis's data, canceled, taken by a
        watchdog), or a stop asked for meanwhile: it does not run (False), and its worker
        settles it as never started (``_jobsite_attempt_end``). Any other error is left to
        RQ's ``perform_job``, which records it as the attempt's failure."""
        remove_from_intermediate_queue = len(self.queues) == 1  # type: ignore[attr-defined]
        meta = dict(job.meta)  # the start counts the attempt in it
        while True:
            try:
                super().prepare_job_execution(job, remove_from_intermediate_queue)  # type: ignore[misc]
                break
            except REDIS_DOWN as exc:
                self._jobsite_outage.began(exc)
                job.meta = dict(meta)
            except Exception:
                # Not Redis (a payload that cannot be read, say): RQ's perform_job makes the
                # start again and fails the attempt with this error, as it always has.
                job.meta = dict(meta)
                return True
            try:
                state = self._jobsite_until_redis_answers(self._jobsite_standing, job)
            except StopRequested:
                state = "a stop was requested while Redis was away"
            if state == "started":
                break
            if state != "queued":
                self.log.warning("Worker %s: job %s not started: %s", self.name, job.id, state)  # type: ignore[attr-defined]
                if self.is_horse:  # type: ignore[attr-defined]
                    connections.close_all()
                    os._exit(NOT_STARTED_EXIT)  # its worker reads the job and settles it
                self._jobsite_not_started = state
                return False
        self._jobsite_prepared = job
        return True

    def _jobsite_standing(self, job: Job) -> str:
        """Where the job stands in Redis after an outage: ``started`` (by this worker),
        ``queued``, ``GONE`` (its hash lost with Redis's data), or what else it is now."""
        status, worker, data = self.connection.hmget(job.key, "status", "worker_name", "data")  # type: ignore[attr-defined]
        if data is None:
            return GONE
        state = (status or b"").decode(errors="replace")
        holder = (worker or b"").decode(errors="replace")
        if state == RQStatus.STARTED.value and holder != self.name:  # type: ignore[attr-defined]
            return f"started by {holder} meanwhile"
        if state in (RQStatus.STARTED.value, RQStatus.QUEUED.value):
            return state
        return f"it is {state or 'without a status'} now"

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
        try:
            # A job is a unit of work like a request: no stale connection goes in or out.
            close_old_connections()
            if not self._jobsite_start(job):
                return False
            return super().perform_job(job, queue, execution)  # type: ignore[misc]
        except BaseException:
            if self.is_horse:  # type: ignore[attr-defined]
                # RQ's horse exits 1 without a word: its worker only sees "terminated unexpectedly".
                self.log.exception("Worker %s: work horse of job %s failed outside the job", self.name, job.id)  # type: ignore[attr-defined]
            raise
        finally:
            if self.is_horse:  # type: ignore[attr-defined]
                connections.close_all()
                if self._jobsite_dropped is not None and self._jobsite_dropped == self._jobsite_claim:
                    os._exit(CLAIM_LOST_EXIT)  # RQ's horse would exit 0 here: tell the worker
            else:
                close_old_connections()

    def work(self, burst: bool = False, **kwargs: Any) -> bool:  # type: ignore[override]
        # A worker started while Redis is away waits for it instead of exiting.
        self._jobsite_until_redis_answers(self.connection.ping)  # type: ignore[attr-defined]
        # Before its first beat names this process in the liveness key.
        self._jobsite_until_redis_answers(self._jobsite_name_freed)
        companion = Companion(self, record=self.run_recorder, outage=self._jobsite_outage)  # type: ignore[arg-type]
        self._jobsite_until_redis_answers(companion.beat)
        # Its recorder and watchdogs start after RQ has forked the scheduler process
        # (_start_scheduler), or at the loop's first turn without one (check_for_suspension).
        companion.start_liveness()
        self._jobsite_companion = companion
        try:
            return super().work(burst=burst, **kwargs)  # type: ignore[misc]
        finally:
            self._jobsite_companion = None
            companion.stop(drain=burst)


class TrackingWorker(TrackingMixin, Worker):  # type: ignore[misc]
    """The forking worker: each job runs in a work horse, so a crash costs one attempt."""

    def wait_for_horse(self) -> tuple[int | None, int | None, Any]:
        pid, status, rusage = super().wait_for_horse()
        if status and os.WIFEXITED(status) and os.WEXITSTATUS(status) == CLAIM_LOST_EXIT and self._jobsite_claim:
            self._jobsite_drop(self._jobsite_claim, None)
            status = 0  # the horse ended as it should: nothing of its attempt is left to do
        elif status and os.WIFEXITED(status) and os.WEXITSTATUS(status) == NOT_STARTED_EXIT:
            # No attempt was made: not RQ's to fail; execute_job settles the job.
            self._jobsite_not_started = "its work horse could not start it"
            status = 0
        self._jobsite_horse_status = status  # not 0: the horse died; execute_job checks the attempt
        return pid, status, rusage

    def fork_work_horse(self, job: Job, queue: Any) -> None:
        # The horse must open its own database connections, never share the parent's, and
        # must not be forked while the companion thread is inside a transaction.
        with FORK_GUARD:
            connections.close_all()
            super().fork_work_horse(job, queue)


class TrackingSimpleWorker(TrackingMixin, SimpleWorker):  # type: ignore[misc]
    """Runs jobs in the worker process itself: faster, but a crash takes the worker down."""
