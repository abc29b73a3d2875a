"""Interrupted jobs (cold shutdown, a worker killed whole) are recorded as such and retried
by their policy, whoever else is alive."""

from __future__ import annotations

import os
import signal
import time

import pytest
from rq import Queue
from rq.registry import StartedJobRegistry

from tests.conftest import wait_for
from workers import enqueue
from workers.models import JobRecord, JobStatus
from workers.recording.consumer import drain
from workers.rq.job import TrackedJob

pytestmark = pytest.mark.django_db(transaction=True)


def _pid(redis_conn, name: str) -> int:
    return int(wait_for(lambda: redis_conn.get(f"test:pid:{name}"), timeout=30))


def _outcome(job_id: str) -> tuple[str, int, list[tuple[int, str, str]]]:
    record = JobRecord.objects.get(job_id=job_id)
    return record.status, record.attempts, [(e.attempt, e.exc_type, e.message) for e in record.errors.all()]


@pytest.mark.parametrize(
    ("simple", "bystander"),
    [(False, False), (False, True), (True, False)],
    ids=["forking-alone", "forking-beside-a-live-worker", "simple-alone"],
)
def test_a_cold_stopped_worker_ends_its_job_as_interrupted_and_it_is_retried(
    start_worker, redis_conn, simple, bystander
):
    job = enqueue("tests.jobfuncs.hang_first_time", "cold", max_attempts=2)
    if bystander:  # alive throughout, on another queue: it must change nothing
        start_worker("low", name="bystander")
    worker = start_worker("default", simple=simple, name="stopped-cold")
    _pid(redis_conn, "cold")  # the job is running

    # As a supervisor stops a slow worker: SIGTERM, then SIGTERM again (RQ ignores a
    # second signal within a second of the first).
    worker.process.send_signal(signal.SIGTERM)
    wait_for(lambda: redis_conn.hget("rq:worker:stopped-cold", "shutdown_requested_date"), timeout=10)
    time.sleep(1.2)
    worker.process.send_signal(signal.SIGTERM)
    assert worker.process.wait(timeout=30) is not None
    drain()

    message = "worker was stopped mid-job (cold shutdown: SIGTERM received twice)"
    assert _outcome(job.id) == (JobStatus.RETRYING, 1, [(1, "WorkerDied", message)])
    assert TrackedJob.fetch(job.id, connection=redis_conn).get_status() == "scheduled"
    assert not redis_conn.zrange("rq:wip:default", 0, -1)

    start_worker("default", name="next-worker")  # the retry runs on the next worker there is
    record = wait_for(lambda: JobRecord.objects.filter(job_id=job.id, status=JobStatus.FINISHED).first(), timeout=60)
    assert (record.attempts, record.worker) == (2, "next-worker")


@pytest.mark.parametrize("max_attempts", [2, 1])
def test_rqs_own_cleanup_of_an_abandoned_job_takes_the_retry_decision(start_worker, redis_conn, max_attempts):
    parent = enqueue("tests.jobfuncs.hang_and_report_pid", "lost", 60, max_attempts=max_attempts)
    child = Queue("default", connection=redis_conn).enqueue("tests.jobfuncs.add", 1, 1, depends_on=parent.id)
    worker = start_worker("default", name="lost-host")
    horse = _pid(redis_conn, "lost")
    wait_for(lambda: JobRecord.objects.filter(job_id=parent.id, status=JobStatus.STARTED).exists(), timeout=30)

    worker.kill()  # the host is gone: no worker is left to notice
    os.kill(horse, signal.SIGKILL)
    # RQ's own cleanup (any RQ client's maintenance, once the entry expired) gets there
    # before any jobsite watchdog.
    StartedJobRegistry("default", connection=redis_conn, job_class=TrackedJob).cleanup(time.time() + 3600)
    drain()

    status, attempts, errors = _outcome(parent.id)
    assert attempts == 1 and [(a, t) for a, t, _m in errors] == [(1, "AbandonedJobError")]
    in_failed = redis_conn.zscore("rq:failed:default", parent.id) is not None
    if max_attempts == 2:
        assert status == JobStatus.RETRYING and not in_failed
        assert TrackedJob.fetch(parent.id, connection=redis_conn).get_status() == "scheduled"
    else:
        assert status == JobStatus.DEAD and in_failed
    # Its dependent waits either way: a retried parent has not finished, a dead one never will.
    assert TrackedJob.fetch(child.id, connection=redis_conn).get_status() == "deferred"


def test_a_job_whose_worker_died_before_its_horse_started_it_is_put_back(run_burst, redis_conn):
    # The worker took the job and registered its execution (RQ puts it in the started
    # registry then), and was killed before its work horse began: the job says queued,
    # sits in no queue, and is "started" in RQ's registry only.
    from workers.redis import WORKERS_SET
    from workers.runtime.watchdog import abandoned_jobs_fail
    from workers.runtime.worker import TrackingWorker

    job = enqueue("tests.jobfuncs.add", 20, 22)
    doomed = TrackingWorker(["high", "default", "low"], connection=redis_conn, name="died-before-fork")
    redis_conn.sadd(WORKERS_SET, doomed.name)  # a jobsite worker, whose liveness key is gone
    doomed.register_birth()
    taken, _queue = doomed.dequeue_job_and_maintain_ttl(None)
    doomed.prepare_execution(taken)
    assert (taken.id, redis_conn.llen("rq:queue:default")) == (job.id, 0)
    assert TrackedJob.fetch(job.id, connection=redis_conn).get_status() == "queued"

    assert abandoned_jobs_fail(redis_conn) == 1
    assert abandoned_jobs_fail(redis_conn) == 0  # once
    assert redis_conn.lrange("rq:queue:default", 0, -1) == [job.id.encode()]
    assert not redis_conn.zrange("rq:wip:default", 0, -1)

    run_burst(simple=True)
    record = JobRecord.objects.get(job_id=job.id)
    assert (record.status, record.attempts, record.result_repr, record.errors.count()) == (
        JobStatus.FINISHED,
        1,
        "42",
        0,
    )
