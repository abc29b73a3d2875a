"""Dead letters grouped by failure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, F, Max, Min, Q

from ..models import JobError, JobRecord
from ..statuses import JobStatus
from .jobs import JobFilter, job_queryset


@dataclass(frozen=True)
class FailureGroup:
    fingerprint: str
    exc_type: str
    func: str
    message: str
    count: int
    first_seen: datetime
    last_seen: datetime


def dead_letter_groups(*, queue: str = "", limit: int = 100) -> list[FailureGroup]:
    """Dead letters grouped by the fingerprint of their last failure, most recent first.

    The groups are counted on the records' ``last_fingerprint`` (an index of the dead
    letters alone, so no join with the error history); a group's exception, message and
    function are those of its latest dead letter.
    """
    dead = JobRecord.objects.filter(status=JobStatus.DEAD, discarded_at__isnull=True)
    if queue:
        dead = dead.filter(queue=queue)
    groups = list(
        dead.exclude(last_fingerprint="")  # no failure recorded: in the plain list only
        .values("last_fingerprint")
        .annotate(count=Count("*"), first_seen=Min("ended_at"), last_seen=Max("ended_at"))
        .order_by("-last_seen", "last_fingerprint")[:limit]
    )
    if not groups:
        return []
    latest_of_group = Q()
    for group in groups:
        latest_of_group |= Q(last_fingerprint=group["last_fingerprint"], ended_at=group["last_seen"])
    latest: dict[str, tuple[int, str]] = {}  # fingerprint -> (record id, function) of its latest dead letter
    for pk, fp, func in dead.filter(latest_of_group).order_by("id").values_list("pk", "last_fingerprint", "func"):
        latest[fp] = (pk, func)
    errors = {
        job_id: (exc_type, message)
        for job_id, exc_type, message in JobError.objects.filter(
            job_id__in=[pk for pk, _ in latest.values()], attempt=F("job__attempts")
        ).values_list("job_id", "exc_type", "message")
    }
    result = []
    for group in groups:
        pk, func = latest.get(group["last_fingerprint"], (0, ""))
        exc_type, message = errors.get(pk, ("", ""))
        result.append(
            FailureGroup(
                fingerprint=group["last_fingerprint"],
                exc_type=exc_type,
                func=func,
                message=message,
                count=group["count"],
                first_seen=group["first_seen"],
                last_seen=group["last_seen"],
            )
        )
    return result


def dead_letter_count_since(*, filters: JobFilter, since: datetime, cap: int) -> int:
    """How many dead letters matching ``filters`` died after ``since`` (when a page of them
    was shown), counting no further than ``cap``.

    Counted on the record's ``updated_at``, which the recorder stamps when it applies a
    change, so a death it records a moment after the page was shown still counts. A dead
    letter's record changes only when it dies: retried it is no longer dead, discarded no
    longer listed. Not the list's order (first enqueued): a job dies after its retries,
    below rows enqueued later.
    """
    return job_queryset(filters=filters).filter(status=JobStatus.DEAD, updated_at__gt=since)[:cap].count()
