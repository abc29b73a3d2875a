"""A killed work horse or a killed worker never leaves its job `started` forever."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.conf import settings

from tests.conftest import ROOT, process_alive, process_env, scheduler_pid, wait_for
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


def _finished(job_id: str) -> bool:
    return JobRecord.objects.filter(job_id=job_id, status=JobStatus.FINISHED).exists()


def test_a_hung_scheduler_process_is_replaced_and_does_not_hold_up_a_stop(start_worker, redis_conn):
    """RQ forks the scheduler from a worker that already runs threads, and a lock one of
    them held at the fork stays held in the copy for good (the standard library has
    module-level ones): seen under load, a scheduler that never moved a due job again, and
    a worker that never ended on SIGTERM (RQ waits for its scheduler with no limit). Here
    SIGSTOP hangs the scheduler process on purpose, at a moment of the test's choosing."""
    worker = start_worker(name="hung-scheduler")
    hung = scheduler_pid(worker, redis_conn)
    os.kill(hung, signal.SIGSTOP)
    later = enqueue("tests.jobfuncs.add", 1, 2, delay=timedelta(seconds=1))

    # No sign of life for 3 x WORKER_ALIVE_TTL: killed, and a new scheduler moves the job.
    wait_for(lambda: _finished(later.id), timeout=60)
    assert not process_alive(hung)
    replacement = scheduler_pid(worker, redis_conn)
    assert replacement != hung
    assert "has shown no sign of life" in worker.log.read_text(errors="replace")

    # A scheduler that is only idle is left alone.
    time.sleep(4 * settings.JOBSITE["WORKER_ALIVE_TTL"])
    assert scheduler_pid(worker, redis_conn) == replacement
    after = enqueue("tests.jobfuncs.add", 2, 2, delay=timedelta(seconds=1))
    wait_for(lambda: _finished(after.id), timeout=30)

    # A stop waits for a hung scheduler a few seconds, not for good.
    os.kill(replacement, signal.SIGSTOP)
    worker.process.send_signal(signal.SIGTERM)
    assert worker.process.wait(timeout=40) == 0
    assert not process_alive(replacement)
    assert "did not stop within" in worker.log.read_text(errors="replace")


def test_a_queue_whose_scheduler_lock_is_freed_is_taken_over_by_a_running_scheduler(start_worker, redis_conn):
    """Two workers started together share the queues' scheduler locks out; when one dies
    its locks are freed (the watchdog, or their TTL), and the other's scheduler, already
    running for its own queues, must take the freed ones soon: RQ looks again only every
    2 minutes, and the dead one's retries and delayed jobs waited that long."""
    redis_conn.set("rq:scheduler-lock:default", "a-worker-now-gone", ex=3)
    worker = start_worker(name="survivor")
    scheduler_pid(worker, redis_conn, queue="high")
    assert redis_conn.get("rq:scheduler-lock:default") == b"a-worker-now-gone"
    later = enqueue("tests.jobfuncs.add", 1, 2, delay=timedelta(seconds=1))

    wait_for(lambda: _finished(later.id), timeout=30)
    assert redis_conn.get("rq:scheduler-lock:default") == b"survivor"


def test_a_worker_restarted_under_its_name_settles_the_job_its_killed_self_left_started(start_worker, redis_conn):
    # A unit with a fixed --name, restarted by systemd right after a SIGKILL: its liveness
    # key never expires, so no watchdog presumes the worker dead; yet the job its killed
    # self ran is in no horse. The worker itself knows it runs no such job.
    job = enqueue("tests.jobfuncs.hang_first_time", "restarted", max_attempts=2)
    doomed = start_worker(name="fixed-name")
    horse = _pid(redis_conn, "restarted")
    wait_for(lambda: JobRecord.objects.filter(job_id=job.id, status=JobStatus.STARTED).exists())
    doomed.kill()
    os.kill(horse, signal.SIGKILL)
    start_worker(name="fixed-name")

    record = wait_for(lambda: JobRecord.objects.filter(job_id=job.id, status=JobStatus.FINISHED).first(), timeout=30)
    assert record.attempts == 2
    [error] = record.errors.all()
    assert (error.attempt, error.exc_type, error.worker) == (1, "AttemptLost", "fixed-name")
    assert not redis_conn.smembers("rq:worker:fixed-name:executions")


def test_a_second_worker_under_a_live_workers_name_is_refused_in_one_line(start_worker, redis_conn):
    first = start_worker(name="taken-name")
    wait_for(lambda: redis_conn.exists("jobsite:alive:taken-name"), timeout=30)

    second = subprocess.run(
        [sys.executable, "manage.py", "rqworker", "--name", "taken-name"],
        cwd=ROOT, env=process_env("taken-name-2"), capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert second.returncode == 1, second.stderr
    assert second.stderr.strip().splitlines() == [
        f"CommandError: a worker named 'taken-name' is running already (pid {first.pid} on {socket.gethostname()}); "
        "two workers may not share a name: give this one another --name"
    ]
    assert first.process.poll() is None
    job = enqueue("tests.jobfuncs.add", 2, 3)
    assert wait_for(lambda: JobRecord.objects.filter(job_id=job.id, status=JobStatus.FINISHED).first()).worker == (
        "taken-name"
    )


def test_a_leftover_is_settled_while_the_job_its_worker_runs_goes_on(start_worker, redis_conn, tmp_path):
    # Redis says the worker also runs a second job (written as RQ's start writes it, as a
    # fail-over to a lagging replica leaves it); the job it really runs must not be touched.
    from rq.executions import Execution

    from workers.rq.job import TrackedJob

    worker = start_worker(name="busy-worker")
    cue = str(tmp_path / "job")
    running = enqueue("tests.faults.outagefuncs.hold", cue)
    wait_for(lambda: (tmp_path / "job.running").exists(), timeout=60)
    leftover = enqueue("tests.jobfuncs.add", 1, 2, max_attempts=2)
    job = TrackedJob.fetch(leftover.id, connection=redis_conn)
    redis_conn.lrem("rq:queue:default", 0, job.id)
    with redis_conn.pipeline() as pipe:
        Execution.create(job, 120, pipeline=pipe, worker_name=worker.name)
        job.prepare_for_execution(worker.name, pipe)
        pipe.execute()

    # Settled while the worker still runs its job; retried once the worker is free.
    settled = wait_for(lambda: JobRecord.objects.filter(job_id=leftover.id, errors__attempt=1).first(), timeout=30)
    assert [(e.attempt, e.exc_type) for e in settled.errors.all()] == [(1, "AttemptLost")]
    assert JobRecord.objects.get(job_id=running.id).status == JobStatus.STARTED
    (tmp_path / "job.go").touch()
    wait_for(lambda: _finished(running.id) and _finished(leftover.id), timeout=30)
    assert JobRecord.objects.get(job_id=running.id).attempts == 1
    assert JobRecord.objects.get(job_id=leftover.id).attempts == 2
    assert not JobRecord.objects.get(job_id=running.id).errors.exists()
