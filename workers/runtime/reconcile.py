"""Reconciliation with RQ: what no jobsite worker observed, read from RQ's registries.

A bare ``rq worker`` in the fleet (a host not yet switched, a rolling deploy) runs jobs
without a word to the stream: plain-RQ jobs it ran have no record, and the records of
django-rq jobs it finished still say queued. A pass compares, in bounded windows,

- RQ's side: each queue's list and its registries (scheduled, deferred, started, finished,
  failed, canceled), a window of job ids per pass from an offset kept in Redis, with the
  records of those ids; and
- the records' side: unfinished records that changed least recently (oldest first, from a
  keyset cursor kept in Redis), with what RQ says of their jobs now;

and for each difference older than ``RECONCILE_GRACE`` (younger ones may still be on
their way through the recorder) appends the event that says what RQ says, built by the
event builders and marked ``reconciled``. The recorder applies it like any other: a job
RQ has and no record has gets one, a record whose job RQ ended takes that end (with the
result or traceback RQ kept), and nothing a jobsite worker observed is ever overwritten.
A deferred job whose dependency is dead (RQ leaves it waiting for good) is recorded as
deferred with that reason; retrying the dependency releases it as RQ does.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db.models import Q
from redis import Redis
from rq.job import JobStatus as RQStatus
from rq.queue import Queue
from rq.results import Result
from rq.utils import parse_composite_key, utcparse

from .. import events
from ..conf import setting
from ..models import JobRecord
from ..redis import RECONCILE_CURSORS_KEY, RECONCILE_LOCK_KEY, REDIS_DOWN
from ..rq.failures import describe_failure
from ..rq.forkguard import FORK_GUARD
from ..rq.job import TrackedJob, epoch
from ..statuses import ENDED_STATUSES, FROM_RQ_ENDED, FROM_RQ_WAITING, WAITING_STATUSES, JobStatus

log = logging.getLogger(__name__)

# RQ's registries a pass walks, by the name the cursors use.
REGISTRIES = {
    "scheduled": "scheduled_job_registry",
    "deferred": "deferred_job_registry",
    "started": "started_job_registry",
    "finished": "finished_job_registry",
    "failed": "failed_job_registry",
    "canceled": "canceled_job_registry",
}
# Records that may still change: what the records' window walks.
UNFINISHED = (*WAITING_STATUSES, JobStatus.STARTED, JobStatus.RETRYING)
_HASH_FIELDS = ("status", "ended_at", "last_heartbeat", "started_at", "enqueued_at", "created_at")
# A dependency in one of these RQ statuses never releases its dependents by itself.
_BLOCKING = {
    RQStatus.FAILED.value: "is dead",
    RQStatus.STOPPED.value: "was stopped",
    RQStatus.CANCELED.value: "was canceled",
}


# The RQ statuses a record can say.
_EXPRESSIBLE = frozenset({*FROM_RQ_ENDED, *(s.value for s in FROM_RQ_WAITING), RQStatus.STARTED.value})


@dataclass
class ReconcileOutcome:
    examined: int = 0  # job ids compared
    recorded: int = 0  # events written
    skipped: int = 0  # jobs that could not be read (logged)


@dataclass(frozen=True)
class _Rq:
    """What RQ says of a job now: its status and the latest moment it kept."""

    status: str
    moment: float


@dataclass(frozen=True)
class _Record:
    status: str
    attempts: int
    reason: str


def reconcile_due(connection: Redis, *, owner: str) -> ReconcileOutcome | None:
    """Run a pass if none ran in the last RECONCILE_INTERVAL seconds on any worker."""
    interval = setting("RECONCILE_INTERVAL")
    if not interval:
        return None
    if not connection.set(RECONCILE_LOCK_KEY, owner, nx=True, ex=max(int(interval), 1)):
        return None
    return reconcile_pass(connection)


def reconcile_pass(
    connection: Redis, *, batch: int | None = None, grace: float | None = None, now: float | None = None
) -> ReconcileOutcome:
    """One bounded pass (see the module's docstring); returns what it did."""
    batch = batch or setting("RECONCILE_BATCH")
    grace = setting("RECONCILE_GRACE") if grace is None else grace
    moment = now if now is not None else time.time()
    cutoff = moment - grace
    # A record pruned by retention stays pruned, whatever RQ still keeps of its job.
    retained = moment - setting("RETENTION_DAYS") * 86400
    outcome = ReconcileOutcome()
    scheduled_at: dict[str, float] = {}
    job_ids = _rq_windows(connection, batch, scheduled_at)
    # The database only under the fork guard, and briefly: a worker cannot fork its next
    # work horse while the guard is held.
    with FORK_GUARD:
        records = {
            job_id: _Record(status, attempts, reason)
            for job_id, status, attempts, reason in JobRecord.objects.filter(job_id__in=job_ids).values_list(
                "job_id", "status", "attempts", "status_reason"
            )
        }
        window = _records_window(connection, batch, cutoff)
    for job_id, record in window.items():
        records[job_id] = record
        job_ids.append(job_id)
    job_ids = list(dict.fromkeys(job_ids))
    outcome.examined = len(job_ids)
    seen = _rq_states(connection, job_ids)
    candidates = {}
    for job_id in job_ids:
        status = _difference(seen.get(job_id), records.get(job_id), cutoff=cutoff, retained=retained)
        if status is not None:
            candidates[job_id] = status
    if not candidates:
        return outcome
    jobs = TrackedJob.fetch_many(list(candidates), connection=connection)
    with connection.pipeline(transaction=False) as pipe:
        for job in jobs:
            if not isinstance(job, TrackedJob):
                continue  # gone since: nothing to say
            if job.get_status(refresh=False) != candidates[job.id]:
                # It moved on between the status read and this fetch (a worker took it as
                # the pass looked): its meta already counts an attempt its status does not
                # show. The next pass sees the two together.
                continue
            try:
                event = _event(connection, job, candidates[job.id], records.get(job.id), seen[job.id], scheduled_at)
            except REDIS_DOWN:
                raise  # Redis is away, not the job unreadable: the whole pass waits for it
            except Exception:
                log.exception("reconciliation: job %s cannot be read; left as it is", job.id)
                outcome.skipped += 1
                continue
            if event is not None:
                events.append(pipe, event)
                outcome.recorded += 1
        pipe.execute()
    return outcome


# --- RQ's side -------------------------------------------------------------------------


def _rq_windows(connection: Redis, batch: int, scheduled_at: dict[str, float]) -> list[str]:
    """The next window of job ids of each queue's list and registries; cursors move on."""
    found: list[str] = []
    cursors = {k.decode(): v.decode() for k, v in connection.hgetall(RECONCILE_CURSORS_KEY).items()}  # type: ignore[union-attr]
    moved: dict[str, str] = {}
    for queue in Queue.all(connection=connection, job_class=TrackedJob):
        field = f"{queue.name}:queue"
        offset = int(cursors.get(field, 0) or 0)
        window = [i.decode() for i in connection.lrange(queue.key, offset, offset + batch - 1)]  # type: ignore[union-attr]
        found += window
        moved[field] = str(offset + len(window) if len(window) == batch else 0)
        for name, attr in REGISTRIES.items():
            # By rank, oldest first. Entries expiring off the front shift the ranks, so a
            # window may step over a few; the next round of the cursor finds them.
            field = f"{queue.name}:{name}"
            offset = int(cursors.get(field, 0) or 0)
            entries = connection.zrange(getattr(queue, attr).key, offset, offset + batch - 1, withscores=True)
            moved[field] = str(offset + len(entries) if len(entries) == batch else 0)  # type: ignore[arg-type]
            for member, score in entries:  # type: ignore[union-attr]
                job_id = member.decode()
                if name == "started":
                    job_id, _execution = parse_composite_key(job_id)
                elif name == "scheduled":
                    scheduled_at[job_id] = float(score)
                found.append(job_id)
    if moved:
        connection.hset(RECONCILE_CURSORS_KEY, mapping=moved)
    return found


def _rq_states(connection: Redis, job_ids: list[str]) -> dict[str, _Rq]:
    with connection.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.hmget(TrackedJob.key_for(job_id), _HASH_FIELDS)
        replies = pipe.execute()
    states = {}
    for job_id, (status, *moments) in zip(job_ids, replies, strict=True):
        if status is None:
            continue  # no such job (any more)
        try:
            stamps = [utcparse(m.decode()).timestamp() for m in moments if m]
            states[job_id] = _Rq(status.decode(), max(stamps) if stamps else 0.0)
        except ValueError:  # not a job RQ wrote: the others go on
            log.warning("reconciliation: job %s has unreadable timestamps; left as it is", job_id)
    return states


# --- the records' side -----------------------------------------------------------------


def _records_window(connection: Redis, batch: int, cutoff: float) -> dict[str, _Record]:
    """The next ``batch`` unfinished records that changed before ``cutoff``, oldest first."""
    qs = JobRecord.objects.filter(status__in=UNFINISHED, status_changed_at__lt=datetime.fromtimestamp(cutoff, UTC))
    cursor = connection.hget(RECONCILE_CURSORS_KEY, "records")
    try:
        at_text, _, pk_text = (cursor or b"").decode().partition("|")  # type: ignore[union-attr]
        at, pk = (datetime.fromisoformat(at_text), int(pk_text)) if at_text else (None, 0)
    except ValueError:
        at = None  # not a cursor this module wrote: start from the oldest again
    if at is not None:
        qs = qs.filter(Q(status_changed_at__gt=at) | Q(status_changed_at=at, pk__gt=pk))
    rows = list(
        qs.order_by("status_changed_at", "pk").values_list(
            "pk", "job_id", "status", "attempts", "status_reason", "status_changed_at"
        )[:batch]
    )
    last = rows[-1] if len(rows) == batch else None
    # The window is sorted on status_changed_at, which the filter above makes non-null.
    connection.hset(RECONCILE_CURSORS_KEY, "records", f"{last[5].isoformat()}|{last[0]}" if last and last[5] else "")
    return {job_id: _Record(status, attempts, reason) for _pk, job_id, status, attempts, reason, _at in rows}


# --- what differs, and the event that says so --------------------------------------------


def _difference(rq: _Rq | None, record: _Record | None, *, cutoff: float, retained: float) -> str | None:
    """The RQ status the record lacks an event for, or None when they agree (or it is too
    soon to tell: the recorder may not have applied what a worker reported)."""
    if rq is None or rq.moment > cutoff:
        return None
    status = rq.status
    if status not in _EXPRESSIBLE:
        return None  # a status with no record status (RQ's `created`, or not RQ's at all)
    if record is None:
        return status if rq.moment > retained else None  # a job RQ has that no record has
    if status in FROM_RQ_ENDED:
        return status if record.status not in ENDED_STATUSES else None
    if status == RQStatus.STARTED:
        return status if record.status in (*WAITING_STATUSES, JobStatus.RETRYING) else None
    if status == RQStatus.QUEUED:
        # Moved to its queue by a scheduler that does not report (a bare worker's).
        return status if record.status in (JobStatus.RETRYING, JobStatus.SCHEDULED) else None
    if status == RQStatus.DEFERRED and record.status in WAITING_STATUSES:
        return status  # whether the reason changed needs the job: see _event
    return None


def _event(
    connection: Redis,
    job: TrackedJob,
    status: str,
    record: _Record | None,
    rq: _Rq,
    scheduled_at: dict[str, float],
) -> dict[str, Any] | None:
    rq_status = RQStatus(status)
    waiting = FROM_RQ_WAITING.get(rq_status)
    if waiting is not None:
        reason = _deferred_reason(connection, job) if rq_status == RQStatus.DEFERRED else None
        if record is not None and waiting == JobStatus.DEFERRED:
            if record.status == JobStatus.DEFERRED and record.reason == (reason or ""):
                return None  # agrees already
            if record.status != JobStatus.DEFERRED and not reason:
                return None  # waiting either way; nothing worth saying
        next_at = None
        if waiting == JobStatus.SCHEDULED:
            next_at = scheduled_at.get(job.id)
            if next_at is None:
                next_at = connection.zscore(Queue(job.origin, connection=connection).scheduled_job_registry.key, job.id)
        attempt = (record.attempts if record else job.attempt) + 1
        event = events.waiting(
            waiting,
            job_id=job.id,
            attempt=attempt,
            descriptor=job.descriptor(waiting=True),
            next_at=next_at,
            reason=reason,
        )
        return events.reconciled(event, at=rq.moment)
    base = record.attempts + (0 if record.status == JobStatus.STARTED else 1) if record else 0
    attempt = max(base, job.attempt, 1)
    worker = job.worker_name or ""
    start, end = epoch(job.started_at), epoch(job.ended_at)
    if rq_status == RQStatus.STARTED:
        event = events.started(job_id=job.id, attempt=attempt, worker=worker, start=start, descriptor=job.descriptor())
        return events.reconciled(event, at=rq.moment)
    result = _latest_result(job)
    if rq_status == RQStatus.FINISHED:
        value = result.return_value if result is not None and result.type == Result.Type.SUCCESSFUL else None
        event = events.finished(
            job_id=job.id,
            attempt=attempt,
            worker=worker,
            result=events.safe_repr(value),
            start=start,
            end=end or rq.moment,
            descriptor=job.descriptor(),
        )
        return events.reconciled(event, at=rq.moment)
    exc_string = events.storable((result.exc_string if result is not None else None) or "")
    if rq_status == RQStatus.STOPPED:
        failure = ("JobStopped", "stopped (as RQ recorded it)", exc_string)
    elif exc_string:
        failure = describe_failure(exc_string, None, job.timeout)
    else:
        failure = ("Failed", "RQ marked the job failed and kept no traceback", "")
    event = events.failed(
        FROM_RQ_ENDED[status],
        job_id=job.id,
        attempt=attempt,
        worker=worker,
        failure=failure,
        start=start,
        end=end or rq.moment,
        descriptor=job.descriptor(),
    )
    return events.reconciled(event, at=rq.moment)


def _latest_result(job: TrackedJob) -> Result | None:
    try:
        return job.latest_result()
    except Exception:  # a result this process cannot deserialize: the end still counts
        log.warning("reconciliation: the result of job %s cannot be read", job.id)
        return None


def _deferred_reason(connection: Redis, job: TrackedJob) -> str | None:
    """Why a deferred job will not run by itself: a dependency that ended without finishing."""
    if job.allow_dependency_failures:
        return None
    parents = sorted(m.decode() for m in connection.smembers(job.dependencies_key))  # type: ignore[union-attr]
    if not parents:
        return None
    with connection.pipeline(transaction=False) as pipe:
        for parent in parents:
            pipe.hget(TrackedJob.key_for(parent), "status")
        statuses = pipe.execute()
    for parent, parent_status in zip(parents, statuses, strict=True):
        if parent_status is None:
            return f"waiting on job {parent}, which no longer exists in Redis"
        blocking = _BLOCKING.get(parent_status.decode())
        if blocking:
            return f"waiting on job {parent}, which {blocking}: retry it to release this job"
    return None
