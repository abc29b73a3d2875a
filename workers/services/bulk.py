"""Bulk operations: retry or discard everything a filter matches, however many jobs.

``bulk_operation_start`` writes a ``BulkOperation`` and its audit entry (the bulk parent)
and enqueues ``workers.jobs.bulk.bulk_operation_run`` after the commit. The job walks the
matching records by primary key from the operation's cursor, ``BATCH_SIZE`` at a time,
acting on each with the one-job services (``job_retry``, ``dead_letter_discard``), each
committing its effect with its own audit child entry under the operation's parent.

Crash safety: a job's effect and its child entry commit together; the cursor and counters
commit after each batch, counted from the batch's children. A run that died mid-batch is
retried by RQ (or started again) and redoes that batch, skipping the jobs that already
have a child under this operation: no job is acted on or counted twice. Cancel is asked
for on the row and honoured between batches.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from ..api import job_enqueue
from ..models import AuditAction, AuditEntry, AuditOutcome, BulkOperation, JobRecord
from ..reads.jobs import job_filter_from_fields, job_pks_after
from ..reads.search import SearchError
from .audit import Actor, audited, bulk_audit_start
from .jobs import JobActionError, dead_letter_discard, job_retry

BATCH_SIZE = 500
QUEUE = "low"
# A run that dies (worker killed, database away) is run again from its cursor.
MAX_ATTEMPTS = 5

_AUDIT_ACTIONS: dict[str, AuditAction] = {
    BulkOperation.Action.RETRY: AuditAction.BULK_RETRY,
    BulkOperation.Action.DISCARD: AuditAction.BULK_DISCARD,
}
_VERBS: dict[str, str] = {BulkOperation.Action.RETRY: "Retried", BulkOperation.Action.DISCARD: "Discarded"}


class BulkOperationError(Exception):
    """A bulk operation that cannot be started or canceled; the message says why."""


def _service(action: str) -> Callable[..., JobRecord]:
    return job_retry if action == BulkOperation.Action.RETRY else dead_letter_discard


def bulk_operation_start(*, action: str, filters: dict[str, Any], expected: int, actor: Actor) -> BulkOperation:
    """Start retrying or discarding (``action``) every job ``filters`` matches, as a job of
    its own; ``expected``: how many matched when the operator confirmed."""
    if action not in _AUDIT_ACTIONS:
        raise BulkOperationError(f"unknown bulk action {action!r}; retry or discard")
    try:
        job_filter_from_fields(filters)
    except (SearchError, ValueError) as exc:
        raise BulkOperationError(f"the filter is not valid: {exc}") from exc
    with transaction.atomic():
        bulk = bulk_audit_start(actor=actor, action=_AUDIT_ACTIONS[action], filters=filters)
        operation = BulkOperation.objects.create(
            action=action,
            filters=dict(filters),
            actor=actor.username,
            actor_id=actor.user_id,
            client_address=actor.address,
            expected=expected,
            audit=bulk.entry,
            created_at=timezone.now(),
        )
        transaction.on_commit(lambda: _enqueue(operation.pk))
    return operation


def _enqueue(operation_id: int) -> None:
    job = job_enqueue(
        "workers.jobs.bulk.bulk_operation_run",
        args=(operation_id,),
        queue=QUEUE,
        max_attempts=MAX_ATTEMPTS,
        timeout=24 * 3600,
    )
    BulkOperation.objects.filter(pk=operation_id).update(job_id=job.id)


def _actor(operation: BulkOperation) -> Actor:
    return Actor(username=operation.actor, user_id=operation.actor_id, address=operation.client_address)


def bulk_operation_batch(*, operation: BulkOperation, batch_size: int = BATCH_SIZE) -> bool:
    """Act on the next batch of ``operation``'s jobs and move its cursor past them; False
    when there were none left."""
    rows = job_pks_after(
        filters=job_filter_from_fields(operation.filters), after_pk=operation.last_pk, limit=batch_size
    )
    if not rows:
        return False
    parent = operation.audit
    job_ids = [job_id for _, job_id in rows]
    # Acted on before a crash (this batch's cursor was never saved): not again.
    handled = set()
    if parent is not None:
        before = AuditEntry.objects.filter(parent=parent, target_kind="job", target_id__in=job_ids)
        handled = set(before.values_list("target_id", flat=True))
    act, actor = _service(operation.action), _actor(operation)
    done = skipped = 0
    for job_id in job_ids:
        if job_id in handled:
            continue
        try:
            act(job_id=job_id, actor=actor, bulk=parent)
        except JobActionError:
            skipped += 1  # written as a refused child, with the reason
        else:
            done += 1
    if parent is not None:
        # Counted from the children, one per job: exact across crashes (a job a dead run
        # handled may have left the filter, and is counted here all the same).
        children = AuditEntry.objects.filter(parent=parent)
        counts = children.aggregate(
            done=Count("pk", filter=Q(outcome=AuditOutcome.OK)),
            skipped=Count("pk", filter=~Q(outcome=AuditOutcome.OK)),
        )
        done, skipped = counts["done"] - operation.done, counts["skipped"] - operation.skipped
    with transaction.atomic():
        updated = BulkOperation.objects.filter(pk=operation.pk, last_pk=operation.last_pk).update(
            last_pk=rows[-1][0],
            done=operation.done + done,
            skipped=operation.skipped + skipped,
            updated_at=timezone.now(),
        )
    if not updated:
        raise BulkOperationError(f"bulk operation {operation.pk} moved on under this run: another runs it")
    operation.refresh_from_db()
    return True


def bulk_operation_run(*, operation_id: int, report: Callable[[BulkOperation], None] | None = None) -> BulkOperation:
    """Run ``operation_id`` from its cursor to the end, or until a cancel is asked for;
    ``report`` is called after each batch (the job reports progress with it)."""
    operation = BulkOperation.objects.select_related("audit").get(pk=operation_id)
    if not operation.is_active:
        return operation  # finished, canceled or failed already: running it again does nothing
    active = [BulkOperation.State.QUEUED, BulkOperation.State.RUNNING]
    if not BulkOperation.objects.filter(pk=operation.pk, state__in=active).update(state=BulkOperation.State.RUNNING):
        return operation  # canceled a moment ago
    operation.state = BulkOperation.State.RUNNING
    try:
        while True:
            operation.refresh_from_db(fields=["cancel_requested"])
            if operation.cancel_requested:
                return _end(operation, BulkOperation.State.CANCELED)
            if not bulk_operation_batch(operation=operation):
                return _end(operation, BulkOperation.State.FINISHED)
            if report is not None:
                report(operation)
    except (SearchError, ValueError) as exc:
        return _end(operation, BulkOperation.State.FAILED, f"its filter no longer parses: {exc}")


def _summary(operation: BulkOperation, state: str, reason: str) -> str:
    parts = [f"{_VERBS[BulkOperation.Action(operation.action)]} {operation.done} of {operation.expected} matching"]
    if operation.skipped:
        parts.append(f"skipped {operation.skipped}")
    if state == BulkOperation.State.CANCELED:
        parts.append("canceled before the rest")
    if reason:
        parts.append(f"failed: {reason}")
    return "; ".join(parts) + "."


def _end(operation: BulkOperation, state: str, reason: str = "") -> BulkOperation:
    detail = _summary(operation, state, reason)
    if state == BulkOperation.State.FAILED:
        outcome = AuditOutcome.FAILED
    elif state == BulkOperation.State.CANCELED or (operation.skipped and operation.done):
        outcome = AuditOutcome.PARTIAL
    elif operation.skipped:
        outcome = AuditOutcome.REFUSED
    else:
        outcome = AuditOutcome.OK
    with transaction.atomic():
        BulkOperation.objects.filter(pk=operation.pk).update(state=state, detail=detail, finished_at=timezone.now())
        if operation.audit_id:
            AuditEntry.objects.filter(pk=operation.audit_id).update(
                count=operation.done, outcome=outcome, detail=detail
            )
    operation.refresh_from_db()
    return operation


def bulk_operation_cancel(*, operation_id: int, actor: Actor) -> BulkOperation:
    """Stop ``operation_id`` between two batches (at once if it has not started); what it
    did stays done."""
    with audited(
        actor=actor,
        action=AuditAction.BULK_CANCEL,
        target_kind="bulk",
        target_id=operation_id,
        refusals=(BulkOperationError,),
    ) as note:
        operation = BulkOperation.objects.select_for_update().filter(pk=operation_id).first()
        if operation is None:
            raise BulkOperationError(f"no bulk operation {operation_id}")
        if not operation.is_active:
            raise BulkOperationError(f"bulk operation {operation_id} has {operation.state} already")
        operation.cancel_requested = True
        operation.save(update_fields=["cancel_requested", "updated_at"])
        note.detail = f"canceled after {operation.done + operation.skipped} of {operation.expected}"
    if operation.state == BulkOperation.State.QUEUED:
        operation = _end(operation, BulkOperation.State.CANCELED)
    return operation
