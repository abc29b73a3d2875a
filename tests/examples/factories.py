"""factory_boy factories for the examples' rows."""

from __future__ import annotations

from datetime import UTC, datetime

import factory

from examples.models import Article, Campaign, Delivery, SourceOrder, Subscriber


class ArticleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Article

    slug = factory.Sequence(lambda n: f"article-{n}")
    title = factory.Sequence(lambda n: f"Article {n}")
    body = "Some text."


class SubscriberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Subscriber

    email = factory.Sequence(lambda n: f"reader{n}@mail.example")
    name = factory.Sequence(lambda n: f"Reader {n}")


class CampaignFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Campaign

    key = factory.Sequence(lambda n: f"campaign-{n}")
    subject = factory.Sequence(lambda n: f"Newsletter {n}")
    body = "News."
    batch_size = 25


class DeliveryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Delivery

    campaign = factory.SubFactory(CampaignFactory)
    subscriber = factory.SubFactory(SubscriberFactory)


class SourceOrderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SourceOrder

    customer = factory.Sequence(lambda n: f"Customer {n % 7}")
    # Messy, as people type it: the transform stage cleans these up.
    country = factory.Iterator([" de", "Germany", "FR ", "usa", "uk", "nl", "Atlantis"])
    amount = factory.Iterator(["1,234.50", "12.5", "0.99", "250", "99.995"])
    currency = factory.Iterator(["EUR", "USD", "GBP"])
    ordered_at = factory.Sequence(lambda n: datetime(2026, 1, 1 + n % 28, 12, 0, tzinfo=UTC))
