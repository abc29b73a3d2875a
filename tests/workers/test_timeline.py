"""Attempts and timelines that read true: an operator's retry is one more attempt and shows
as such, the timeline runs in the order things happened, and no attempt that never ran
is said to have started."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.factories import JobErrorFactory
from workers import enqueue
from workers.models import JobRecord, JobStatus
from workers.reads.jobs import job_attempt_text, job_errors, job_timeline_get
from workers.recording.consumer import drain
from workers.services.audit import Actor
from workers.services.jobs import job_cancel, job_retry

pytestmark = pytest.mark.django_db(transaction=True)

ALICE = Actor("alice")


def _timeline(job_id: str) -> list[tuple[str, str]]:
    record = JobRecord.objects.get(job_id=job_id)
    return [(e.label, e.detail) for e in job_timeline_get(record=record, errors=job_errors(job_id=job_id))]


def test_an_operator_retry_is_one_more_attempt_and_the_timeline_says_who(run_burst):
    job = enqueue("tests.jobfuncs.flaky", "twice", 2, max_attempts=1)
    run_burst()
    record = JobRecord.objects.get(job_id=job.id)
    assert (record.status, job_attempt_text(record=record)) == (JobStatus.DEAD, "attempt 1 of 1")

    job_retry(job_id=job.id, actor=ALICE)
    run_burst()

    record.refresh_from_db()
    assert record.status == JobStatus.DEAD  # failed again: its one more attempt was used
    assert (record.attempts, record.max_attempts) == (2, 2)
    assert job_attempt_text(record=record) == "attempt 2 of 2"  # not "2 of 1"

    job_retry(job_id=job.id, actor=Actor("bob"))
    drain()
    record.refresh_from_db()
    assert job_attempt_text(record=record) == "attempt 3 of 3 next"
    run_burst()

    record.refresh_from_db()
    assert (record.status, job_attempt_text(record=record)) == (JobStatus.FINISHED, "attempt 3 of 3")
    assert [label for label, _ in _timeline(job.id)] == [
        "enqueued",
        "attempt 1 failed",
        "retried by alice",
        "attempt 2 failed",
        "retried by bob",
        "attempt 3 started",
        "finished",
    ]
    assert dict(_timeline(job.id))["retried by bob"] == "queued for attempt 3 of 3"


def test_a_retry_of_a_stopped_or_canceled_job_keeps_the_attempts_it_had_left(run_burst):
    job = enqueue("tests.jobfuncs.add", 1, 2, max_attempts=3, delay=timedelta(hours=1))
    run_burst()
    job_cancel(job_id=job.id, actor=ALICE)
    run_burst()

    job_retry(job_id=job.id, actor=ALICE)
    run_burst()

    record = JobRecord.objects.get(job_id=job.id)
    assert (record.status, record.max_attempts, job_attempt_text(record=record)) == ("finished", 3, "attempt 1 of 3")


def test_a_retrying_job_canceled_before_its_next_attempt_never_started_it(run_burst):
    job = enqueue("tests.jobfuncs.flaky", "cancel-me", 5, max_attempts=3)
    run_burst()  # attempt 1 fails; attempt 2 waits for its backoff
    assert JobRecord.objects.get(job_id=job.id).status == JobStatus.RETRYING

    job_cancel(job_id=job.id, actor=ALICE)
    run_burst()

    record = JobRecord.objects.get(job_id=job.id)
    assert record.status == JobStatus.CANCELED
    assert job_attempt_text(record=record) == "attempt 1 of 3"  # attempt 2 never ran
    labels = [label for label, _ in _timeline(job.id)]
    assert labels == ["enqueued", "attempt 1 started", "attempt 1 failed", "canceled by alice", "canceled"]


def test_a_dead_letter_reads_failed_then_dead_as_a_worker_recorded_it(run_burst):
    job = enqueue("tests.jobfuncs.fail", "once", max_attempts=1)
    run_burst()

    labels = [label for label, _ in _timeline(job.id)]

    assert labels == ["enqueued", "attempt 1 started", "attempt 1 failed", "dead"]


def test_ties_are_broken_by_what_happened_first():
    moment = timezone.now()
    error = JobErrorFactory(job__job_id="tie", job__attempts=1, job__enqueued_at=moment, failed_at=moment)
    record = error.job
    record.started_at = record.ended_at = moment
    record.save()

    entries = job_timeline_get(record=record, errors=[error], actions=[])

    assert [e.label for e in entries] == ["enqueued", "attempt 1 started", "attempt 1 failed", "dead"]
    assert {e.at for e in entries} == {moment}
