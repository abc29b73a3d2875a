"""The jobs list: filters, bad filters as messages, stable keyset pages, bulk actions."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.factories import JobErrorFactory, JobRecordFactory
from workers import enqueue
from workers.models import JobRecord, JobStatus

pytestmark = pytest.mark.django_db


def _ids(response) -> list[str]:
    body = response.content.decode()
    return [chunk.split('"', 1)[0] for chunk in body.split('data-job-id="')[1:]]


def test_filters_by_status_queue_function_and_text(staff_client):
    JobRecordFactory(job_id="j-7f3e", status=JobStatus.FINISHED, queue="high", func="shop.jobs.receipt")
    JobRecordFactory(
        job_id="b", status=JobStatus.DEAD, queue="low", func="shop.jobs.receipt", last_error="KeyError: 'sku'"
    )
    JobRecordFactory(job_id="c", status=JobStatus.DEAD, queue="low", func="media.jobs.resize", args_repr="('cat.png',)")

    assert _ids(staff_client.get("/dashboard/jobs/?status=dead")) == ["c", "b"]
    assert _ids(staff_client.get("/dashboard/jobs/?queue=high")) == ["j-7f3e"]
    assert _ids(staff_client.get("/dashboard/jobs/?func=shop.jobs.receipt")) == ["b", "j-7f3e"]
    assert _ids(staff_client.get("/dashboard/jobs/?q=sku")) == ["b"]
    assert _ids(staff_client.get("/dashboard/jobs/?q=cat.png")) == ["c"]
    assert _ids(staff_client.get("/dashboard/jobs/?q=j-7f3e")) == ["j-7f3e"]  # an exact job id


def test_date_range_filters_on_enqueue_time(staff_client):
    now = timezone.now().replace(microsecond=0)
    JobRecordFactory(job_id="old", enqueued_at=now - timedelta(days=3))
    JobRecordFactory(job_id="new", enqueued_at=now - timedelta(hours=1))
    since = (now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    assert _ids(staff_client.get(f"/dashboard/jobs/?since={since}")) == ["new"]
    until = (now - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    assert _ids(staff_client.get(f"/dashboard/jobs/?until={until}")) == ["old"]


@pytest.mark.parametrize(
    "query, message",
    [
        ("status=exploded", "unknown status &#x27;exploded&#x27;"),
        ("q=status:exploded", "unknown status &#x27;exploded&#x27;"),
        ("since=yesterday-ish", "not a date"),
        ("since=2026-01-02T00:00&until=2026-01-01T00:00", "after: must be earlier than before:"),
        ("cursor=%27%3B+DROP+TABLE", "page link is malformed"),
        ("cursor=99999999999999999999_1", "page link is malformed"),
        ("q=" + "x" * 600, "at most 500 characters"),
    ],
)
def test_a_malformed_filter_is_a_message_on_the_page(staff_client, query, message):
    JobRecordFactory()
    response = staff_client.get(f"/dashboard/jobs/?{query}")
    assert response.status_code == 200
    assert message in response.content.decode()
    assert _ids(response) == []


def test_keyset_pages_stay_stable_while_new_jobs_arrive(staff_client, settings):
    base = timezone.now() - timedelta(hours=1)
    for n in range(120):
        JobRecordFactory(job_id=f"j{n:03d}", enqueued_at=base + timedelta(seconds=n))
    first = staff_client.get("/dashboard/jobs/")
    assert _ids(first)[:2] == ["j119", "j118"] and len(_ids(first)) == 50
    cursor = first.content.decode().split("cursor=", 1)[1].split('"', 1)[0]
    for n in range(5):  # new jobs arrive while the operator reads page one
        JobRecordFactory(job_id=f"late{n}", enqueued_at=timezone.now())
    second = staff_client.get(f"/dashboard/jobs/?cursor={cursor}")
    assert _ids(second) == [f"j{n:03d}" for n in range(69, 19, -1)]


def test_htmx_filter_answers_only_the_table(htmx_client):
    JobRecordFactory(job_id="x1", status=JobStatus.DEAD)
    body = htmx_client.get("/dashboard/jobs/?status=dead").content.decode()
    assert body.lstrip().startswith('<section id="job-table"')
    assert "x1" in body and '<form class="filters"' not in body


@pytest.mark.django_db(transaction=True)
def test_bulk_retry_of_selected_dead_jobs_runs_them_again(staff_client, run_burst):
    jobs = [enqueue("tests.jobfuncs.flaky", f"bulk{n}", 1, max_attempts=1) for n in range(3)]
    run_burst()
    assert set(JobRecord.objects.values_list("status", flat=True)) == {JobStatus.DEAD}

    response = staff_client.post(
        "/dashboard/jobs/bulk/",
        {"action": "retry", "job_id": [jobs[0].id, jobs[1].id]},
        headers={"HX-Request": "true"},
    )
    assert "Retried 2 jobs." in response.content.decode()
    again = staff_client.post(
        "/dashboard/jobs/bulk/", {"action": "retry", "job_id": [jobs[0].id]}, headers={"HX-Request": "true"}
    )
    assert "Retried 0 jobs; skipped 1" in again.content.decode()  # a double click retries once
    run_burst()
    statuses = dict(JobRecord.objects.values_list("job_id", "status"))
    assert statuses == {jobs[0].id: "finished", jobs[1].id: "finished", jobs[2].id: "dead"}


def test_bulk_discard_everything_matching_the_filter(staff_client):
    JobErrorFactory(job__job_id="d1", job__queue="low")
    JobErrorFactory(job__job_id="d2", job__queue="low")
    JobErrorFactory(job__job_id="d3", job__queue="high")

    response = staff_client.post(
        "/dashboard/jobs/bulk/", {"action": "discard", "all": "1", "status": "dead", "queue": "low"}
    )

    # The older filter fields come back as the search they stand for.
    assert response.status_code == 302 and response["Location"] == "/dashboard/jobs/?q=status%3Adead+queue%3Alow"
    discarded = set(JobRecord.objects.filter(discarded_at__isnull=False).values_list("job_id", flat=True))
    assert discarded == {"d1", "d2"}
    page = staff_client.get(response["Location"]).content.decode()
    assert "Discarded 2 jobs." in page


def test_bulk_without_a_selection_or_with_a_bad_action_says_so(staff_client):
    JobRecordFactory(job_id="keep", status=JobStatus.DEAD)
    nothing = staff_client.post("/dashboard/jobs/bulk/", {"action": "retry"}, headers={"HX-Request": "true"})
    assert "Select at least one job" in nothing.content.decode()
    bad = staff_client.post(
        "/dashboard/jobs/bulk/", {"action": "explode", "job_id": "keep"}, headers={"HX-Request": "true"}
    )
    assert "Select a valid choice" in bad.content.decode()
    assert JobRecord.objects.get(job_id="keep").discarded_at is None
