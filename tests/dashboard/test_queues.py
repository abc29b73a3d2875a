"""Queue page: live counts and registries; pause and resume honoured by real workers."""

from __future__ import annotations

import re
import time

import pytest
from rq import Queue

from tests.conftest import wait_for
from tests.factories import JobErrorFactory
from workers import enqueue
from workers.models import JobRecord, JobStatus
from workers.recording.consumer import drain

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_paused_queue_keeps_its_jobs_waiting_until_resumed(staff_client, start_worker):
    paused = staff_client.post("/dashboard/queues/low/pause/", headers={"HX-Request": "true"})
    assert "Paused: workers leave its jobs waiting." in paused.content.decode()
    assert 'id="queue-state">paused<' in paused.content.decode()
    low = [enqueue("tests.jobfuncs.add", n, n, queue="low") for n in range(3)]
    high = enqueue("tests.jobfuncs.add", 10, 10, queue="high")
    start_worker()

    wait_for(lambda: JobRecord.objects.filter(job_id=high.id, status=JobStatus.FINISHED).exists(), timeout=30)
    time.sleep(2.5)  # a worker would have taken the low jobs by now
    drain()
    assert set(JobRecord.objects.filter(queue="low").values_list("status", flat=True)) == {JobStatus.QUEUED}
    page = staff_client.get("/dashboard/queues/low/").content.decode()
    assert 'data-col="length">3<' in page
    assert all(job.id[:10] in page for job in low)  # listed in the queued registry

    resumed = staff_client.post("/dashboard/queues/low/resume/", headers={"HX-Request": "true"})
    assert "Resumed: workers take its jobs again." in resumed.content.decode()
    wait_for(lambda: JobRecord.objects.filter(queue="low", status=JobStatus.FINISHED).count() == 3, timeout=30)
    assert 'data-col="length">0<' in staff_client.get("/dashboard/queues/low/").content.decode()


def test_pause_and_resume_are_idempotent_and_redirect_without_htmx(staff_client):
    first = staff_client.post("/dashboard/queues/default/pause/")
    assert first.status_code == 302 and first["Location"] == "/dashboard/queues/default/"
    second = staff_client.post("/dashboard/queues/default/pause/", headers={"HX-Request": "true"})
    assert "The queue was already paused." in second.content.decode()
    overview = staff_client.get("/dashboard/").content.decode()
    row = overview.split('data-queue="default"', 1)[1].split("</tr>", 1)[0]
    assert "paused" in row
    staff_client.post("/dashboard/queues/default/resume/")
    again = staff_client.post("/dashboard/queues/default/resume/", headers={"HX-Request": "true"})
    assert "The queue was not paused." in again.content.decode()


def test_a_burst_worker_skips_a_paused_queue(run_burst, staff_client):
    staff_client.post("/dashboard/queues/default/pause/")
    job = enqueue("tests.jobfuncs.add", 1, 2)
    run_burst()
    assert JobRecord.objects.get(job_id=job.id).status == JobStatus.QUEUED
    staff_client.post("/dashboard/queues/default/resume/")
    run_burst()
    assert JobRecord.objects.get(job_id=job.id).status == JobStatus.FINISHED


def test_the_queues_page_lists_every_queue_with_its_figures(staff_client, htmx_client, redis_conn):
    for n in range(3):
        enqueue("tests.jobfuncs.add", n, n, queue="low")
    Queue("reports", connection=redis_conn).enqueue("tests.jobfuncs.add", 1, 1)  # a plain RQ client's queue
    JobErrorFactory(job__queue="default")  # a dead letter
    staff_client.post("/dashboard/queues/low/pause/")

    response = staff_client.get("/dashboard/queues/")

    assert response.status_code == 200  # the page itself, no longer a redirect to the first queue
    body = response.content.decode()
    rows = re.findall(r'<tr data-queue="([^"]+)">(.*?)</tr>', body, re.S)
    assert [name for name, _ in rows] == ["high", "default", "low", "reports"]  # priority order, then the others
    row = dict(rows)
    assert 'data-col="length">3<' in row["low"] and "paused" in row["low"]
    assert 'data-col="length">1<' in row["reports"] and "running" in row["reports"]
    assert 'href="/dashboard/dead-letters/?queue=default"' in row["default"]
    assert all(f'href="/dashboard/queues/{name}/"' in row[name] for name in row)
    nav = body.split('<nav aria-label="Dashboard">', 1)[1].split("</nav>", 1)[0]
    assert re.search(r'href="/dashboard/queues/" aria-current="page"', nav)

    fragment = htmx_client.get("/dashboard/queues/").content.decode()  # the live panel alone
    assert fragment.lstrip().startswith('<section id="queues-panel"') and "<nav" not in fragment


def test_a_queue_page_links_back_to_all_queues(staff_client):
    body = staff_client.get("/dashboard/queues/low/").content.decode()
    assert 'href="/dashboard/queues/">all queues</a>' in body
    assert 'href="/dashboard/queues/default/"' in body and 'href="/dashboard/queues/high/"' in body


def test_a_pause_entry_written_by_hand_without_a_time_still_shows_the_queue_paused(staff_client, redis_conn):
    from workers.redis import PAUSED_KEY

    staff_client.post("/dashboard/queues/low/pause/")  # a good entry: the time it was paused
    redis_conn.hset(PAUSED_KEY, "high", "by hand, no time")  # another tool's entry

    response = staff_client.get("/dashboard/queues/")

    assert response.status_code == 200
    row = dict(re.findall(r'<tr data-queue="([^"]+)">(.*?)</tr>', response.content.decode(), re.S))
    assert "paused" in row["low"] and 'title="since ' in row["low"]
    assert "paused" in row["high"] and 'title="since ' not in row["high"]
    assert "running" in row["default"]
    page = staff_client.get("/dashboard/queues/high/").content.decode()
    assert 'id="queue-state">paused<' in page and "workers leave its jobs waiting" in page
