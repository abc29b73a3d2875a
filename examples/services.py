"""The worked examples' writes: page views, an email campaign, a staged ETL.

Job functions (examples/jobs/) load ids and call these; views and the demo call them too.
"""

from __future__ import annotations

import smtplib
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import TypeVar

from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.db.models import F, Max, Min
from django.utils import timezone

from workers.api import job_enqueue
from workers.models import JobOrigin
from workers.redis import connection as redis_connection

from .conf import example_setting
from .faults import fault_point
from .models import (
    Article,
    Campaign,
    Delivery,
    EtlPage,
    EtlRun,
    EtlStagedRow,
    OrderFact,
    PageViewFlush,
    SourceOrder,
    Subscriber,
)

T = TypeVar("T")


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# ==== page views through a Redis counter =================================================
# One hash of article id -> visits not yet in the database. A flush renames it to the
# "flushing" hash in one atomic step: a visit lands either in what is being flushed or in a
# fresh pending hash, never in between, and nothing is read-then-zeroed.
PENDING_KEY = "{examples:pageviews}:pending"
FLUSHING_KEY = "{examples:pageviews}:flushing"
FLUSH_ID_KEY = "{examples:pageviews}:flushing:id"
# How long applied flush ids are kept: only a flush whose Redis cleanup was lost needs its id.
FLUSH_ID_KEEP = timedelta(days=1)

# Returns the flush to apply: a leftover one (a flush that died before cleaning up) first.
_TAKE = """
if redis.call('EXISTS', KEYS[2]) == 1 then
  local id = redis.call('GET', KEYS[3])
  if not id then
    redis.call('SET', KEYS[3], ARGV[1])
    id = ARGV[1]
  end
  return {id, redis.call('HGETALL', KEYS[2]), 1}
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'', {}, 0}
end
redis.call('RENAME', KEYS[1], KEYS[2])
redis.call('SET', KEYS[3], ARGV[1])
return {ARGV[1], redis.call('HGETALL', KEYS[2]), 0}
"""
# Deletes the flushing hash only if it is still the one this flush applied.
_DONE = """
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('DEL', KEYS[1], KEYS[2])
  return 1
end
return 0
"""


def article_view_record(*, article_id: int) -> None:
    """Count one visit. Redis mode: one HINCRBY, no database write. Direct mode: one UPDATE."""
    if example_setting("PAGE_VIEWS_MODE") == "direct":
        Article.objects.filter(pk=article_id).update(views=F("views") + 1)
    else:
        redis_connection().hincrby(PENDING_KEY, str(article_id), 1)


@dataclass(frozen=True)
class FlushResult:
    flushes: int = 0
    views: int = 0
    articles: int = 0
    reapplied: int = 0  # leftover flushes found already applied (their cleanup had been lost)


def page_views_flush() -> FlushResult:
    """Move the counted visits into ``Article.views``.

    Crash-safe: the counts stay in Redis until the database has them, and the flush id,
    written in the same transaction as the counts, makes applying a leftover flush twice a
    no-op. So a flush that dies anywhere loses nothing and counts nothing twice.
    """
    redis = redis_connection()
    flushes = views = articles = reapplied = 0
    for _ in range(2):  # a leftover flush first, then what is pending now
        raw_id, flat, leftover = redis.eval(_TAKE, 3, PENDING_KEY, FLUSHING_KEY, FLUSH_ID_KEY, uuid.uuid4().hex)
        if not raw_id:
            break
        flush_id = raw_id.decode()
        counts = {int(flat[i]): int(flat[i + 1]) for i in range(0, len(flat), 2)}
        total = sum(counts.values())
        try:
            with transaction.atomic():
                PageViewFlush.objects.create(flush_id=flush_id, articles=len(counts), views=total)
                for article_id in sorted(counts):  # one lock order for every writer: no deadlocks
                    Article.objects.filter(pk=article_id).update(views=F("views") + counts[article_id])
                fault_point("examples.pageviews.apply")
        except IntegrityError:
            reapplied += 1  # this flush id is already in the database: only clean up
        else:
            flushes, views, articles = flushes + 1, views + total, articles + len(counts)
        fault_point("examples.pageviews.cleanup")
        redis.eval(_DONE, 2, FLUSHING_KEY, FLUSH_ID_KEY, flush_id)
        if not leftover:
            break
    PageViewFlush.objects.filter(applied_at__lt=timezone.now() - FLUSH_ID_KEEP).delete()
    return FlushResult(flushes=flushes, views=views, articles=articles, reapplied=reapplied)


