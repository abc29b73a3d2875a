"""Paused queues at the dequeue itself (workers/rq/pausing.py): the pause check and the pop
are one Lua call while jobs are ready, and a worker blocked on its queues hands back a
job whose queue was paused meanwhile."""

from __future__ import annotations

import threading

import pytest
from django.conf import settings
from redis import Redis
from rq.exceptions import DequeueTimeout
from rq.intermediate_queue import IntermediateQueue

from tests.conftest import wait_for
from workers import enqueue
from workers.redis import PAUSED_KEY
from workers.rq.job import TrackedJob
from workers.rq.queue import TrackedQueue

pytestmark = pytest.mark.django_db(transaction=True)


def _queues(redis_conn: Redis, *names: str) -> list[TrackedQueue]:
    return [TrackedQueue(name, connection=redis_conn, job_class=TrackedJob) for name in names]


def _blocked(redis_conn: Redis) -> bool:
    return any(client.get("cmd") in ("blmove", "blpop") for client in redis_conn.client_list())


def test_a_ready_job_of_a_paused_queue_is_left_and_the_next_queue_is_served(redis_conn):
    high, default = _queues(redis_conn, "high", "default")
    waiting = enqueue("tests.jobfuncs.add", 1, 1, queue="high")
    ready = enqueue("tests.jobfuncs.add", 2, 2, queue="default")
    redis_conn.hset(PAUSED_KEY, "high", "1700000000")
    job, queue = TrackedQueue.dequeue_any([high, default], None, connection=redis_conn, job_class=TrackedJob)
    assert (job.id, queue.name) == (ready.id, "default")
    assert high.get_job_ids() == [waiting.id]
    assert TrackedQueue.dequeue_any([high, default], None, connection=redis_conn, job_class=TrackedJob) is None


@pytest.mark.parametrize("names", [("default",), ("default", "low")], ids=["one queue", "two queues"])
def test_a_job_whose_queue_is_paused_while_the_worker_blocks_goes_back_in_front(redis_conn, names):
    queues = _queues(redis_conn, *names)
    outcome: list[object] = []

    def dequeue() -> None:
        client = Redis.from_url(settings.REDIS_URL)
        try:
            outcome.append(TrackedQueue.dequeue_any(queues, 2, connection=client, job_class=TrackedJob))
        except DequeueTimeout as exc:
            outcome.append(exc)

    thread = threading.Thread(target=dequeue)
    thread.start()
    wait_for(lambda: _blocked(redis_conn))
    with redis_conn.pipeline() as pipe:  # paused, and a job arrives, while it blocks
        pipe.hset(PAUSED_KEY, "default", "1700000000")
        pipe.rpush(queues[0].key, "job-that-waits")
        pipe.execute()
    thread.join(timeout=10)
    assert isinstance(outcome[0], DequeueTimeout)
    assert queues[0].get_job_ids() == ["job-that-waits"]
    assert redis_conn.llen(IntermediateQueue.get_intermediate_queue_key(queues[0].key)) == 0
