"""A Redis outage at each moment of the work: every process waits for Redis and goes on, and
every job ends recorded, whether Redis comes back with its data or without it ("empty": a
restart without persistence, a fail-over to a replica that never had the jobs).

Each test lands the outage on its moment on purpose, not by luck of timing: a job that
waits for the test's cue, a worker idle or suspended, RQ's scheduler holding its locks or
stopping, a watchdog pass, a recorder batch or a schedule tick held at a database lock
until Redis is gone. The processes are the real commands; Redis is the test's own.
"""

from __future__ import annotations

import signal
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import django_rq
import psycopg
import pytest
from django.db import connection
from django.utils import timezone
from redis import Redis
from redis.backoff import NoBackoff
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry
from rq.suspension import resume, suspend

from tests.conftest import WORKER_APPNAME, database_url, process_alive, scheduler_pid, wait_for
from tests.faults.conftest import database_writes_held, mentions, wait_for_mention
from tests.redis_servers import OwnRedis, free_port
from workers import enqueue
from workers.events import LOST_REASON
from workers.models import CatchUp, JobError, JobMetricTotal, JobRecord, JobStatus, Schedule, ScheduleRun
from workers.recording.consumer import drain
from workers.redis import SCHEDULER_HEARTBEAT_KEY, STREAM_GROUP, STREAM_KEY
from workers.rq.job import TrackedJob
from workers.rq.queue import TrackedQueue
from workers.runtime.liveness import live_workers
from workers.runtime.worker import TrackingSimpleWorker, TrackingWorker

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

OUTAGE = "Redis is unavailable"
BACK = "Redis answers again"
WITH_DATA_OR_EMPTY = pytest.mark.parametrize("empty", [False, True], ids=["with-its-data", "empty"])


def _ended(job_id: str, status: str | None = None, timeout: float = 90) -> JobRecord:
    """The job's record once it has ended (retrying is not an end), optionally in ``status``."""
    ended = (JobStatus.FINISHED, JobStatus.DEAD)
    return wait_for(
        lambda: JobRecord.objects.filter(job_id=job_id, status__in=[status] if status else ended).first(),
        timeout=timeout,
        interval=0.2,
    )


def _goes_on(*processes) -> None:
    """Each process is alive and over the outage, and a new job runs and is recorded."""
    for process in processes:
        try:
            wait_for_mention(process, BACK)
        except AssertionError:
            raise AssertionError(
                f"{process.name} never said Redis was back:\n{process.log.read_text(errors='replace')[-3000:]}"
            ) from None
    job = enqueue("tests.jobfuncs.add", 20, 22)
    assert _ended(job.id, JobStatus.FINISHED).result_repr == "42"
    for process in processes:
        assert process.process.poll() is None, process.log.read_text(errors="replace")[-4000:]


def _registered(worker, redis) -> None:
    """Pages, metrics and alerts count the worker live (a Redis back empty had forgotten it)."""
    wait_for(lambda: worker.name in {w.name for w in live_workers(redis, now=timezone.now())}, timeout=30)


def _lost(record: JobRecord) -> None:
    assert record.status == JobStatus.DEAD
    assert record.last_error.startswith(f"JobLost: {LOST_REASON}")
    assert JobError.objects.get(job=record, exc_type="JobLost").message.startswith(LOST_REASON)


# --- connect --------------------------------------------------------------------------------


def test_processes_started_while_redis_is_down_wait_for_it(own_redis, start_worker, start_command):
    own_redis.stop()
    worker = start_worker()
    scheduler = start_command("run_scheduler", "--no-sync")
    recorder = start_command("record_events")
    for process in (worker, scheduler, recorder):
        wait_for_mention(process, OUTAGE)

    own_redis.start()

    _goes_on(worker, scheduler, recorder)
    assert mentions(worker, OUTAGE) == 1  # once per outage, not once per attempt


# --- a worker -------------------------------------------------------------------------------