def page_views_pending(*, article_ids: Sequence[int]) -> dict[int, int]:
    """Visits counted in Redis and not yet in the database, per article."""
    if not article_ids:
        return {}
    fields = [str(i) for i in article_ids]
    pipe = redis_connection().pipeline(transaction=False)
    pipe.hmget(PENDING_KEY, fields)
    pipe.hmget(FLUSHING_KEY, fields)
    pending, flushing = pipe.execute()
    return {
        article_id: int(a or 0) + int(b or 0) for article_id, a, b in zip(article_ids, pending, flushing, strict=True)
    }


# ==== multicast email ===================================================================
REFUSING_DOMAIN = "invalid.example"  # simulated: the server refuses every recipient there
GREYLISTING_DOMAIN = "greylist.example"  # simulated: refuses a recipient once, then accepts


def campaign_create(*, key: str, subject: str, body: str, batch_size: int | None = None) -> Campaign:
    """The campaign for ``key``; creating it twice returns the first one."""
    campaign, _ = Campaign.objects.get_or_create(
        key=key,
        defaults={
            "subject": subject,
            "body": body,
            "batch_size": batch_size or example_setting("EMAIL_BATCH_SIZE"),
        },
    )
    return campaign


def campaign_start(*, key: str, subject: str, body: str, batch_size: int | None = None) -> Campaign:
    """Create the campaign for ``key`` (once) and enqueue its manager job."""
    with transaction.atomic():
        campaign = campaign_create(key=key, subject=subject, body=body, batch_size=batch_size)
        job = job_enqueue("examples.jobs.campaigns.campaign_send", args=(campaign.pk,), queue="default")
        Campaign.objects.filter(pk=campaign.pk, manager_job_id="").update(manager_job_id=job.id)
    return campaign


def campaign_fan_out(
    *, campaign_id: int, manager_job_id: str, on_page: Callable[[int, int], None] | None = None
) -> int:
    """Page through active subscribers; per page, create deliveries and enqueue one batch job.

    Rerunning it (the manager job retried) enqueues only recipients no batch owns yet.
    Returns the number of batch jobs enqueued.
    """
    campaign = Campaign.objects.get(pk=campaign_id)
    Campaign.objects.filter(pk=campaign_id).update(status=Campaign.Status.FANNING_OUT, manager_job_id=manager_job_id)
    subscribers = Subscriber.objects.filter(active=True).order_by("pk")
    total = subscribers.count()
    cursor, done, batches = 0, 0, 0
    while True:
        ids = list(subscribers.filter(pk__gt=cursor).values_list("pk", flat=True)[: campaign.batch_size])
        if not ids:
            break
        with transaction.atomic():
            Delivery.objects.bulk_create(
                [Delivery(campaign_id=campaign_id, subscriber_id=i) for i in ids], ignore_conflicts=True
            )
            todo = list(
                Delivery.objects.select_for_update()
                .filter(campaign_id=campaign_id, subscriber_id__in=ids, batch_job_id="", status=Delivery.Status.PENDING)
                .order_by("pk")
                .values_list("pk", flat=True)
            )
            if todo:
                # Pushed to Redis when this transaction commits, with the ownership below.
                job = job_enqueue(
                    "examples.jobs.campaigns.campaign_send_batch",
                    kwargs={"campaign_id": campaign_id, "delivery_ids": todo},
                    queue=example_setting("EMAIL_QUEUE"),
                    origin=JobOrigin.FANOUT,
                    parent_job_id=manager_job_id,
                )
                Delivery.objects.filter(pk__in=todo).update(batch_job_id=job.id)
                batches += 1
        cursor, done = ids[-1], done + len(ids)
        if on_page is not None:
            on_page(done, max(total, done))
    Campaign.objects.filter(pk=campaign_id).update(
        status=Campaign.Status.FANNED_OUT,
        recipients=Delivery.objects.filter(campaign_id=campaign_id).count(),
        fanned_out_at=timezone.now(),
    )
    return batches


