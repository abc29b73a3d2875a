"""The companion's watchdogs right after a Redis outage (real Redis, RQ and database)."""

from __future__ import annotations

import django_rq
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from workers import enqueue
from workers.conf import setting
from workers.redis import ALIVE_KEY, WORKERS_SET, RedisOutage
from workers.rq.job import TrackedJob
from workers.runtime.companion import Companion
from workers.runtime.worker import TrackingSimpleWorker

pytestmark = pytest.mark.django_db(transaction=True)


def _started_by_a_quiet_worker(redis_conn) -> TrackedJob:
    """A job started by worker "w-quiet", which has not beaten since: no liveness key."""
    queued = enqueue("tests.jobfuncs.add", 1, 1)
    runner = django_rq.get_worker("default", worker_class=TrackingSimpleWorker, name="w-quiet")
    job = TrackedJob.fetch(queued.id, connection=runner.connection)
    runner.prepare_execution(job)
    runner.prepare_job_execution(job)
    redis_conn.sadd(WORKERS_SET, "w-quiet")
    return job


def test_after_an_outage_no_worker_is_judged_dead_before_live_ones_could_beat_again(redis_conn):
    """Liveness keys expire while Redis is away (or Redis comes back without them): a
    watchdog that ran at once would fail, and so run twice, the jobs of live workers."""
    job = _started_by_a_quiet_worker(redis_conn)

    watcher = django_rq.get_worker("default", worker_class=TrackingSimpleWorker, name="w-watch")
    outage = RedisOutage("test")
    outage.began(RedisConnectionError("gone"))
    outage.ended()
    companion = Companion(watcher, record=False, outage=outage)
    companion.beat()  # as a worker's companion does before it starts

    companion._watchdogs()
    assert job.get_status(refresh=True) == "started"  # within WORKER_ALIVE_TTL of the outage

    assert outage.ended_at is not None
    outage.ended_at -= setting("WORKER_ALIVE_TTL")
    companion._watchdogs()
    assert job.get_status(refresh=True) != "started"  # now it is dead for real: failed, retried


def test_a_watchdog_that_was_out_of_touch_itself_judges_no_worker_dead_until_the_others_could_beat(redis_conn):
    """A link down raises nothing: commands wait, and every liveness key expires meanwhile.
    The watchdog of a worker whose own key expired, like the others', waits for their beats."""
    job = _started_by_a_quiet_worker(redis_conn)
    watcher = django_rq.get_worker("default", worker_class=TrackingSimpleWorker, name="w-watch")
    companion = Companion(watcher, record=False)
    companion.beat()

    redis_conn.delete(ALIVE_KEY.format("w-watch"))  # its own key expired too: out of touch
    companion._watchdogs()
    assert job.get_status(refresh=True) == "started"
    companion.beat()  # through again: it finds its key had expired
    assert watcher._jobsite_presumed_dead is not None
    companion._watchdogs()
    assert job.get_status(refresh=True) == "started"  # within WORKER_ALIVE_TTL of that

    companion._judge_after = 0.0  # that long after it is back
    companion._watchdogs()
    assert job.get_status(refresh=True) != "started"
