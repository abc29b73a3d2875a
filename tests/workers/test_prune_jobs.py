"""Retention: `manage.py prune_jobs` and the daily prune job."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from tests.factories import JobErrorFactory, JobMetricFactory, JobRecordFactory
from workers import enqueue
from workers.models import JobError, JobMetric, JobRecord, JobStatus
from workers.reads.rollups import function_runtime_list
from workers.registry import schedulable_functions


def _history() -> dict[str, JobRecord]:
    old = timezone.now() - timedelta(days=40)
    recent = timezone.now() - timedelta(days=2)
    records = {
        "old-finished": [JobRecordFactory(enqueued_at=old) for _ in range(5)],
        "old-canceled": [JobRecordFactory(enqueued_at=old, status=JobStatus.CANCELED)],
        "old-dead": [JobRecordFactory(enqueued_at=old, status=JobStatus.DEAD)],
        "old-discarded": [JobRecordFactory(enqueued_at=old, status=JobStatus.DEAD, discarded_at=old)],
        "old-queued": [JobRecordFactory(enqueued_at=old, status=JobStatus.QUEUED, started_at=None, ended_at=None)],
        "recent": [JobRecordFactory(enqueued_at=recent)],
    }
    for record in records["old-finished"][:2] + records["old-dead"]:
        JobErrorFactory(job=record)
    return {name: [r.job_id for r in rows] for name, rows in records.items()}


@pytest.mark.django_db
def test_prune_deletes_old_history_in_batches_and_keeps_dead_letters():
    ids = _history()
    out = StringIO()

    call_command("prune_jobs", "--older-than", "30d", "--batch-size", "2", stdout=out)

    left = set(JobRecord.objects.values_list("job_id", flat=True))
    assert left == {*ids["old-dead"], *ids["old-queued"], *ids["recent"]}
    # The dead letter keeps its error history; the deleted jobs' errors are gone.
    assert list(JobError.objects.values_list("job__job_id", flat=True)) == ids["old-dead"]
    # 5 finished + 1 canceled + 1 discarded dead letter, two per batch.
    assert "deleted 7 job records and 2 errors older than 30d in 4 batches (dead letters kept)" in out.getvalue()


@pytest.mark.django_db
def test_prune_include_dead_deletes_old_dead_letters_too():
    ids = _history()

    call_command("prune_jobs", "--older-than", "30d", "--include-dead", stdout=StringIO())

    assert set(JobRecord.objects.values_list("job_id", flat=True)) == {*ids["old-queued"], *ids["recent"]}
    assert not JobError.objects.exists()


@pytest.mark.django_db
def test_prune_reads_hours_and_rejects_nonsense():
    JobRecordFactory(job_id="three-hours", enqueued_at=timezone.now() - timedelta(hours=3))
    JobRecordFactory(job_id="one-hour", enqueued_at=timezone.now() - timedelta(hours=1))

    call_command("prune_jobs", "--older-than", "2h", stdout=StringIO())

    assert list(JobRecord.objects.values_list("job_id", flat=True)) == ["one-hour"]
    with pytest.raises(CommandError, match="like 30d"):
        call_command("prune_jobs", "--older-than", "a month")
    with pytest.raises(CommandError, match="more than zero"):
        call_command("prune_jobs", "--older-than", "0d")


@pytest.mark.django_db(transaction=True)
def test_old_roll_up_minutes_go_and_all_time_totals_stay(run_burst):
    for n in range(3):
        enqueue("tests.jobfuncs.add", n, n)
    enqueue("tests.jobfuncs.fail", "gone", max_attempts=1)
    run_burst(simple=True)
    # Make the minutes those jobs ran in 40 days old.
    JobMetric.objects.update(minute=timezone.now() - timedelta(days=40))
    JobMetricFactory(func="tests.jobfuncs.add", finished=0)  # this minute: kept
    before = {(r.func, r.finished, r.failed, r.runs) for r in function_runtime_list()}
    out = StringIO()

    call_command("prune_jobs", stdout=out)

    assert "deleted 2 roll-up minutes (all-time totals kept)" in out.getvalue()
    assert before == {("tests.jobfuncs.add", 3, 0, 3), ("tests.jobfuncs.fail", 0, 1, 1)}
    assert {(r.func, r.finished, r.failed, r.runs) for r in function_runtime_list()} == before
    assert JobMetric.objects.count() == 1
    forty_days_ago = timezone.now() - timedelta(days=40)
    # Those minutes are gone from the windows charts read.
    assert (
        function_runtime_list(since=forty_days_ago - timedelta(days=1), until=forty_days_ago + timedelta(days=1)) == []
    )


@pytest.mark.django_db(transaction=True)
def test_the_daily_prune_job_runs_on_a_worker_and_is_scheduled(run_burst, settings):
    ids = _history()
    assert "workers.jobs.maintenance.prune" in schedulable_functions()
    (schedule,) = [s for s in settings.JOBSITE_SCHEDULES if s["func"] == "workers.jobs.maintenance.prune"]
    assert schedule["cron"] == "17 3 * * *"

    job = enqueue("workers.jobs.maintenance.prune", queue="low")
    run_burst("low", simple=True)

    record = JobRecord.objects.get(job_id=job.id)
    assert record.status == JobStatus.FINISHED
    assert record.result_repr.startswith("'deleted 7 job records and 2 errors older than 30 days")
    assert set(JobRecord.objects.exclude(job_id=job.id).values_list("job_id", flat=True)) == {
        *ids["old-dead"],
        *ids["old-queued"],
        *ids["recent"],
    }
