"""`manage.py demo_traffic`: seeds idempotently and produces every kind of work the dashboard shows."""

from __future__ import annotations

from io import StringIO

from django.core.management import call_command
from django.db.models import Sum

from examples.demo import demo_data_seed
from examples.models import Article, Campaign, EtlPage, OrderFact, SourceOrder, Subscriber
from workers.models import JobRecord, JobStatus


def test_seeding_twice_adds_nothing_the_second_time(transactional_db):
    first = demo_data_seed(subscribers=60, orders=120)
    second = demo_data_seed(subscribers=60, orders=120)

    assert first == second == {"articles": 8, "subscribers": 60, "orders": 120}
    assert Subscriber.objects.filter(email__endswith="@invalid.example").exists()


def test_once_produces_a_realistic_mix_on_several_queues(settle):
    out = StringIO()
    call_command("demo_traffic", "--once", "--seed", "7", "--pace", "0.01", stdout=out)

    settle(timeout=120)

    records = JobRecord.objects.all()
    assert {"high", "default", "low"} <= set(records.values_list("queue", flat=True))

    def one(func: str) -> JobRecord:
        return records.get(func=f"examples.jobs.demo.{func}")

    assert one("search_reindex").status == JobStatus.FINISHED
    flaky = one("webhook_deliver")
    assert flaky.status == JobStatus.FINISHED and flaky.attempts > 1  # transient: succeeded on retry
    broken = one("invoice_sync")
    assert broken.status == JobStatus.DEAD and broken.errors.count() == 3  # permanent: a dead letter
    assert one("report_render").progress == 100
    assert one("ledger_apply").key.startswith("account:")
    thumbnails = records.filter(func="examples.jobs.demo.thumbnail_resize")
    assert set(thumbnails.values_list("status", flat=True)) == {JobStatus.FINISHED, JobStatus.SCHEDULED}
    # The three workloads.
    visits = int(out.getvalue().split(" page views")[0].rsplit(" ", 1)[-1])
    assert Article.objects.aggregate(n=Sum("views"))["n"] == visits > 0
    campaign = Campaign.objects.get()
    assert campaign.deliveries.filter(status="sent").count() == Subscriber.objects.count() - 4
    assert set(EtlPage.objects.values_list("status", flat=True)) == {EtlPage.Status.DONE}
    assert OrderFact.objects.count() == SourceOrder.objects.count()
