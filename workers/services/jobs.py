"""Operator actions on jobs. Views and the admin call these; they never touch RQ directly."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.utils import timezone
from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation, NoSuchJobError

from ..api import job_enqueue
from ..models import AuditAction, AuditEntry, AuditOutcome, JobOrigin, JobRecord
from ..reads.jobs import job_id_is_valid
from ..redis import META_MAX_ATTEMPTS, META_ORIGIN, RUN_AGAIN_GUARD_KEY
from ..redis import connection as redis_connection
from ..rq.job import TrackedJob
from ..rq.queue import TrackedQueue
from ..rq.retry import attempts_after_operator_retry
from ..statuses import RETRYABLE_STATUSES, WAITING_STATUSES, JobStatus
from .audit import Actor, AuditNote, audited, bulk_audit_refused, bulk_audit_start

# Bulk actions act on at most this many jobs per request; the answer says how many remain.
BULK_LIMIT = 1000


class JobActionError(Exception):
    """An operator action that cannot be done; the message says why, for the operator."""


class JobNotFound(JobActionError):
    pass


class JobStateError(JobActionError):
    pass


def _locked_record(job_id: str) -> JobRecord:
    if not job_id_is_valid(job_id):
        raise JobNotFound(f"no job with id {str(job_id)[:140]!r}")
    record = JobRecord.objects.select_for_update().filter(job_id=job_id).first()
    if record is None:
        raise JobNotFound(f"no job with id {job_id!r}")
    return record


def _fetch(job_id: str) -> TrackedJob:
    try:
        job = TrackedJob.fetch(job_id, connection=redis_connection())
        assert isinstance(job, TrackedJob)
        return job
    except NoSuchJobError as exc:
        raise JobStateError(
            f"job {job_id} can no longer be run: its payload has expired from Redis (its record stays)"
        ) from exc


def _audited_job(
    actor: Actor, action: AuditAction, job_id: str, bulk: AuditEntry | None
) -> AbstractContextManager[AuditNote]:
    return audited(
        actor=actor,
        action=action,
        target_kind="job",
        target_id=job_id,
        refusals=(JobActionError,),
        parent=bulk,
    )


def job_retry(*, job_id: str, actor: Actor, bulk: AuditEntry | None = None) -> JobRecord:
    """Run a dead, canceled or stopped job again as a new attempt; its history is kept.

    An operator's retry is one more attempt: a job whose attempts ran out (3 of 3) runs
    attempt 4 of 4, and dead-letters again if that fails; a canceled or stopped job keeps
    the attempts it had left. Retrying twice enqueues once: the second call finds the job
    queued and says so. ``bulk``: the entry of the bulk action this retry is part of.
    """
    with _audited_job(actor, AuditAction.JOB_RETRY, job_id, bulk) as note:
        record = _locked_record(job_id)
        if record.status not in RETRYABLE_STATUSES or record.discarded_at is not None:
            state = "discarded" if record.discarded_at else record.status
            raise JobStateError(f"job {job_id} is {state}; only dead, canceled or stopped jobs can be retried")
        job = _fetch(job_id)
        connection = job.connection
        # Out of whichever ended-jobs registry holds it; ZREM answers 1 to one caller only.
        queue = TrackedQueue(job.origin, connection=connection, job_class=TrackedJob)
        removed = 0
        for registry in (queue.failed_job_registry, queue.canceled_job_registry):
            removed += connection.zrem(registry.key, job.id)
        if not removed and job.get_status() not in ("failed", "stopped", "canceled"):
            raise JobStateError(f"job {job_id} is already queued again")
        job.meta[META_ORIGIN] = JobOrigin.RETRY
        job.meta[META_MAX_ATTEMPTS] = attempts_after_operator_retry(job)
        job.save_meta()
        job.started_at = job.ended_at = None
        # The queued event (next attempt) reaches the record through the recorder.
        queue.enqueue_job(job)
        note.detail = f"queued for attempt {job.attempt + 1} of {job.meta[META_MAX_ATTEMPTS]}"
    return record


# "Retry now" leaves a job that falls due sooner than this to RQ's scheduler: it reads the
# due jobs and then moves them without checking it still may, so both would enqueue it.
RETRY_NOW_MARGIN = 2.0  # seconds


def job_retry_now(*, job_id: str, actor: Actor) -> JobRecord:
    """Run the next attempt of a job that waits for its backoff (retrying) now, not when
    the backoff ends: out of RQ's scheduled registry and into its queue, as RQ's scheduler
    would at the due time. Its attempts are unchanged: this is the attempt it was waiting
    for. Asking twice moves it once (the second finds it queued and says so).

    Written to the audit trail as a retry, its detail saying it was one made now.
    """
    with _audited_job(actor, AuditAction.JOB_RETRY, job_id, None) as note:
        record = _locked_record(job_id)
        if record.status != JobStatus.RETRYING:
            raise JobStateError(
                f"job {job_id} is {record.status}; only a job waiting for its backoff (retrying) can be retried now"
            )
        job = _fetch(job_id)
        connection = job.connection
        queue = TrackedQueue(job.origin, connection=connection, job_class=TrackedJob)
        registry_key = queue.scheduled_job_registry.key
        due = connection.zscore(registry_key, job.id)
        if due is None:
            raise JobStateError(f"job {job_id} no longer waits for its backoff: it is queued or running already")
        if due <= time.time() + RETRY_NOW_MARGIN:
            raise JobStateError(f"job {job_id} is due now: RQ's scheduler is queueing it")
        # ZREM answers 1 to one caller only: a double click moves the job once.
        if not connection.zrem(registry_key, job.id):
            raise JobStateError(f"job {job_id} no longer waits for its backoff: it is queued or running already")
        # The queued event (the attempt it waited for) reaches the record through the recorder.
        queue.enqueue_job(job)
        of = f" of {record.max_attempts}" if record.max_attempts else ""
        when = datetime.fromtimestamp(due, tz=UTC).strftime("%H:%M:%S")
        note.detail = f"now: attempt {job.attempt + 1}{of} queued without waiting for its backoff (due {when} UTC)"
    return record


def dead_letter_discard(*, job_id: str, actor: Actor, bulk: AuditEntry | None = None) -> JobRecord:
    """Take a dead job off the dead-letter list; its record and error history stay."""
    with _audited_job(actor, AuditAction.DEAD_LETTER_DISCARD, job_id, bulk) as note:
        record = _locked_record(job_id)
        if record.status != JobStatus.DEAD:
            raise JobStateError(f"job {job_id} is {record.status}, not dead; only dead letters can be discarded")
        if record.discarded_at is not None:
            note.detail = "already discarded"
            return record  # already discarded: the same answer twice
        connection = redis_connection()
        try:
            job = TrackedJob.fetch(job_id, connection=connection)
        except NoSuchJobError:
            pass
        else:
            job.delete(remove_from_queue=True)
        record.discarded_at = note.at = timezone.now()
        record.save(update_fields=["discarded_at", "updated_at"])
    return record


def job_cancel(*, job_id: str, actor: Actor) -> JobRecord:
    """Cancel a job that waits (queued, scheduled, deferred, retrying) or stop a running one."""
    with _audited_job(actor, AuditAction.JOB_CANCEL, job_id, None) as note:
        record = _locked_record(job_id)
        if record.status == JobStatus.STARTED:
            note.action = AuditAction.JOB_STOP
            try:
                send_stop_job_command(redis_connection(), job_id)
            except (InvalidJobOperation, NoSuchJobError) as exc:
                raise JobStateError(f"job {job_id} cannot be stopped: {exc}") from exc
            note.detail = f"stop requested while attempt {record.attempts} ran"
            return record  # the worker reports `stopped` when the horse is gone
        if record.status not in (*WAITING_STATUSES, JobStatus.RETRYING):
            raise JobStateError(f"job {job_id} is {record.status}; only waiting or running jobs can be canceled")
        job = _fetch(job_id)
        try:
            job.cancel()
        except InvalidJobOperation as exc:
            raise JobStateError(f"job {job_id} cannot be canceled: {exc}") from exc
        note.detail = f"canceled while {record.status}"
    return record


def job_run_again(*, job_id: str, actor: Actor) -> str:
    """Enqueue a fresh copy of an ended job (same function, arguments and queue); returns
    the new job's id. A second call within a minute answers the same copy."""
    with _audited_job(actor, AuditAction.JOB_RUN_AGAIN, job_id, None) as note:
        record = _locked_record(job_id)
        if record.status not in (JobStatus.FINISHED, *RETRYABLE_STATUSES):
            raise JobStateError(f"job {job_id} is {record.status}; only ended jobs can be run again")
        job = _fetch(job_id)
        connection = job.connection
        guard = RUN_AGAIN_GUARD_KEY.format(job_id)
        if not connection.set(guard, "", nx=True, ex=60):
            copy = connection.get(guard)
            if copy:
                note.detail = f"the copy {copy.decode()} enqueued a moment ago (not another)"
                return copy.decode()
            raise JobStateError(f"job {job_id} is being run again already")
        try:
            copy_job = job_enqueue(
                job.func_name or "",
                args=job.args,
                kwargs=job.kwargs,
                queue=job.origin,
                origin=JobOrigin.RETRY,
                parent_job_id=job_id,
            )
        except Exception:
            connection.delete(guard)
            raise
        connection.set(guard, copy_job.id, ex=60)
        note.detail = f"enqueued a copy: {copy_job.id}"
    return copy_job.id


