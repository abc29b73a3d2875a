"""The worked examples' data: page views, an email campaign, a staged ETL."""

from __future__ import annotations

from django.db import models


# --- page views through a Redis counter -------------------------------------------------
class Article(models.Model):
    slug = models.SlugField(max_length=100, unique=True)
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True, default="")
    # Only the flush job (or the direct mode) writes this; visits go to Redis first.
    views = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.title


class PageViewFlush(models.Model):
    """One row per applied flush: re-applying a flush whose Redis cleanup was lost is a no-op."""

    flush_id = models.CharField(max_length=64, unique=True)
    articles = models.PositiveIntegerField(default=0)
    views = models.PositiveBigIntegerField(default=0)
    applied_at = models.DateTimeField(auto_now_add=True, db_index=True)

    def __str__(self) -> str:
        return f"flush {self.flush_id}: {self.views} views"


# --- multicast email ----------------------------------------------------------------------
class Subscriber(models.Model):
    email = models.EmailField(unique=True)
    name = models.CharField(max_length=200, blank=True, default="")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.email


class Campaign(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft"
        FANNING_OUT = "fanning_out", "fanning out"
        FANNED_OUT = "fanned_out", "fanned out"

    # Stable per occurrence (e.g. "digest-2026-W48"): a schedule firing twice makes one campaign.
    key = models.CharField(max_length=100, unique=True)
    subject = models.CharField(max_length=200)
    body = models.TextField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    batch_size = models.PositiveIntegerField(default=50)
    recipients = models.PositiveIntegerField(default=0, help_text="Deliveries created by the fan-out.")
    manager_job_id = models.CharField(max_length=128, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    fanned_out_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.subject


class Delivery(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"
        # A batch handed the recipient to a job of its own after a refusal.
        RETRYING = "retrying"
        FAILED = "failed"

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="deliveries")
    subscriber = models.ForeignKey(Subscriber, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True, default="")
    batch_job_id = models.CharField(max_length=128, blank=True, default="")
    job_id = models.CharField(max_length=128, blank=True, default="", help_text="The per-recipient job, if any.")
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign", "subscriber"], name="delivery_one_per_recipient"),
        ]
        indexes = [models.Index(fields=["campaign", "status"], name="delivery_campaign_status")]

    def __str__(self) -> str:
        return f"{self.campaign_id} -> {self.subscriber_id}: {self.status}"


# --- staged ETL ---------------------------------------------------------------------------
class SourceOrder(models.Model):
    """The operational table the ETL reads: messy, as typed in by people and partners."""

    customer = models.CharField(max_length=200)
    country = models.CharField(max_length=50, help_text="Free text: ' de', 'Germany', 'FR '...")
    amount = models.CharField(max_length=30, help_text="Free text: '1,234.50', '12.5'.")
    currency = models.CharField(max_length=3)
    ordered_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    def __str__(self) -> str:
        return f"order {self.pk}"


class OrderFact(models.Model):
    """The analytics table: one clean row per source order, upserted by ``source_id``."""

    source_id = models.BigIntegerField(unique=True)
    ordered_on = models.DateField(db_index=True)
    country = models.CharField(max_length=2)
    currency = models.CharField(max_length=3)
    amount_cents = models.BigIntegerField()
    amount_usd_cents = models.BigIntegerField()
    run = models.ForeignKey("EtlRun", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    loaded_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"fact {self.source_id}"


class EtlRun(models.Model):
    """Source ids ``lo < id <= hi``, cut into pages that jobs process in parallel."""

    lo = models.BigIntegerField(unique=True, help_text="Exclusive: the previous run's hi.")
    hi = models.BigIntegerField()
    page_size = models.PositiveIntegerField()
    job_id = models.CharField(max_length=128, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"ETL run {self.pk} ({self.lo}, {self.hi}]"


class EtlPage(models.Model):
    class Stage(models.TextChoices):
        EXTRACT = "extract"
        TRANSFORM = "transform"
        LOAD = "load"
        DONE = "done"

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        RETRYING = "retrying"
        FAILED = "failed"
        DONE = "done"

    run = models.ForeignKey(EtlRun, on_delete=models.CASCADE, related_name="pages")
    lo = models.BigIntegerField(help_text="First source id (inclusive).")
    hi = models.BigIntegerField(help_text="Last source id (exclusive).")
    stage = models.CharField(max_length=16, choices=Stage.choices, default=Stage.EXTRACT)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveIntegerField(default=0)
    rows = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True, default="")
    # The job that owns the page; a superseded job (the page was rerun) stops at once.
    job_id = models.CharField(max_length=128, blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "lo"], name="etlpage_one_per_range")]
        ordering = ["run", "lo"]

    def __str__(self) -> str:
        return f"page [{self.lo}, {self.hi}) {self.stage}/{self.status}"


class EtlStagedRow(models.Model):
    """Between the stages: what extract copied and transform computed, per page."""

    page = models.ForeignKey(EtlPage, on_delete=models.CASCADE, related_name="staged")
    source_id = models.BigIntegerField()
    customer = models.CharField(max_length=200)
    country_raw = models.CharField(max_length=50)
    amount_raw = models.CharField(max_length=30)
    currency = models.CharField(max_length=3)
    ordered_at = models.DateTimeField()
    # Filled by transform.
    country = models.CharField(max_length=2, blank=True, default="")
    amount_cents = models.BigIntegerField(null=True, blank=True)
    amount_usd_cents = models.BigIntegerField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["page", "source_id"], name="etlstaged_one_per_row")]

    def __str__(self) -> str:
        return f"staged {self.source_id} of page {self.page_id}"
