"""Crash detection: a job whose worker stopped heartbeating is failed, then retried or dead.

A killed work horse is noticed at once by its worker. A worker killed whole (SIGKILL, a
lost machine) leaves its job in RQ's started registry, which RQ itself only cleans every
ten minutes; jobsite workers keep a short liveness key instead, and any live worker's
companion fails the orphaned jobs within a few seconds of the key expiring.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from redis import Redis
from rq.executions import Execution
from rq.job import JobStatus as RQStatus
from rq.job import NoSuchJobError
from rq.job_lifecycle import record_job_failure
from rq.queue import Queue
from rq.scheduler import RQScheduler
from rq.utils import parse_composite_key, utcparse
from rq.worker import BaseWorker

from .. import events
from ..conf import setting
from ..redis import LOST_KEY, REQUEUE_GUARD_KEY, REQUEUE_GUARD_SECONDS, VANISHED_KEY, WATCHDOG_ORPHAN_KEY
from ..rq.claims import claim_revoke
from ..rq.job import TrackedJob
from ..rq.retry import retry_decision
from ..statuses import JobStatus
from .liveness import is_alive, jobsite_worker_names, running_job

log = logging.getLogger(__name__)


@dataclass
class OwnWork:
    """The watchdog pass's view of its own worker: its name, and the ids of the jobs it runs
    now, read from the worker's memory (never from Redis, which may have gone back in
    time). ``suspects``: its started executions that it did not run at the last pass."""

    name: str
    running: Callable[[], set[str]]
    suspects: set[bytes] = field(default_factory=set)

    def left_over(self, job_id: str, entry: bytes, seen: set[bytes]) -> bool:
        """Whether this started execution (``entry``) of the worker's, read from Redis before
        this call reads the worker's memory, is a leftover: not run now, nor at the last
        pass. Every execution not run now goes into ``seen``, this pass's suspects."""
        if job_id in self.running():
            return False
        seen.add(entry)
        return entry in self.suspects


def abandoned_jobs_fail(
    connection: Redis, *, may_judge: Callable[[], bool] = lambda: True, own: OwnWork | None = None
) -> int:
    """Fail every started job whose jobsite worker is dead (and put back the ones it had
    taken but not started yet); returns how many.

    ``may_judge`` is asked right before each worker is judged dead: a pass held up by a
    link that was down resumes with what it saw before (the caller's companion knows).

    ``own``: the companion's own worker is alive, so no other worker ever judges its jobs;
    but Redis may say it runs a job it does not run. Its previous process died and it was
    restarted under the same name (its liveness key never expired), or Redis came back
    from a copy that missed the attempt's end (a fail-over to a replica that lagged, a
    restore). Such a job is failed here and retried by its policy, once the worker has
    not run it at two passes in a row (see ``_leftover_fail``)."""
    known = jobsite_worker_names(connection)
    failed = 0
    leftovers: set[bytes] = set()
    for queue in Queue.all(connection=connection, job_class=TrackedJob):
        registry = queue.started_job_registry
        for entry in connection.zrange(registry.key, 0, -1):
            job_id, execution_id = parse_composite_key(entry.decode())  # type: ignore[union-attr]
            try:
                job = TrackedJob.fetch(job_id, connection=connection)
                assert isinstance(job, TrackedJob)
            except NoSuchJobError:
                connection.zrem(registry.key, entry)  # type: ignore[arg-type]
                continue
            if job.get_status(refresh=False) == RQStatus.QUEUED:
                failed += _unstarted_requeue(
                    connection,
                    queue,
                    job,
                    entry,
                    execution_id,
                    known,
                    may_judge,
                    own,
                    leftovers,  # type: ignore[arg-type]
                )
                continue
            worker = job.worker_name or ""
            if own is not None and worker == own.name and job.get_status(refresh=False) == RQStatus.STARTED:
                # A job of this worker that it does not run now has ended (its outcome is
                # in Redis) or is a leftover. A suspect is keyed by its execution, which no
                # later attempt shares.
                if own.left_over(job.id, entry, leftovers):  # type: ignore[arg-type]
                    _leftover_fail(connection, queue, job, entry, own.name)  # type: ignore[arg-type]
                    failed += 1
                continue
            if job.get_status(refresh=False) != RQStatus.STARTED or worker not in known:
                continue  # not ours to judge: plain RQ workers are left to RQ's own cleanup
            if is_alive(connection, worker) or not may_judge():
                continue
            # One watchdog per orphan, however many workers notice it.
            if not connection.set(WATCHDOG_ORPHAN_KEY.format(job_id, job.attempt), 1, nx=True, ex=300):
                continue
            _fail(connection, queue, job, entry, worker)  # type: ignore[arg-type]
            failed += 1
    if own is not None:
        own.suspects = leftovers - own.suspects  # a leftover failed now is not one any more
    return failed


