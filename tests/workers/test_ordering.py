"""Ordered jobs (key=), concurrency limits (limit=) and priorities on real workers."""

from __future__ import annotations

import os
import time

import pytest
from django.conf import settings
from django.test import override_settings
from rq import Queue

from tests.conftest import wait_for
from workers import enqueue
from workers.api import EnqueueError
from workers.models import JobRecord, JobStatus
from workers.ordering.keys import holder_key
from workers.ordering.watchdog import key_states, keys_watchdog
from workers.recording.consumer import drain
from workers.redis import KEYS_ZSET, REQUEUE_GUARD_KEY
from workers.services.audit import Actor
from workers.services.jobs import dead_letter_discard, job_cancel

OPERATOR = Actor("tester")  # who the audit trail says acted

pytestmark = pytest.mark.django_db(transaction=True)

STEP = "tests.orderfuncs.step"


def order(redis_conn, key: str) -> list[str]:
    return [item.decode() for item in redis_conn.lrange(f"test:order:{key}", 0, -1)]


def peak(redis_conn, name: str) -> int:
    return int(redis_conn.get(f"test:max:{name}") or 0)


def statuses(jobs) -> list[str]:
    drain()
    records = {r.job_id: r.status for r in JobRecord.objects.filter(job_id__in=[j.id for j in jobs])}
    return [records.get(j.id, "") for j in jobs]


@pytest.mark.slow
def test_ten_keys_of_fifty_jobs_keep_their_order_one_at_a_time_and_run_side_by_side(start_worker, redis_conn):
    keys = [f"post:{n}" for n in range(10)]
    jobs = [enqueue(STEP, key, seq, 0.005, key=key) for seq in range(50) for key in keys]
    drain()
    # Before any worker runs: one job per key is queued, the other 49 wait in its line.
    assert Queue("default", connection=redis_conn).count == 10
    assert JobRecord.objects.filter(status=JobStatus.DEFERRED).count() == 490
    for n in range(3):
        # The test applies the tracking events itself at the end: the workers only run jobs.
        start_worker(simple=True, name=f"order-{n}-{os.getpid()}", extra=("--no-recorder",))

    wait_for(lambda: sum(redis_conn.llen(f"test:order:{key}") for key in keys) >= 500, timeout=120)

    for key in keys:
        assert order(redis_conn, key) == [str(seq) for seq in range(50)], key
        assert peak(redis_conn, key) == 1, f"two jobs of {key} ran at once"
    assert peak(redis_conn, "all") >= 2, "keys never ran side by side"
    wait_for(lambda: statuses(jobs).count(JobStatus.FINISHED) == 500, timeout=30)
    assert key_states() == []  # every key handed on and freed
    assert not any(redis_conn.exists(holder_key(key)) for key in keys)


def test_a_failing_job_keeps_its_key_while_it_retries(start_worker, redis_conn):
    first = enqueue("tests.orderfuncs.fail_once_step", "k", 0, key="k")
    rest = [enqueue(STEP, "k", seq, key="k") for seq in (1, 2)]
    start_worker()

    wait_for(lambda: len(order(redis_conn, "k")) == 4, timeout=30)

    assert order(redis_conn, "k") == ["0!", "0", "1", "2"]
    wait_for(lambda: statuses([first, *rest]) == [JobStatus.FINISHED] * 3, timeout=20)
    assert JobRecord.objects.get(job_id=first.id).attempts == 2