@WITH_DATA_OR_EMPTY
@pytest.mark.parametrize("simple", [False, True], ids=["forking", "simple"])
def test_an_outage_while_a_job_runs(own_redis, start_worker, tmp_path, simple, empty):
    worker = start_worker(simple=simple)
    cue = str(tmp_path / "job")
    job = enqueue("tests.faults.outagefuncs.hold", cue)
    wait_for(lambda: Path(f"{cue}.running").exists(), timeout=60)

    own_redis.stop(wipe=empty)
    Path(f"{cue}.go").touch()  # the job returns now: its outcome cannot reach Redis
    wait_for_mention(worker, f"job {job.id} met a Redis outage")
    own_redis.start()

    record = _ended(job.id)
    if empty:
        _lost(record)  # nothing is left of it in Redis to fail or retry
    else:
        # The attempt failed for want of Redis, and the retry ran it again.
        assert (record.status, record.attempts) == (JobStatus.FINISHED, 2)
        assert JobError.objects.get(job=record, attempt=1).exc_type == "RedisConnectionLost"
    _registered(worker, own_redis.client())
    _goes_on(worker)


@WITH_DATA_OR_EMPTY
def test_an_outage_between_popping_a_job_and_starting_it(own_redis, run_burst, empty):
    """Driven step by step in this process, the worker pops the job, then Redis goes before
    the job can start: it did not run, so it goes back to its queue (or, gone with Redis's
    data, is recorded lost), and the worker goes on."""
    job = enqueue("tests.jobfuncs.add", 2, 3)
    drain()
    worker = django_rq.get_worker("high", "default", worker_class=TrackingSimpleWorker, name="step-by-step")
    popped, queue = worker.dequeue_job_and_maintain_ttl(timeout=1)
    redis = own_redis.client()
    assert popped.id == job.id and redis.llen(queue.key) == 0

    own_redis.stop(wipe=empty)
    attempt = threading.Thread(target=worker.execute_job, args=(popped, queue), daemon=True)
    attempt.start()
    wait_for(lambda: worker._jobsite_outage.ongoing, timeout=30)
    own_redis.start()
    attempt.join(timeout=60)
    assert not attempt.is_alive()

    assert not worker.executions  # the worker says it runs nothing
    if empty:
        drain()
        _lost(JobRecord.objects.get(job_id=job.id))
    else:
        assert redis.lrange(queue.key, 0, -1) == [job.id.encode()]
        assert not redis.zcard(queue.started_job_registry.key)
        run_burst()
        record = JobRecord.objects.get(job_id=job.id)
        assert (record.status, record.attempts, record.result_repr) == (JobStatus.FINISHED, 1, "5")


class _OutageAtStart:
    """Worker classes whose job meets its outage after the execution is registered, right
    before the job is marked `started` (in the work horse, or the simple worker itself)."""

    SLEEP = 15  # s: longer than the worker's socket timeout

    def __init__(self, own_redis, moment: str, changes: dict | None = None) -> None:
        self.own_redis, self.moment = own_redis, moment
        self.changes = changes  # written to the job's hash as Redis goes away
        self.job_key: bytes | None = None
        self.restart: threading.Timer | None = None
        self.begun = False

    def begin(self) -> None:
        if self.begun:
            return  # the first job's start only
        self.begun = True
        if self.moment == "reply-lost":
            # The server stops answering past the worker's socket timeout, then runs
            # what it was sent: the start reaches Redis, its reply never reaches the worker.
            threading.Thread(target=self._sleep, args=(self.SLEEP,), daemon=True).start()
            probe = Redis.from_url(self.own_redis.url, socket_timeout=0.2, retry=Retry(NoBackoff(), 0))
            wait_for(lambda: _asleep(probe), timeout=10)
        else:
            # Away: the start never reaches Redis.
            if self.changes:  # by another process, or by hand, as Redis goes away
                self.own_redis.client().hset(self.job_key, mapping=self.changes)
            self.own_redis.stop(wipe=self.moment == "empty")
            self.restart = threading.Timer(6, self.own_redis.start)
            self.restart.start()

    def _sleep(self, seconds: int) -> None:
        client = Redis.from_url(self.own_redis.url, socket_timeout=seconds + 10, retry=Retry(NoBackoff(), 0))
        client.execute_command("DEBUG", "SLEEP", seconds)

    def worker(self, simple: bool, name: str):
        outage = self

        class Simple(TrackingSimpleWorker):
            def prepare_execution(self, job):
                execution = super().prepare_execution(job)
                outage.begin()
                return execution

        class Forking(TrackingWorker):
            def fork_work_horse(self, job, queue):
                outage.begin()
                super().fork_work_horse(job, queue)

        # No retries of the client's own (redis-py's default backs off at random, up to 14 s
        # in all), so that the start fails at its first timeout and the worker's handling is
        # what the test sees. RQ raises the socket timeout to the dequeue's + 10 s (12 s).
        connection = Redis.from_url(
            self.own_redis.url, socket_timeout=1, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0)
        )
        worker = (Simple if simple else Forking)(
            ["high", "default", "low"], connection=connection, name=name, job_class=TrackedJob, queue_class=TrackedQueue
        )
        kwargs = worker.connection.connection_pool.connection_kwargs
        assert kwargs["socket_timeout"] < self.SLEEP and kwargs["retry"].get_retries() == 0
        return worker


