"""Reconciliation with RQ: jobs a bare `rq worker` ran, or that no jobsite worker ever saw,
are recorded from what RQ kept, in bounded passes, and say so."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
from redis import Redis
from rq import Queue, SimpleWorker

from tests.conftest import ROOT, database_url, wait_for
from workers import enqueue
from workers.models import JobMetric, JobRecord, JobStatus
from workers.recording.consumer import drain
from workers.runtime.reconcile import reconcile_pass
from workers.services.audit import Actor
from workers.services.jobs import job_retry

pytestmark = pytest.mark.django_db(transaction=True)


def _plain(queue: str = "default") -> Queue:
    return Queue(queue, connection=Redis.from_url(settings.REDIS_URL))


def _bare_burst(*queues: str) -> str:
    """A bare RQ SimpleWorker (no jobsite in it) runs the queues dry; returns its name."""
    worker = SimpleWorker([_plain(q) for q in queues or ("default",)], connection=Redis.from_url(settings.REDIS_URL))
    worker.work(burst=True)
    return worker.name


def _staff_client() -> Client:
    client = Client()
    client.force_login(get_user_model().objects.create_user("viewer", password="x", is_staff=True))
    return client


def _pass(redis_conn: Redis, **kwargs) -> int:
    recorded = reconcile_pass(redis_conn, grace=0, **kwargs).recorded
    drain()
    return recorded


def test_plain_rq_jobs_a_bare_worker_ran_are_recorded_a_bounded_window_per_pass(redis_conn):
    finished = [_plain().enqueue("tests.jobfuncs.add", n, 1) for n in range(20)]
    failed = [_plain().enqueue("tests.jobfuncs.fail", f"bad {n}") for n in range(5)]
    bare = _bare_burst()
    drain()
    assert not JobRecord.objects.exists()  # nothing a jobsite worker could have observed

    assert _pass(redis_conn, batch=10) == 15  # 10 of the finished registry, the 5 failed
    assert _pass(redis_conn, batch=10) == 10  # the next window of the finished registry
    assert _pass(redis_conn, batch=10) == 0  # nothing left that differs

    records = {r.job_id: r for r in JobRecord.objects.all()}
    assert len(records) == 25
    for n, job in enumerate(finished):
        record = records[job.id]
        assert (record.status, record.result_repr, record.attempts) == (JobStatus.FINISHED, repr(n + 1), 1)
        assert (record.worker, record.func, record.max_attempts) == (bare, "tests.jobfuncs.add", 1)
        assert record.reconciled_at is not None and record.started_at <= record.ended_at
    for n, job in enumerate(failed):
        record = records[job.id]
        error = record.errors.get()
        assert (record.status, record.attempts, record.reconciled_at is not None) == (JobStatus.DEAD, 1, True)
        assert (error.exc_type, error.message) == ("ValueError", f"bad {n}")
        assert 'tests/jobfuncs.py", line' in error.traceback
    metric = JobMetric.objects.get(func="tests.jobfuncs.add")
    assert (metric.enqueued, metric.finished, metric.failed) == (20, 20, 0)  # each once


def test_django_rq_jobs_a_bare_worker_finished_leave_queued(redis_conn):
    done = enqueue("tests.jobfuncs.add", 40, 2)
    broken = enqueue("tests.jobfuncs.fail", "disk full", max_attempts=3)
    drain()
    assert set(JobRecord.objects.values_list("status", flat=True)) == {JobStatus.QUEUED}
    _bare_burst()

    _pass(redis_conn)

    done_record, broken_record = JobRecord.objects.get(job_id=done.id), JobRecord.objects.get(job_id=broken.id)
    assert (done_record.status, done_record.result_repr, done_record.attempts) == (JobStatus.FINISHED, "42", 1)
    # A bare worker knows nothing of jobsite's retries: RQ failed it, and so does the record.
    assert (broken_record.status, broken_record.attempts, broken_record.last_error) == (
        JobStatus.DEAD,
        1,
        "ValueError: disk full",
    )
    assert done_record.reconciled_at and broken_record.reconciled_at


def test_what_a_jobsite_worker_observed_is_never_overwritten(run_burst, redis_conn):
    job = enqueue("tests.jobfuncs.add", 1, 2)
    run_burst(simple=True)
    observed = JobRecord.objects.get(job_id=job.id)

    assert _pass(redis_conn) == 0
    # Even an event a pass wrote while the recorder lagged changes nothing it observed.
    from workers import events
    from workers.rq.job import TrackedJob

    tracked = TrackedJob.fetch(job.id, connection=redis_conn)
    stale = events.finished(
        job_id=job.id, attempt=1, worker="someone-else", result="'stale'", start=None, end=None,
        descriptor=tracked.descriptor(),
    )  # fmt: skip
    events.append(redis_conn, events.reconciled(stale, at=observed.ended_at.timestamp() + 5))
    drain()

    again = JobRecord.objects.get(job_id=job.id)
    assert (again.result_repr, again.worker, again.reconciled_at) == ("3", observed.worker, None)


def test_a_dependent_of_a_dead_parent_shows_why_it_waits_and_a_retry_releases_it(run_burst, redis_conn):
    parent = _plain().enqueue("tests.jobfuncs.flaky", "dep-parent", 1)  # fails once, no Retry: dead
    child = _plain().enqueue("tests.jobfuncs.add", 2, 2, depends_on=parent)
    run_burst(simple=True)
    assert JobRecord.objects.get(job_id=parent.id).status == JobStatus.DEAD

    _pass(redis_conn)

    record = JobRecord.objects.get(job_id=child.id)
    assert record.status == JobStatus.DEFERRED and record.reconciled_at is not None
    assert record.status_reason == f"waiting on job {parent.id}, which is dead: retry it to release this job"
    assert _pass(redis_conn) == 0  # said once
    page = _staff_client().get(f"/dashboard/jobs/{child.id}/").content.decode()
    assert f"waiting on job {parent.id}, which is dead" in page and 'id="job-reconciled"' in page

    job_retry(job_id=parent.id, actor=Actor("tester"))
    run_burst(simple=True)

    record = JobRecord.objects.get(job_id=child.id)
    assert (record.status, record.result_repr, record.status_reason) == (JobStatus.FINISHED, "4", "")
    assert JobRecord.objects.get(job_id=parent.id).status == JobStatus.FINISHED


def test_jobs_waiting_in_rq_that_no_record_has_get_one(redis_conn):
    from datetime import timedelta

    queued = _plain("low").enqueue("tests.jobfuncs.add", 1, 1)
    later = _plain().enqueue_in(timedelta(minutes=10), "tests.jobfuncs.add", 2, 2)

    _pass(redis_conn)

    records = {r.job_id: r for r in JobRecord.objects.all()}
    assert (records[queued.id].status, records[queued.id].queue) == (JobStatus.QUEUED, "low")
    assert records[later.id].status == JobStatus.SCHEDULED
    assert records[later.id].scheduled_for - records[later.id].enqueued_at > timedelta(minutes=9)


def test_a_tracking_worker_started_after_a_bare_rq_worker_records_what_it_ran(start_worker, redis_conn):
    jobs = [_plain().enqueue("tests.jobfuncs.add", n, n) for n in range(5)]
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "jobsite.settings.test", "DATABASE_URL": database_url()}
    rq_cli = os.path.join(os.path.dirname(sys.executable), "rq")
    subprocess.run([rq_cli, "worker", "-u", settings.REDIS_URL, "--burst", "default"], cwd=ROOT, env=env, check=True,
                   capture_output=True, timeout=60)  # fmt: skip
    drain()
    assert not JobRecord.objects.exists()

    start_worker("high")  # its companion reconciles, whatever queues it serves

    wait_for(lambda: JobRecord.objects.filter(status=JobStatus.FINISHED).count() == 5, timeout=60)
    assert sorted(JobRecord.objects.values_list("result_repr", flat=True)) == sorted(repr(2 * n) for n in range(5))
    assert {r.job_id for r in JobRecord.objects.all()} == {j.id for j in jobs}


def test_a_job_hash_rq_did_not_write_is_left_aside_and_the_others_get_through(redis_conn):
    good = [_plain().enqueue("tests.jobfuncs.add", n, n) for n in range(3)]
    odd_time = _plain().enqueue("tests.jobfuncs.add", 7, 7)
    odd_status = _plain().enqueue("tests.jobfuncs.add", 8, 8)
    _bare_burst()
    redis_conn.hset(f"rq:job:{odd_time.id}", "ended_at", "yesterday-ish")
    redis_conn.hset(f"rq:job:{odd_status.id}", "status", "exploded\xff")
    redis_conn.hset("jobsite:reconcile:cursors", "records", "not a cursor")

    _pass(redis_conn)

    recorded = dict(JobRecord.objects.values_list("job_id", "status"))
    assert recorded == {job.id: JobStatus.FINISHED for job in good}


def test_a_job_a_worker_takes_while_a_pass_looks_is_left_to_the_next_pass(redis_conn, monkeypatch):
    # The pass reads every job's status, then fetches the jobs that differ. A jobsite worker
    # that starts one in between has already counted the attempt in its meta: read with
    # the old status, the record said attempt 2 of a job on its first (a loaded run).
    from rq.utils import now, utcformat

    from workers.redis import META_ATTEMPT
    from workers.rq.job import TrackedJob
    from workers.runtime import reconcile

    taken = _plain().enqueue("tests.jobfuncs.add", 1, 1)
    waiting = _plain().enqueue("tests.jobfuncs.add", 2, 2)  # beside it, recorded as usual
    read_states = reconcile._rq_states

    def a_worker_starts_it_meanwhile(connection, job_ids):
        states = read_states(connection, job_ids)
        job = TrackedJob.fetch(taken.id, connection=connection)
        job.meta[META_ATTEMPT] = 1
        with connection.pipeline() as pipe:  # what a start writes, in one transaction
            pipe.hset(job.key, mapping={"status": "started", "worker_name": "w1", "started_at": utcformat(now()),
                                        "meta": job.serializer.dumps(job.meta)})  # fmt: skip
            pipe.execute()
        return states

    monkeypatch.setattr(reconcile, "_rq_states", a_worker_starts_it_meanwhile)
    _pass(redis_conn)
    assert dict(JobRecord.objects.values_list("job_id", "status")) == {waiting.id: JobStatus.QUEUED}

    monkeypatch.setattr(reconcile, "_rq_states", read_states)
    _pass(redis_conn)
    record = JobRecord.objects.get(job_id=taken.id)
    assert (record.status, record.attempts, record.worker) == (JobStatus.STARTED, 1, "w1")