def _unstarted_requeue(
    connection: Redis,
    queue: Queue,
    job: TrackedJob,
    entry: bytes,
    execution_id: str,
    known: set[str],
    may_judge: Callable[[], bool],
    own: OwnWork | None = None,
    leftovers: set[bytes] | None = None,
) -> int:
    """A job in the started registry that never started: its worker registered the
    execution, then died before its work horse began (a fork is slow). No attempt was
    made: put it back in front of its queue. Neither the watchdog above (not started) nor
    ``lost_jobs_requeue`` (not nowhere) would see it, and RQ's cleanup only drops the entry
    once it expires, minutes later. Returns 1 if it was put back."""
    try:
        worker = Execution.fetch(execution_id, job.id, connection=connection).worker_name
    except ValueError:  # the execution expired: RQ's cleanup drops the entry
        return 0
    if own is not None and leftovers is not None and worker == own.name:
        # Its own worker's, as in ``abandoned_jobs_fail``.
        if not own.left_over(job.id, entry, leftovers):
            return 0
    elif worker not in known or is_alive(connection, worker) or not may_judge():
        return 0
    if not connection.set(WATCHDOG_ORPHAN_KEY.format(job.id, f"unstarted:{execution_id}"), 1, nx=True, ex=300):
        return 0
    if not connection.set(REQUEUE_GUARD_KEY.format(job.id), 1, nx=True, ex=REQUEUE_GUARD_SECONDS):
        return 0  # put back a moment ago by another watchdog
    log.warning("job %s: worker %s died before starting it; putting it back", job.id, worker)
    with connection.pipeline() as pipe:
        pipe.zrem(queue.started_job_registry.key, entry)
        pipe.delete(Execution.from_composite_key(entry.decode(), connection).key)
        if own is None or worker != own.name:
            # Were the worker only cut off, what it writes of this job when it is back is
            # dropped. Its own leftover keeps the claim: it may take the job again itself.
            claim_revoke(pipe, job.id, attempt=job.attempt + 1, worker=worker)
        pipe.execute()
    queue.enqueue_job(job, at_front=True)  # as lost_jobs_requeue does (RQ watches here)
    return 1


def lost_jobs_requeue(connection: Redis, *, older_than: float | None = None, limit: int = 100) -> int:
    """Put back jobs a worker popped from their queue and died with before starting them.

    A worker on several queues pops a job with (B)LPOP and only then adds it to the started
    registry; killed in between, it leaves the job `queued` yet in no queue and no registry,
    where neither RQ nor the watchdog above would ever see it again. Candidates come from
    the records (queued for a while); a job counts as lost only when Redis says so twice,
    one watchdog round apart, so a job being dequeued right now is never run twice.
    Returns how many were put back.
    """
    from django.db.models import Q
    from django.utils import timezone

    from ..models import JobRecord

    wait = older_than if older_than is not None else 2 * setting("WORKER_ALIVE_TTL")
    cutoff = timezone.now() - timedelta(seconds=wait)
    candidates = list(
        # Queued records, and retries or scheduled runs that fell due a while ago: RQ's
        # scheduler moves those to their queue without telling the tracking (it uses
        # plain RQ jobs), so their record still says retrying/scheduled when they are lost.
        JobRecord.objects.filter(
            Q(status=JobStatus.QUEUED)
            | Q(status__in=[JobStatus.RETRYING, JobStatus.SCHEDULED], scheduled_for__lt=cutoff)
        )
        .filter(Q(enqueued_at__lt=cutoff) | Q(enqueued_at__isnull=True, created_at__lt=cutoff))
        .filter(status_changed_at__lt=cutoff)
        .order_by("enqueued_at")
        .values_list("job_id", flat=True)[:limit]
    )
    requeued = 0
    for job_id in candidates:
        # A few fields, not the whole job: its payload may be megabytes.
        status, origin, enqueued_at = connection.hmget(TrackedJob.key_for(job_id), "status", "origin", "enqueued_at")
        if status != RQStatus.QUEUED.value.encode() or not origin:
            continue
        queue = Queue(origin.decode(), connection=connection, job_class=TrackedJob)
        if not _is_nowhere(connection, queue, job_id, utcparse(enqueued_at.decode()) if enqueued_at else None):
            connection.delete(LOST_KEY.format(job_id))
            continue
        # First sighting: remember it; act only if it is still nowhere next round.
        if connection.set(LOST_KEY.format(job_id), 1, nx=True, ex=600):
            continue
        if not connection.set(REQUEUE_GUARD_KEY.format(job_id), 1, nx=True, ex=REQUEUE_GUARD_SECONDS):
            continue  # another watchdog is putting it back
        try:
            job = TrackedJob.fetch(job_id, connection=connection)
        except NoSuchJobError:
            continue
        log.warning("job %s was popped by a worker that died before starting it; putting it back", job_id)
        queue.enqueue_job(job, at_front=True)
        connection.delete(LOST_KEY.format(job_id))
        requeued += 1
    return requeued