@pytest.mark.parametrize(
    "changes",
    [
        {"status": "canceled"},
        {"status": b"\xffwritten by hand"},
        {"status": "started", "worker_name": "another-host.77"},
    ],
    ids=["canceled", "unknown-status", "taken-by-another-worker"],
)
@pytest.mark.parametrize("simple", [False, True], ids=["forking", "simple"])
def test_a_job_changed_while_redis_was_away_at_its_start_is_not_run(own_redis, simple, changes, tmp_path):
    """Redis away as the job is marked `started`, and when it answers again the job is no
    longer this worker's to run: canceled, taken by another worker, or its status written by
    hand (one RQ does not know, not even UTF-8). The job does not run, its hash is left as
    found, this worker's execution of it leaves RQ's started registry, and the worker goes on."""
    trace = tmp_path / "runs"
    job = enqueue("tests.jobfuncs.note_run", str(trace))
    drain()
    outage = _OutageAtStart(own_redis, "refused", changes=changes)
    outage.job_key = job.key
    worker = outage.worker(simple, name=f"changed-{'simple' if simple else 'forking'}")
    redis = own_redis.client()
    popped, queue = worker.dequeue_job_and_maintain_ttl(timeout=1)
    assert popped.id == job.id

    worker.execute_job(popped, queue)
    outage.restart.join()

    assert not trace.exists()  # it did not run
    written = {k.encode(): v if isinstance(v, bytes) else v.encode() for k, v in changes.items()}
    assert {k: redis.hget(job.key, k) for k in written} == written
    assert not worker.executions
    assert redis.zcard(queue.started_job_registry.key) == 0
    assert not redis.smembers(f"rq:worker:{worker.name}:executions")
    drain()
    assert JobRecord.objects.get(job_id=job.id).status != JobStatus.FINISHED
    _runs_the_next_job(worker)


def _runs_the_next_job(worker) -> None:
    follow = enqueue("tests.jobfuncs.add", 20, 22)
    popped, queue = worker.dequeue_job_and_maintain_ttl(timeout=1)
    assert popped.id == follow.id
    worker.execute_job(popped, queue)
    drain()
    assert _ended(follow.id, JobStatus.FINISHED).result_repr == "42"


def _asleep(probe) -> bool:
    try:
        probe.ping()
    except RedisTimeoutError:
        return True
    return False


