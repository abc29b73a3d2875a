"""A killed work horse or a killed worker never leaves its job `started` forever."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.conftest import process_alive, scheduler_pid, wait_for
from workers import enqueue
from workers.models import JobRecord, JobStatus

pytestmark = pytest.mark.django_db(transaction=True)


def _pid(redis_conn, name: str) -> int:
    return int(wait_for(lambda: redis_conn.get(f"test:pid:{name}"), timeout=30))


def test_sigkilled_work_horse_is_recorded_as_worker_died_and_retried(start_worker, redis_conn):
    job = enqueue("tests.jobfuncs.hang_and_report_pid", "horse", 60, max_attempts=2)
    start_worker()
    horse = _pid(redis_conn, "horse")

    killed_at = time.monotonic()
    os.kill(horse, signal.SIGKILL)
    record = wait_for(lambda: JobRecord.objects.filter(job_id=job.id, errors__attempt=1).first(), timeout=30)
    detected_after = time.monotonic() - killed_at
    print(f"\nkilled work horse -> failed attempt recorded after {detected_after:.2f} s")

    error = record.errors.get(attempt=1)
    assert error.exc_type == "WorkerDied"
    assert error.message == "worker died: the work horse was killed by SIGKILL (9) mid-job"
    # The second attempt runs (and is killed in turn) -> dead after two attempts.
    redis_conn.delete("test:pid:horse")
    os.kill(_pid(redis_conn, "horse"), signal.SIGKILL)
    record = wait_for(lambda: JobRecord.objects.filter(job_id=job.id, status=JobStatus.DEAD).first(), timeout=30)
    assert record.attempts == 2
    assert list(record.errors.values_list("attempt", flat=True)) == [1, 2]


def test_worker_killed_whole_is_detected_by_another_worker(start_worker, redis_conn):
    job = enqueue("tests.jobfuncs.hang_and_report_pid", "whole", 60, max_attempts=1)
    doomed = start_worker(name="doomed-worker")
    horse = _pid(redis_conn, "whole")
    wait_for(lambda: JobRecord.objects.filter(job_id=job.id, status=JobStatus.STARTED).exists())
    start_worker(name="survivor-worker")

    killed_at = time.monotonic()
    doomed.kill()  # SIGKILL: no chance to clean up
    os.kill(horse, signal.SIGKILL)
    record = wait_for(lambda: JobRecord.objects.filter(job_id=job.id, status=JobStatus.DEAD).first(), timeout=60)
    detected_after = time.monotonic() - killed_at
    print(f"\nkilled worker -> job recorded dead after {detected_after:.2f} s")

    error = record.errors.get()
    assert error.exc_type == "WorkerDied"
    assert "doomed-worker stopped heartbeating" in error.message
    assert record.worker == "doomed-worker"


def test_job_of_killed_worker_is_retried_on_a_live_one(start_worker, redis_conn):
    job = enqueue("tests.jobfuncs.hang_first_time", "crashy", max_attempts=2)
    doomed = start_worker(name="doomed-2")
    horse = _pid(redis_conn, "crashy")
    start_worker(name="survivor-2")

    doomed.kill()
    os.kill(horse, signal.SIGKILL)

    record = wait_for(lambda: JobRecord.objects.filter(job_id=job.id, status=JobStatus.FINISHED).first(), timeout=60)
    assert record.worker == "survivor-2"
    assert record.attempts == 2
    assert record.result_repr == "'second attempt ok'"
    assert [(e.attempt, e.exc_type, e.worker) for e in record.errors.all()] == [(1, "WorkerDied", "doomed-2")]


def test_a_worker_killed_whole_takes_its_scheduler_process_with_it(start_worker, redis_conn):
    # RQ forks the scheduler from the worker; as an orphan it would go on moving due jobs
    # and re-taking the queues' scheduler locks for good.
    worker = start_worker(name="orphaning-worker")
    scheduler = scheduler_pid(worker, redis_conn)

    worker.kill()

    wait_for(lambda: not process_alive(scheduler), timeout=10)
    assert b"orphaning-worker" not in {redis_conn.get(f"rq:scheduler-lock:{q}") for q in ("high", "default", "low")}