def _is_nowhere(connection: Redis, queue: Queue, job_id: str, enqueued_at: datetime | None) -> bool:
    head = connection.lindex(queue.key, 0)
    if head is not None:
        head_enqueued = connection.hget(TrackedJob.key_for(head.decode()), "enqueued_at")
        if head_enqueued and enqueued_at and utcparse(head_enqueued.decode()) <= enqueued_at:
            return False  # FIFO: still behind the head (cheap, no scan of a long queue)
    for key in (queue.key, queue.intermediate_queue_key):
        if connection.lpos(key, job_id) is not None:
            return False
    registries = (queue.started_job_registry, queue.scheduled_job_registry, queue.deferred_job_registry)
    if any(connection.zscore(registry.key, job_id) is not None for registry in registries):
        return False
    # The started registry keys executions as "<job id>:<execution id>".
    return not any(True for _ in connection.zscan_iter(queue.started_job_registry.key, match=f"{job_id}:*"))


# Records that wait for an attempt or run one: their RQ job must be in Redis.
_NEEDS_RQ_JOB = (JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED, JobStatus.RETRYING, JobStatus.STARTED)


def vanished_jobs_end(connection: Redis, *, after: int = 0, limit: int = 200) -> tuple[int, int]:
    """End the records of jobs whose RQ job vanished from Redis: dead, "lost", with the reason.

    A Redis that comes back without its data (restarted without persistence, failed over
    to a replica that never had the job) forgets the jobs waiting in its queues and the
    ones running, and the events not yet recorded: nothing would ever end their records.
    A record waiting or started for a while (2 x WORKER_ALIVE_TTL) whose job hash is gone
    and that no live worker says it runs gets a lost event, which the recorder never
    applies over an outcome it knows. Walks those records ``limit`` at a time after the
    primary key ``after``; returns how many it ended and the key to go on from (0: the start).
    """
    from django.utils import timezone

    from ..models import JobRecord

    cutoff = timezone.now() - timedelta(seconds=2 * setting("WORKER_ALIVE_TTL"))
    rows = list(
        JobRecord.objects.filter(status__in=_NEEDS_RQ_JOB, pk__gt=after, status_changed_at__lt=cutoff)
        .order_by("pk")
        .values_list("pk", "job_id", "status", "attempts", "worker")[:limit]
    )
    resume = rows[-1][0] if len(rows) == limit else 0
    if not rows:
        return 0, resume
    with connection.pipeline(transaction=False) as pipe:
        for row in rows:
            pipe.hexists(TrackedJob.key_for(row[1]), "data")
        present = pipe.execute()
    ours: set[str] | None = None
    ended = 0
    for (_pk, job_id, status, attempts, worker), there in zip(rows, present, strict=True):
        if there:
            continue
        if status == JobStatus.STARTED:
            ours = jobsite_worker_names(connection) if ours is None else ours
            if _still_runs(connection, worker, job_id, ours):
                continue  # its worker ends the attempt itself when the job returns
            attempt, detail = max(attempts, 1), f"the attempt ran on {worker or 'a worker'}, which no longer runs it"
        else:
            attempt, detail = attempts + 1, f"the job was {status}"
        if not connection.set(VANISHED_KEY.format(job_id), 1, nx=True, ex=600):
            continue  # another watchdog has recorded it
        detail += "; Redis came back without it (restarted without its data, or failed over)"
        log.warning("job %s: %s (%s)", job_id, events.LOST_REASON, detail)
        events.append(connection, events.lost(job_id=job_id, attempt=attempt, worker=worker or "", detail=detail))
        ended += 1
    return ended, resume


