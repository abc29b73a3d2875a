from __future__ import annotations

import time
from collections.abc import Callable

import django_rq
import pytest
from django.conf import settings

from workers.recording.consumer import drain
from workers.runtime.worker import TrackingSimpleWorker


@pytest.fixture
def settle(transactional_db: None) -> Callable[..., None]:
    """Run a real (non-forking, in-process) jobsite worker, with RQ's scheduler, until no job is
    queued or due within a few seconds: retries with backoff included. In-process so that
    the test sees what the jobs did to process-local things such as Django's locmem outbox."""

    def run(*queues: str, timeout: float = 60.0, horizon: float = 5.0) -> None:
        names = queues or tuple(settings.JOBSITE_QUEUES)
        deadline = time.monotonic() + timeout
        while True:
            worker = django_rq.get_worker(*names, worker_class=TrackingSimpleWorker)
            worker.work(burst=True, with_scheduler=True)
            drain()
            rq_queues = [django_rq.get_queue(name) for name in names]
            soon = int(time.time() + horizon)
            busy = any(q.count for q in rq_queues) or any(
                q.scheduled_job_registry.get_jobs_to_schedule(soon) for q in rq_queues
            )
            if not busy:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"jobs still waiting after {timeout} s")
            time.sleep(0.1)

    return run
