"""Log lines a job emits are captured by the worker, bounded per attempt, kept per attempt."""

from __future__ import annotations

import pytest

from tests.conftest import wait_for
from workers import enqueue
from workers.models import JobLogLine, JobRecord, JobStatus

pytestmark = pytest.mark.django_db(transaction=True)


def test_lines_beyond_the_limit_are_counted_not_kept(run_burst, settings):
    settings.JOBSITE = {**settings.JOBSITE, "LOG_LINES_LIMIT": 5}
    job = enqueue("tests.jobfuncs.chatty", 8)
    run_burst(simple=True)

    lines = list(JobLogLine.objects.filter(job__job_id=job.id).order_by("seq"))
    assert [line.message for line in lines[:5]] == [f"processed item {n} of 8" for n in range(1, 6)]
    assert lines[5].message == "… 4 more log lines were not kept (limit 5 per attempt)"
    assert len(lines) == 6


def test_each_attempt_keeps_its_own_lines(start_worker):
    job = enqueue("tests.jobfuncs.chatty", 2, fail_after=True, max_attempts=2)
    start_worker()
    wait_for(lambda: JobRecord.objects.filter(job_id=job.id, status=JobStatus.DEAD).exists(), timeout=30)

    lines = list(JobLogLine.objects.filter(job__job_id=job.id).values_list("attempt", "seq", "level", "message"))

    for attempt in (1, 2):
        assert [line[1:] for line in lines if line[0] == attempt] == [
            (1, "INFO", "processed item 1 of 2"),
            (2, "INFO", "processed item 2 of 2"),
            (3, "WARNING", "done <b>here</b>"),
        ]
