"""Retention: delete old job history and old roll-up minutes, in batches."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from ..conf import setting
from ..models import JobError, JobMetric, JobRecord
from ..statuses import JobStatus
from .audit import audit_prune

_AGE = re.compile(r"^\s*(\d+)\s*(w|weeks?|d|days?|h|hours?|m|minutes?|)\s*$")
_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "": "days"}


def parse_age(text: str) -> timedelta:
    """'30d' (or '30 days'), '12h', '2w', '90m' or a bare number of days -> timedelta."""
    match = _AGE.match(text or "")
    if not match:
        raise ValueError(f"give an age like 30d, 12h, 2w or 90m, not {text!r}")
    return timedelta(**{_UNITS[match.group(2)[:1]]: int(match.group(1))})


@dataclass(frozen=True)
class PruneResult:
    records: int
    errors: int
    batches: int


def _prunable(*, cutoff: datetime, include_dead: bool) -> Q:
    ended = [JobStatus.FINISHED, JobStatus.CANCELED, JobStatus.STOPPED]
    if include_dead:
        ended.append(JobStatus.DEAD)
    # A dead letter an operator discarded is history like any ended job.
    discarded = Q(status=JobStatus.DEAD, discarded_at__lt=cutoff)
    return Q(status__in=ended, ended_at__lt=cutoff) | discarded


def job_prune(
    *,
    older_than: timedelta,
    include_dead: bool = False,
    batch_size: int | None = None,
    now: datetime | None = None,
) -> PruneResult:
    """Delete ended job records (and their errors) that ended before ``now - older_than``.

    Dead letters are kept unless ``include_dead``; waiting and running jobs always are.
    Each batch is its own short transaction, walked in primary-key order, so a prune of
    millions of rows never holds long locks and resumes cheaply.
    """
    if older_than <= timedelta(0):
        raise ValueError("older_than must be positive")
    size = batch_size or setting("PRUNE_BATCH")
    cutoff = (now or timezone.now()) - older_than
    prunable = JobRecord.objects.filter(_prunable(cutoff=cutoff, include_dead=include_dead))
    records = errors = batches = 0
    last_pk = 0
    while True:
        ids = list(prunable.filter(pk__gt=last_pk).order_by("pk").values_list("pk", flat=True)[:size])
        if not ids:
            return PruneResult(records=records, errors=errors, batches=batches)
        last_pk = ids[-1]
        with transaction.atomic():
            errors += JobError.objects.filter(job_id__in=ids).delete()[0]
            records += JobRecord.objects.filter(pk__in=ids).delete()[0]
        batches += 1


def metric_prune(*, older_than: timedelta, now: datetime | None = None, batch_size: int = 5000) -> int:
    """Delete roll-up minutes older than ``now - older_than``; returns how many rows went.

    The all-time totals (JobMetricTotal) already hold what those minutes counted.
    """
    cutoff = (now or timezone.now()) - older_than
    old = JobMetric.objects.filter(minute__lt=cutoff)
    deleted = 0
    while ids := list(old.order_by("pk").values_list("pk", flat=True)[:batch_size]):
        deleted += JobMetric.objects.filter(pk__in=ids).delete()[0]
    return deleted


@dataclass(frozen=True)
class RetentionResult:
    jobs: PruneResult
    minutes: int
    age: str
    include_dead: bool
    audit_entries: int = 0

    def summary(self) -> str:
        kept = "" if self.include_dead else " (dead letters kept)"
        return (
            f"deleted {self.jobs.records} job records and {self.jobs.errors} errors older than {self.age} "
            f"in {self.jobs.batches} batches{kept}; deleted {self.minutes} roll-up minutes (all-time totals kept); "
            f"deleted {self.audit_entries} audit entries"
        )


def retention_apply(
    *, older_than: str | None = None, include_dead: bool = False, batch_size: int | None = None
) -> RetentionResult:
    """The retention settings at work: ended job records older than ``older_than`` (an age
    like "30d"; default RETENTION_DAYS), roll-up minutes older than METRIC_RETENTION_DAYS
    and audit entries older than AUDIT_RETENTION_DAYS (0: kept for good)."""
    age = older_than or f"{setting('RETENTION_DAYS')} days"
    jobs = job_prune(older_than=parse_age(age), include_dead=include_dead, batch_size=batch_size)
    minutes = metric_prune(older_than=timedelta(days=setting("METRIC_RETENTION_DAYS")))
    audit_days = int(setting("AUDIT_RETENTION_DAYS") or 0)
    audit_entries = audit_prune(older_than=timedelta(days=audit_days)) if audit_days > 0 else 0
    return RetentionResult(jobs=jobs, minutes=minutes, age=age, include_dead=include_dead, audit_entries=audit_entries)
