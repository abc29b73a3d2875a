"""Overview: per-queue live lengths and rates from roll-ups, totals, charts, workers."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.conftest import wait_for
from tests.factories import JobMetricFactory, JobRecordFactory
from workers import enqueue
from workers.models import JobStatus
from workers.reads.rollups import rollup_get

pytestmark = pytest.mark.django_db


def _row(body: str, queue: str) -> str:
    return body.split(f'data-queue="{queue}"', 1)[1].split("</tr>", 1)[0]


@pytest.mark.django_db(transaction=True)
def test_queue_lengths_come_live_from_redis(htmx_client):
    for n in range(3):
        enqueue("tests.jobfuncs.add", n, n, queue="low")
    body = htmx_client.get("/dashboard/").content.decode()
    assert body.lstrip().startswith('<div id="overview-panels"')
    assert 'data-col="length">3<' in _row(body, "low")
    assert 'data-col="length">0<' in _row(body, "high")
    assert 'data-total="length">3<' in body


def test_throughput_and_failure_rates_read_the_rollups(staff_client):
    now = timezone.now().replace(second=0, microsecond=0)
    JobMetricFactory(minute=now - timedelta(minutes=5), queue="high", finished=90, failed=10)
    JobMetricFactory(minute=now - timedelta(hours=5), queue="high", finished=100, failed=0, func="other")
    JobMetricFactory(minute=now - timedelta(days=2), queue="high", finished=999, failed=999, func="old")
    # Records alone do not make rates: only roll-ups do.
    JobRecordFactory.create_batch(5, queue="default", status=JobStatus.FINISHED)

    body = staff_client.get("/dashboard/").content.decode()
    row = _row(body, "high")
    cells = [c.split(">", 1)[1].split("<", 1)[0] for c in row.split('<td class="num')[1:]]
    assert cells[-3:] == ["1.5", "10.0%", "5.0%"]  # 90/60 per min; 10 of 100; 10 of 200
    assert _row(body, "default").count("–") == 2
    assert "190 finished · 10 failed · 5.0% failure rate" in body  # the 24 h chart
    assert "90 finished · 10 failed · 10.0% failure rate" in body  # the hour chart


def test_hour_series_has_a_bucket_per_minute_with_empty_ones(db):
    now = timezone.now().replace(second=30, microsecond=0)
    minute = now.replace(second=0)
    JobMetricFactory(minute=minute - timedelta(minutes=2), finished=4, failed=1)
    JobMetricFactory(minute=minute - timedelta(minutes=2), func="b", finished=1)
    series = rollup_get(window="hour", now=now).series
    assert len(series) == 60 and series[-1].start == minute
    assert [(b.finished, b.failed) for b in series[-3:]] == [(5, 1), (0, 0), (0, 0)]
    day = rollup_get(window="day", now=now).series
    hour_of_it = (minute - timedelta(minutes=2)).replace(
        minute=0
    )  # the last bucket, or (just past an hour) the one before
    assert len(day) == 24 and [(b.start, b.finished) for b in day if b.finished] == [(hour_of_it, 5)]


def test_day_sums_cover_24_hours_while_the_chart_shows_24_whole_hours(db):
    now = timezone.now().replace(minute=30, second=0, microsecond=0)
    JobMetricFactory(minute=now - timedelta(hours=23, minutes=50), queue="low", finished=7, failed=1)
    JobMetricFactory(minute=now - timedelta(hours=24, minutes=10), queue="low", finished=100)
    JobMetricFactory(minute=now - timedelta(minutes=10), queue="high", finished=3)

    day = rollup_get(window="day", now=now)

    assert day.by_queue == {"low": (7, 1), "high": (3, 0)}  # the last 24 hours to the minute
    # The chart starts at the first whole hour of the 24: 23 h 30 min ago here.
    assert day.series[0].start == now.replace(minute=0) - timedelta(hours=23)
    assert [b.finished for b in day.series if b.finished] == [3]


@pytest.mark.django_db(transaction=True)
def test_workers_page_lists_a_live_worker_and_drops_a_killed_one(staff_client, start_worker):
    worker = start_worker("high", name="page-worker")

    def listed_row() -> str:
        body = staff_client.get("/dashboard/workers/").content.decode()
        if 'data-worker="page-worker"' not in body:
            return ""
        row = body.split('data-worker="page-worker"', 1)[1].split("</tr>", 1)[0]
        return row if "badge-idle" in row else ""  # RQ says "started" while it boots

    listed = wait_for(listed_row, timeout=30)
    assert ">high</a>" in listed and f">{worker.pid}<" in listed
    overview = staff_client.get("/dashboard/").content.decode()
    assert "0 / 1" in _row(overview, "high")

    worker.kill()
    wait_for(lambda: "page-worker" not in staff_client.get("/dashboard/workers/").content.decode(), timeout=30)