@dataclass
class BulkOutcome:
    """What a bulk action did: the jobs it acted on and why it skipped the others; or, when
    it was refused as a whole, why (nothing was done)."""

    done: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    not_reached: int = 0
    refused: str = ""

    @property
    def ok(self) -> bool:
        return not self.refused and (bool(self.done) or not self.skipped)

    def summary(self, verb: str) -> str:
        if self.refused:
            return self.refused
        parts = [f"{verb} {_jobs(len(self.done))}"]
        if self.skipped:
            reason = next(iter(self.skipped.values()))
            parts.append(f"skipped {len(self.skipped)} (e.g. {reason})")
        if self.not_reached:
            parts.append(f"{self.not_reached} more match: run it again for the rest")
        return "; ".join(parts) + "."

    def audit_outcome(self) -> str:
        if self.refused or (self.skipped and not self.done):
            return AuditOutcome.REFUSED
        if self.skipped or self.not_reached:
            return AuditOutcome.PARTIAL
        return AuditOutcome.OK


def _jobs(count: int) -> str:
    return f"{count} job{'s' if count != 1 else ''}"


def _counted(count: int, limit: int) -> str:
    return f"more than {limit} jobs" if count > limit else _jobs(count)


def _many(
    action: Callable[..., JobRecord],
    *,
    job_ids: Iterable[str],
    limit: int,
    actor: Actor,
    audit_action: AuditAction,
    verb: str,
    filters: dict[str, Any] | None,
    expected: int | None,
) -> BulkOutcome:
    outcome = BulkOutcome()
    unique = list(dict.fromkeys(job_ids))
    if expected is not None and min(len(unique), limit + 1) != min(expected, limit + 1):
        # The operator confirmed a number of jobs that no longer matches (the list changed
        # since the page showed it): acting on a different set than the one confirmed is
        # what the confirmation exists to prevent.
        outcome.refused = (
            f"{_counted(len(unique), limit)} match now, not the {_counted(expected, limit)} you confirmed: "
            "nothing was done. Check the refreshed list and confirm again."
        )
        bulk_audit_refused(actor=actor, action=audit_action, filters=filters, detail=outcome.refused)
        return outcome
    bulk = bulk_audit_start(actor=actor, action=audit_action, filters=filters)
    for job_id in unique[:limit]:
        try:
            action(job_id=job_id, actor=actor, bulk=bulk.entry)
        except JobActionError as exc:
            outcome.skipped[job_id] = str(exc)
        else:
            outcome.done.append(job_id)
    outcome.not_reached = max(len(unique) - limit, 0)
    bulk.complete(count=len(outcome.done), outcome=outcome.audit_outcome(), detail=outcome.summary(verb))
    return outcome


