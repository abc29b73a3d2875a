"""A job's life on real RQ workers, recorded in the database."""

from __future__ import annotations

import pytest
from django.conf import settings
from redis import Redis
from rq import Queue

from tests.conftest import wait_for
from workers import enqueue
from workers.models import JobError, JobMetric, JobRecord, JobStatus
from workers.rq.retry import RetryPolicy

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("simple", [False, True], ids=["forking", "simple"])
def test_success_is_recorded_with_worker_timings_and_result(run_burst, simple):
    job = enqueue("tests.jobfuncs.add", 2, 3)

    run_burst(simple=simple)

    record = JobRecord.objects.get(job_id=job.id)
    assert record.status == JobStatus.FINISHED
    assert record.func == "tests.jobfuncs.add"
    assert record.args_repr == "(2, 3)"
    assert record.result_repr == "5"
    assert record.attempts == 1
    assert record.worker
    assert record.enqueued_at <= record.started_at <= record.ended_at
    assert record.duration is not None and record.duration >= 0
    metric = JobMetric.objects.get(queue="default", func="tests.jobfuncs.add")
    assert (metric.enqueued, metric.started, metric.finished, metric.failed) == (1, 1, 1, 0)


def test_queued_job_is_recorded_before_any_worker_runs(transactional_db):
    from workers.recording.consumer import drain

    job = enqueue("tests.jobfuncs.add", 1, 1, queue="low")
    drain()

    record = JobRecord.objects.get(job_id=job.id)
    assert record.status == JobStatus.QUEUED
    assert record.queue == "low"
    assert record.attempts == 0
    assert record.max_attempts == settings.JOBSITE["RETRY"]["max_attempts"]


def test_failures_retry_with_backoff_then_land_in_dead_letters(start_worker):
    policy = RetryPolicy(max_attempts=3, base=2.0, factor=2.0, cap=60, jitter=0)
    job = enqueue("tests.jobfuncs.fail", "disk full", retry_policy=policy)
    start_worker()

    record = wait_for(lambda: JobRecord.objects.filter(job_id=job.id, status=JobStatus.DEAD).first(), timeout=30)

    assert record.attempts == 3
    errors = list(JobError.objects.filter(job=record).order_by("attempt"))
    assert [e.attempt for e in errors] == [1, 2, 3]
    assert all(e.exc_type == "builtins.ValueError" and e.message == "disk full" for e in errors)
    assert all("tests/jobfuncs.py" in e.traceback and "raise ValueError" in e.traceback for e in errors)
    # Exponential backoff: 2 s, then 4 s (RQ's scheduler keeps due times in whole seconds,
    # so a retry may run up to 1 s early).
    gaps = [(b.failed_at - a.failed_at).total_seconds() for a, b in zip(errors, errors[1:], strict=False)]
    assert gaps[0] >= 1.0
    assert gaps[1] >= 3.0
    assert gaps[1] > gaps[0]
    metric_dead = sum(JobMetric.objects.filter(func="tests.jobfuncs.fail").values_list("dead", flat=True))
    assert metric_dead == 1


def test_transient_failure_succeeds_on_retry(start_worker):
    job = enqueue("tests.jobfuncs.flaky", "net", 1)
    start_worker()

    record = wait_for(lambda: JobRecord.objects.filter(job_id=job.id, status=JobStatus.FINISHED).first(), timeout=30)

    assert record.attempts == 2
    assert record.result_repr == "'ok after 2 calls'"
    assert list(record.errors.values_list("attempt", "exc_type")) == [(1, "builtins.ConnectionError")]


def test_timeout_is_recorded_as_a_failed_attempt_with_the_limit(start_worker):
    job = enqueue("tests.jobfuncs.nap", 30, timeout=1, max_attempts=1)
    start_worker()

    record = wait_for(lambda: JobRecord.objects.filter(job_id=job.id, status=JobStatus.DEAD).first(), timeout=30)

    error = record.errors.get()
    assert error.exc_type == "rq.timeouts.JobTimeoutException"
    assert error.message == "timed out after 1 s"


def test_job_enqueued_by_plain_rq_is_tracked(run_burst):
    plain = Queue("default", connection=Redis.from_url(settings.REDIS_URL))
    job = plain.enqueue("tests.jobfuncs.add", 20, 22)

    run_burst()

    record = JobRecord.objects.get(job_id=job.id)
    assert record.status == JobStatus.FINISHED
    assert record.result_repr == "42"
    assert record.enqueued_at is not None
    assert JobMetric.objects.get(func="tests.jobfuncs.add").enqueued == 1


def test_progress_reported_by_the_job_is_recorded(run_burst):
    job = enqueue("tests.jobfuncs.count_and_report", 4)

    run_burst()

    record = JobRecord.objects.get(job_id=job.id)
    assert record.status == JobStatus.FINISHED
    assert record.progress == 100


def test_delayed_job_is_scheduled_with_its_due_time(transactional_db):
    from datetime import timedelta

    from workers.recording.consumer import drain

    job = enqueue("tests.jobfuncs.add", 1, 2, delay=timedelta(minutes=5))
    drain()

    record = JobRecord.objects.get(job_id=job.id)
    assert record.status == JobStatus.SCHEDULED
    assert (record.scheduled_for - record.enqueued_at).total_seconds() == pytest.approx(300, abs=5)


def test_jobs_the_scheduler_queues_are_recorded_queued_before_they_start(run_burst, redis_conn):
    import time
    from datetime import timedelta

    from workers.recording.consumer import drain
    from workers.rq.queue import TrackedQueue
    from workers.rq.scheduler import WorkerScheduler

    retry = enqueue("tests.jobfuncs.flaky", "due-retry", 1, max_attempts=2)
    later = enqueue("tests.jobfuncs.add", 4, 4, delay=timedelta(seconds=1))
    run_burst()
    assert JobRecord.objects.get(job_id=retry.id).status == JobStatus.RETRYING
    assert JobRecord.objects.get(job_id=later.id).status == JobStatus.SCHEDULED
    time.sleep(2.1)  # both fall due (RQ's scheduled registry counts whole seconds)

    scheduler = WorkerScheduler([TrackedQueue("default", connection=redis_conn)], connection=redis_conn)
    scheduler.acquire_locks()
    scheduler.enqueue_scheduled_jobs()
    scheduler.release_locks()
    drain()

    assert set(redis_conn.lrange("rq:queue:default", 0, -1)) == {retry.id.encode(), later.id.encode()}
    assert {r.job_id: (r.status, r.attempts) for r in JobRecord.objects.all()} == {
        retry.id: (JobStatus.QUEUED, 1),
        later.id: (JobStatus.QUEUED, 0),
    }
    run_burst()
    assert {r.job_id: (r.status, r.attempts) for r in JobRecord.objects.all()} == {
        retry.id: (JobStatus.FINISHED, 2),
        later.id: (JobStatus.FINISHED, 1),
    }
