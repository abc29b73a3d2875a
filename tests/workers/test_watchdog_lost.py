"""Jobs a worker popped and died with before starting them are put back (real Redis)."""

from __future__ import annotations

import pytest

from workers import enqueue
from workers.models import JobRecord, JobStatus
from workers.recording.consumer import drain
from workers.runtime.watchdog import lost_jobs_requeue

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_popped_job_of_a_dead_worker_is_put_back_once_and_runs(redis_conn, run_burst):
    lost = enqueue("tests.jobfuncs.add", 2, 2)
    waiting = enqueue("tests.jobfuncs.add", 3, 3)
    drain()
    # What a multi-queue worker does first (LPOP), then it is SIGKILLed before starting it.
    assert redis_conn.lpop("rq:queue:default") == lost.id.encode()

    assert lost_jobs_requeue(redis_conn, older_than=0) == 0  # first sighting: only noted
    assert lost_jobs_requeue(redis_conn, older_than=0) == 1  # still nowhere: put back
    assert lost_jobs_requeue(redis_conn, older_than=0) == 0  # never twice

    assert [i.decode() for i in redis_conn.lrange("rq:queue:default", 0, -1)] == [lost.id, waiting.id]
    run_burst()
    assert JobRecord.objects.get(job_id=lost.id).status == JobStatus.FINISHED
    assert JobRecord.objects.get(job_id=lost.id).result_repr == "4"
    assert JobRecord.objects.get(job_id=waiting.id).attempts == 1


def test_jobs_waiting_in_their_queue_are_left_alone(redis_conn):
    jobs = [enqueue("tests.jobfuncs.add", i, i) for i in range(3)]
    drain()

    for _ in range(3):
        assert lost_jobs_requeue(redis_conn, older_than=0) == 0

    assert [i.decode() for i in redis_conn.lrange("rq:queue:default", 0, -1)] == [j.id for j in jobs]


def test_a_retry_popped_by_a_dying_worker_is_put_back_too(redis_conn, run_burst):
    import time

    from rq.scheduler import RQScheduler

    from workers.rq.queue import TrackedQueue

    job = enqueue("tests.jobfuncs.flaky", "lost-retry", 1, max_attempts=2)
    run_burst()
    assert JobRecord.objects.get(job_id=job.id).status == JobStatus.RETRYING
    time.sleep(1.5)  # the retry's backoff (test settings: well under a second) falls due
    # RQ's scheduler moves it to its queue (as plain RQ: no tracking event), then a worker
    # pops it and is SIGKILLed before starting it.
    scheduler = RQScheduler([TrackedQueue("default", connection=redis_conn)], connection=redis_conn)
    scheduler.acquire_locks()
    scheduler.enqueue_scheduled_jobs()
    scheduler.release_locks()
    assert redis_conn.lpop("rq:queue:default") == job.id.encode()
    assert JobRecord.objects.get(job_id=job.id).status == JobStatus.RETRYING

    assert lost_jobs_requeue(redis_conn, older_than=0) == 0  # first sighting: only noted
    assert lost_jobs_requeue(redis_conn, older_than=0) == 1  # still nowhere: put back

    run_burst()
    record = JobRecord.objects.get(job_id=job.id)
    assert (record.status, record.attempts, record.result_repr) == (JobStatus.FINISHED, 2, "'ok after 2 calls'")


def test_records_whose_rq_job_vanished_from_redis_end_lost_unless_a_live_worker_runs_them(redis_conn):
    """Redis came back without its data: the waiting and running jobs it held are gone, and
    nothing would ever end their records but this watchdog."""
    from datetime import timedelta

    from django.utils import timezone

    from tests.factories import JobRecordFactory
    from workers.events import LOST_REASON
    from workers.runtime.liveness import mark_alive
    from workers.runtime.watchdog import vanished_jobs_end

    long_ago = timezone.now() - timedelta(minutes=5)
    kept = enqueue("tests.jobfuncs.add", 1, 1)  # its hash is in Redis
    drain()
    JobRecord.objects.filter(job_id=kept.id).update(status_changed_at=long_ago)
    waiting = JobRecordFactory(status=JobStatus.QUEUED, attempts=0, status_changed_at=long_ago)
    retrying = JobRecordFactory(status=JobStatus.RETRYING, attempts=1, status_changed_at=long_ago)
    orphan = JobRecordFactory(status=JobStatus.STARTED, worker="w-gone", status_changed_at=long_ago)
    running = JobRecordFactory(status=JobStatus.STARTED, worker="w-live", status_changed_at=long_ago)
    recent = JobRecordFactory(status=JobStatus.QUEUED, status_changed_at=timezone.now())
    mark_alive(redis_conn, "w-live", running=running.job_id)

    assert vanished_jobs_end(redis_conn) == (3, 0)
    assert vanished_jobs_end(redis_conn) == (0, 0)  # once, however many watchdogs look
    drain()

    for record, attempt in ((waiting, 1), (retrying, 2), (orphan, 1)):
        record.refresh_from_db()
        assert (record.status, record.attempts) == (JobStatus.DEAD, attempt)
        assert record.last_error.startswith(f"JobLost: {LOST_REASON}")
    statuses = dict(
        JobRecord.objects.filter(job_id__in=[kept.id, running.job_id, recent.job_id]).values_list("job_id", "status")
    )
    assert statuses == {kept.id: JobStatus.QUEUED, running.job_id: JobStatus.STARTED, recent.job_id: JobStatus.QUEUED}
    # Walked in pages: the next page starts after the last record seen.
    assert vanished_jobs_end(redis_conn, limit=1)[1] > 0