@pytest.mark.parametrize("moment", ["reply-lost", "refused", "empty"])
@pytest.mark.parametrize("simple", [False, True], ids=["forking", "simple"])
def test_an_outage_as_the_job_is_started(own_redis, simple, moment):
    """Redis goes away as the worker marks the job `started`, before it runs: that is no
    failed attempt (before, RQ recorded one, the outage's error for the job's). Whether the
    start reached Redis (its reply lost) or not, the job runs once, in one attempt; back
    without its data, it is recorded lost; and the worker goes on."""
    job = enqueue("tests.jobfuncs.add", 2, 3)
    drain()
    outage = _OutageAtStart(own_redis, moment)
    worker = outage.worker(simple, name=f"start-{moment}-{'simple' if simple else 'forking'}")
    redis = own_redis.client()
    popped, queue = worker.dequeue_job_and_maintain_ttl(timeout=1)
    assert popped.id == job.id

    worker.execute_job(popped, queue)  # in the main thread: RQ's timeouts are signals
    if outage.restart is not None:
        outage.restart.join()

    assert not worker.executions
    drain()
    record = JobRecord.objects.get(job_id=job.id)
    if moment == "empty":
        _lost(record)
        assert record.attempts == 1
    else:
        assert (record.status, record.attempts, record.result_repr) == (JobStatus.FINISHED, 1, "5")
        assert not record.errors.exists()
        assert (redis.llen(queue.key), redis.zcard(queue.started_job_registry.key)) == (0, 0)
    _runs_the_next_job(worker)


@WITH_DATA_OR_EMPTY
def test_an_outage_between_jobs(own_redis, start_worker, empty):
    worker = start_worker()
    first = enqueue("tests.jobfuncs.add", 1, 1)
    _ended(first.id, JobStatus.FINISHED)  # it has run a job and waits for the next

    own_redis.stop(wipe=empty)
    wait_for_mention(worker, OUTAGE)
    time.sleep(3)  # idle, it meets it in its dequeue, heartbeat and maintenance (every 2 s)
    own_redis.start()

    _registered(worker, own_redis.client())
    _goes_on(worker)
    assert mentions(worker, f"worker {worker.name}: {OUTAGE}") == 1  # once, not once per retry


@WITH_DATA_OR_EMPTY
def test_an_outage_while_the_worker_is_suspended(own_redis, start_worker, empty):
    """A suspended worker asks Redis every second whether it still is; jobs wait meanwhile."""
    worker = start_worker()
    redis = own_redis.client()
    suspend(redis)
    wait_for_mention(worker, "suspended, run `rq resume` to resume")
    waiting = [enqueue("tests.jobfuncs.add", n, n) for n in range(3)]
    wait_for(lambda: JobRecord.objects.filter(status=JobStatus.QUEUED).count() == 3, timeout=60)

    own_redis.stop(wipe=empty)
    wait_for_mention(worker, OUTAGE)
    own_redis.start()

    if empty:
        # Redis forgot the suspension and the jobs in its queue: their records end lost.
        for job in waiting:
            _lost(_ended(job.id))
    else:
        resume(redis)
        for n, job in enumerate(waiting):
            assert _ended(job.id, JobStatus.FINISHED).result_repr == str(2 * n)
    _goes_on(worker)


@WITH_DATA_OR_EMPTY
def test_a_fail_over_in_progress(own_redis, start_worker, start_command, tmp_path, empty):
    """The server turns replica (as Sentinel demotes an old master): blocked commands are cut
    short (UNBLOCKED), writes refused (READONLY), until it is promoted again. Empty: it first
    copies a master that never had the jobs, as a replica that had not caught up would."""
    worker = start_worker()
    recorder = start_command("record_events")
    scheduler = start_command("run_scheduler", "--no-sync")
    first = enqueue("tests.jobfuncs.add", 1, 1)
    _ended(first.id, JobStatus.FINISHED)
    redis = own_redis.client()
    master_port = free_port()
    if empty:
        master_dir = tmp_path / "master"
        master_dir.mkdir()
        master = OwnRedis(master_dir)
        master.start()
        master_port = master.port

    redis.replicaof("127.0.0.1", master_port)
    for process in (worker, recorder, scheduler):
        wait_for_mention(process, OUTAGE)
    if empty:
        wait_for(lambda: redis.info("replication")["master_link_status"] == "up", timeout=30)
        assert not redis.exists(f"rq:job:{first.id}")  # the replica has what its master had
    redis.replicaof("no", "one")  # promoted

    _registered(worker, redis)
    _goes_on(worker, recorder, scheduler)
    if empty:
        master.stop()


