"""Multicast email: a manager job fans out batch jobs; refused recipients get jobs of their own."""

from __future__ import annotations

from django.utils import timezone

from workers import progress
from workers.registry import schedulable

from .. import services
from .attempts import current_job_id, is_final_attempt


def campaign_send(campaign_id: int) -> str:
    """The manager: pages through subscribers, one batch job per page."""
    batches = services.campaign_fan_out(
        campaign_id=campaign_id, manager_job_id=current_job_id(), on_page=_report if current_job_id() else None
    )
    return f"{batches} batches enqueued"


def _report(done: int, total: int) -> None:
    progress(done, total, f"{done} of {total} recipients fanned out")


@schedulable
def weekly_digest() -> str:
    """The weekly digest campaign: one per ISO week, however often the schedule fires."""
    year, week, _ = timezone.localdate().isocalendar()
    campaign = services.campaign_create(
        key=f"digest-{year}-W{week:02d}",
        subject=f"Your weekly digest, week {week} of {year}",
        body="The most read articles this week, and what is new on the site.",
    )
    return campaign_send(campaign.pk)


def campaign_send_batch(campaign_id: int, delivery_ids: list[int]) -> str:
    result = services.delivery_batch_send(
        campaign_id=campaign_id, delivery_ids=delivery_ids, batch_job_id=current_job_id()
    )
    return f"sent {result.sent}, handed off {result.handed_off}, skipped {result.skipped}"


def campaign_send_one(delivery_id: int) -> str:
    return services.delivery_send(delivery_id=delivery_id, job_id=current_job_id(), final=is_final_attempt())