def _still_runs(connection: Redis, worker: str, job_id: str, ours: set[str]) -> bool:
    if worker in ours:
        return running_job(connection, worker) == job_id
    # A plain RQ worker says nothing of its job: alive (its key refreshed) is taken as running it.
    return bool(worker) and bool(connection.exists(BaseWorker.redis_worker_namespace_prefix + worker))


_RELEASE_IF_HELD_BY = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


def dead_scheduler_locks_release(connection: Redis) -> int:
    """Release scheduler locks held by dead jobsite workers, so a live one takes over now
    (RQ would keep the lock for its whole TTL and retry only at its next maintenance)."""
    known = jobsite_worker_names(connection)
    released = 0
    for queue in Queue.all(connection=connection, job_class=TrackedJob):
        key = RQScheduler.get_locking_key(queue.name)
        holder = connection.get(key)
        if holder is None or holder.decode() not in known or is_alive(connection, holder.decode()):
            continue
        if connection.eval(_RELEASE_IF_HELD_BY, 1, key, holder):
            log.warning("released the scheduler lock of queue %s held by dead worker %s", queue.name, holder.decode())
            released += 1
    return released


def _fail(connection: Redis, queue: Queue, job: TrackedJob, entry: bytes, worker: str) -> None:
    reason = (
        f"worker died: {worker} stopped heartbeating while running this job "
        f"(killed or lost; no sign of life for {setting('WORKER_ALIVE_TTL')} s)"
    )
    _attempt_fail(connection, queue, job, entry, worker, ("WorkerDied", reason, reason))


def _leftover_fail(connection: Redis, queue: Queue, job: TrackedJob, entry: bytes, worker: str) -> None:
    """Fail the attempt Redis says ``worker`` runs, when it does not: its outcome, if it had
    one, never reached this Redis. Its execution goes too (the worker's own index of its
    executions included), as RQ's would with an outcome."""
    reason = (
        f"attempt lost: {worker} is running but not this job, yet Redis had it started by {worker} "
        "(the worker was restarted under its name after its process died, or Redis came back from a "
        "copy that missed the attempt's end: a fail-over to a replica that lagged, a restore)"
    )
    execution = Execution.from_composite_key(entry.decode(), connection)
    execution.worker_name = worker
    _attempt_fail(connection, queue, job, entry, worker, ("AttemptLost", reason, reason), execution)


def _attempt_fail(
    connection: Redis,
    queue: Queue,
    job: TrackedJob,
    entry: bytes,
    worker: str,
    failure: tuple[str, str, str],
    execution: Execution | None = None,
) -> None:
    decision = retry_decision(job)
    reason = failure[1]
    log.warning("job %s: %s", job.id, reason)
    job._jobsite_retry_delay = decision.delay
    job._jobsite_quiet = True
    with connection.pipeline() as pipe:
        pipe.zrem(queue.started_job_registry.key, entry)
        if execution is not None:
            execution.delete(job=job, pipeline=pipe)
        # A worker only cut off (not dead) may come back with this attempt's outcome: with
        # its claim revoked here, in the same transaction, that outcome is dropped.
        claim_revoke(pipe, job.id, attempt=job.attempt, worker=worker)
        job.report_failure(pipe, status=decision.status, failure=failure, worker=worker)
        if decision.status == JobStatus.RETRYING:
            job.retries_left = decision.retries_left
            job.retry(queue, pipe)
        else:
            job.failure_ttl = max(job.failure_ttl or 0, setting("DEAD_JOB_TTL"))
            record_job_failure(job, reason, pipe)
        pipe.execute()
    job._jobsite_quiet = False
