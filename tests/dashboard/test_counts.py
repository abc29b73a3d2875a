"""The counts on the overview and queue pages agree with `rq info` at the same moment, and
retries waiting in RQ's scheduled registry are counted as retrying, not also as scheduled."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

import pytest
from django.conf import settings

from workers import enqueue
from workers.rq.retry import RetryPolicy

pytestmark = pytest.mark.django_db(transaction=True)


def _cells(body: str, queue: str) -> list[str]:
    row = body.split(f'data-queue="{queue}"', 1)[1].split("</tr>", 1)[0]
    return [c.split(">", 1)[1].split("<", 1)[0] for c in row.split('<td class="num')[1:]]


def _rq_info() -> dict[str, tuple[int, int]]:
    """`rq info --raw`: per queue (jobs waiting, executing)."""
    rq_cli = os.path.join(os.path.dirname(sys.executable), "rq")
    out = subprocess.run(
        [rq_cli, "info", "--raw", "--only-queues", "-u", settings.REDIS_URL],
        check=True, capture_output=True, text=True, timeout=30,
    ).stdout  # fmt: skip
    found = {}
    for line in out.splitlines():  # queue default 0, 0 executing, 0 finished, 3 failed
        if line.startswith("queue "):
            _, name, rest = line.split(" ", 2)
            waiting, executing = rest.split(", ")[:2]
            found[name] = (int(waiting), int(executing.split()[0]))
    return found


def test_scheduled_and_retrying_are_apart_and_the_rest_agrees_with_rq_info(run_burst, htmx_client, redis_conn):
    slow_retries = RetryPolicy(max_attempts=3, base=600, jitter=0)
    for n in range(3):
        enqueue("tests.jobfuncs.fail", f"retry me {n}", retry_policy=slow_retries)
    run_burst("default")  # three retrying, waiting for a 10-minute backoff
    for n in range(2):
        enqueue("tests.jobfuncs.add", n, n, delay=timedelta(minutes=5))
    for n in range(4):
        enqueue("tests.jobfuncs.add", n, n, queue="low")
    assert redis_conn.zcard("rq:scheduled:default") == 5  # RQ keeps both kinds there

    overview = htmx_client.get("/dashboard/").content.decode()
    info = _rq_info()

    # waiting, scheduled, running, retrying, dead
    assert _cells(overview, "default")[:5] == ["0", "2", "0", "3", "0"]
    assert _cells(overview, "low")[:5] == ["4", "0", "0", "0", "0"]
    for queue in ("default", "low", "high"):
        waiting, running = (int(c) for c in (_cells(overview, queue)[0], _cells(overview, queue)[2]))
        assert (waiting, running) == info.get(queue, (0, 0))
    assert "2 scheduled · 0 deferred" in overview

    page = htmx_client.get("/dashboard/queues/default/").content.decode()
    cards = {
        label: page.split(f'<div class="label">{label}</div><div class="value">', 1)[1].split("<", 1)[0]
        for label in ("Scheduled", "Retrying")
    }
    assert cards == {"Scheduled": "2", "Retrying": "3"}
    assert 'scheduled and retrying <span class="sub">5 in RQ' in page