def _smtp_check(address: str) -> None:
    """The simulated mail server's verdict on a recipient (a real one answers the same way)."""
    domain = address.rpartition("@")[2].lower()
    if domain == REFUSING_DOMAIN:
        raise smtplib.SMTPRecipientsRefused({address: (550, b"5.1.1 mailbox unavailable")})
    if domain == GREYLISTING_DOMAIN and redis_connection().set(f"examples:greylist:{address}", 1, nx=True, ex=3600):
        raise smtplib.SMTPRecipientsRefused({address: (451, b"4.7.1 greylisted, try again later")})


def _send(delivery: Delivery) -> None:
    subscriber, campaign = delivery.subscriber, delivery.campaign
    _smtp_check(subscriber.email)
    EmailMessage(
        subject=campaign.subject,
        body=f"Hi {subscriber.name or subscriber.email},\n\n{campaign.body}",
        from_email=example_setting("EMAIL_FROM"),
        to=[subscriber.email],
        # Stable per delivery, so a receiving system can drop a duplicate should the
        # process die between handing the mail over and committing `sent` below.
        headers={"Message-ID": f"<campaign-{campaign.pk}.delivery-{delivery.pk}@jobsite.example>"},
    ).send()


def _refusal(exc: smtplib.SMTPRecipientsRefused) -> str:
    return "; ".join(f"{addr}: {code} {msg.decode(errors='replace')}" for addr, (code, msg) in exc.recipients.items())


def _locked_delivery(delivery_id: int) -> Delivery | None:
    return Delivery.objects.select_for_update().select_related("campaign", "subscriber").filter(pk=delivery_id).first()


@dataclass(frozen=True)
class BatchResult:
    sent: int = 0
    handed_off: int = 0
    skipped: int = 0


def delivery_batch_send(*, campaign_id: int, delivery_ids: Sequence[int], batch_job_id: str) -> BatchResult:
    """Send one batch. Each delivery is claimed, sent and marked in one transaction, so a
    batch retried after failing halfway skips who already got the mail. A refused recipient
    goes to a job of its own, which retries and dead-letters that recipient alone."""
    sent = handed_off = skipped = 0
    for delivery_id in sorted(delivery_ids):
        with transaction.atomic():
            delivery = _locked_delivery(delivery_id)
            if delivery is None or delivery.campaign_id != campaign_id or delivery.status != Delivery.Status.PENDING:
                skipped += 1
                continue
            delivery.attempts += 1
            try:
                _send(delivery)
            except smtplib.SMTPRecipientsRefused as exc:
                job = job_enqueue(
                    "examples.jobs.campaigns.campaign_send_one",
                    kwargs={"delivery_id": delivery.pk},
                    queue=example_setting("EMAIL_QUEUE"),
                    origin=JobOrigin.FANOUT,
                    parent_job_id=batch_job_id,
                )
                delivery.status, delivery.job_id, delivery.last_error = Delivery.Status.RETRYING, job.id, _refusal(exc)
                handed_off += 1
            else:
                delivery.status, delivery.sent_at = Delivery.Status.SENT, timezone.now()
                sent += 1
            delivery.save(update_fields=["status", "attempts", "job_id", "last_error", "sent_at"])
        # A lost SMTP connection between two recipients fails the whole batch (retried).
        fault_point("examples.email.batch", exc=ConnectionError, message="SMTP connection lost mid-batch")
    return BatchResult(sent=sent, handed_off=handed_off, skipped=skipped)


def delivery_send(*, delivery_id: int, job_id: str, final: bool) -> str:
    """Send one delivery (a per-recipient job). A refusal is written down, then raised so the
    job is retried; on the ``final`` attempt the delivery is marked failed."""
    refusal: smtplib.SMTPRecipientsRefused | None = None
    with transaction.atomic():
        delivery = _locked_delivery(delivery_id)
        if delivery is None:
            return "gone"
        if delivery.status == Delivery.Status.SENT:
            return "already sent"
        delivery.attempts += 1
        delivery.job_id = job_id
        try:
            _send(delivery)
        except smtplib.SMTPRecipientsRefused as exc:
            refusal = exc
            delivery.status = Delivery.Status.FAILED if final else Delivery.Status.RETRYING
            delivery.last_error = _refusal(exc)[:500]
        else:
            delivery.status, delivery.sent_at, delivery.last_error = Delivery.Status.SENT, timezone.now(), ""
        delivery.save(update_fields=["status", "attempts", "job_id", "last_error", "sent_at"])
    if refusal is not None:
        raise refusal
    return "sent"


