"""``/dashboard/audit/``: the trail with filters (who, action, target, date), pages, the jobs
of a bulk action; read only. And a job's page names who acted on it."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.factories import JobErrorFactory
from workers.models import AuditEntry
from workers.services.audit import Actor
from workers.services.jobs import dead_letter_discard, dead_letter_discard_many
from workers.services.queues import queue_pause

pytestmark = pytest.mark.django_db


def _rows(body: str) -> list[str]:
    table = body.split('id="audit-list"', 1)[1].split("</table>", 1)[0]
    return re.findall(r'data-audit-id="(\d+)"', table)


@pytest.fixture
def trail():
    for n in range(3):
        JobErrorFactory(job__job_id=f"dl-{n}")
    dead_letter_discard(job_id="dl-0", actor=Actor("alice", address="192.0.2.1"))
    bulk = dead_letter_discard_many(job_ids=["dl-1", "dl-2"], actor=Actor("bob"))
    queue_pause(name="low", actor=Actor("alice"))
    AuditEntry.objects.filter(target_kind="queue").update(at=timezone.now() + timedelta(minutes=1))
    return bulk


def test_the_trail_newest_first_a_bulk_action_as_one_row(staff_client, trail):
    body = staff_client.get("/dashboard/audit/").content.decode()

    entries = {e.pk: e for e in AuditEntry.objects.all()}
    rows = [entries[int(pk)] for pk in _rows(body)]
    assert [(e.actor, e.action) for e in rows] == [
        ("alice", "queue.pause"),
        ("bob", "bulk.discard"),
        ("alice", "dead_letter.discard"),
    ]
    assert "192.0.2.1" in body and "Discarded 2 jobs." in body
    bulk = rows[1]
    assert f'href="/dashboard/audit/?bulk={bulk.pk}"' in body

    jobs_of_bulk = staff_client.get(f"/dashboard/audit/?bulk={bulk.pk}").content.decode()
    assert {entries[int(pk)].target_id for pk in _rows(jobs_of_bulk)} == {"dl-1", "dl-2"}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("actor=alice", [("alice", "queue.pause"), ("alice", "dead_letter.discard")]),
        ("action=bulk.discard", [("bob", "bulk.discard")]),
        ("target=dl-2", [("bob", "dead_letter.discard")]),  # found inside the bulk action
        ("target=low&actor=alice", [("alice", "queue.pause")]),
    ],
)
def test_filters(staff_client, trail, query, expected):
    body = staff_client.get(f"/dashboard/audit/?{query}").content.decode()
    entries = {e.pk: e for e in AuditEntry.objects.all()}
    assert [(entries[int(pk)].actor, entries[int(pk)].action) for pk in _rows(body)] == expected


def test_a_date_range_and_pages(staff_client, trail):
    since = (timezone.now() + timedelta(seconds=30)).strftime("%Y-%m-%dT%H:%M:%S")
    body = staff_client.get(f"/dashboard/audit/?since={since}").content.decode()
    assert len(_rows(body)) == 1  # only the queue pause, a minute on

    for n in range(55):
        queue_pause(name="high", actor=Actor(f"user{n}"))
    first = staff_client.get("/dashboard/audit/").content.decode()
    cursor = re.search(r"cursor=([\d_]+)", first)[1]
    second = staff_client.get(f"/dashboard/audit/?cursor={cursor}").content.decode()
    assert len(_rows(first)) == 50 and len(_rows(second)) == 8
    assert not set(_rows(first)) & set(_rows(second))


@pytest.mark.parametrize(
    "query",
    ["action=job.delete", "since=yesterday", "cursor=abc", "cursor=99999999999999999999_1", "bulk=-1",
     "target=%00", "target=<script>", "since=2026-01-02&until=2026-01-01"],
)  # fmt: skip
def test_a_malformed_filter_is_a_message_not_a_500(staff_client, trail, query):
    response = staff_client.get(f"/dashboard/audit/?{query}")
    assert response.status_code == 200
    body = response.content.decode()
    assert 'class="notice error"' in body and _rows(body) == []
    assert "<script>" not in body.split("<main>", 1)[1]


def test_the_page_edits_nothing(staff_client, trail):
    assert staff_client.post("/dashboard/audit/", {"actor": "x"}).status_code == 405
    assert AuditEntry.objects.filter(actor="x").count() == 0


def test_a_jobs_page_names_who_acted_on_it(staff_client):
    JobErrorFactory(job__job_id="gone")
    staff_client.post("/dashboard/dead-letters/bulk/", {"action": "discard", "job_id": "gone"})
    body = staff_client.get("/dashboard/jobs/gone/").content.decode()
    timeline = body.split('class="timeline"', 1)[1].split("</ol>", 1)[0]
    assert "discarded by operator" in timeline and "(bulk action)" in timeline
    assert timeline.count("discarded") == 1
    assert 'id="job-attempt">attempt 1 of 3<' in body