@pytest.mark.slow
def test_a_worker_killed_mid_job_does_not_stall_its_key(start_worker, redis_conn):
    first = enqueue("tests.orderfuncs.hang_once", "k", 0, key="k")
    rest = [enqueue(STEP, "k", seq, key="k") for seq in (1, 2, 3)]
    workers = [start_worker(simple=True, name=f"kill-{n}-{os.getpid()}") for n in range(2)]
    pid = int(wait_for(lambda: redis_conn.get("test:pid:k:0"), timeout=30))
    [victim] = [w for w in workers if w.pid == pid]  # a simple worker runs the job itself

    victim.kill()  # SIGKILL: no cleanup, the job is left "started" by a dead worker

    # The survivor's watchdog fails the orphan, it is retried while still holding the key,
    # and the key then moves on in order.
    wait_for(lambda: len(order(redis_conn, "k")) == 4, timeout=40)
    assert order(redis_conn, "k") == ["0", "1", "2", "3"]
    wait_for(lambda: statuses([first, *rest]) == [JobStatus.FINISHED] * 4, timeout=20)
    record = JobRecord.objects.get(job_id=first.id)
    assert record.attempts == 2
    assert record.errors.get().exc_type == "WorkerDied"


def test_a_holder_lost_between_queue_and_worker_is_re_driven_by_the_watchdog(start_worker, redis_conn):
    first = enqueue(STEP, "k", 0, key="k")
    second = enqueue(STEP, "k", 1, key="k")
    # What a multi-queue worker killed between popping the job and starting it leaves
    # behind: the holder says "queued" but sits in no queue.
    assert redis_conn.lrem(Queue("default", connection=redis_conn).key, 0, first.id) == 1
    redis_conn.zadd(KEYS_ZSET, {"k": time.time() - 60})  # and no progress on the key for a minute
    [state] = key_states()
    assert (state.key, state.state, state.waiting) == ("k", "stalled", 1)
    assert "in no queue" in state.note

    start_worker()

    wait_for(lambda: len(order(redis_conn, "k")) == 2, timeout=30)
    assert order(redis_conn, "k") == ["0", "1"]
    wait_for(lambda: statuses([first, second]) == [JobStatus.FINISHED] * 2, timeout=20)


def test_a_holder_another_watchdog_just_put_back_is_not_re_driven_twice(redis_conn):
    first = enqueue(STEP, "k", 0, key="k")
    queue_key = Queue("default", connection=redis_conn).key
    assert redis_conn.lrem(queue_key, 0, first.id) == 1  # lost between queue and worker
    redis_conn.zadd(KEYS_ZSET, {"k": time.time() - 60})
    moment = time.time()
    keys_watchdog(redis_conn, moment=moment, exclusive=False)  # first sighting: a suspect, nothing done yet
    # Meanwhile the lost-jobs watchdog put it back, and a worker popped it again (LPOP):
    # between that pop and "started" it looks lost here once more.
    redis_conn.set(REQUEUE_GUARD_KEY.format(first.id), 1, ex=60)

    assert keys_watchdog(redis_conn, moment=moment + 600, exclusive=False) == 0
    assert redis_conn.lpos(queue_key, first.id) is None  # not pushed a second time

    redis_conn.delete(REQUEUE_GUARD_KEY.format(first.id))  # a minute later, still lost: put back once
    assert keys_watchdog(redis_conn, moment=moment + 1200, exclusive=False) == 1
    assert redis_conn.lrange(queue_key, 0, -1) == [first.id.encode()]
    assert redis_conn.exists(REQUEUE_GUARD_KEY.format(first.id))


def test_a_dead_job_releases_its_key_by_default(run_burst, redis_conn):
    enqueue("tests.orderfuncs.fail_step", "post:1", 0, key="post:1", max_attempts=1)
    enqueue(STEP, "post:1", 1, key="post:1")

    run_burst(simple=True)

    assert order(redis_conn, "post:1") == ["0!", "1"]


