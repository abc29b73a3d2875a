"""The schedules and keys pages: what an operator sees and the actions they take."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from rq import Queue

import tests.schedfuncs  # noqa: F401  (registers the schedulable functions)
from workers import enqueue
from workers.models import Schedule
from workers.recording.consumer import drain
from workers.redis import KEYS_ZSET
from workers.scheduling.sync import schedule_save
from workers.scheduling.tick import schedules_fire_due

pytestmark = pytest.mark.django_db(transaction=True)

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def schedule() -> Schedule:
    return schedule_save(schedule=Schedule(name="nightly-report", func="tests.schedfuncs.tick", interval=3600))


def test_the_page_shows_next_run_last_outcome_and_recent_runs(admin_client, schedule):
    [run] = schedules_fire_due(now=schedule.next_run_at + timedelta(seconds=1))
    drain()

    page = admin_client.get("/dashboard/schedules/").content.decode()

    assert "nightly-report" in page
    assert "every 3600 s" in page
    assert f'href="/dashboard/jobs/{run.job_id}/">queued</a>' in page  # last outcome, linked to its job
    assert "No scheduler is running" in page
    next_run = Schedule.objects.get(pk=schedule.pk).next_run_at
    assert next_run.strftime("%Y-%m-%d %H:%M:%S") in page


def test_htmx_gets_only_the_table_fragment(admin_client, schedule):
    fragment = admin_client.get("/dashboard/schedules/", **HTMX).content.decode()
    assert fragment.lstrip().startswith('<section id="schedule-table"')
    assert "<html" not in fragment
    assert "nightly-report" in fragment


def test_pause_resume_and_run_now_from_the_page(admin_client, schedule, redis_conn):
    paused = admin_client.post(f"/dashboard/schedules/{schedule.pk}/pause/", **HTMX).content.decode()
    assert "nightly-report: paused" in paused
    assert ">Resume</button>" in paused
    assert Schedule.objects.get(pk=schedule.pk).is_paused
    # The scheduler leaves a paused schedule alone even when it is due.
    assert schedules_fire_due(now=timezone.now() + timedelta(hours=2)) == []

    response = admin_client.post(f"/dashboard/schedules/{schedule.pk}/resume/")  # no htmx: redirect back
    assert response.status_code == 302 and response["Location"] == "/dashboard/schedules/"
    assert admin_client.get("/dashboard/schedules/").content.decode().count("nightly-report: resumed") == 1
    assert not Schedule.objects.get(pk=schedule.pk).is_paused

    ran = admin_client.post(f"/dashboard/schedules/{schedule.pk}/run/", **HTMX).content.decode()
    assert "nightly-report: started a run now" in ran
    job_id = Schedule.objects.get(pk=schedule.pk).last_job_id
    assert [j.decode() for j in redis_conn.lrange(Queue("default", connection=redis_conn).key, 0, -1)] == [job_id]
    assert "(by hand)" in ran


def test_actions_refuse_bad_requests(admin_client, client, django_user_model, schedule):
    assert admin_client.get(f"/dashboard/schedules/{schedule.pk}/pause/").status_code == 405
    assert admin_client.post("/dashboard/schedules/999999/pause/").status_code == 404
    anonymous = client.post(f"/dashboard/schedules/{schedule.pk}/pause/")
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/login/")
    clerk = django_user_model.objects.create_user("clerk", password="pw-clerk-123")
    client.force_login(clerk)
    assert client.get("/dashboard/schedules/")["Location"].startswith("/login/")
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(django_user_model.objects.get(username="admin"))
    assert strict.post(f"/dashboard/schedules/{schedule.pk}/pause/").status_code == 403
    assert not Schedule.objects.get(pk=schedule.pk).is_paused


def test_a_broken_schedule_shows_why_and_run_now_says_it_cannot(admin_client, schedule, redis_conn):
    Schedule.objects.filter(pk=schedule.pk).update(queue="<b>gone</b>")  # a deploy removed its queue
    schedules_fire_due(now=schedule.next_run_at + timedelta(seconds=1))

    row = admin_client.get("/dashboard/schedules/", **HTMX).content.decode()
    row = row[row.index('data-schedule="nightly-report"') :]
    assert '<span class="badge badge-dead">broken</span>' in row
    assert "unknown queue &#x27;&lt;b&gt;gone&lt;/b&gt;&#x27;" in row  # the reason, escaped
    assert "tried again at" in row

    ran = admin_client.post(f"/dashboard/schedules/{schedule.pk}/run/", **HTMX).content.decode()
    assert "nightly-report cannot run: unknown queue" in ran
    assert redis_conn.llen(Queue("default", connection=redis_conn).key) == 0

    Schedule.objects.filter(pk=schedule.pk).update(queue="default")
    admin_client.post(f"/dashboard/schedules/{schedule.pk}/run/", **HTMX)  # a push that goes through mends it
    assert "badge-dead" not in admin_client.get("/dashboard/schedules/", **HTMX).content.decode()


def test_keys_page_lists_waiting_and_stalled_keys(admin_client, redis_conn):
    first = enqueue("tests.orderfuncs.step", "post:42", 0, key="post:42")
    enqueue("tests.orderfuncs.step", "post:42", 1, key="post:42")
    enqueue("tests.orderfuncs.step", "post:7", 0, key="post:7")
    redis_conn.lrem(Queue("default", connection=redis_conn).key, 0, first.id)  # a holder lost by a worker
    redis_conn.zadd(KEYS_ZSET, {"post:42": time.time() - 60})  # ... a minute ago

    page = admin_client.get("/dashboard/keys/").content.decode()

    assert page.index('data-key="post:42"') < page.index('data-key="post:7"')  # stalled first
    stalled = page[page.index('data-key="post:42"') :]
    assert '<td class="state">stalled</td>' in stalled
    assert "in no queue" in stalled
    fragment = admin_client.get("/dashboard/keys/", **HTMX).content.decode()
    assert fragment.lstrip().startswith('<section id="key-table"')