# ==== staged ETL ========================================================================
_COUNTRIES = {
    "germany": "DE", "deutschland": "DE", "france": "FR", "united states": "US", "usa": "US",
    "u.s.": "US", "united kingdom": "GB", "uk": "GB", "great britain": "GB", "netherlands": "NL",
    "spain": "ES", "españa": "ES", "italy": "IT",
}  # fmt: skip
_USD_RATES = {"USD": Decimal("1"), "EUR": Decimal("1.08"), "GBP": Decimal("1.27")}
_CHUNK = 100  # rows written per transaction inside a stage
_FACT_FIELDS = ["ordered_on", "country", "currency", "amount_cents", "amount_usd_cents", "run", "loaded_at"]


def country_normalize(raw: str) -> str:
    text = raw.strip().lower()
    if text in _COUNTRIES:
        return _COUNTRIES[text]
    return text.upper() if len(text) == 2 and text.isalpha() else "ZZ"


def amount_cents_parse(raw: str) -> int:
    try:
        value = Decimal(raw.strip().replace(",", ""))
    except InvalidOperation as exc:
        raise ValueError(f"unreadable amount {raw!r}") from exc
    return int((value * 100).quantize(Decimal("1"), rounding=ROUND_HALF_EVEN))


def usd_cents(cents: int, currency: str) -> int:
    return int((cents * _USD_RATES[currency]).quantize(Decimal("1"), rounding=ROUND_HALF_EVEN))


def _page_enqueue(page: EtlPage, *, parent_job_id: str) -> None:
    """Queue ``page`` for processing from extract; the new job owns the page (call in a transaction)."""
    job = job_enqueue(
        "examples.jobs.etl.etl_page_process",
        kwargs={"page_id": page.pk},
        queue=example_setting("ETL_QUEUE"),
        origin=JobOrigin.FANOUT if parent_job_id else JobOrigin.EVENT,
        parent_job_id=parent_job_id,
    )
    page.stage, page.status, page.last_error, page.job_id = EtlPage.Stage.EXTRACT, EtlPage.Status.QUEUED, "", job.id
    page.save(update_fields=["stage", "status", "last_error", "job_id", "updated_at"])


def etl_run_start(*, job_id: str = "", page_size: int | None = None) -> EtlRun | None:
    """Cut the source rows added since the last run into pages and enqueue a job per page.

    Rows younger than ETL_LAG_SECONDS wait for the next run, so a row whose transaction
    commits late is not skipped. Returns None when there is nothing new (or another
    starter made the same run first).
    """
    size = page_size or example_setting("ETL_PAGE_SIZE")
    cutoff = timezone.now() - timedelta(seconds=example_setting("ETL_LAG_SECONDS"))
    try:
        with transaction.atomic():
            lo = EtlRun.objects.aggregate(m=Max("hi"))["m"] or 0
            new = SourceOrder.objects.filter(pk__gt=lo, created_at__lte=cutoff).aggregate(first=Min("pk"), hi=Max("pk"))
            if new["hi"] is None:
                return None
            hi = new["hi"]
            run = EtlRun.objects.create(lo=lo, hi=hi, page_size=size, job_id=job_id)  # lo is unique
            for start in range(new["first"], hi + 1, size):
                page = EtlPage.objects.create(run=run, lo=start, hi=min(start + size, hi + 1))
                _page_enqueue(page, parent_job_id=job_id)
    except IntegrityError:
        return None
    return run


def etl_run_request() -> str:
    """Enqueue the run starter now (what its schedule does); returns the job id."""
    return job_enqueue("examples.jobs.etl.etl_run_start", queue=example_setting("ETL_QUEUE")).id


def _extract(page: EtlPage) -> None:
    with transaction.atomic():
        EtlStagedRow.objects.filter(page=page).delete()
        rows = SourceOrder.objects.filter(pk__gte=page.lo, pk__lt=page.hi).order_by("pk")
        staged = [
            EtlStagedRow(
                page=page,
                source_id=row.pk,
                customer=row.customer,
                country_raw=row.country,
                amount_raw=row.amount,
                currency=row.currency,
                ordered_at=row.ordered_at,
            )
            for row in rows
        ]
        EtlStagedRow.objects.bulk_create(staged, batch_size=500)
        fault_point("examples.etl.extract")
        page.stage, page.rows = EtlPage.Stage.TRANSFORM, len(staged)
        page.save(update_fields=["stage", "rows", "updated_at"])


