"""Demo data and demo traffic: what `manage.py demo_traffic` (and so `make run`) produces."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.utils import timezone
from django.utils.text import slugify

from workers.api import job_enqueue
from workers.models import JobOrigin

from . import services
from .models import Article, SourceOrder, Subscriber

ARTICLE_TITLES = [
    "Why background jobs belong in a queue",
    "Retries with exponential backoff, explained",
    "Dead letters are a feature",
    "Counting page views without melting the database",
    "Fan-out: one job, a thousand emails",
    "Idempotent ETL in three stages",
    "Keeping jobs in order per key",
    "What a worker does when it dies",
]
_CUSTOMERS = ["Acme GmbH", "Globex", "Initech", "Umbrella Ltd", "Hooli", "Stark Industries", "Wayne Corp", "Tyrell"]
_COUNTRIES = [" de", "DE ", "Germany", "fr", "France", "US", "usa", "United States", "uk", "GB", "nl", "Spain", "it"]
_CURRENCIES = ["EUR", "EUR", "USD", "GBP"]


def demo_data_seed(*, articles: int = 8, subscribers: int = 200, orders: int = 1000) -> dict[str, int]:
    """Articles, subscribers (a few with simulated bad addresses) and source orders.

    Idempotent: running it again adds only what is missing.
    """
    titles = ARTICLE_TITLES[:articles]
    existing = set(Article.objects.filter(slug__in=[slugify(t) for t in titles]).values_list("slug", flat=True))
    Article.objects.bulk_create(
        [
            Article(slug=slugify(t), title=t, body=f"{t}.\n\nA demo article: every visit counts one view.")
            for t in titles
            if slugify(t) not in existing
        ]
    )
    Subscriber.objects.bulk_create(
        [Subscriber(email=subscriber_email(n), name=f"Reader {n}") for n in range(1, subscribers + 1)],
        ignore_conflicts=True,
    )
    missing = orders - SourceOrder.objects.count()
    if missing > 0:
        source_orders_add(count=missing, rng=random.Random(missing))
    return {
        "articles": Article.objects.count(),
        "subscribers": Subscriber.objects.count(),
        "orders": SourceOrder.objects.count(),
    }


def subscriber_email(n: int) -> str:
    """Most addresses are fine; every 50th is refused for good, every 40th is greylisted once."""
    if n % 50 == 0:
        return f"reader{n}@{services.REFUSING_DOMAIN}"
    if n % 40 == 0:
        return f"reader{n}@{services.GREYLISTING_DOMAIN}"
    return f"reader{n}@mail.example"


def source_orders_add(*, count: int, rng: random.Random) -> int:
    now = timezone.now()
    SourceOrder.objects.bulk_create(
        [
            SourceOrder(
                customer=rng.choice(_CUSTOMERS),
                country=rng.choice(_COUNTRIES),
                amount=f"{Decimal(rng.randint(100, 250_000)) / 100:,.2f}",
                currency=rng.choice(_CURRENCIES),
                ordered_at=now - timedelta(minutes=rng.randint(0, 60 * 24 * 30)),
            )
            for _ in range(count)
        ],
        batch_size=500,
    )
    return count


class DemoTraffic:
    """A realistic mix of work, one action per call to ``step()``."""

    def __init__(
        self, *, rng: random.Random | None = None, pace: float = 1.0, log: Callable[[str], None] = print
    ) -> None:
        self.rng = rng or random.Random()
        self.pace = pace  # scales how long slow and long jobs take
        self.log = log
        self.counts: Counter[str] = Counter()
        self.articles = list(Article.objects.order_by("pk").values_list("pk", flat=True))
        self.actions: list[tuple[Callable[[], None], int]] = [
            (self.page_views, 30),
            (self.quick, 20),
            (self.keyed, 8),
            (self.flaky, 6),
            (self.slow, 5),
            (self.orders, 5),
            (self.scheduled, 3),
            (self.long, 1),
            (self.broken, 1),
        ]

    def step(self) -> None:
        action = self.rng.choices([a for a, _ in self.actions], weights=[w for _, w in self.actions])[0]
        action()

    def every_kind(self) -> None:
        """One of each (`--once`), plus a campaign, an ETL run and a page-view flush."""
        for action, _ in self.actions:
            action()
        self.campaign()
        self.etl_run()
        job_enqueue("examples.jobs.pageviews.page_views_flush", queue="high")

    def _enqueue(self, kind: str, func: str, *args: object, **options: object) -> None:
        job_enqueue(f"examples.jobs.demo.{func}", args=args, **options)  # type: ignore[arg-type]
        self.counts[kind] += 1

    def page_views(self) -> None:
        if not self.articles:
            return
        # A few articles get most visits, like real traffic.
        weights = [1 / (rank + 1) for rank in range(len(self.articles))]
        for article_id in self.rng.choices(self.articles, weights=weights, k=self.rng.randint(5, 40)):
            services.article_view_record(article_id=article_id)
            self.counts["page views"] += 1

    def quick(self) -> None:
        self._enqueue("quick", "thumbnail_resize", self.rng.randint(1, 10_000), queue="high")

    def slow(self) -> None:
        seconds = round(self.rng.uniform(0.5, 2) * self.pace, 2)
        self._enqueue("slow", "search_reindex", self.rng.randint(1, 10_000), seconds, queue="low")

    def flaky(self) -> None:
        self._enqueue("flaky", "webhook_deliver", uuid.uuid4().hex[:12], self.rng.randint(1, 2))

    def broken(self) -> None:
        self._enqueue("broken", "invoice_sync", self.rng.randint(1000, 9999))

    def long(self) -> None:
        self._enqueue("long", "report_render", self.rng.randint(1, 500), 10, 1.0 * self.pace, queue="low")

    def scheduled(self) -> None:
        delay = timedelta(seconds=self.rng.randint(10, 90))
        self._enqueue("scheduled", "thumbnail_resize", self.rng.randint(1, 10_000), delay=delay)

    def keyed(self) -> None:
        account = self.rng.randint(1, 5)
        entry = self.counts["keyed"] + 1
        self._enqueue("keyed", "ledger_apply", account, entry, self.rng.randint(-5000, 20000), key=f"account:{account}")

    def orders(self) -> None:
        self.counts["source orders"] += source_orders_add(count=self.rng.randint(1, 5), rng=self.rng)

    def campaign(self) -> None:
        now = timezone.now()
        campaign = services.campaign_start(
            key=f"demo-{now:%Y%m%d-%H%M%S-%f}",
            subject=f"jobsite news, {now:%d %b %H:%M}",
            body="What happened on the demo site since the last issue.",
        )
        self.counts["campaigns"] += 1
        self.log(f"campaign {campaign.key}: manager job enqueued")

    def etl_run(self) -> None:
        services.etl_run_request()
        self.counts["ETL runs"] += 1

    def schedules_drive(self, elapsed: float, last: dict[str, float]) -> None:
        """Without a scheduler process, fire the examples' schedules from here."""
        schedules: list[dict[str, Any]] = getattr(settings, "JOBSITE_SCHEDULES", [])
        for entry in schedules:
            interval = float(entry.get("interval") or 0)
            func = str(entry["func"])
            if not interval or not func.startswith("examples."):
                continue
            if elapsed - last.get(func, -interval) >= interval:
                last[func] = elapsed
                job_enqueue(func, queue=entry.get("queue", "default"), origin=JobOrigin.SCHEDULE)