@pytest.mark.parametrize("simple", [False, True], ids=["forking", "simple"])
def test_a_fail_over_to_a_copy_that_missed_the_end_of_a_job(own_redis, start_worker, tmp_path, simple):
    """The moment a Sentinel fail-over test met in CI: a job started before the replica was
    cut off and ended after, so the promoted replica says the job is started by a worker
    that is alive, and idle. No watchdog judges a live worker's job, and RQ's cleanup
    would take minutes; the worker itself knows it runs no such job: the attempt fails as
    lost and is retried by its policy (its outcome, if it had one, is gone)."""
    worker = start_worker(simple=simple)
    cue = str(tmp_path / "job")
    job = enqueue("tests.faults.outagefuncs.hold", cue)
    wait_for(lambda: Path(f"{cue}.running").exists(), timeout=60)
    redis = own_redis.client()
    # A replica with the job started, then cut off (here: promoted on its own, frozen).
    copy_dir = tmp_path / "copy"
    copy_dir.mkdir()
    copy = OwnRedis(copy_dir)
    copy.start()
    copy.client().replicaof("127.0.0.1", own_redis.port)
    wait_for(lambda: copy.client().info("replication")["master_link_status"] == "up", timeout=30)
    assert redis.wait(1, 10_000) == 1
    copy.client().replicaof("no", "one")
    assert copy.client().hget(f"rq:job:{job.id}", "status") == b"started"

    Path(f"{cue}.go").touch()  # the job ends on the old master only
    _ended(job.id, JobStatus.FINISHED)
    # The fail-over: the server the worker knows now has what the cut-off replica had.
    redis.replicaof("127.0.0.1", copy.port)
    wait_for(lambda: redis.info("replication")["master_link_status"] == "up", timeout=30)
    assert redis.hget(f"rq:job:{job.id}", "status") == b"started"
    redis.replicaof("no", "one")
    copy.stop()

    lost = f"job {job.id}: attempt lost: {worker.name} is running but not this job"
    wait_for_mention(worker, lost)
    assert mentions(worker, lost) == 1
    record = wait_for(
        lambda: JobRecord.objects.filter(job_id=job.id, status=JobStatus.FINISHED, attempts=2).first(), timeout=30
    )
    assert record.worker == worker.name
    assert redis.hget(f"rq:job:{job.id}", "status") == b"finished"
    assert not redis.zcard("rq:wip:default") and not redis.smembers(f"rq:worker:{worker.name}:executions")
    _goes_on(worker)


# --- RQ's scheduler in a worker ---------------------------------------------------------------


@WITH_DATA_OR_EMPTY
def test_an_outage_while_rqs_scheduler_holds_its_locks(own_redis, start_worker, empty):
    worker = start_worker()
    redis = own_redis.client()
    scheduler = scheduler_pid(worker, redis)
    delayed = enqueue("tests.jobfuncs.add", 2, 3, delay=timedelta(seconds=2))
    wait_for(lambda: JobRecord.objects.filter(job_id=delayed.id, status=JobStatus.SCHEDULED).exists(), timeout=60)

    own_redis.stop(wipe=empty)
    wait_for_mention(worker, f"scheduler {worker.name}: {OUTAGE}")  # its heartbeat (every 1 s) met it
    own_redis.start()

    wait_for_mention(worker, f"scheduler {worker.name}: {BACK}")
    assert process_alive(scheduler)  # the same process: it waited, it did not die
    if empty:
        _lost(_ended(delayed.id))
    else:
        assert _ended(delayed.id, JobStatus.FINISHED).result_repr == "5"
    later = enqueue("tests.jobfuncs.add", 3, 4, delay=timedelta(seconds=1))
    assert _ended(later.id, JobStatus.FINISHED).result_repr == "7"  # moved by it, on time
    assert redis.get("rq:scheduler-lock:default") == worker.name.encode()
    assert process_alive(scheduler)
    _goes_on(worker)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["stopped", "killed"])
