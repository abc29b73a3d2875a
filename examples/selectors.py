"""The examples' reads, for the demo page and the dashboard."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Q

from .conf import example_setting
from .models import Article, Campaign, Delivery, EtlPage, EtlRun, OrderFact, PageViewFlush
from .services import page_views_pending


@dataclass(frozen=True)
class ArticleViews:
    article: Article
    pending: int  # counted in Redis, not yet flushed

    @property
    def total(self) -> int:
        return self.article.views + self.pending


def article_views_get(*, article: Article) -> ArticleViews:
    return ArticleViews(article=article, pending=page_views_pending(article_ids=[article.pk]).get(article.pk, 0))


def article_views_list(*, limit: int = 20) -> list[ArticleViews]:
    articles = list(Article.objects.order_by("pk")[:limit])
    pending = page_views_pending(article_ids=[a.pk for a in articles])
    return [ArticleViews(article=a, pending=pending.get(a.pk, 0)) for a in articles]


def page_views_last_flush() -> PageViewFlush | None:
    return PageViewFlush.objects.order_by("-applied_at", "-pk").first()


def page_views_mode() -> str:
    return example_setting("PAGE_VIEWS_MODE")


@dataclass(frozen=True)
class CampaignProgress:
    campaign: Campaign
    sent: int
    failed: int
    pending: int  # not yet sent: waiting in a batch or retried on its own

    @property
    def total(self) -> int:
        return self.sent + self.failed + self.pending

    @property
    def percent_done(self) -> int:
        return int((self.sent + self.failed) * 100 / self.total) if self.total else 0


def campaign_progress_list(*, limit: int = 10) -> list[CampaignProgress]:
    campaigns = Campaign.objects.order_by("-created_at", "-pk").annotate(
        n_sent=Count("deliveries", filter=Q(deliveries__status=Delivery.Status.SENT)),
        n_failed=Count("deliveries", filter=Q(deliveries__status=Delivery.Status.FAILED)),
        n_pending=Count(
            "deliveries", filter=Q(deliveries__status__in=[Delivery.Status.PENDING, Delivery.Status.RETRYING])
        ),
    )[:limit]
    return [CampaignProgress(campaign=c, sent=c.n_sent, failed=c.n_failed, pending=c.n_pending) for c in campaigns]


@dataclass(frozen=True)
class EtlRunSummary:
    run: EtlRun
    pages: list[EtlPage]

    @property
    def done(self) -> int:
        return sum(1 for p in self.pages if p.status == EtlPage.Status.DONE)

    @property
    def failed(self) -> int:
        return sum(1 for p in self.pages if p.status == EtlPage.Status.FAILED)

    @property
    def rows(self) -> int:
        return sum(p.rows for p in self.pages)


def etl_run_list(*, limit: int = 5) -> list[EtlRunSummary]:
    runs = list(EtlRun.objects.order_by("-pk")[:limit])
    pages: dict[int, list[EtlPage]] = {run.pk: [] for run in runs}
    for page in EtlPage.objects.filter(run__in=runs).order_by("run", "lo"):
        pages[page.run_id].append(page)
    return [EtlRunSummary(run=run, pages=pages[run.pk]) for run in runs]


def order_fact_count() -> int:
    return OrderFact.objects.count()
