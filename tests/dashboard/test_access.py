"""Every page and action: staff only, POST with CSRF for actions, 404 for unknown ids; viewers
without workers.operate_jobs see the pages without the buttons they may not use."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

import tests.schedfuncs  # noqa: F401  (registers the schedulable functions)
from examples.models import EtlPage, EtlRun
from tests.factories import JobErrorFactory, JobRecordFactory
from workers.models import JobStatus, Schedule
from workers.scheduling.sync import schedule_save

pytestmark = pytest.mark.django_db

PAGES = [
    "/dashboard/",
    "/dashboard/jobs/",
    "/dashboard/jobs/{job}/",
    "/dashboard/dead-letters/",
    "/dashboard/workers/",
    "/dashboard/queues/",
    "/dashboard/queues/default/",
    "/dashboard/unapplied-events/",
]
ACTIONS = [
    "/dashboard/jobs/{job}/retry/",
    "/dashboard/jobs/{job}/retry-now/",
    "/dashboard/jobs/{job}/cancel/",
    "/dashboard/jobs/{job}/run-again/",
    "/dashboard/jobs/bulk/",
    "/dashboard/dead-letters/bulk/",
    "/dashboard/queues/default/pause/",
    "/dashboard/queues/default/resume/",
    "/dashboard/unapplied-events/delete/",
]


@pytest.fixture
def job():
    return JobRecordFactory(job_id="known-job")


@pytest.mark.parametrize("url", PAGES + ACTIONS)
def test_anonymous_is_sent_to_the_login_page(client, job, url):
    response = client.get(url.format(job=job.job_id)) if url in PAGES else client.post(url.format(job=job.job_id))
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


@pytest.mark.parametrize("url", PAGES + ACTIONS)
def test_a_user_who_is_not_staff_is_sent_to_the_login_page(job, url):
    user = get_user_model().objects.create_user("visitor", password="pw", is_staff=False)
    client = Client()
    client.force_login(user)
    path = url.format(job=job.job_id)
    response = client.get(path) if url in PAGES else client.post(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


@pytest.mark.parametrize("url", ACTIONS)
def test_actions_refuse_get(staff_client, job, url):
    assert staff_client.get(url.format(job=job.job_id)).status_code == 405


@pytest.mark.parametrize("url", ACTIONS)
def test_actions_without_csrf_token_are_forbidden(staff, job, url):
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    response = client.post(url.format(job=job.job_id), {"action": "retry", "job_id": job.job_id})
    assert response.status_code == 403


@pytest.mark.parametrize(
    "url",
    [
        "/dashboard/jobs/no-such-job/",
        "/dashboard/jobs/no-such-job/retry/",
        "/dashboard/jobs/no-such-job/cancel/",
        "/dashboard/jobs/no-such-job/run-again/",
        "/dashboard/queues/no-such-queue/",
        "/dashboard/queues/no-such-queue/pause/",
        "/dashboard/queues/no-such-queue/resume/",
    ],
)
def test_unknown_ids_give_404(staff_client, url):
    response = staff_client.get(url) if url.endswith("-job/") or url.endswith("-queue/") else staff_client.post(url)
    assert response.status_code == 404


def test_pages_answer_htmx_with_only_their_fragment(htmx_client, job):
    for url in ("/dashboard/", "/dashboard/jobs/", "/dashboard/dead-letters/", "/dashboard/workers/",
                "/dashboard/queues/default/", f"/dashboard/jobs/{job.job_id}/"):  # fmt: skip
        body = htmx_client.get(url).content.decode()
        assert "<html" not in body and "<nav" not in body, url
        assert body.lstrip().startswith(("<div id=", "<section id=")), url


# Viewers (staff without workers.operate_jobs) see no button whose action would answer 403.
BUTTONS = {
    "/dashboard/jobs/dead-job/": {"Retry", "Run again"},
    "/dashboard/jobs/": {"Retry selected", "Discard selected"},
    "/dashboard/dead-letters/": {"Retry group", "Discard group", "Retry selected", "Discard selected"},
    "/dashboard/queues/default/": {"Pause"},
    "/dashboard/schedules/": {"Pause", "Run now"},
    "/dashboard/examples/": {"Send a campaign now", "Start an ETL run now", "Rerun the whole run", "Rerun"},
}
# Buttons that do not act: the header's live toggle and the list filters and searches (GET forms).
HARMLESS = {"Pause live updates", "Filter", "Search"}


@pytest.fixture
def something_to_act_on():
    JobErrorFactory(job=JobRecordFactory(job_id="dead-job", status=JobStatus.DEAD))
    schedule_save(schedule=Schedule(name="nightly-report", func="tests.schedfuncs.tick", interval=3600))
    run = EtlRun.objects.create(lo=0, hi=10, page_size=10)
    EtlPage.objects.create(run=run, lo=1, hi=11, stage=EtlPage.Stage.LOAD, status=EtlPage.Status.FAILED)


# Nor does the copy button beside a job id. (The header, with its theme toggle and its Log
# out form, is left out of the check.)
COPY = {"copy"}


def _buttons(body: str) -> set[str]:
    return {re.sub(r"<[^>]+>", "", label).strip() for label in re.findall(r"<button[^>]*>(.*?)</button>", body, re.S)}


@pytest.mark.parametrize("url", BUTTONS)
def test_a_viewer_sees_the_pages_without_action_buttons(url, something_to_act_on):
    viewer = get_user_model().objects.create_user("viewer", password="pw", is_staff=True)
    for headers in ({}, {"HX-Request": "true"}):  # the page and its live fragment
        client = Client(headers=headers)
        client.force_login(viewer)

        response = client.get(url)

        assert response.status_code in (200, 286), url  # 286: an ended job's panel stops polling
        body = re.sub(r"<header.*?</header>", "", response.content.decode(), flags=re.S)
        assert _buttons(body) <= HARMLESS | COPY, url
        assert 'method="post"' not in body and "hx-post" not in body
        assert 'name="job_id"' not in body  # no selection without an action to take it


@pytest.mark.parametrize("url", BUTTONS)
def test_an_operator_sees_the_action_buttons(staff_client, url, something_to_act_on):
    body = staff_client.get(url).content.decode()

    assert BUTTONS[url] <= _buttons(body)