def job_retry_many(
    *,
    job_ids: Iterable[str],
    actor: Actor,
    filters: dict[str, Any] | None = None,
    expected: int | None = None,
    limit: int = BULK_LIMIT,
) -> BulkOutcome:
    """``job_retry`` each job; one that cannot be retried is skipped with the reason.

    ``filters``: the filter the ids were chosen by (kept in the audit trail); ``expected``:
    how many jobs the operator confirmed. When as many no longer match, nothing is done.
    """
    return _many(
        job_retry,
        job_ids=job_ids,
        limit=limit,
        actor=actor,
        audit_action=AuditAction.BULK_RETRY,
        verb="Retried",
        filters=filters,
        expected=expected,
    )


def dead_letter_discard_many(
    *,
    job_ids: Iterable[str],
    actor: Actor,
    filters: dict[str, Any] | None = None,
    expected: int | None = None,
    limit: int = BULK_LIMIT,
) -> BulkOutcome:
    """``dead_letter_discard`` each job; one that is not a dead letter is skipped with the
    reason. ``filters`` and ``expected`` as for ``job_retry_many``."""
    return _many(
        dead_letter_discard,
        job_ids=job_ids,
        limit=limit,
        actor=actor,
        audit_action=AuditAction.BULK_DISCARD,
        verb="Discarded",
        filters=filters,
        expected=expected,
    )
