"""A job's own RQ options keep the meaning RQ gives them (README, "Retries").

Each job runs once on a bare RQ ``SimpleWorker`` and once on jobsite's, and must run as
often, fire its callbacks as often and be recorded with the attempts it really had.
"""

from __future__ import annotations

import subprocess
from datetime import timedelta

import pytest
from django.conf import settings
from django.test import override_settings
from redis import Redis
from rq import Callback, Queue, Repeat, Retry, SimpleWorker

from tests.conftest import ROOT
from workers.models import JobRecord, JobStatus

pytestmark = pytest.mark.django_db(transaction=True)


def _plain(queue: str = "default") -> Queue:
    return Queue(queue, connection=Redis.from_url(settings.REDIS_URL))


def _runs(redis_conn: Redis, name: str) -> int:
    return int(redis_conn.get(f"test:runs:{name}") or 0)


def _callbacks(redis_conn: Redis, name: str) -> int:
    return int(redis_conn.get(f"test:on_failure:{name}") or 0)


def _bare_burst() -> None:
    connection = Redis.from_url(settings.REDIS_URL)
    SimpleWorker([_plain(q) for q in settings.JOBSITE_QUEUES], connection=connection).work(burst=True)


@pytest.mark.parametrize(
    ("retry", "runs"),
    [(None, 1), (Retry(max=1, interval=0), 2), (Retry(max=3, interval=[0, 0]), 4)],
    ids=["no-retry", "retry-1", "retry-3"],
)
def test_plain_rq_jobs_run_and_call_back_as_often_as_on_bare_rq(run_burst, redis_conn, retry, runs):
    on_failure = Callback("tests.jobfuncs.count_failure_callback")
    _plain().enqueue("tests.jobfuncs.fail_counted", "bare", retry=retry, on_failure=on_failure)
    _bare_burst()
    tracked = _plain().enqueue("tests.jobfuncs.fail_counted", "tracked", retry=retry, on_failure=on_failure)

    run_burst(simple=True)

    assert _runs(redis_conn, "bare") == runs
    assert (_runs(redis_conn, "tracked"), _callbacks(redis_conn, "tracked")) == (runs, _callbacks(redis_conn, "bare"))
    record = JobRecord.objects.get(job_id=tracked.id)
    assert (record.status, record.attempts, record.max_attempts) == (JobStatus.DEAD, runs, runs)
    assert list(record.errors.values_list("attempt", flat=True)) == list(range(1, runs + 1))
    assert redis_conn.zscore(f"rq:failed:{tracked.origin}", tracked.id) is not None


def test_the_intervals_of_a_jobs_own_retry_are_honoured(run_burst, redis_conn):
    job = _plain().enqueue("tests.jobfuncs.fail_counted", "spaced", retry=Retry(max=2, interval=[30, 60]))

    run_burst(simple=True)

    record = JobRecord.objects.get(job_id=job.id)
    error = record.errors.get()
    assert (record.status, record.attempts, record.max_attempts) == (JobStatus.RETRYING, 1, 3)
    # RQ's first interval, not jobsite's backoff (0.2 s in the test settings).
    assert record.scheduled_for - error.failed_at == pytest.approx(timedelta(seconds=30), abs=timedelta(seconds=2))
    due = redis_conn.zscore("rq:scheduled:default", job.id)
    assert due == pytest.approx(error.failed_at.timestamp() + 30, abs=2)


def test_rq_enqueue_retry_max_from_the_command_line_is_honoured(run_burst, redis_conn):
    subprocess.run(
        [str(ROOT / ".venv/bin/rq") if (ROOT / ".venv/bin/rq").exists() else "/work/main/.venv/bin/rq",
         "enqueue", "-u", settings.REDIS_URL, "--retry-max", "1", "--job-id", "cli-retry",
         "tests.jobfuncs.fail_counted", "cli"],
        cwd=ROOT, check=True, capture_output=True,
    )  # fmt: skip

    run_burst(simple=True)

    assert _runs(redis_conn, "cli") == 2
    record = JobRecord.objects.get(job_id="cli-retry")
    assert (record.status, record.attempts, record.max_attempts) == (JobStatus.DEAD, 2, 2)