def test_a_worker_ended_during_an_outage_takes_its_scheduler_with_it(own_redis, start_worker, sig):
    """The scheduler releases its locks when it stops: with Redis away it cannot, and must
    neither hang nor crash (the failure of issue 16). A stopped worker exits cleanly; a killed
    one's scheduler notices its worker is gone and stops on its own."""
    worker = start_worker()
    redis = own_redis.client()
    scheduler = scheduler_pid(worker, redis)

    own_redis.stop()
    wait_for_mention(worker, f"scheduler {worker.name}: {OUTAGE}")
    worker.process.send_signal(sig)

    returncode = worker.process.wait(timeout=60)
    wait_for(lambda: not process_alive(scheduler), timeout=60)
    log = worker.log.read_text(errors="replace")
    if sig == signal.SIGTERM:
        assert returncode == 0, log[-4000:]
        assert "its locks expire on their own" in log
    assert "Traceback" not in log, log[-4000:]

    own_redis.start()
    # Another worker takes over the scheduling once the dead one's lock is released.
    other = start_worker(name=f"{worker.name}-next")
    delayed = enqueue("tests.jobfuncs.add", 2, 3, delay=timedelta(seconds=1))
    assert _ended(delayed.id, JobStatus.FINISHED).result_repr == "5"
    assert other.process.poll() is None


# --- the companion's watchdog pass and a recorder batch ------------------------------------


def _waiting_on_a_lock(name: str) -> list[str]:
    with psycopg.connect(database_url(), autocommit=True) as admin:
        rows = admin.execute(
            "SELECT query FROM pg_stat_activity WHERE application_name = %s AND wait_event_type = 'Lock'",
            [f"{WORKER_APPNAME}:{name}"],
        ).fetchall()
    return [row[0] for row in rows]


@WITH_DATA_OR_EMPTY
def test_an_outage_during_the_companions_watchdog_pass(own_redis, start_worker, empty):
    if connection.vendor != "postgresql":
        pytest.skip("holds the pass at a read of the records: PostgreSQL's ACCESS EXCLUSIVE lock (SQLite reads go on)")
    worker = start_worker()
    warm = enqueue("tests.jobfuncs.add", 1, 1)
    _ended(warm.id, JobStatus.FINISHED)  # quiet now: the recorder has nothing to apply

    # The pass reads the records (lost jobs) after its first Redis calls: hold it there.
    with psycopg.connect(database_url()) as holder:
        holder.execute("LOCK TABLE workers_jobrecord IN ACCESS EXCLUSIVE MODE")
        queries = wait_for(lambda: _waiting_on_a_lock(worker.name), timeout=30)
        assert "workers_jobrecord" in queries[0]
        own_redis.stop(wipe=empty)
        holder.rollback()  # the pass goes on, into Redis

    wait_for_mention(worker, OUTAGE)
    own_redis.start()
    _goes_on(worker)


@WITH_DATA_OR_EMPTY
@pytest.mark.parametrize("moment", ["records-window", "job-read"])
def test_an_outage_during_a_reconciliation_pass(own_redis, empty, moment, monkeypatch, caplog):
    """The companion's reconciliation pass (after its watchdogs) meets the outage between its
    reads and its cursor's move, or as it reads a job it is about to record (a deferred job's
    dependency): the outage is logged once, with no traceback, like every other Redis error
    of the companion, and the next pass after it goes through. (A loaded run logged a
    traceback per pass instead.)"""
    from rq import Queue

    from workers.redis import RECONCILE_CURSORS_KEY, RedisOutage
    from workers.runtime import reconcile
    from workers.runtime.companion import Companion

    if moment == "job-read":  # jobs no record has: the pass records them, reading the parent
        plain = Queue("low", connection=own_redis.client())
        plain.enqueue("tests.jobfuncs.add", 2, 2, depends_on=plain.enqueue("tests.jobfuncs.add", 1, 1))
    passes: list[str] = []
    step = "_records_window" if moment == "records-window" else "_event"
    original = getattr(reconcile, step)

    def outage_inside_the_pass(*args):
        passes.append("begun")
        if len(passes) == 1:
            own_redis.stop(wipe=empty)
        return original(*args)

    monkeypatch.setattr(reconcile, step, outage_inside_the_pass)
    worker = django_rq.get_worker("default", worker_class=TrackingSimpleWorker, name="w-reconciles")
    outage = RedisOutage("companion w-reconciles")
    companion = Companion(worker, record=True, outage=outage)
    companion.beat()
    companion.start()
    try:
        wait_for(lambda: outage.ongoing, timeout=30)
        own_redis.start()
        wait_for(lambda: not outage.ongoing, timeout=60)
        own_redis.client().delete(RECONCILE_CURSORS_KEY)
        wait_for(lambda: own_redis.client().hget(RECONCILE_CURSORS_KEY, "records") is not None, timeout=30)  # a pass
        if moment == "job-read" and not empty:
            wait_for(lambda: JobRecord.objects.count() == 2, timeout=30)  # recorded by a pass after it
    finally:
        companion.stop()
    assert outage.count == 1
    assert not [r for r in caplog.records if r.exc_info or "reconciliation pass failed" in r.getMessage()]


