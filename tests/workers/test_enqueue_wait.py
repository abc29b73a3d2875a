"""JOBSITE["ENQUEUE_WAIT"]: enqueue() acknowledges a job only once a replica has it (Redis
WAIT), so an asynchronous-replication fail-over cannot lose an acknowledged job. Real
master and replica, the test's own; a partition is the replica frozen and cut off."""

from __future__ import annotations

import pytest
from redis import Redis

from tests.redis_servers import RedisServers
from workers import enqueue
from workers.api import EnqueueNotReplicated, QueueUnavailable

pytestmark = pytest.mark.django_db(transaction=True)

# A replica that is there answers WAIT within milliseconds, but a loaded machine may not
# run it for a while: the first loaded `make test` saw 0 of 1 within 1000 ms.
WAIT = {"replicas": 1, "timeout_ms": 15000}
# Where no replica can answer, the wait runs out whatever its length: keep it short.
WAIT_CUT_OFF = {"replicas": 1, "timeout_ms": 1000}


@pytest.fixture
def servers(tmp_path, settings):
    with RedisServers(tmp_path, replicas=1) as servers:
        settings.REDIS_URL = f"redis://127.0.0.1:{servers.master.port}/0"
        yield servers


def queued(client: Redis) -> list[str]:
    return [job_id.decode() for job_id in client.lrange("rq:queue:default", 0, -1)]


def test_with_enqueue_wait_a_job_is_acknowledged_only_when_a_replica_has_it(servers, settings, client):
    replica = servers.replicas[0].client()
    settings.JOBSITE = {**settings.JOBSITE, "ENQUEUE_WAIT": WAIT}

    job = enqueue("tests.jobfuncs.add", 1, 2)

    assert replica.exists(f"rq:job:{job.id}") and queued(replica) == [job.id]  # at once: WAIT saw to it

    servers.partition_replicas()
    settings.JOBSITE = {**settings.JOBSITE, "ENQUEUE_WAIT": WAIT_CUT_OFF}
    with pytest.raises(QueueUnavailable) as refused:
        enqueue("tests.jobfuncs.add", 3, 4)
    assert isinstance(refused.value, EnqueueNotReplicated)
    assert "0 of the 1 replica(s)" in str(refused.value) and "not acknowledged" in str(refused.value)
    # A view that enqueues answers 503 (try again), as when Redis is down.
    settings.ROOT_URLCONF = "tests.faults.urls_enqueue"
    response = client.post("/enqueue/")
    assert response.status_code == 503 and response["Retry-After"]

    # Without the setting, the master acknowledges a job no replica can have yet: this is
    # the job an asynchronous fail-over loses (tests/faults/test_sentinel_failover.py).
    settings.JOBSITE = {**settings.JOBSITE, "ENQUEUE_WAIT": None}
    acknowledged = enqueue("tests.jobfuncs.add", 5, 6)
    assert acknowledged.id in queued(servers.master.client())
    servers.heal_replicas()


def test_enqueue_wait_covers_writes_made_on_another_connection_of_the_pool(servers):
    """WAIT only covers what its own connection wrote, and enqueue's writes may have gone
    out on another connection of the pool (a keyed job's script, another thread's turn)."""
    from workers.redis import connection, replicas_wait

    client = connection()
    pool = client.connection_pool
    older, other = pool.get_connection(), pool.get_connection()
    pool.release(older)  # WAIT gets this one, opened before the write below
    servers.freeze_replicas()  # linked, but taking nothing in
    try:
        other.send_command("SET", "written-elsewhere", "1")
        assert other.read_response() == b"OK"

        assert replicas_wait(client, replicas=1, timeout_ms=100) == 0
        servers.heal_replicas()
        assert replicas_wait(client, replicas=1, timeout_ms=5000) == 1
    finally:
        pool.release(other)
    assert servers.replicas[0].client().get("written-elsewhere") == b"1"
