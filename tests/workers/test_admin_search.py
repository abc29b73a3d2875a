"""The job records' admin changelist stays flat with history: no DISTINCT over every record,
no COUNT(*) of the whole table, the dashboard's search language on the same indexes."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.factories import JobErrorFactory, JobRecordFactory
from workers.models import JobStatus

pytestmark = pytest.mark.django_db
URL = "/admin/workers/jobrecord/"


@pytest.fixture
def admin_client_() -> Client:
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("root", password="pw"))
    return client


def _rows(body: str) -> list[str]:
    return re.findall(r'<th class="field-job_id"><a href="[^"]+">([^<]+)</a>', body)


def _total(body: str) -> str:
    return html.unescape(re.search(r'<span id="jobrecord-total">([^<]*)</span>', body).group(1))


def test_the_changelist_reads_no_distinct_and_counts_within_a_bound(admin_client_):
    JobRecordFactory.create_batch(3, queue="low")
    with CaptureQueriesContext(connection) as queries:
        body = admin_client_.get(URL).content.decode()

    record_queries = [q["sql"] for q in queries.captured_queries if "workers_jobrecord" in q["sql"]]
    assert not [sql for sql in record_queries if "DISTINCT" in sql.upper()]  # date_hierarchy, queue choices
    counts = [sql for sql in record_queries if "COUNT(" in sql.upper()]
    assert counts and all("LIMIT" in sql.upper() for sql in counts), counts
    assert len(_rows(body)) == 3 and _total(body) == "3"
    # The queue filter lists the configured queues (none of them read from the records).
    for queue in ("high", "default", "low"):
        assert f"?queue={queue}" in body


def test_filters_by_queue_and_recent_enqueue_windows(admin_client_):
    now = timezone.now()
    JobRecordFactory(job_id="new-low", queue="low", enqueued_at=now - timedelta(minutes=5))
    JobRecordFactory(job_id="old-low", queue="low", enqueued_at=now - timedelta(days=3))
    JobRecordFactory(job_id="new-high", queue="high", enqueued_at=now - timedelta(minutes=5))

    assert sorted(_rows(admin_client_.get(URL, {"queue": "low"}).content.decode())) == ["new-low", "old-low"]
    assert sorted(_rows(admin_client_.get(URL, {"enqueued": "24h"}).content.decode())) == ["new-high", "new-low"]
    both = admin_client_.get(URL, {"enqueued": "7d", "queue": "low"}).content.decode()
    assert sorted(_rows(both)) == ["new-low", "old-low"]


def test_the_admin_search_is_the_search_language(admin_client_):
    JobErrorFactory(job__job_id="7334c2-dead", job__func="billing.jobs.charge", job__last_error="X: does not exist")
    JobRecordFactory(job_id="7334c2-done", func="billing.jobs.charge", status=JobStatus.FINISHED)
    JobRecordFactory(job_id="other", func="mail.jobs.send", args_repr="('7334c2',)")

    def search(text):
        return sorted(_rows(admin_client_.get(URL, {"q": text}).content.decode()))

    assert search("status:dead func:billing.*") == ["7334c2-dead"]
    assert search('error:"does not exist"') == ["7334c2-dead"]
    assert search("id:7334c2") == ["7334c2-dead", "7334c2-done"]
    assert search("7334c2") == ["7334c2-dead", "7334c2-done", "other"]  # ids' starts and arguments
    assert search("7334c2-done") == ["7334c2-done"]  # a whole job id
    assert search("-func:billing.*") == ["other"]


def test_a_search_mistake_is_a_message_not_an_error_page(admin_client_):
    JobRecordFactory(job_id="kept")
    response = admin_client_.get(URL, {"q": "status:exploded"}, follow=True)
    body = response.content.decode()
    assert response.status_code == 200
    assert "unknown status" in html.unescape(body) and "status:exploded" in html.unescape(body)
    assert _rows(body) == []


def test_above_the_bound_the_total_is_an_estimate(admin_client_, settings):
    settings.JOBSITE = {**settings.JOBSITE, "EXACT_COUNT_LIMIT": 5}
    JobRecordFactory.create_batch(12)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE workers_jobrecord")
    body = admin_client_.get(URL).content.decode()
    assert len(_rows(body)) == 12
    assert _total(body) == ("about 12" if connection.vendor == "postgresql" else "more than 5")
    searched = admin_client_.get(URL, {"q": "status:finished"}).content.decode()
    assert "matching" in searched and len(_rows(searched)) == 12