@WITH_DATA_OR_EMPTY
def test_an_outage_during_a_recorder_batch(own_redis, start_worker, start_command, empty):
    """The recorder commits a batch, then acknowledges it in Redis: the outage falls in between.
    With its data back, Redis hands the batch out again, and applying it twice counts once."""
    worker = start_worker(extra=("--no-recorder",))
    job = enqueue("tests.jobfuncs.add", 2, 2)
    redis = own_redis.client()
    wait_for(lambda: redis.hget(f"rq:job:{job.id}", "status") == b"finished", timeout=60)

    with database_writes_held("workers_jobrecord"):
        recorder = start_command("record_events")
        # It has read the job's events and waits for the database with them unacknowledged.
        wait_for(lambda: _pending(redis) > 0, timeout=60)
        own_redis.stop(wipe=empty)

    wait_for_mention(recorder, OUTAGE)
    own_redis.start()

    assert _ended(job.id, JobStatus.FINISHED).result_repr == "4"
    wait_for_mention(recorder, BACK)
    wait_for(lambda: _pending(redis) == 0, timeout=60)
    total = JobMetricTotal.objects.get(queue="default", func="tests.jobfuncs.add")
    assert (total.enqueued, total.finished) == (1, 1)  # applied twice (with its data), counted once
    _goes_on(worker, recorder)


def _pending(redis) -> int:
    """Events the recorders have read and not yet acknowledged (-1: no group yet)."""
    try:
        return int(redis.xpending(STREAM_KEY, STREAM_GROUP)["pending"])
    except ResponseError:
        return -1


# --- run_scheduler --------------------------------------------------------------------------


@WITH_DATA_OR_EMPTY
def test_an_outage_during_a_schedule_tick(own_redis, start_worker, start_command, empty):
    """The tick claims a due run in the database, then pushes its job to Redis: the outage
    falls in between. The run is pushed by the first tick after the outage, once."""
    worker = start_worker()
    schedule = Schedule.objects.create(
        # A function schedulable in every process (the scheduler checks it again at fire time).
        name="outage", func="workers.jobs.maintenance.prune", interval=3600, catch_up=CatchUp.ONCE,
        next_run_at=timezone.now(),
    )  # fmt: skip
    redis = own_redis.client()
    heartbeat = SCHEDULER_HEARTBEAT_KEY.format("outage-tick")

    with database_writes_held("workers_schedule", "workers_schedulerun"):
        scheduler = start_command("run_scheduler", "--no-sync", "--name", "outage-tick")
        # A tick that has not beaten for 3 s is held at its claim: the only write it makes.
        wait_for(lambda: redis.get(heartbeat), timeout=60)
        wait_for(lambda: timezone.now() - _beat(redis, heartbeat) > timedelta(seconds=3), timeout=30)
        own_redis.stop(wipe=empty)

    wait_for_mention(scheduler, OUTAGE)
    own_redis.start()

    run = wait_for(lambda: ScheduleRun.objects.filter(schedule=schedule, enqueued=True).first(), timeout=60)
    assert _ended(run.job_id, JobStatus.FINISHED).result_repr.startswith("'deleted 0 job records")
    assert ScheduleRun.objects.filter(schedule=schedule).count() == 1
    _goes_on(worker, scheduler)


def _beat(redis, key: str) -> datetime:
    value = redis.get(key)
    return datetime.fromisoformat(value.decode()) if value else timezone.now()
