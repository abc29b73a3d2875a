"""The recorder applies events idempotently; statuses never move backwards in an attempt."""

from __future__ import annotations

import time

import pytest

from workers.models import JobError, JobMetric, JobRecord, JobStatus
from workers.recording.apply import apply_events

pytestmark = pytest.mark.django_db


def _event(kind: str, attempt: int, t: float, **extra) -> dict:
    return {"e": kind, "id": "job-1", "a": attempt, "t": t, "q": "default", "f": "app.jobs.work", **extra}


def test_the_same_events_applied_twice_change_nothing():
    t = time.time() // 60 * 60  # the start of this minute: all three events roll up into one
    batch = [
        _event("queued", 1, t, enq=t),
        _event("started", 1, t + 1, w="w1", start=t + 1),
        _event("retrying", 1, t + 2, w="w1", xt="ValueError", xm="bad", tb="Traceback...", start=t + 1, end=t + 2),
    ]
    apply_events(batch)
    apply_events(batch)

    record = JobRecord.objects.get(job_id="job-1")
    assert (record.status, record.attempts) == (JobStatus.RETRYING, 1)
    assert JobError.objects.filter(job=record).count() == 1
    metric = JobMetric.objects.get()
    assert (metric.enqueued, metric.started, metric.failed) == (1, 1, 1)


def test_a_late_event_of_an_attempt_never_moves_its_status_backwards():
    t = time.time()
    apply_events([_event("finished", 1, t + 2, res="42", start=t + 1, end=t + 2)])
    apply_events([_event("started", 1, t + 1, w="w1", start=t + 1), _event("queued", 1, t)])

    record = JobRecord.objects.get(job_id="job-1")
    assert record.status == JobStatus.FINISHED
    assert record.result_repr == "42"
    assert record.duration == pytest.approx(1.0)


def test_a_new_attempt_moves_on_from_the_last_ones_end():
    t = time.time()
    apply_events([_event("dead", 1, t, xt="E", xm="m", tb="")])
    apply_events([_event("queued", 2, t + 5), _event("started", 2, t + 6, w="w2", start=t + 6)])

    record = JobRecord.objects.get(job_id="job-1")
    assert (record.status, record.attempts, record.worker) == (JobStatus.STARTED, 2, "w2")
    assert record.ended_at is None


def test_a_lost_event_ends_an_attempt_only_when_no_outcome_of_it_is_recorded():
    """Redis came back without the job: its record ends dead, lost, unless the attempt's
    outcome (or a later attempt) is already recorded, whatever the events' order."""
    from workers.events import LOST_REASON, lost

    t = time.time()
    apply_events([_event("queued", 1, t), {**lost(job_id="job-1", attempt=1, worker="", detail="gone"), "t": t + 9}])
    record = JobRecord.objects.get(job_id="job-1")
    assert (record.status, record.attempts) == (JobStatus.DEAD, 1)
    assert record.last_error == f"JobLost: {LOST_REASON} (gone)"
    assert JobError.objects.get(job=record).exc_type == "JobLost"

    for earlier in ("finished", "retrying"):
        JobRecord.objects.all().delete()
        apply_events([_event(earlier, 1, t, w="w1", xt="E", xm="m", tb="", res="42")])
        apply_events([{**lost(job_id="job-1", attempt=1, worker="w2", detail="gone"), "t": t + 9}])
        record = JobRecord.objects.get(job_id="job-1")
        assert record.status == earlier
        assert not JobError.objects.filter(job=record, exc_type="JobLost").exists()
        assert sum(JobMetric.objects.values_list("dead", flat=True)) == 1  # the first one's only


def test_progress_applies_only_to_the_running_attempt():
    t = time.time()
    apply_events([_event("started", 1, t, w="w", start=t), {**_event("progress", 1, t + 1), "p": 40, "m": "halfway"}])
    record = JobRecord.objects.get(job_id="job-1")
    assert (record.progress, record.progress_message) == (40, "halfway")

    apply_events(
        [_event("finished", 1, t + 2, res="None", start=t, end=t + 2), {**_event("progress", 1, t + 3), "p": 50}]
    )
    record.refresh_from_db()
    assert record.progress == 100


def test_an_event_the_recorder_cannot_apply_is_set_aside_and_the_rest_applied(redis_conn):
    from workers import events
    from workers.recording.consumer import Recorder
    from workers.redis import UNAPPLIED_KEY as POISON_KEY

    t = time.time()
    events.append(redis_conn, {"e": "no-such-status", "id": "bad", "a": 1, "t": t, "q": "default", "f": "x.y"})
    events.append(redis_conn, _event("queued", 1, t, enq=t))

    assert Recorder(redis_conn, name="t").drain() == 2

    assert JobRecord.objects.get(job_id="job-1").status == JobStatus.QUEUED
    assert redis_conn.llen(POISON_KEY) == 1
    assert b"no-such-status" in redis_conn.lindex(POISON_KEY, 0)
    assert redis_conn.xlen(events.STREAM_KEY) == 0


def test_a_recorder_makes_its_group_again_when_redis_lost_it(redis_conn):
    from workers import events
    from workers.recording.consumer import Recorder

    recorder = Recorder(redis_conn, name="t")
    assert recorder.step() == 0  # the group exists now
    redis_conn.flushdb()  # a Redis restart without persistence
    t = time.time()
    events.append(redis_conn, _event("queued", 1, t, enq=t))

    assert recorder.step() == 1
    assert JobRecord.objects.get(job_id="job-1").status == JobStatus.QUEUED


def test_a_late_outcome_of_an_older_attempt_leaves_the_newer_attempts_record_as_it_is():
    """A worker cut off mid-job comes back after attempt 2 started elsewhere: its attempt-1
    "finished" (had it got through) must not overwrite attempt 2's record."""
    t = time.time()
    apply_events([_event("started", 1, t, w="cut-off", start=t)])
    apply_events([_event("retrying", 1, t + 5, w="cut-off", xt="WorkerDied", xm="worker died", tb="", start=t)])
    apply_events([_event("started", 2, t + 6, w="w2", start=t + 6)])
    apply_events([_event("finished", 1, t + 7, w="cut-off", res="'late'", start=t, end=t + 7)])

    record = JobRecord.objects.get(job_id="job-1")
    assert (record.status, record.attempts, record.worker) == (JobStatus.STARTED, 2, "w2")
    assert record.result_repr in ("", None)
    assert record.ended_at is None
