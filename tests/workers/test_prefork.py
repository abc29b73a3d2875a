"""The fork-once worker (`rqworker --prefork`): one work horse runs job after job, is
replaced when it should be, and a crash, a timeout or a bad payload costs one job only.

Real worker processes against the test's Redis and database, as a deployment runs them;
which horse ran a job is the job's own answer (``tests.jobfuncs.horse_pid``)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time

import django_rq
import pytest
from django.db import connection
from rq import Queue

from tests.conftest import ROOT, process_alive, wait_for
from tests.workers.test_command_errors import assert_one_line_error, manage
from tests.workers.test_forkguard import CHILD_VERDICT
from workers import enqueue
from workers.models import JobLogLine, JobRecord, JobStatus
from workers.recording.consumer import drain
from workers.redis import CLAIM_KEY
from workers.redis import connection as redis_connection
from workers.rq.job import TrackedJob
from workers.runtime.prefork import PreforkWorker
from workers.services.audit import Actor
from workers.services.jobs import job_cancel

pytestmark = pytest.mark.django_db(transaction=True)

PREFORK = ("--prefork",)


def _ended(job_id: str, status: str, timeout: float = 60) -> JobRecord:
    return wait_for(lambda: JobRecord.objects.filter(job_id=job_id, status=status).first(), timeout=timeout)


def _finished(job_id: str) -> JobRecord:
    return _ended(job_id, JobStatus.FINISHED)


def _horse_of(job_id: str) -> int:
    """The pid of the horse that ran a finished ``horse_pid`` job."""
    return int(_finished(job_id).result_repr)


def _pid(redis_conn, name: str) -> int:
    return int(wait_for(lambda: redis_conn.get(f"test:pid:{name}"), timeout=30))


def test_one_horse_runs_job_after_job(start_worker):
    jobs = [enqueue("tests.jobfuncs.horse_pid") for _ in range(6)]
    worker = start_worker("default", extra=PREFORK)

    horses = [_horse_of(job.id) for job in jobs]

    assert len(set(horses)) == 1, horses  # forked once, not once per job
    assert horses[0] != worker.pid
    records = JobRecord.objects.filter(job_id__in=[job.id for job in jobs])
    assert {(r.status, r.attempts, r.worker) for r in records} == {(JobStatus.FINISHED, 1, worker.name)}


def test_a_horse_keeps_its_database_connection_across_jobs(start_worker):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite connections are closed after every job (CONN_MAX_AGE 0)")
    jobs = [enqueue("tests.jobfuncs.database_session") for _ in range(3)]
    start_worker("default", extra=PREFORK)

    sessions = [_finished(job.id).result_repr for job in jobs]

    # One session for the horse (within CONN_MAX_AGE), not a new connection per job.
    assert len(set(sessions)) == 1, sessions


def test_logs_progress_and_retries_are_recorded_from_one_horse(start_worker):
    first = enqueue("tests.jobfuncs.horse_pid")
    chatty = enqueue("tests.jobfuncs.chatty", 2, fail_after=True, max_attempts=2)
    counting = enqueue("tests.jobfuncs.count_and_report", 4)
    start_worker("default", extra=PREFORK)

    dead = _ended(chatty.id, JobStatus.DEAD)  # retrying after attempt 1 (RQ's scheduler), then dead
    last = enqueue("tests.jobfuncs.horse_pid")

    assert _horse_of(first.id) == _horse_of(last.id)  # every job above ran in that one horse
    assert [(e.attempt, e.message) for e in dead.errors.all()] == [
        (1, "chatty failed after logging"),
        (2, "chatty failed after logging"),
    ]
    lines = list(JobLogLine.objects.filter(job=dead).values_list("attempt", "seq", "message"))
    for attempt in (1, 2):
        assert [line[1:] for line in lines if line[0] == attempt] == [
            (1, "processed item 1 of 2"),
            (2, "processed item 2 of 2"),
            (3, "done <b>here</b>"),
        ]
    assert (_finished(counting.id).progress, _finished(counting.id).result_repr) == (100, "4")


def test_a_horse_is_replaced_after_its_number_of_jobs(start_worker):
    jobs = [enqueue("tests.jobfuncs.horse_pid") for _ in range(5)]
    start_worker("default", extra=(*PREFORK, "--horse-max-jobs", "2"))

    horses = [_horse_of(job.id) for job in jobs]  # one worker, one queue: in order

    assert horses[0] == horses[1] != horses[2] == horses[3] != horses[4], horses
    assert len(set(horses)) == 3
    assert not any(process_alive(pid) for pid in horses[:4])  # the retired ones exited


def test_a_horse_is_replaced_when_it_passes_its_memory_bound(start_worker):
    # Any Python process is above 1 MB: every job leaves its horse above the bound.
    jobs = [enqueue("tests.jobfuncs.horse_pid") for _ in range(3)]
    start_worker("default", extra=(*PREFORK, "--horse-max-rss", "1"))

    horses = [_horse_of(job.id) for job in jobs]

    assert len(set(horses)) == 3, horses


def test_a_horse_killed_mid_job_fails_that_job_only(start_worker, redis_conn):
    before = enqueue("tests.jobfuncs.horse_pid")
    job = enqueue("tests.jobfuncs.hang_first_time", "killed", max_attempts=2)
    worker = start_worker("default", extra=PREFORK)
    first_horse = _horse_of(before.id)
    assert _pid(redis_conn, "killed") == first_horse  # the same horse took the next job

    after = enqueue("tests.jobfuncs.horse_pid")
    os.kill(first_horse, signal.SIGKILL)

    record = _finished(job.id)
    assert (record.attempts, record.result_repr) == (2, "'second attempt ok'")
    error = record.errors.get()
    assert (error.attempt, error.exc_type, error.worker) == (1, "WorkerDied", worker.name)
    assert error.message == "worker died: the work horse was killed by SIGKILL (9) mid-job"
    assert _horse_of(after.id) not in (first_horse, worker.pid)  # a new horse; the worker goes on
    assert worker.process.poll() is None


def test_an_idle_horse_whose_worker_was_killed_exits(start_worker):
    first = enqueue("tests.jobfuncs.horse_pid")
    worker = start_worker("default", extra=PREFORK)
    horse = _horse_of(first.id)

    worker.kill()  # SIGKILL: the worker cannot tell its horse anything

    wait_for(lambda: not process_alive(horse), timeout=10)


def test_a_horse_killed_between_jobs_is_replaced_for_the_next_one(start_worker):
    first = enqueue("tests.jobfuncs.horse_pid")
    worker = start_worker("default", extra=PREFORK)
    idle_horse = _horse_of(first.id)

    os.kill(idle_horse, signal.SIGKILL)
    wait_for(lambda: not process_alive(idle_horse) or None, timeout=10)
    second = enqueue("tests.jobfuncs.horse_pid")

    assert _horse_of(second.id) not in (idle_horse, worker.pid)
    record = JobRecord.objects.get(job_id=second.id)
    assert (record.attempts, record.errors.count()) == (1, 0)  # nothing of it was lost
    assert worker.process.poll() is None


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("exit", "worker died: the work horse exited unexpectedly mid-job (waitpid returned 768)"),
        ("segfault", "worker died: the work horse was killed by SIGSEGV (11) mid-job"),
    ],
)
def test_a_horse_that_crashes_fails_that_job_by_its_policy_and_the_next_job_runs(start_worker, how, message):
    crashing = enqueue("tests.jobfuncs.crash", how, max_attempts=2)
    after = enqueue("tests.jobfuncs.horse_pid")
    worker = start_worker("default", extra=PREFORK)

    record = _ended(crashing.id, JobStatus.DEAD)
    assert record.attempts == 2  # retried by its policy, then dead
    errors = list(record.errors.values_list("attempt", "exc_type", "message"))
    assert errors == [(1, "WorkerDied", message), (2, "WorkerDied", message)]
    assert _horse_of(after.id) != worker.pid
    assert worker.process.poll() is None


def test_a_timeout_fails_that_job_and_a_new_horse_takes_the_next(start_worker, redis_conn):
    before = enqueue("tests.jobfuncs.horse_pid")
    slow = enqueue("tests.jobfuncs.hang_and_report_pid", "slow", 30, timeout=1, max_attempts=1)
    after = enqueue("tests.jobfuncs.horse_pid")
    worker = start_worker("default", extra=PREFORK)

    record = _ended(slow.id, JobStatus.DEAD)
    error = record.errors.get()
    assert (error.attempt, error.exc_type, error.message) == (
        1,
        "rq.timeouts.JobTimeoutException",
        "timed out after 1 s",
    )
    timed_out_horse = _pid(redis_conn, "slow")
    assert _horse_of(before.id) == timed_out_horse  # the horse that ran the job before...
    assert _horse_of(after.id) != timed_out_horse  # ...was retired with the job that timed out
    assert not process_alive(timed_out_horse)
    assert worker.process.poll() is None


def test_an_operator_stops_a_running_job_and_a_new_horse_takes_the_next(start_worker, redis_conn):
    job = enqueue("tests.jobfuncs.hang_and_report_pid", "stopped", 60)
    after = enqueue("tests.jobfuncs.horse_pid")
    worker = start_worker("default", extra=PREFORK)
    horse = _pid(redis_conn, "stopped")
    wait_for(lambda: JobRecord.objects.filter(job_id=job.id, status=JobStatus.STARTED).exists())

    job_cancel(job_id=job.id, actor=Actor("tester"))  # RQ's stop-job command to the worker

    record = _ended(job.id, JobStatus.STOPPED)
    assert (record.attempts, record.errors.get().exc_type) == (1, "JobStopped")
    assert _horse_of(after.id) not in (horse, worker.pid)
    assert worker.process.poll() is None


def test_a_first_sigterm_lets_the_running_job_finish(start_worker, redis_conn):
    job = enqueue("tests.jobfuncs.hang_and_report_pid", "warm", 2)
    waiting = enqueue("tests.jobfuncs.horse_pid")  # must stay queued: the worker stops
    worker = start_worker("default", extra=PREFORK)
    horse = _pid(redis_conn, "warm")

    worker.process.send_signal(signal.SIGTERM)

    assert worker.process.wait(timeout=30) == 0
    drain()
    record = JobRecord.objects.get(job_id=job.id)
    assert (record.status, record.attempts, record.errors.count()) == (JobStatus.FINISHED, 1, 0)
    assert JobRecord.objects.get(job_id=waiting.id).status == JobStatus.QUEUED
    assert redis_conn.lrange("rq:queue:default", 0, -1) == [waiting.id.encode()]
    wait_for(lambda: not process_alive(horse), timeout=10)  # the horse went with its worker


def test_a_second_sigterm_stops_the_job_as_interrupted_and_it_is_retried(start_worker, redis_conn):
    job = enqueue("tests.jobfuncs.hang_first_time", "cold", max_attempts=2)
    worker = start_worker("default", name="prefork-cold", extra=PREFORK)
    horse = _pid(redis_conn, "cold")

    worker.process.send_signal(signal.SIGTERM)
    wait_for(lambda: redis_conn.hget("rq:worker:prefork-cold", "shutdown_requested_date"), timeout=10)
    time.sleep(1.2)  # RQ ignores a second signal within a second of the first
    worker.process.send_signal(signal.SIGTERM)
    assert worker.process.wait(timeout=30) is not None
    drain()

    record = JobRecord.objects.get(job_id=job.id)
    errors = [(e.attempt, e.exc_type, e.message) for e in record.errors.all()]
    message = "worker was stopped mid-job (cold shutdown: SIGTERM received twice)"
    assert (record.status, record.attempts, errors) == (JobStatus.RETRYING, 1, [(1, "WorkerDied", message)])
    assert not process_alive(horse)
    assert not redis_conn.zrange("rq:wip:default", 0, -1)

    start_worker("default", name="prefork-next", extra=PREFORK)
    record = _finished(job.id)
    assert (record.attempts, record.worker) == (2, "prefork-next")


def test_malformed_payloads_fail_their_jobs_only_and_the_horse_goes_on(start_worker):
    plain = Queue("default", connection=redis_connection())
    first = enqueue("tests.jobfuncs.horse_pid")
    missing = plain.enqueue("tests.jobfuncs.no_such_function")
    garbage = plain.enqueue("tests.jobfuncs.add", 1, 2)
    redis_connection().hset(f"rq:job:{garbage.id}", "data", b"\x80\x05not a pickle")
    unimportable = plain.enqueue("tests.no_such_module.job")
    last = enqueue("tests.jobfuncs.horse_pid")
    start_worker("default", extra=PREFORK)

    assert _horse_of(first.id) == _horse_of(last.id)
    for bad in (missing, garbage, unimportable):
        record = _ended(bad.id, JobStatus.DEAD)  # plain RQ jobs without Retry: failed once
        assert record.attempts == 1 and record.errors.count() == 1
    assert "no_such_function" in JobRecord.objects.get(job_id=missing.id).last_error
    garbage_error = JobRecord.objects.get(job_id=garbage.id).errors.get()
    assert garbage_error.exc_type.endswith("DeserializationError") or "pickle" in garbage_error.message.lower()
    # RQ's own words for a module it cannot import the function from.
    unimportable_error = JobRecord.objects.get(job_id=unimportable.id).last_error
    assert unimportable_error == "builtins.ValueError: Invalid attribute name: job"


@pytest.mark.parametrize("fail", [False, True], ids=["finished", "failed"])
def test_the_horse_writes_its_outcome_behind_the_claim_fence(redis_conn, transactional_db, tmp_path, fail):
    # The claim travels to the long-lived horse with the job: a late outcome is dropped.
    job = enqueue("tests.jobfuncs.claimed_elsewhere", fail=fail)
    after = enqueue("tests.jobfuncs.add", 2, 3)
    handler = logging.FileHandler(tmp_path / "worker.log")
    logging.getLogger("rq.worker").addHandler(handler)
    try:
        django_rq.get_worker("default", worker_class=PreforkWorker).work(burst=True, with_scheduler=False)
    finally:
        logging.getLogger("rq.worker").removeHandler(handler)
        handler.close()
    drain()

    assert redis_conn.hmget(job.key, "status", "worker_name") == [b"started", b"elsewhere"]
    assert redis_conn.get(CLAIM_KEY.format(job.id)) == b"2 elsewhere 0000"
    assert not redis_conn.zcard("rq:failed:default") and not redis_conn.zcard("rq:scheduled:default")
    assert TrackedJob.fetch(job.id, connection=redis_conn).latest_result() is None
    assert JobRecord.objects.get(job_id=job.id).status == JobStatus.STARTED
    dropped = [line for line in (tmp_path / "worker.log").read_text().splitlines() if "dropped its late" in line]
    assert len(dropped) == 1 and f"job {job.id} attempt 1: the job was claimed again" in dropped[0]
    # The next job's claim holds: its outcome is written.
    record = JobRecord.objects.get(job_id=after.id)
    assert (record.status, record.result_repr) == (JobStatus.FINISHED, "5")


def test_the_worker_beats_while_a_long_job_runs_and_keeps_the_horse(redis_conn, transactional_db):
    # RQ's monitor wakes every job_monitoring_interval (an alarm) to beat while it waits
    # for the horse: each wake-up interrupts the wait, which must lose nothing.
    slow = enqueue("tests.jobfuncs.hang_and_report_pid", "long", 3.5)
    after = enqueue("tests.jobfuncs.horse_pid")
    worker = django_rq.get_worker("default", worker_class=PreforkWorker, name="beating", job_monitoring_interval=1)

    worker.work(burst=True, with_scheduler=False)
    drain()

    record = JobRecord.objects.get(job_id=slow.id)
    assert (record.status, record.attempts, record.errors.count()) == (JobStatus.FINISHED, 1, 0)
    assert JobRecord.objects.get(job_id=after.id).result_repr == redis_conn.get("test:pid:long").decode()


def test_a_horse_told_to_go_exits_though_another_process_holds_its_pipe(redis_conn, transactional_db, caplog):
    # RQ's scheduler, restarted by maintenance while a horse lives, is forked with a copy
    # of the horse's order pipe: closing the worker's end alone would never end the horse.
    job = enqueue("tests.jobfuncs.horse_pid")
    worker = django_rq.get_worker("default", worker_class=PreforkWorker, name="retiring")
    taken, queue = worker.dequeue_job_and_maintain_ttl(None)
    worker.execute_job(taken, queue)
    horse = worker._prefork_pid
    held_elsewhere = os.dup(worker._prefork_orders)
    try:
        with caplog.at_level(logging.INFO, logger="rq.worker"):
            worker._prefork_retire(wait=30)
    finally:
        os.close(held_elsewhere)

    drain()
    assert JobRecord.objects.get(job_id=job.id).result_repr == str(horse)
    assert not process_alive(horse)
    said = [r.getMessage() for r in caplog.records]
    assert f"Worker retiring: work horse {horse} retired after 1 job(s)" in said
    assert not [line for line in said if "killing it" in line]  # it left when told to


FORK_WHILE_THE_FACTORY_IS_BUSY = """
import os, sys, threading, time
import django
django.setup()
from workers import redis as factory

