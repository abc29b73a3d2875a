"""Operator services: retry from dead keeps the history; bad input gets a clear error."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings

from workers import enqueue
from workers.api import EnqueueError
from workers.models import JobRecord, JobStatus
from workers.recording.consumer import drain
from workers.rq.queue import TrackedQueue
from workers.services.audit import Actor
from workers.services.jobs import JobNotFound, JobStateError, dead_letter_discard, job_cancel, job_retry

OPERATOR = Actor("tester")  # who the audit trail says acted

pytestmark = pytest.mark.django_db(transaction=True)


def _dead_flaky(run_burst, name: str) -> JobRecord:
    job = enqueue("tests.jobfuncs.flaky", name, 1, max_attempts=1)
    run_burst()
    record = JobRecord.objects.get(job_id=job.id)
    assert record.status == JobStatus.DEAD
    return record


def test_retry_from_dead_runs_a_new_attempt_and_keeps_the_history(run_burst):
    record = _dead_flaky(run_burst, "retry-me")

    job_retry(job_id=record.job_id, actor=OPERATOR)
    run_burst()

    record.refresh_from_db()
    assert record.status == JobStatus.FINISHED
    assert record.attempts == 2
    assert record.origin == "retry"
    assert list(record.errors.values_list("attempt", "exc_type")) == [(1, "builtins.ConnectionError")]


def test_double_retry_enqueues_once(run_burst, redis_conn):
    record = _dead_flaky(run_burst, "twice")

    job_retry(job_id=record.job_id, actor=OPERATOR)
    with pytest.raises(JobStateError, match="already queued again"):
        job_retry(job_id=record.job_id, actor=OPERATOR)

    assert TrackedQueue("default", connection=redis_conn).count == 1


def test_retry_of_a_finished_job_is_refused(run_burst):
    job = enqueue("tests.jobfuncs.add", 1, 1)
    run_burst()

    with pytest.raises(JobStateError, match="is finished; only dead, canceled or stopped jobs can be retried"):
        job_retry(job_id=job.id, actor=OPERATOR)


@pytest.mark.parametrize("service", [job_retry, dead_letter_discard, job_cancel])
@pytest.mark.parametrize("bad_id", ["no-such-job", "", "x" * 500, "'; DROP TABLE workers_jobrecord; --"])
def test_unknown_job_ids_are_refused_by_every_service(service, bad_id):
    with pytest.raises(JobNotFound, match="no job with id"):
        service(job_id=bad_id, actor=OPERATOR)


def test_discard_takes_a_dead_letter_off_the_list_but_keeps_its_record(run_burst, redis_conn):
    from workers.reads.jobs import JobFilter, job_queryset

    def dead_letter_count() -> int:  # what the dead-letter list counts
        return job_queryset(filters=JobFilter(status=JobStatus.DEAD)).count()

    record = _dead_flaky(run_burst, "discard-me")
    assert dead_letter_count() == 1

    dead_letter_discard(job_id=record.job_id, actor=OPERATOR)
    dead_letter_discard(job_id=record.job_id, actor=OPERATOR)  # twice: same answer

    assert dead_letter_count() == 0
    record.refresh_from_db()
    assert record.status == JobStatus.DEAD and record.discarded_at is not None
    assert record.errors.count() == 1
    assert not redis_conn.exists(f"rq:job:{record.job_id}")
    with pytest.raises(JobStateError, match="discarded"):
        job_retry(job_id=record.job_id, actor=OPERATOR)


def test_discard_refuses_a_job_that_is_not_dead(run_burst):
    job = enqueue("tests.jobfuncs.add", 1, 1)
    run_burst()
    with pytest.raises(JobStateError, match="not dead"):
        dead_letter_discard(job_id=job.id, actor=OPERATOR)


def test_cancel_a_scheduled_job_then_it_never_runs(run_burst):
    job = enqueue("tests.jobfuncs.add", 1, 1, delay=timedelta(hours=1))
    drain()

    job_cancel(job_id=job.id, actor=OPERATOR)
    drain()

    record = JobRecord.objects.get(job_id=job.id)
    assert record.status == JobStatus.CANCELED
    with pytest.raises(JobStateError, match="canceled; only waiting or running"):
        job_cancel(job_id=job.id, actor=OPERATOR)
    # A canceled job can be run again on purpose.
    job_retry(job_id=job.id, actor=OPERATOR)
    run_burst()
    record.refresh_from_db()
    assert record.status == JobStatus.FINISHED and record.result_repr == "2"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"func": "tests.jobfuncs.add", "queue": "nope"}, "unknown queue 'nope'"),
        ({"func": "tests.jobfuncs.missing"}, "cannot import job function"),
        ({"func": "not a path"}, "dotted path"),
        ({"func": 42}, "callable or a dotted path"),
        ({"func": "tests.jobfuncs.add", "max_attempts": 0}, "max_attempts must be"),
        ({"func": "tests.jobfuncs.add", "timeout": -5}, "timeout must be"),
        ({"func": "tests.jobfuncs.add", "delay": timedelta(seconds=-1)}, "must not be negative"),
    ],
)
def test_bad_enqueue_input_raises_and_enqueues_nothing(kwargs, message, redis_conn):
    func = kwargs.pop("func")
    with pytest.raises(EnqueueError, match=message):
        enqueue(func, 1, 2, **kwargs)
    assert all(TrackedQueue(name, connection=redis_conn).count == 0 for name in settings.RQ_QUEUES)
