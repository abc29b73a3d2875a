"""Jobs a worker popped and died with before starting them are put back (real Redis)."""

from __future__ import annotations

import pytest

from workers import enqueue
from workers.models import JobRecord, JobStatus
from workers.recorder import drain
from workers.watchdog import lost_jobs_requeue

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
