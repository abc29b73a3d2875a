"""Retry now: a job waiting out its backoff runs its next attempt at once, with real RQ, a
real burst worker and the recorder; audited; a second ask moves it once."""

from __future__ import annotations

import pytest
from rq.registry import ScheduledJobRegistry

from workers import enqueue
from workers.models import AuditAction, AuditEntry, AuditOutcome, JobRecord, JobStatus
from workers.recording.consumer import drain
from workers.services.audit import Actor
from workers.services.jobs import JobStateError, job_retry_now

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def long_backoff(settings):
    """Ten minutes before a failed attempt is tried again: only "retry now" can hurry it."""
    settings.JOBSITE = {**settings.JOBSITE, "RETRY": {"max_attempts": 3, "base": 600, "cap": 3600, "jitter": 0.0}}


@pytest.fixture
def waiting(long_backoff, run_burst, redis_conn):
    """A job whose first attempt failed: retrying, its next attempt ten minutes away."""
    job = enqueue("tests.jobfuncs.flaky", "retry-now", 1)
    run_burst()
    record = JobRecord.objects.get(job_id=job.id)
    assert record.status == JobStatus.RETRYING and record.attempts_started == 1
    assert job.id in ScheduledJobRegistry("default", connection=redis_conn).get_job_ids()
    return job


def test_retry_now_runs_the_next_attempt_without_waiting(waiting, run_burst, redis_conn):
    job_retry_now(job_id=waiting.id, actor=Actor("alice", address="192.0.2.7"))

    assert waiting.id not in ScheduledJobRegistry("default", connection=redis_conn).get_job_ids()
    assert redis_conn.lrange("rq:queue:default", 0, -1) == [waiting.id.encode()]
    drain()
    record = JobRecord.objects.get(job_id=waiting.id)
    assert record.status == JobStatus.QUEUED and record.attempts_started == 1
    entry = AuditEntry.objects.get(target_id=waiting.id)
    assert (entry.action, entry.outcome, entry.actor) == (AuditAction.JOB_RETRY, AuditOutcome.OK, "alice")
    assert entry.detail.startswith("now: attempt 2 of 3 queued without waiting for its backoff (due ")

    run_burst()
    record.refresh_from_db()
    assert record.status == JobStatus.FINISHED and record.attempts_started == 2 and record.max_attempts == 3


def test_asking_twice_moves_it_once(waiting, redis_conn):
    job_retry_now(job_id=waiting.id, actor=Actor("alice"))

    with pytest.raises(JobStateError, match="no longer waits for its backoff"):
        job_retry_now(job_id=waiting.id, actor=Actor("bob"))

    assert redis_conn.llen("rq:queue:default") == 1
    refused = AuditEntry.objects.get(actor="bob")
    assert refused.outcome == AuditOutcome.REFUSED and "no longer waits" in refused.detail


@pytest.mark.parametrize("status", [JobStatus.QUEUED, JobStatus.DEAD, JobStatus.FINISHED])
def test_only_a_job_in_backoff_can_be_retried_now(status, run_burst):
    job = enqueue("tests.jobfuncs.add", 1, 2)
    drain()
    JobRecord.objects.filter(job_id=job.id).update(status=status)

    with pytest.raises(JobStateError, match="only a job waiting for its backoff"):
        job_retry_now(job_id=job.id, actor=Actor("alice"))

    assert AuditEntry.objects.get().outcome == AuditOutcome.REFUSED


def test_a_job_falling_due_this_instant_is_left_to_rqs_scheduler(waiting, redis_conn):
    # RQ's scheduler reads due jobs and then moves them without checking it still may:
    # were both to move it, the job would be queued twice.
    registry = ScheduledJobRegistry("default", connection=redis_conn)
    redis_conn.zadd(registry.key, {waiting.id: 1})  # long due

    with pytest.raises(JobStateError, match="is due now"):
        job_retry_now(job_id=waiting.id, actor=Actor("alice"))

    assert redis_conn.llen("rq:queue:default") == 0 and waiting.id in registry.get_job_ids()