held, release = threading.Event(), threading.Event()

def holder():
    with factory._lock:  # another thread of the worker, making its client right now
        held.set()
        release.wait()

threading.Thread(target=holder, daemon=True).start()
held.wait()
pid = os.fork()
if pid == 0:
    factory.connection()  # the horse's first client
    os._exit(0)
"""


def test_a_horse_forked_while_another_thread_makes_a_redis_client_gets_its_own():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "jobsite.settings.test"}
    script = FORK_WHILE_THE_FACTORY_IS_BUSY + CHILD_VERDICT.format(wait=10)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, timeout=60)
    assert done.returncode == 0, "the forked child hung on the connection factory's lock"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--horse-max-jobs", "5"], "--horse-max-jobs only applies with --prefork"),
        (["--prefork", "--simple"], "--prefork runs its own worker class: not with --simple or --worker-class"),
        (["--prefork", "--horse-max-jobs", "0"], "--horse-max-jobs 0: must be at least 1"),
        (["--prefork", "--horse-max-rss", "-3"], "--horse-max-rss -3: must be at least 1"),
    ],
)
def test_bad_prefork_arguments_are_one_line_and_exit_status_2(args, expected):
    assert_one_line_error(manage("rqworker", "--burst", *args), expected)


def test_a_prefork_burst_worker_runs_and_exits(redis_conn):
    jobs = [enqueue("tests.jobfuncs.add", n, n) for n in range(3)]
    done = manage("rqworker", "--burst", "--prefork", "--horse-max-jobs", "2", "default")
    assert done.returncode == 0, done.stdout + done.stderr
    drain()
    assert [JobRecord.objects.get(job_id=j.id).result_repr for j in jobs] == ["0", "2", "4"]
