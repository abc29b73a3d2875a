"""The search box of the jobs and dead-letter pages: kept in the URL, filled by the older
filter fields, a mistake shown under the box pointing at its term, totals on the page."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.factories import JobErrorFactory, JobRecordFactory
from workers.models import JobRecord, JobStatus

pytestmark = pytest.mark.django_db


def _ids(body: str) -> list[str]:
    return [chunk.split('"', 1)[0] for chunk in body.split('data-job-id="')[1:]]


def _box(body: str) -> str:
    return html.unescape(re.search(r'<input type="search" name="q" value="([^"]*)"', body).group(1))


@pytest.fixture
def jobs():
    JobRecordFactory(job_id="a-1", queue="low", func="billing.jobs.charge", args_repr="({'order_id': 42},)",
                     args_json={"args": [{"order_id": 42}], "kwargs": {}})  # fmt: skip
    JobErrorFactory(job__job_id="d-1", job__queue="low", job__func="billing.jobs.refund",
                    job__last_error="CardError: card declined")  # fmt: skip
    JobErrorFactory(job__job_id="d-2", job__queue="high", job__func="mail.jobs.send",
                    job__last_error="SMTPError: mailbox unavailable")  # fmt: skip


def test_a_search_filters_the_list_and_stays_in_the_box_and_the_links(staff_client, jobs):
    for n in range(55):
        JobRecordFactory(job_id=f"bulk-{n:02d}", queue="low", func="billing.jobs.charge")
    body = staff_client.get("/dashboard/jobs/", {"q": "func:billing.* queue:low"}).content.decode()

    assert len(_ids(body)) == 50 and "d-2" not in _ids(body)
    assert _box(body) == "func:billing.* queue:low"
    assert "57 matching" in body
    older = re.search(r'href="/dashboard/jobs/\?([^"]*cursor=[^"]*)"', body).group(1)
    assert "q=func%3Abilling.%2A+queue%3Alow" in html.unescape(older)
    rest = staff_client.get("/dashboard/jobs/?" + html.unescape(older)).content.decode()
    assert len(_ids(rest)) == 7 and set(_ids(rest)).isdisjoint(_ids(body))


def test_the_older_filter_fields_fill_the_box_and_keep_their_meaning(staff_client, jobs):
    since = (timezone.now() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    body = staff_client.get(
        f"/dashboard/jobs/?status=dead&queue=low&func=billing.jobs.refund&since={since}&q=declined"
    ).content.decode()
    assert _ids(body) == ["d-1"]
    assert _box(body) == f"status:dead queue:low func:billing.jobs.refund after:{since} declined"


def test_a_mistake_is_shown_under_the_box_pointing_at_its_term(staff_client, jobs):
    response = staff_client.get("/dashboard/jobs/", {"q": "queue:low ab status:dead"})
    body = response.content.decode()
    assert response.status_code == 200
    assert _ids(body) == []
    assert "queue:low <mark>ab</mark> status:dead" in body
    assert "search words need 3+ characters" in body
    assert _box(body) == "queue:low ab status:dead"  # as typed, to be fixed


def test_a_search_that_does_not_parse_offers_no_bulk_action(staff_client, jobs):
    good = staff_client.get("/dashboard/jobs/", {"q": "status:dead"}).content.decode()
    assert "Retry selected" in good and "all 2 jobs matching" in good

    for page in ("/dashboard/jobs/", "/dashboard/dead-letters/"):
        bad = staff_client.get(page, {"q": "status:dead bogus:thing"}).content.decode()
        assert "unknown field &#x27;bogus&#x27;" in bad
        assert "Retry selected" not in bad and "Discard selected" not in bad
        assert '<input type="checkbox" name="all"' not in bad


def test_htmx_search_answers_the_table_with_its_total_or_its_mistake(htmx_client, jobs):
    good = htmx_client.get("/dashboard/jobs/", {"q": "args.order_id:42"}).content.decode()
    assert good.lstrip().startswith('<section id="job-table"')
    assert _ids(good) == ["a-1"] and "1 matching" in good
    bad = htmx_client.get("/dashboard/jobs/", {"q": 'error:"open'}).content.decode()
    assert bad.lstrip().startswith('<section id="job-table"')
    assert "<mark>&quot;open</mark>" in bad and "never closed" in bad


def test_the_dead_letter_list_searches_dead_letters_only(staff_client, jobs):
    body = staff_client.get("/dashboard/dead-letters/", {"q": "func:billing.*"}).content.decode()
    listing = body.split('id="dead-letter-list"', 1)[1]
    assert _ids(listing) == ["d-1"]  # a-1 matches too, but is no dead letter
    assert "1 matching" in body and _box(body) == "func:billing.*"
    older = staff_client.get("/dashboard/dead-letters/?queue=high").content.decode()
    assert _ids(older.split('id="dead-letter-list"', 1)[1]) == ["d-2"] and _box(older) == "queue:high"


def test_retry_or_discard_everything_a_search_matches(staff_client, jobs):
    page = staff_client.get("/dashboard/dead-letters/", {"q": "declined"}).content.decode()
    assert '<input type="hidden" name="q" value="declined">' in page  # the bulk form carries it

    response = staff_client.post("/dashboard/dead-letters/bulk/", {"action": "discard", "all": "1", "q": "declined"})

    assert response.status_code == 302 and response["Location"] == "/dashboard/dead-letters/?q=declined"
    discarded = set(JobRecord.objects.filter(discarded_at__isnull=False).values_list("job_id", flat=True))
    assert discarded == {"d-1"}
    assert JobRecord.objects.get(job_id="d-2").status == JobStatus.DEAD


def test_a_bulk_action_with_a_mistaken_search_acts_on_nothing(staff_client, jobs):
    response = staff_client.post(
        "/dashboard/jobs/bulk/",
        {"action": "discard", "all": "1", "q": "status:dead ab"},
        headers={"HX-Request": "true"},
    )
    assert "The filter is not valid: search words need 3+ characters" in response.content.decode()
    assert not JobRecord.objects.filter(discarded_at__isnull=False).exists()
