"""Roll-ups from real worker runs: counters, runtime histogram buckets and percentiles."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from workers import enqueue
from workers.models import RUNTIME_BUCKET_FIELDS, RUNTIME_BUCKETS, JobMetric, JobRecord, runtime_bucket
from workers.reads.rollups import function_runtime_list, metric_rates, rollup_get, runtime_percentile


@pytest.mark.django_db(transaction=True)
def test_runtime_buckets_and_percentiles_follow_the_jobs_that_ran(run_burst):
    for _ in range(3):
        enqueue("tests.jobfuncs.nap", 0)
    for _ in range(2):
        enqueue("tests.jobfuncs.nap", 0.3)
    enqueue("tests.jobfuncs.fail", "no disk", max_attempts=1)

    run_burst("default", simple=True)

    # Every attempt that ended sits in the bucket of its recorded duration.
    expected: Counter[tuple[str, int]] = Counter(
        (r.func, runtime_bucket(r.duration)) for r in JobRecord.objects.all() if r.duration is not None
    )
    assert sum(expected.values()) == 6
    for func in ("tests.jobfuncs.nap", "tests.jobfuncs.fail"):
        rows = JobMetric.objects.filter(func=func)
        counted = [sum(getattr(m, name) for m in rows) for name in RUNTIME_BUCKET_FIELDS]
        assert counted == [expected[(func, i)] for i in range(len(RUNTIME_BUCKET_FIELDS))]

    table = {row.func: row for row in function_runtime_list(since=timezone.now() - timedelta(hours=1))}
    nap = table["tests.jobfuncs.nap"]
    assert (nap.finished, nap.failed, nap.runs) == (5, 0, 5)
    assert nap.p50 is not None and nap.p50 < 0.25  # three of five took no time
    assert 0.25 <= nap.p95 <= nap.runtime_max  # the slow two set the tail
    assert nap.runtime_max >= 0.3
    assert nap.mean == pytest.approx(nap.runtime_total / 5)
    failing = table["tests.jobfuncs.fail"]
    assert (failing.finished, failing.failed, failing.dead, failing.failure_rate) == (0, 1, 1, 1.0)
    # The slowest p95 comes first: what an operator looks at first.
    assert list(table) == ["tests.jobfuncs.nap", "tests.jobfuncs.fail"]


@pytest.mark.django_db(transaction=True)
def test_rates_and_chart_series_count_what_finished_and_failed(run_burst):
    since = timezone.now() - timedelta(minutes=5)
    for n in range(4):
        enqueue("tests.jobfuncs.add", n, n)
    enqueue("tests.jobfuncs.fail", "nope", max_attempts=1)
    enqueue("tests.jobfuncs.add", 1, 1, queue="low")

    run_burst(simple=True)

    rates = {r.queue: r for r in metric_rates(since=since)}
    assert list(rates) == ["high", "default", "low"]  # every configured queue, in priority order
    assert (rates["default"].enqueued, rates["default"].finished, rates["default"].failed) == (5, 4, 1)
    assert rates["default"].failure_rate == pytest.approx(1 / 5)
    assert rates["default"].throughput_per_minute == pytest.approx(4 / rates["default"].minutes)
    assert (rates["high"].finished, rates["high"].failure_rate) == (0, None)
    assert rates["low"].finished == 1

    series = rollup_get(window="hour").series
    # One zero-filled bucket per minute of the last hour, the current minute last.
    assert len(series) == 60
    assert all(b.start - a.start == timedelta(minutes=1) for a, b in zip(series, series[1:], strict=False))
    assert series[-1].start <= timezone.now() < series[-1].start + timedelta(minutes=1)
    assert sum(p.finished for p in series) == 5
    assert sum(p.dead for p in series) == 1
    assert sum(p.finished for p in rollup_get(window="hour", queue="low").series) == 1
    day = rollup_get(window="day").series
    assert all(b.start - a.start == timedelta(hours=1) for a, b in zip(day, day[1:], strict=False))
    assert sum(p.finished for p in day) == 5


def test_percentile_interpolates_inside_a_bucket_like_prometheus():
    buckets = [0] * len(RUNTIME_BUCKET_FIELDS)
    buckets[RUNTIME_BUCKETS.index(0.1)] = 100  # all in (0.05, 0.1]
    assert runtime_percentile(buckets, 0.5) == pytest.approx(0.075)
    assert runtime_percentile(buckets, 0.95) == pytest.approx(0.0975)
    # Never beyond the slowest runtime seen.
    assert runtime_percentile(buckets, 0.95, runtime_max=0.06) == pytest.approx(0.06)
    overflow = [0] * len(RUNTIME_BUCKET_FIELDS)
    overflow[-1] = 3  # longer than the last bound: the maximum seen is the best answer
    assert runtime_percentile(overflow, 0.5, runtime_max=900.0) == 900.0
    assert runtime_percentile([0] * len(RUNTIME_BUCKET_FIELDS), 0.5) is None
    with pytest.raises(ValueError):
        runtime_percentile(buckets, 1.5)
