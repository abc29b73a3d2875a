"""Chaos: 1,000 jobs on 3 worker processes while horses and whole workers are SIGKILLed.

(More than 1,000 when a fast machine drains the queues before the storm had its kills.)

The promise under test: no job silently disappears. Every job ends `finished`, or `dead`
with the reason written; no record is left `started` (or waiting); an idempotent job's
effect exists once however often a crash made it run again.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter

import pytest
from django.db import connection
from redis import Redis

from tests.conftest import child_pids, wait_for
from tests.jobfuncs import CHAOS_TABLE
from workers import enqueue
from workers.models import JobError, JobRecord, JobStatus

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

JOBS = 1000
WORKERS = 3
FAILING_EVERY = 25  # every 25th job always raises: it must end dead, with its reason
CHAOS_SECONDS = 60  # the storm stops earlier when the queues are empty...
MIN_KILLS = 3  # ...but never before it killed this many horses and this many whole workers
STORM_LIMIT = 180  # (seconds; a storm that cannot get its kills by then fails the test)


def _tree(pid: int) -> list[int]:
    """The process and all its descendants: a worker, its work horse, its scheduler."""
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo += child_pids(current)
    return out


def _own_group(pid: int) -> bool:
    try:
        return os.getpgid(pid) == pid
    except ProcessLookupError:
        return False


def _sigkill(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture
def effect_table(transactional_db):
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE {CHAOS_TABLE} (token varchar(64) PRIMARY KEY)")
    yield
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE {CHAOS_TABLE}")


def test_no_job_is_lost_while_workers_and_horses_are_killed(start_worker, effect_table, redis_conn: Redis, capsys):
    rng = random.Random(7)
    tokens: list[str] = []
    failing: set[str] = set()
    job_ids: dict[str, str] = {}

    def add_jobs(count: int) -> None:
        for _ in range(count):
            token = f"t{len(tokens):04d}"
            if len(tokens) % FAILING_EVERY == 0:
                failing.add(token)
            tokens.append(token)
            job = enqueue(
                "tests.jobfuncs.chaos_effect",
                token,
                rng.randint(0, 20),
                fail=token in failing,
                queue=rng.choice(["high", "default", "low"]),
            )
            job_ids[job.id] = token

    add_jobs(JOBS)
    workers = [start_worker() for _ in range(WORKERS)]
    kills: Counter[str] = Counter()

    def queued() -> int:
        return sum(redis_conn.llen(f"rq:queue:{q}") for q in ("high", "default", "low"))

    def storm_had_its_kills() -> bool:
        return kills["whole worker"] >= MIN_KILLS and kills["work horse"] >= MIN_KILLS

    started = time.monotonic()
    while time.monotonic() - started < STORM_LIMIT and (
        not storm_had_its_kills() or (queued() and time.monotonic() - started < CHAOS_SECONDS)
    ):
        if not storm_had_its_kills() and queued() < 100:
            # A fast machine drains the queues before the storm had its kills: more work,
            # so that there are jobs in flight to kill.
            add_jobs(100)
        time.sleep(rng.uniform(1.5, 3.5))
        victim = rng.randrange(WORKERS)
        worker = workers[victim]
        horse = rng.random() < 0.65
        if min(kills["work horse"], kills["whole worker"]) < MIN_KILLS <= max(kills.values(), default=0):
            horse = kills["work horse"] < MIN_KILLS  # one kind had its kills: go for the other
        if horse:
            # The worker's child that re-grouped itself (setpgrp) is its work horse; the
            # scheduler process is a child too. Jobs are short: watch for a horse a moment.
            deadline = time.monotonic() + 2
            horses: list[int] = []
            while not horses and time.monotonic() < deadline:
                horses = [pid for pid in child_pids(worker.pid) if _own_group(pid)]
                time.sleep(0.01)
            if horses:
                _sigkill(horses)
                kills["work horse"] += 1
            continue
        # A whole worker dies the way a lost container does: with everything it started.
        _sigkill(_tree(worker.pid))
        worker.process.wait(timeout=10)
        kills["whole worker"] += 1
        workers[victim] = start_worker()

    assert storm_had_its_kills(), f"the storm was too mild: {dict(kills)}"

    def unsettled() -> int:
        return JobRecord.objects.exclude(status__in=[JobStatus.FINISHED, JobStatus.DEAD]).count()

    # The survivors (and the restarted workers) finish the work, fail the orphans of the
    # killed workers, run the retries and record everything, with no help from the test.
    try:
        wait_for(lambda: JobRecord.objects.count() == len(job_ids) and unsettled() == 0, timeout=240, interval=0.5)
    except AssertionError:
        stuck = JobRecord.objects.exclude(status__in=[JobStatus.FINISHED, JobStatus.DEAD])
        for record in stuck[:10]:
            raw = redis_conn.hgetall(f"rq:job:{record.job_id}")
            print("stuck", record.job_id, record.status, record.attempts, record.worker, record.status_changed_at,
                  {k: raw.get(k.encode()) for k in ("status", "worker_name", "origin", "started_at")})  # fmt: skip
        print(
            "unsettled", unsettled(), "records", JobRecord.objects.count(), "events", redis_conn.xlen("jobsite:events")
        )
        for key in redis_conn.keys("rq:*registry*") + redis_conn.keys("rq:queue:*"):
            kind = redis_conn.type(key).decode()
            print(
                key.decode(),
                redis_conn.zcard(key) if kind == "zset" else redis_conn.llen(key) if kind == "list" else kind,
            )
        print("locks", {k.decode(): redis_conn.get(k) for k in redis_conn.keys("rq:scheduler-lock:*")})
        raise

    records = {r.job_id: r for r in JobRecord.objects.all()}
    statuses = Counter(r.status for r in records.values())
    reasons = Counter(r.last_error.split(":", 1)[0] for r in records.values() if r.status == JobStatus.DEAD)
    runs = {k.decode(): int(v) for k, v in redis_conn.hgetall("test:chaos:runs").items()}
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT token FROM {CHAOS_TABLE}")
        effects = [row[0] for row in cursor.fetchall()]
    crash_errors = JobError.objects.filter(exc_type="WorkerDied").count()
    with capsys.disabled():  # the counts belong in every run's output, not only with -s
        print(
            f"\nchaos: {len(job_ids)} jobs, {WORKERS} workers, kills {dict(kills)}; statuses {dict(statuses)}; "
            f"dead by reason {dict(reasons)}; WorkerDied attempts {crash_errors}; "
            f"jobs that ran more than once {sum(1 for n in runs.values() if n > 1)}; "
            f"executions {sum(runs.values())}; effect rows {len(effects)}; "
            f"settled {time.monotonic() - started:.0f} s after the storm began"
        )

    assert set(records) == set(job_ids), "every enqueued job has exactly one record"
    assert set(statuses) <= {JobStatus.FINISHED, JobStatus.DEAD}
    for record in records.values():
        token = job_ids[record.job_id]
        if token in failing:
            assert record.status == JobStatus.DEAD, f"{token} always raises and cannot have finished"
        if record.status == JobStatus.DEAD:
            last = record.errors.order_by("-attempt").first()
            assert last is not None and last.message, f"{token} is dead without a reason written"
            assert record.last_error
    finished_tokens = {job_ids[r.job_id] for r in records.values() if r.status == JobStatus.FINISHED}
    # Idempotent effects: one row per token, whatever the number of executions.
    assert len(effects) == len(set(effects))
    assert finished_tokens <= set(effects), "a finished job's effect is missing"
    assert not set(effects) & failing
    assert crash_errors > 0, "kills mid-job are recorded as WorkerDied attempts"
