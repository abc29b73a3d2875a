"""Dead letters grouped by failure; retry or discard a group, a selection or all of them."""

from __future__ import annotations

import pytest

from tests.factories import JobErrorFactory, JobRecordFactory
from workers import enqueue
from workers.models import JobRecord, JobStatus

pytestmark = pytest.mark.django_db


def _group_rows(body: str) -> dict[str, str]:
    table = body.split('id="failure-groups"', 1)[1].split("</table>", 1)[0]
    return {chunk.split('"', 1)[0]: chunk.split("</tr>", 1)[0] for chunk in table.split('data-fingerprint="')[1:]}


@pytest.mark.django_db(transaction=True)
def test_failures_group_by_exception_function_and_frame(staff_client, run_burst):
    for n in range(3):
        enqueue("tests.jobfuncs.fail", f"disk full {n}", max_attempts=1)
    enqueue("tests.jobfuncs.flaky", "other", 5, max_attempts=1)
    run_burst()

    rows = _group_rows(staff_client.get("/dashboard/dead-letters/").content.decode())

    assert len(rows) == 2
    by_type = {("ValueError" in row): row for row in rows.values()}
    assert '<td class="num"><a' in by_type[True] and ">3</a>" in by_type[True]
    assert "tests.jobfuncs.fail" in by_type[True]
    assert ">1</a>" in by_type[False] and "builtins.ConnectionError" in by_type[False]


@pytest.mark.django_db(transaction=True)
def test_retry_a_whole_group(staff_client, run_burst):
    failing = [enqueue("tests.jobfuncs.flaky", f"g{n}", 1, max_attempts=1) for n in range(2)]
    other = enqueue("tests.jobfuncs.fail", "stays dead", max_attempts=1)
    run_burst()
    body = staff_client.get("/dashboard/dead-letters/").content.decode()
    fingerprint = next(fp for fp, row in _group_rows(body).items() if "ConnectionError" in row)

    response = staff_client.post(
        "/dashboard/dead-letters/bulk/",
        {"action": "retry", "all": "1", "fingerprint": fingerprint},
        headers={"HX-Request": "true"},
    )

    assert "Retried 2 jobs." in response.content.decode()
    assert response.content.decode().lstrip().startswith('<div id="dead-letters"')
    run_burst()
    statuses = dict(JobRecord.objects.values_list("job_id", "status"))
    assert [statuses[j.id] for j in failing] == [JobStatus.FINISHED] * 2
    assert statuses[other.id] == JobStatus.DEAD


def test_discard_a_group_leaves_the_others_and_keeps_the_history(staff_client):
    for n in range(3):
        JobErrorFactory(job__job_id=f"a{n}", fingerprint="aaaa")
    JobErrorFactory(job__job_id="b0", fingerprint="bbbb")

    response = staff_client.post(
        "/dashboard/dead-letters/bulk/", {"action": "discard", "all": "1", "fingerprint": "aaaa"}
    )

    assert response.status_code == 302
    page = staff_client.get(response["Location"]).content.decode()
    assert "Discarded 3 jobs." in page
    rows = _group_rows(staff_client.get("/dashboard/dead-letters/").content.decode())
    assert list(rows) == ["bbbb"]
    assert JobRecord.objects.filter(job_id__startswith="a", discarded_at__isnull=False).count() == 3
    assert JobRecord.objects.get(job_id="a0").errors.count() == 1


def test_the_list_shows_only_undiscarded_dead_letters_and_filters_them(staff_client):
    JobErrorFactory(job__job_id="dl-low", job__queue="low")
    JobErrorFactory(job__job_id="dl-high", job__queue="high")
    JobErrorFactory(job__job_id="dl-gone", job__discarded_at="2026-01-01T00:00Z")
    body = staff_client.get("/dashboard/dead-letters/").content.decode()
    listing = body.split('id="dead-letter-list"', 1)[1]
    assert "dl-low" in listing and "dl-high" in listing and "dl-gone" not in listing
    filtered = staff_client.get("/dashboard/dead-letters/?queue=low").content.decode().split('id="dead-letter-list"')[1]
    assert "dl-low" in filtered and "dl-high" not in filtered
    bad = staff_client.get("/dashboard/dead-letters/?fingerprint=<script>").content.decode()
    assert "Enter a valid value" in bad and "<script>" not in bad.split("<main>", 1)[1]
    assert JobRecord.objects.filter(status=JobStatus.DEAD).count() == 3


def test_a_dead_letter_without_a_recorded_failure_forms_no_group(staff_client):
    # Say, a record from before fingerprints were kept whose errors were pruned: it is in
    # the plain list, but no "retry group" button may stand for "every dead letter".
    bare = JobRecordFactory(status=JobStatus.DEAD, attempts=1)
    grouped = JobErrorFactory(fingerprint="beef").job

    body = staff_client.get("/dashboard/dead-letters/").content.decode()

    assert set(_group_rows(body)) == {"beef"}
    assert bare.job_id[:8] in body and grouped.job_id[:8] in body
