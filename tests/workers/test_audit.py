"""The audit trail: every operator action is written with who, when, what, the outcome and
the client address, next to its effect; refused actions too; nobody edits it; it expires."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from tests.conftest import create_operator
from tests.factories import JobErrorFactory, JobRecordFactory
from workers import enqueue
from workers.models import AuditEntry, JobRecord, JobStatus, Schedule
from workers.services.audit import Actor, client_address
from workers.services.jobs import dead_letter_discard, dead_letter_discard_many
from workers.services.retention import retention_apply

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


@pytest.fixture
def alice() -> Client:
    client = Client(REMOTE_ADDR="192.0.2.10")
    client.force_login(create_operator("alice", "pw"))
    return client


def _entries(**filters) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(**filters).order_by("at", "id"))


@pytest.mark.django_db(transaction=True)
def test_a_retry_from_the_dashboard_names_who_when_what_and_from_where(alice, run_burst):
    job = enqueue("tests.jobfuncs.flaky", "audited", 1, max_attempts=1)
    run_burst()
    before = timezone.now()

    alice.post(f"/dashboard/jobs/{job.id}/retry/", headers=HTMX)

    [entry] = _entries()
    assert (entry.actor, entry.actor_id) == ("alice", get_user_model().objects.get(username="alice").pk)
    assert (entry.action, entry.target_kind, entry.target_id) == ("job.retry", "job", job.id)
    assert (entry.outcome, entry.count, entry.client_address) == ("ok", 1, "192.0.2.10")
    assert entry.detail == "queued for attempt 2 of 2"
    assert before <= entry.at <= timezone.now()


def test_a_refused_action_is_written_with_its_reason_and_changes_nothing(alice):
    finished = JobRecordFactory(job_id="done-1", status=JobStatus.FINISHED)

    answer = alice.post(f"/dashboard/jobs/{finished.job_id}/cancel/", headers=HTMX).content.decode()

    assert "only waiting or running jobs can be canceled" in answer
    [entry] = _entries()
    assert (entry.action, entry.target_id, entry.outcome, entry.count) == ("job.cancel", "done-1", "refused", 0)
    assert "is finished; only waiting or running jobs can be canceled" in entry.detail
    assert JobRecord.objects.get(job_id="done-1").status == JobStatus.FINISHED


def test_discard_is_written_with_the_moment_it_took_effect(alice):
    dead = JobErrorFactory(job__job_id="dl-1").job

    alice.post("/dashboard/dead-letters/bulk/", {"action": "discard", "job_id": ["dl-1", "not-dead"]})

    bulk = AuditEntry.objects.get(parent__isnull=True)
    assert (bulk.action, bulk.count, bulk.outcome, bulk.filters) == ("bulk.discard", 1, "partial", {})
    assert bulk.detail == "Discarded 1 job; skipped 1 (e.g. no job with id 'not-dead')."
    children = {e.target_id: e for e in _entries(parent=bulk)}
    assert set(children) == {"dl-1", "not-dead"}
    assert (children["dl-1"].outcome, children["not-dead"].outcome) == ("ok", "refused")
    dead.refresh_from_db()
    assert children["dl-1"].at == dead.discarded_at  # one transaction, one moment


def test_discarding_everything_matching_keeps_the_filter_and_the_count(alice):
    for n in range(3):
        JobErrorFactory(job__job_id=f"grp-{n}", job__queue="low", fingerprint="aaaa")

    alice.post(
        "/dashboard/dead-letters/bulk/",
        {"action": "discard", "all": "1", "fingerprint": "aaaa", "queue": "low", "expected": "3"},
        headers=HTMX,
    )

    bulk = AuditEntry.objects.get(parent__isnull=True)
    # The legacy field is kept as the search term it stands for (the language of the list pages).
    assert bulk.filters == {"status": "dead", "q": "queue:low", "fingerprint": "aaaa"}
    assert (bulk.action, bulk.count, bulk.outcome, bulk.actor) == ("bulk.discard", 3, "ok", "alice")
    assert sorted(_entries(parent=bulk), key=lambda e: e.target_id)[0].target_id == "grp-0"


def test_a_confirmed_count_that_no_longer_matches_does_nothing(alice):
    """The page showed a group of 2 and the operator confirmed 2; a third joined meanwhile."""
    for n in range(2):
        JobErrorFactory(job__job_id=f"shown-{n}", fingerprint="bbbb")
    page = alice.get("/dashboard/dead-letters/").content.decode()
    assert 'name="expected" value="2"' in page and "Discard all 2 dead letters of this failure?" in page
    JobErrorFactory(job__job_id="late", fingerprint="bbbb")

    form = {"action": "discard", "all": "1", "fingerprint": "bbbb", "expected": "2"}
    answer = alice.post("/dashboard/dead-letters/bulk/", form, headers=HTMX).content.decode()

    assert "3 jobs match now, not the 2 jobs you confirmed: nothing was done." in answer
    assert not JobRecord.objects.filter(discarded_at__isnull=False).exists()
    [entry] = _entries()
    assert (entry.action, entry.outcome, entry.count) == ("bulk.discard", "refused", 0)
    # The refreshed list offers the 3 to confirm; confirmed, the answer counts what was done.
    assert "Discard all 3 dead letters of this failure?" in answer
    again = alice.post("/dashboard/dead-letters/bulk/", {**form, "expected": "3"}, headers=HTMX).content.decode()
    assert "Discarded 3 jobs." in again
    assert JobRecord.objects.filter(discarded_at__isnull=False).count() == 3


def test_queue_and_schedule_actions_are_audited(alice):
    schedule = Schedule.objects.create(name="nightly", func="tests.schedfuncs.tick", interval=60)

    alice.post("/dashboard/queues/low/pause/")
    alice.post("/dashboard/queues/low/pause/")
    alice.post("/dashboard/queues/nope/pause/")
    alice.post(f"/dashboard/schedules/{schedule.pk}/pause/")
    alice.post("/dashboard/queues/low/resume/")

    rows = [(e.action, e.target_kind, e.target_id, e.outcome, e.detail) for e in _entries()]
    assert rows == [
        ("queue.pause", "queue", "low", "ok", "paused"),
        ("queue.pause", "queue", "low", "ok", "was already paused"),
        ("queue.pause", "queue", "nope", "refused", "no queue named 'nope'"),
        ("schedule.pause", "schedule", str(schedule.pk), "ok", "nightly: paused"),
        ("queue.resume", "queue", "low", "ok", "resumed"),
    ]
    assert {e.actor for e in _entries()} == {"alice"}


@pytest.mark.parametrize(
    ("proxies", "forwarded", "expected"),
    [
        (0, "203.0.113.9", "10.0.0.2"),  # no trusted proxy: the header is the client's word
        (1, "198.51.100.1, 203.0.113.9", "203.0.113.9"),  # what our proxy saw
        (2, "198.51.100.1, 203.0.113.9", "198.51.100.1"),
        (1, "not an address", "10.0.0.2"),
        (1, "", "10.0.0.2"),
    ],
)
def test_the_client_address_trusts_x_forwarded_for_only_as_far_as_configured(settings, proxies, forwarded, expected):
    settings.JOBSITE = {**settings.JOBSITE, "TRUSTED_PROXY_COUNT": proxies}
    assert client_address({"REMOTE_ADDR": "10.0.0.2", "HTTP_X_FORWARDED_FOR": forwarded}) == expected


def test_retention_deletes_old_entries_with_their_jobs_entries(settings):
    JobErrorFactory(job__job_id="old-dl")
    JobErrorFactory(job__job_id="new-dl")
    dead_letter_discard_many(job_ids=["old-dl"], actor=Actor("bob"))
    AuditEntry.objects.update(at=timezone.now() - timedelta(days=400))
    dead_letter_discard(job_id="new-dl", actor=Actor("bob"))
    assert AuditEntry.objects.count() == 3  # the old bulk action, its job's entry, the new one

    result = retention_apply()

    assert result.audit_entries == 2
    assert "deleted 2 audit entries" in result.summary()
    assert [e.target_id for e in AuditEntry.objects.all()] == ["new-dl"]

    settings.JOBSITE = {**settings.JOBSITE, "AUDIT_RETENTION_DAYS": 0}  # kept for good
    AuditEntry.objects.update(at=timezone.now() - timedelta(days=4000))
    assert retention_apply().audit_entries == 0 and AuditEntry.objects.count() == 1


def test_the_admin_shows_the_trail_and_nobody_can_add_change_or_delete_it():
    dead_letter_discard_many(job_ids=["nope"], actor=Actor("carol"))
    entry = AuditEntry.objects.get(parent__isnull=True)
    root = get_user_model().objects.create_superuser("root", password="pw")
    client = Client()
    client.force_login(root)

    listing = client.get("/admin/workers/auditentry/").content.decode()
    assert "carol" in listing and "bulk discard" in listing
    page = client.get(f"/admin/workers/auditentry/{entry.pk}/change/").content.decode()
    assert "carol" in page and 'name="actor"' not in page  # read only
    assert client.post(f"/admin/workers/auditentry/{entry.pk}/change/", {"actor": "mallory"}).status_code == 403
    assert client.post(f"/admin/workers/auditentry/{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    assert client.get("/admin/workers/auditentry/add/").status_code == 403
    assert AuditEntry.objects.get(pk=entry.pk).actor == "carol"
