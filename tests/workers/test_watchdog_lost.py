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
