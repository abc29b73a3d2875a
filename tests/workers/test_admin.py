"""The Django admin: read-only records with their error history, retry and discard actions."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from tests.factories import JobErrorFactory, JobRecordFactory
from workers import enqueue
from workers.models import JobRecord, JobStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_() -> Client:
    user = get_user_model().objects.create_superuser("root", password="pw")
    client = Client()
    client.force_login(user)
    return client


def test_change_page_shows_error_history_read_only(admin_client_):
    error = JobErrorFactory(job__job_id="adm-1", message="gateway <timeout>")
    body = admin_client_.get(f"/admin/workers/jobrecord/{error.job.pk}/change/").content.decode()
    assert "gateway &lt;timeout&gt;" in body
    assert 'name="status"' not in body  # no editable fields
    listing = admin_client_.get("/admin/workers/jobrecord/?q=adm-1").content.decode()
    assert "adm-1" in listing


def test_discard_action_calls_the_service(admin_client_):
    dead = JobErrorFactory(job__job_id="adm-dead").job
    fine = JobRecordFactory(job_id="adm-fine", status=JobStatus.FINISHED)
    selection = {"action": "discard_jobs", "_selected_action": [dead.pk, fine.pk]}

    asked = admin_client_.post("/admin/workers/jobrecord/", selection).content.decode()
    assert "Discard 2 dead letters?" in asked  # asks first, like Django's "delete selected"
    assert JobRecord.objects.get(pk=dead.pk).discarded_at is None

    response = admin_client_.post("/admin/workers/jobrecord/", {**selection, "post": "yes"}, follow=True)
    assert "Discarded 1 job; skipped 1" in response.content.decode()
    assert JobRecord.objects.get(pk=dead.pk).discarded_at is not None


@pytest.mark.django_db(transaction=True)
def test_retry_action_reruns_a_dead_job(admin_client_, run_burst):
    job = enqueue("tests.jobfuncs.flaky", "admin", 1, max_attempts=1)
    run_burst()
    record = JobRecord.objects.get(job_id=job.id)
    response = admin_client_.post(
        "/admin/workers/jobrecord/",
        {"action": "retry_jobs", "_selected_action": [record.pk], "post": "yes"},
        follow=True,
    )
    assert "Retried 1 job." in response.content.decode()
    run_burst()
    assert JobRecord.objects.get(pk=record.pk).status == JobStatus.FINISHED
