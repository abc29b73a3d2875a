"""Bulk operations: everything a filter matches retried or discarded as a job of its own,
in batches, resumable after a crash without doubling, cancelable, audited."""

from __future__ import annotations

import django_rq
import pytest
from django.utils import timezone
from rq.job import JobStatus as RQStatus

from tests.factories import JobRecordFactory
from workers.models import AuditEntry, BulkOperation, JobRecord, JobStatus
from workers.redis import connection as redis_connection
from workers.rq.job import TrackedJob
from workers.rq.queue import TrackedQueue
from workers.services.audit import Actor
from workers.services.bulk import (
    BATCH_SIZE,
    bulk_operation_batch,
    bulk_operation_cancel,
    bulk_operation_start,
)
from workers.services.jobs import dead_letter_discard

pytestmark = pytest.mark.django_db(transaction=True)

DEAD = {"status": "dead"}


def _dead_letters(count: int, *, payloads: bool = False, queue: str = "default") -> list[str]:
    """``count`` dead letters as the recorder would have written them; with ``payloads``,
    their RQ jobs too (failed, in the failed registry), so they can be retried."""
    records = JobRecordFactory.create_batch(count, status=JobStatus.DEAD, queue=queue, attempts=3, max_attempts=3)
    ids = [record.job_id for record in records]
    if payloads:
        connection = redis_connection()
        rq_queue = TrackedQueue(queue, connection=connection, job_class=TrackedJob)
        with connection.pipeline() as pipe:
            for job_id in ids:
                job = rq_queue.create_job("tests.jobfuncs.add", args=(1, 2), job_id=job_id)
                job.set_status(RQStatus.FAILED, pipeline=pipe)
                job.ended_at = timezone.now()
                job.save(pipeline=pipe)
                pipe.zadd(rq_queue.failed_job_registry.key, {job_id: 2**40})
            pipe.execute()
    return ids


def _children(operation: BulkOperation) -> list[str]:
    return list(AuditEntry.objects.filter(parent=operation.audit_id).values_list("target_id", flat=True))


def test_retrying_2500_dead_letters_runs_in_batches_on_a_worker(run_burst):
    ids = _dead_letters(2500, payloads=True)
    operation = bulk_operation_start(action="retry", filters=DEAD, expected=2500, actor=Actor("alice"))
    run_burst("low")

    operation.refresh_from_db()
    assert (operation.state, operation.done, operation.skipped) == ("finished", 2500, 0)
    assert operation.job_id and operation.percent == 100
    # Every one queued again, in its queue, once.
    assert sorted(django_rq.get_queue("default").get_job_ids()) == sorted(ids)
    assert sorted(_children(operation)) == sorted(ids)
    parent = AuditEntry.objects.get(pk=operation.audit_id)
    assert (parent.action, parent.count, parent.outcome, parent.actor) == ("bulk.retry", 2500, "ok", "alice")
    assert parent.detail == "Retried 2500 of 2500 matching."
    # The operation's own job reported its progress to its record.
    assert JobRecord.objects.get(job_id=operation.job_id).progress == 100


def test_a_run_that_died_mid_batch_resumes_at_its_cursor_without_doubling(run_burst):
    ids = _dead_letters(BATCH_SIZE * 2 + 200)
    operation = bulk_operation_start(action="discard", filters=DEAD, expected=len(ids), actor=Actor("bob"))
    # What a run killed in its second batch left behind: one batch done with its cursor
    # saved, then 100 jobs of the next discarded (with their audit entries) and no cursor.
    BulkOperation.objects.filter(pk=operation.pk).update(state="running")
    assert bulk_operation_batch(operation=operation)
    for job_id in ids[BATCH_SIZE : BATCH_SIZE + 100]:
        dead_letter_discard(job_id=job_id, actor=Actor("bob"), bulk=operation.audit)
    operation.refresh_from_db()
    assert (operation.done, operation.last_pk) == (BATCH_SIZE, JobRecord.objects.get(job_id=ids[BATCH_SIZE - 1]).pk)

    run_burst("low")  # the job runs the operation again, from its cursor

    operation.refresh_from_db()
    assert (operation.state, operation.done, operation.skipped) == ("finished", len(ids), 0)
    children = _children(operation)
    assert len(children) == len(set(children)) == len(ids)  # one entry per job, none twice
    assert not JobRecord.objects.filter(status=JobStatus.DEAD, discarded_at__isnull=True).exists()
    assert AuditEntry.objects.get(pk=operation.audit_id).count == len(ids)


def test_one_bad_job_among_good_ones_is_skipped_with_its_reason(run_burst):
    _dead_letters(3, payloads=True)
    JobRecordFactory(job_id="expired-payload", status=JobStatus.DEAD)
    operation = bulk_operation_start(action="retry", filters=DEAD, expected=4, actor=Actor("alice"))
    run_burst("low")
    operation.refresh_from_db()
    assert (operation.state, operation.done, operation.skipped) == ("finished", 3, 1)
    refused = AuditEntry.objects.get(parent=operation.audit_id, outcome="refused")
    assert refused.target_id == "expired-payload" and "expired" in refused.detail
    assert AuditEntry.objects.get(pk=operation.audit_id).outcome == "partial"


def test_cancel_stops_between_batches_and_is_audited(run_burst):
    ids = _dead_letters(BATCH_SIZE * 2 + 10)
    operation = bulk_operation_start(action="discard", filters=DEAD, expected=len(ids), actor=Actor("bob"))
    BulkOperation.objects.filter(pk=operation.pk).update(state="running")
    assert bulk_operation_batch(operation=operation)
    bulk_operation_cancel(operation_id=operation.pk, actor=Actor("carol"))
    run_burst("low")

    operation.refresh_from_db()
    assert (operation.state, operation.done) == ("canceled", BATCH_SIZE)
    assert JobRecord.objects.filter(status=JobStatus.DEAD, discarded_at__isnull=True).count() == len(ids) - BATCH_SIZE
    cancel = AuditEntry.objects.get(action="bulk.cancel")
    assert (cancel.actor, cancel.target_id, cancel.outcome) == ("carol", str(operation.pk), "ok")
    parent = AuditEntry.objects.get(pk=operation.audit_id)
    assert (parent.outcome, parent.count) == ("partial", BATCH_SIZE)
    assert "canceled before the rest" in parent.detail


def test_a_queued_operation_canceled_never_acts_and_a_second_cancel_is_refused(run_burst):
    _dead_letters(5)
    operation = bulk_operation_start(action="discard", filters=DEAD, expected=5, actor=Actor("bob"))
    bulk_operation_cancel(operation_id=operation.pk, actor=Actor("bob"))
    run_burst("low")
    operation.refresh_from_db()
    assert (operation.state, operation.done) == ("canceled", 0)
    assert JobRecord.objects.filter(status=JobStatus.DEAD, discarded_at__isnull=True).count() == 5
    with pytest.raises(Exception, match="has canceled already"):
        bulk_operation_cancel(operation_id=operation.pk, actor=Actor("bob"))
    assert AuditEntry.objects.filter(action="bulk.cancel", outcome="refused").count() == 1
