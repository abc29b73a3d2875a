"""Staged ETL: pages in parallel on real workers; failures in transform and load lose and duplicate nothing."""

from __future__ import annotations

from decimal import Decimal

import pytest

from examples import services
from examples.faults import FAULTS_KEY, fault_arm, fault_disarm
from examples.models import EtlPage, EtlRun, OrderFact, SourceOrder
from tests.conftest import wait_for
from tests.examples.factories import SourceOrderFactory
from workers import enqueue
from workers.models import JobError, JobOrigin, JobRecord, JobStatus

RATES = {"EUR": Decimal("1.08"), "USD": Decimal("1"), "GBP": Decimal("1.27")}
COUNTRIES = {" de": "DE", "Germany": "DE", "FR ": "FR", "usa": "US", "uk": "GB", "nl": "NL", "Atlantis": "ZZ"}


def _expected(order: SourceOrder) -> tuple[int, str, str, int, int]:
    """What the analytics row for ``order`` must hold, computed here independently."""
    cents = (Decimal(order.amount.replace(",", "")) * 100).quantize(Decimal("1"))
    usd = (cents * RATES[order.currency]).quantize(Decimal("1"))
    return (order.pk, COUNTRIES[order.country], order.currency, int(cents), int(usd))


def _facts() -> list[tuple[int, str, str, int, int]]:
    return list(
        OrderFact.objects.order_by("source_id").values_list(
            "source_id", "country", "currency", "amount_cents", "amount_usd_cents"
        )
    )


def _all_pages_done(run: EtlRun) -> bool:
    statuses = list(EtlPage.objects.filter(run=run).values_list("status", flat=True))
    return bool(statuses) and all(s == EtlPage.Status.DONE for s in statuses)


@pytest.mark.slow
def test_pages_run_in_parallel_and_failures_lose_and_duplicate_nothing(start_worker, redis_conn):
    orders = SourceOrderFactory.create_batch(1000)  # 5 pages of 200, written 100 rows at a time
    expected = [_expected(o) for o in orders]
    # Transform fails twice with half a page transformed; load three times with half a page loaded.
    fault_arm(name="examples.etl.transform", times=2, after=1)
    fault_arm(name="examples.etl.load", times=3, after=1)
    start_worker("default", simple=True)
    start_worker("default", simple=True)
    starter = enqueue("examples.jobs.etl.etl_run_start")

    run = wait_for(lambda: EtlRun.objects.first(), timeout=60)
    wait_for(lambda: _all_pages_done(run), timeout=120, interval=0.2)

    assert _facts() == expected
    assert redis_conn.hget(FAULTS_KEY, "examples.etl.transform:times") == b"0"
    assert redis_conn.hget(FAULTS_KEY, "examples.etl.load:times") == b"0"
    pages = list(EtlPage.objects.filter(run=run))
    assert [(p.lo, p.hi, p.rows) for p in pages] == [
        (orders[0].pk + 200 * i, orders[0].pk + 200 * (i + 1), 200) for i in range(5)
    ]
    assert sum(p.attempts for p in pages) == 5 + 5  # every injected failure cost one retry
    assert not services.EtlStagedRow.objects.exists()
    page_jobs = JobRecord.objects.filter(func="examples.jobs.etl.etl_page_process")
    wait_for(lambda: page_jobs.filter(status=JobStatus.FINISHED).count() == 5)
    assert set(page_jobs.values_list("origin", "parent_job_id")) == {(JobOrigin.FANOUT, starter.id)}
    assert len(set(page_jobs.values_list("worker", flat=True))) == 2  # both workers took pages
    injected = JobError.objects.filter(job__in=page_jobs, exc_type__endswith="InjectedFault")
    assert injected.count() == 5

    # Rerunning the whole run, with a load failing halfway again, leaves the same rows.
    fault_arm(name="examples.etl.load", times=1, after=3)
    services.etl_run_rerun(run_id=run.pk)
    wait_for(lambda: _all_pages_done(run), timeout=120, interval=0.2)
    assert _facts() == expected


def test_a_page_that_keeps_failing_ends_dead_and_its_rerun_fills_the_gap(start_worker):
    orders = SourceOrderFactory.create_batch(300)
    fault_arm(name="examples.etl.transform", times=100, after=2)  # page 2 never gets past transform
    start_worker("default", simple=True)
    services.etl_run_request()

    run = wait_for(lambda: EtlRun.objects.first(), timeout=60)
    broken = wait_for(lambda: EtlPage.objects.filter(run=run, status=EtlPage.Status.FAILED).first(), timeout=60)

    assert broken.stage == EtlPage.Stage.TRANSFORM
    assert "InjectedFault" in broken.last_error
    wait_for(lambda: JobRecord.objects.filter(job_id=broken.job_id, status=JobStatus.DEAD).exists())
    loaded = set(OrderFact.objects.values_list("source_id", flat=True))
    assert loaded == {o.pk for o in orders[:200]}  # a gap, shown as a failed page

    fault_disarm(name="examples.etl.transform")
    services.etl_page_rerun(page_id=broken.pk)
    wait_for(lambda: _all_pages_done(run), timeout=60)

    assert _facts() == [_expected(o) for o in orders]


def test_each_run_loads_only_rows_added_since_the_last(start_worker):
    first = SourceOrderFactory.create_batch(50)
    start_worker("default", simple=True)
    services.etl_run_request()
    run1 = wait_for(lambda: EtlRun.objects.first(), timeout=60)
    wait_for(lambda: _all_pages_done(run1), timeout=60)
    second = SourceOrderFactory.create_batch(30)

    services.etl_run_request()
    run2 = wait_for(lambda: EtlRun.objects.exclude(pk=run1.pk).first(), timeout=60)
    wait_for(lambda: _all_pages_done(run2), timeout=60)

    assert (run2.lo, run2.hi) == (first[-1].pk, second[-1].pk)
    assert _facts() == [_expected(o) for o in first + second]
    assert set(OrderFact.objects.filter(run=run2).values_list("source_id", flat=True)) == {o.pk for o in second}
    assert services.etl_run_start() is None  # nothing new: no empty run