def _transform(page: EtlPage) -> None:
    staged = list(EtlStagedRow.objects.filter(page=page).order_by("source_id"))
    for chunk in _chunks(staged, _CHUNK):
        for row in chunk:
            row.country = country_normalize(row.country_raw)
            row.amount_cents = amount_cents_parse(row.amount_raw)
            row.amount_usd_cents = usd_cents(row.amount_cents, row.currency)
        with transaction.atomic():
            EtlStagedRow.objects.bulk_update(chunk, ["country", "amount_cents", "amount_usd_cents"])
        # Fails with part of the page transformed: the retry recomputes it all (same result).
        fault_point("examples.etl.transform")
    page.stage = EtlPage.Stage.LOAD
    page.save(update_fields=["stage", "updated_at"])


def _transformed(value: int | None) -> int:
    if value is None:  # the page's stage says transformed: a missing value is a bug, not a zero
        raise ValueError("staged row reached load without its transform")
    return value


def _load(page: EtlPage) -> None:
    staged = list(EtlStagedRow.objects.filter(page=page).order_by("source_id"))
    for chunk in _chunks(staged, _CHUNK):
        facts = [
            OrderFact(
                source_id=row.source_id,
                ordered_on=timezone.localdate(row.ordered_at),
                country=row.country,
                currency=row.currency,
                amount_cents=_transformed(row.amount_cents),
                amount_usd_cents=_transformed(row.amount_usd_cents),
                run_id=page.run_id,
            )
            for row in chunk
        ]
        with transaction.atomic():
            # Upsert by source id: loading a row twice leaves one row with the same values.
            OrderFact.objects.bulk_create(
                facts,
                update_conflicts=True,
                unique_fields=["source_id"],
                update_fields=_FACT_FIELDS,
            )
        # Fails with part of the page loaded: the retry upserts it all again.
        fault_point("examples.etl.load")
    with transaction.atomic():
        EtlStagedRow.objects.filter(page=page).delete()
        page.stage, page.status, page.last_error = EtlPage.Stage.DONE, EtlPage.Status.DONE, ""
        page.save(update_fields=["stage", "status", "last_error", "updated_at"])


_STAGES: dict[str, Callable[[EtlPage], None]] = {
    EtlPage.Stage.EXTRACT: _extract,
    EtlPage.Stage.TRANSFORM: _transform,
    EtlPage.Stage.LOAD: _load,
}


def etl_page_process(*, page_id: int, job_id: str, final: bool) -> EtlPage | None:
    """Run the page's stages from the one it reached; each stage's end is committed with its
    last write, so a retry resumes there and a rerun from extract gives the same rows."""
    with transaction.atomic():
        page = EtlPage.objects.select_for_update().filter(pk=page_id).first()
        if page is None or (page.job_id and job_id and page.job_id != job_id):
            return None  # gone, or rerun since: the newer job owns it
        if page.stage == EtlPage.Stage.DONE:
            return page
        page.attempts += 1
        page.status = EtlPage.Status.RUNNING
        page.save(update_fields=["attempts", "status", "updated_at"])
    try:
        for stage in (EtlPage.Stage.EXTRACT, EtlPage.Stage.TRANSFORM, EtlPage.Stage.LOAD):
            if page.stage == stage:
                _STAGES[stage](page)
    except Exception as exc:
        EtlPage.objects.filter(pk=page.pk, job_id=page.job_id).update(
            status=EtlPage.Status.FAILED if final else EtlPage.Status.RETRYING,
            last_error=f"{type(exc).__name__}: {exc}"[:500],
            updated_at=timezone.now(),
        )
        raise
    return page


def etl_page_rerun(*, page_id: int) -> EtlPage:
    """Process a page again from extract (e.g. a dead page after its cause was fixed)."""
    with transaction.atomic():
        page = EtlPage.objects.select_for_update().get(pk=page_id)
        _page_enqueue(page, parent_job_id="")
    return page


def etl_run_rerun(*, run_id: int) -> EtlRun:
    """Process every page of a run again; upserts make the result the same rows, once each."""
    with transaction.atomic():
        run = EtlRun.objects.get(pk=run_id)
        for page in EtlPage.objects.select_for_update().filter(run=run).order_by("lo"):
            _page_enqueue(page, parent_job_id="")
    return run
