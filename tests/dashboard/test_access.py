"""Every page and action: staff only, POST with CSRF for actions, 404 for unknown ids."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from tests.factories import JobRecordFactory

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
    assert response["Location"].startswith("/admin/login/")


@pytest.mark.parametrize("url", PAGES + ACTIONS)
def test_a_user_who_is_not_staff_is_sent_to_the_login_page(job, url):
    user = get_user_model().objects.create_user("visitor", password="pw", is_staff=False)
    client = Client()
    client.force_login(user)
    path = url.format(job=job.job_id)
    response = client.get(path) if url in PAGES else client.post(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


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
