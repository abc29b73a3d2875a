"""Redis restarts in mid-run: producers get a clear error at once, workers reconnect and
go on, and every record is reconciled afterwards. The test owns its redis-server (``own_redis``,
tests/faults/conftest.py)."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connections

from tests.conftest import wait_for
from workers import enqueue
from workers.api import QueueUnavailable
from workers.models import JobRecord, JobStatus

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def _returns_within(seconds: float, call) -> object:
    """Runs ``call`` in a thread; a hang (not slowness) fails the test."""
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except Exception as exc:
            outcome["error"] = exc
        finally:
            # The test client leaves connections open (Django's test handler skips the
            # request_finished close): one left in this thread would outlive the run.
            connections.close_all()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "hung while Redis was down"
    return outcome


def test_workers_survive_a_redis_restart_and_producers_fail_fast(own_redis, start_worker, client, settings):
    settings.ROOT_URLCONF = "tests.faults.urls_enqueue"
    worker = start_worker(extra=("--worker-ttl", "30"))
    before = [enqueue("tests.jobfuncs.nap", 0.05) for _ in range(10)]
    wait_for(lambda: JobRecord.objects.filter(status=JobStatus.FINISHED).count() == 10, timeout=60)
    during = [enqueue("tests.jobfuncs.nap", 0.3) for _ in range(10)]
    wait_for(lambda: JobRecord.objects.filter(status=JobStatus.STARTED).exists(), timeout=30)

    own_redis.stop()  # mid-run: a job is running, others are waiting

    outcome = _returns_within(30, lambda: enqueue("tests.jobfuncs.add", 1, 2))
    assert isinstance(outcome.get("error"), QueueUnavailable)
    assert "Redis is unavailable" in str(outcome["error"])
    response = _returns_within(30, lambda: client.post("/enqueue/"))["value"]
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert b"queue is unavailable" in response.content
    health = _returns_within(30, lambda: client.get("/healthz"))["value"]
    assert health.status_code == 503 and health.json()["redis"].startswith("error")
    time.sleep(2)  # the worker meets the outage in its loop, not only between jobs

    own_redis.start()

    assert worker.process.poll() is None, worker.log.read_text()[-3000:]
    after = enqueue("tests.jobfuncs.add", 20, 22)
    assert client.post("/enqueue/").status_code == 202
    expected = {job.id for job in (*before, *during, after)}
    wait_for(
        lambda: set(JobRecord.objects.filter(status=JobStatus.FINISHED).values_list("job_id", flat=True)) >= expected,
        timeout=90,
        interval=0.5,
    )
    assert JobRecord.objects.get(job_id=after.id).result_repr == "42"
    assert not JobRecord.objects.filter(status=JobStatus.STARTED).exists()
    assert worker.process.poll() is None