def test_a_key_class_that_blocks_on_dead_waits_for_the_operator(run_burst, redis_conn):
    blocking = {**settings.JOBSITE, "KEY_CLASSES": {"ledger": {"on_dead": "block"}}}
    with override_settings(JOBSITE=blocking):
        dead = enqueue("tests.orderfuncs.fail_step", "ledger:7", 0, key="ledger:7", max_attempts=1)
        later = enqueue(STEP, "ledger:7", 1, key="ledger:7")
        run_burst(simple=True)

        assert order(redis_conn, "ledger:7") == ["0!"]
        assert statuses([dead, later]) == [JobStatus.DEAD, JobStatus.DEFERRED]
        [state] = key_states()
        assert (state.state, state.holder, state.waiting) == ("blocked", dead.id, 1)
        keys_watchdog(redis_conn, exclusive=False)
        assert key_states()[0].state == "blocked"  # the watchdog leaves a blocked key alone

        dead_letter_discard(job_id=dead.id, actor=OPERATOR)
        keys_watchdog(redis_conn, exclusive=False)
        run_burst(simple=True)

    assert order(redis_conn, "ledger:7") == ["0!", "1"]
    assert statuses([later]) == [JobStatus.FINISHED]


def test_a_canceled_waiting_job_is_skipped_when_the_key_moves_on(run_burst, redis_conn):
    jobs = [enqueue(STEP, "k", seq, key="k") for seq in range(3)]
    drain()
    job_cancel(job_id=jobs[1].id, actor=OPERATOR)

    run_burst(simple=True)

    assert order(redis_conn, "k") == ["0", "2"]
    assert statuses(jobs) == [JobStatus.FINISHED, JobStatus.CANCELED, JobStatus.FINISHED]


def test_a_canceled_holder_is_handed_on_by_the_watchdog(run_burst, redis_conn):
    jobs = [enqueue(STEP, "k", seq, key="k") for seq in range(2)]
    drain()
    job_cancel(job_id=jobs[0].id, actor=OPERATOR)
    [state] = key_states()
    assert (state.state, state.note) == ("stalled", "its holder is canceled but did not hand the key on")

    assert keys_watchdog(redis_conn, exclusive=False) == 1
    run_burst(simple=True)

    assert order(redis_conn, "k") == ["1"]
    assert statuses(jobs) == [JobStatus.CANCELED, JobStatus.FINISHED]


@pytest.mark.slow
def test_a_concurrency_limit_is_never_exceeded_across_workers(start_worker, redis_conn):
    with override_settings(JOBSITE={**settings.JOBSITE, "LIMITS": {"smtp": 2}}):
        jobs = [enqueue(STEP, "smtp", n, 0.3, limit="smtp") for n in range(10)]
    drain()
    assert JobRecord.objects.filter(status=JobStatus.DEFERRED).count() == 8  # held back by the limit
    for n in range(3):
        start_worker(simple=True, name=f"limit-{n}-{os.getpid()}")

    wait_for(lambda: redis_conn.llen("test:order:smtp") == 10, timeout=60)

    assert peak(redis_conn, "smtp") == 2
    wait_for(lambda: statuses(jobs) == [JobStatus.FINISHED] * 10, timeout=20)


def test_a_worker_drains_high_before_default_before_low(run_burst, redis_conn):
    for n in range(3):
        for queue in ("low", "default", "high"):
            enqueue("tests.orderfuncs.record", "prio", f"{queue}{n}", queue=queue)

    run_burst()

    assert order(redis_conn, "prio") == ["high0", "high1", "high2", "default0", "default1", "default2",
                                         "low0", "low1", "low2"]  # fmt: skip


def test_enqueue_refuses_options_that_cannot_be_honoured(transactional_db):
    from datetime import timedelta

    with pytest.raises(EnqueueError, match="key= cannot be combined with at= or delay="):
        enqueue(STEP, "k", 0, key="k", delay=timedelta(seconds=5))
    with pytest.raises(EnqueueError, match="key= and limit= cannot be combined"):
        enqueue(STEP, "k", 0, key="k", limit=("smtp", 2))
    with pytest.raises(EnqueueError, match="unknown limit 'fax'"):
        enqueue(STEP, "k", 0, limit="fax")
    with pytest.raises(EnqueueError, match="whole number >= 1"):
        enqueue(STEP, "k", 0, limit=("smtp", 0))
