"""Redis round trips per job of a real burst ``TrackingSimpleWorker`` (issue 15): counted on
the worker's own connections (bench/roundtrips.py), never timed, so the figures hold on a
loaded machine. A change that adds a round trip to every job fails here."""

from __future__ import annotations

import pytest

from bench.roundtrips import EXTRA_ALLOWED, burst, per_job
from workers import events
from workers.models import JobError, JobRecord, JobStatus
from workers.recording.consumer import drain
from workers.redis import STREAM_KEY

pytestmark = pytest.mark.django_db(transaction=True)

# Round trips per job of the tracked worker, as measured (README, "Benchmarks"): bare RQ's
# (rq 3.0.0: 20 and 21), less the 6 its heartbeats take when sent one command at a time,
# plus the claim's check before a failure is written.
TRACKED_MAX = {"finishing": 14, "failing": 16}


@pytest.mark.parametrize("outcome", ["finishing", "failing"])
def test_round_trips_per_job_stay_within_the_figure_reached(outcome):
    trips = per_job("tracked", outcome, 3, commands=False).round_trips
    assert trips <= TRACKED_MAX[outcome], f"{trips} round trips per {outcome} job, at most {TRACKED_MAX[outcome]}"
    bare = per_job("bare", outcome, 3, commands=False).round_trips
    assert trips <= bare + EXTRA_ALLOWED, f"{trips} round trips per {outcome} job, bare RQ {bare}"


@pytest.mark.parametrize("outcome", ["finishing", "failing"])
def test_every_job_counted_is_recorded_with_its_outcome(outcome, redis_conn):
    """The count is of a worker that still tells the stream everything: each job's events
    (queued, started, then finished or dead), and its record ends so, with its error."""
    ran = burst("tracked", outcome, 3, commands=False)
    end = JobStatus.FINISHED if outcome == "finishing" else JobStatus.DEAD
    kinds: dict[str, list[str]] = {job_id: [] for job_id in ran.job_ids}
    for _id, fields in redis_conn.xrange(STREAM_KEY):
        event = events.decode(fields)
        kinds[event["id"]].append(event["e"])
    assert kinds == {job_id: [JobStatus.QUEUED, JobStatus.STARTED, end] for job_id in ran.job_ids}
    drain()
    records = JobRecord.objects.filter(job_id__in=ran.job_ids)
    assert sorted(r.status for r in records) == [end] * 3
    assert all(r.attempts == 1 and r.started_at for r in records)
    errors = JobError.objects.filter(job__job_id__in=ran.job_ids)
    assert errors.count() == (3 if outcome == "failing" else 0)
    assert all(e.exc_type.endswith("RuntimeError") for e in errors)


def test_a_malformed_pause_entry_neither_stops_the_worker_nor_costs_round_trips():
    """A paused-queues entry that is not a time (written by hand, or by another tool) beside
    the worker's queue: its queue's jobs wait, the worker runs the others to the end, at
    the same round trips per job."""
    trips = per_job("tracked", "finishing", 3, commands=False, paused={"low": "not a time"}).round_trips
    assert trips <= TRACKED_MAX["finishing"]