def test_plain_jobs_take_jobsites_policy_only_on_the_queues_configured_for_it(run_burst, redis_conn):
    on_default = _plain("default").enqueue("tests.jobfuncs.fail_counted", "on-default")
    on_low = _plain("low").enqueue("tests.jobfuncs.fail_counted", "on-low")

    with override_settings(JOBSITE={**settings.JOBSITE, "PLAIN_RQ_RETRY": ["low"]}):
        run_burst(simple=True)

    records = {r.job_id: (r.status, r.attempts, r.max_attempts) for r in JobRecord.objects.all()}
    assert records[on_default.id] == (JobStatus.DEAD, 1, 1)
    assert records[on_low.id] == (JobStatus.RETRYING, 1, settings.JOBSITE["RETRY"]["max_attempts"])


def test_a_setting_the_retry_decision_cannot_read_is_reported_and_retries_nothing(run_burst, redis_conn):
    job = _plain().enqueue("tests.jobfuncs.fail_counted", "misconfigured")

    from workers.apps import check_plain_rq_retry

    with override_settings(JOBSITE={**settings.JOBSITE, "PLAIN_RQ_RETRY": "always"}):
        problems = check_plain_rq_retry()
        run_burst(simple=True)

    assert [p.id for p in problems] == ["workers.E002"]
    assert "'rq', 'policy' or a list of queue names" in problems[0].msg
    assert JobRecord.objects.get(job_id=job.id).status == JobStatus.DEAD
    assert _runs(redis_conn, "misconfigured") == 1


@pytest.mark.parametrize("own_retry", [True, False], ids=["rq-retry", "jobsite-policy"])
def test_a_repeat_run_is_a_new_run_not_another_attempt(run_burst, redis_conn, own_retry):
    # Three runs (two repeats); the third fails. Whatever retries it has, it has them
    # afresh on its third run: the two runs before it were not failed attempts.
    retry = Retry(max=1, interval=0) if own_retry else None
    job = _plain().enqueue("tests.jobfuncs.fail_on_run", "repeated", 3, repeat=Repeat(times=2), retry=retry)
    policy = {"PLAIN_RQ_RETRY": "rq" if own_retry else "policy"}

    with override_settings(JOBSITE={**settings.JOBSITE, **policy}):
        run_burst(simple=True)

    record = JobRecord.objects.get(job_id=job.id)
    assert [(e.attempt, e.message) for e in record.errors.all()] == [(3, "repeated failed on run 3")]
    if own_retry:  # retried at once, as bare RQ would: the fourth run finished
        assert (_runs(redis_conn, "repeated"), record.status, record.attempts) == (4, JobStatus.FINISHED, 4)
    else:  # retried after the policy's backoff (a burst worker does not wait for it)
        assert (_runs(redis_conn, "repeated"), record.status, record.attempts) == (3, JobStatus.RETRYING, 3)
        assert record.max_attempts == 2 + settings.JOBSITE["RETRY"]["max_attempts"]


def test_a_job_that_returns_rqs_retry_is_handled_by_rq_and_recorded_as_such(run_burst, redis_conn):
    _plain().enqueue("tests.jobfuncs.return_retry", "returns-bare")
    _bare_burst()
    job = _plain().enqueue("tests.jobfuncs.return_retry", "returns-tracked")

    run_burst(simple=True)

    assert _runs(redis_conn, "returns-tracked") == _runs(redis_conn, "returns-bare") == 2
    record = JobRecord.objects.get(job_id=job.id)
    assert (record.status, record.attempts) == (JobStatus.DEAD, 2)
    assert list(record.errors.values_list("attempt", "exc_type")) == [(2, "RetriesExhausted")]
