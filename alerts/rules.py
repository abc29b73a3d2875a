"""Alert rules from settings (``JOBSITE_ALERTS["RULES"]``) and what each one measures.

A rule is a dict: ``name``, ``kind`` and the kind's options. Kinds:
- ``failure_rate``: failed / (finished + failed) attempts over ``window`` seconds, per queue,
  above ``threshold`` (0..1), once at least ``min_jobs`` attempts ended (roll-ups only);
- ``dead_letter_growth``: jobs that went dead over ``window`` seconds, at least ``threshold``;
- ``queue_length``: jobs waiting in a queue, above ``threshold``;
- ``oldest_job_age``: seconds the oldest waiting job of a queue has waited, above ``threshold``;
- ``no_live_worker``: a queue no live worker listens on;
- ``broken_schedule``: a schedule whose runs cannot be pushed, broken for at least
  ``threshold`` seconds (default 0); one incident per schedule, with the reason.
``queues`` (optional) limits a per-queue rule to those queues.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings

from workers import conf
from workers.reads.live import queue_live_list, queue_oldest_wait, worker_list
from workers.reads.rollups import metric_rates, metric_rates_total
from workers.reads.schedules import schedule_broken_list

from .models import Alert

KINDS = ("failure_rate", "dead_letter_growth", "queue_length", "oldest_job_age", "no_live_worker", "broken_schedule")


@dataclass(frozen=True)
class Reading:
    """One rule's verdict on one subject (a queue, or "" for the whole system)."""

    rule: str
    kind: str
    subject: str
    firing: bool
    value: float | None
    threshold: float | None
    message: str


def configured_rules() -> list[dict[str, Any]]:
    rules = list(getattr(settings, "JOBSITE_ALERTS", {}).get("RULES", []))
    for rule in rules:
        if rule.get("kind") not in KINDS:
            raise ValueError(f"alert rule {rule.get('name')!r}: unknown kind {rule.get('kind')!r}; one of {KINDS}")
    return rules


def _window_start(now: datetime, window: int) -> datetime:
    """The first roll-up minute of the last ``window`` seconds (the partial minute counts)."""
    return (now - timedelta(seconds=window)).replace(second=0, microsecond=0)


def _broken_schedules(rule: dict[str, Any], now: datetime) -> list[Reading]:
    """One reading per broken schedule (the subject is its name), and a clear one for each
    incident of this rule whose schedule is whole again, disabled or gone."""
    name, kind = rule["name"], rule["kind"]
    limit = float(rule.get("threshold") or 0)
    readings = []
    for schedule in schedule_broken_list():
        assert schedule.broken_since is not None
        age = max((now - schedule.broken_since).total_seconds(), 0.0)
        again = f"; tried again at {schedule.retry_at:%H:%M:%S} UTC" if schedule.retry_at else ""
        message = f"schedule {schedule.name} cannot fire: {schedule.broken_reason} (broken for {age:.0f} s{again})"
        readings.append(Reading(name, kind, schedule.name, age >= limit, age, limit, message))
    broken = {reading.subject for reading in readings}
    for subject in Alert.objects.filter(rule=name, resolved_at__isnull=True).values_list("subject", flat=True):
        if subject not in broken:
            readings.append(Reading(name, kind, subject, False, 0.0, limit, f"schedule {subject} is no longer broken"))
    return readings


def read(rule: dict[str, Any], *, now: datetime) -> list[Reading]:
    """What ``rule`` sees now, one Reading per subject."""
    name, kind = rule["name"], rule["kind"]
    threshold = rule.get("threshold")
    if kind == "dead_letter_growth":
        window = int(rule.get("window", 600))
        dead = metric_rates_total(since=_window_start(now, window)).dead
        limit = float(threshold or 1)
        message = f"{dead} jobs went dead in the last {window // 60} min (threshold {limit:g})"
        return [Reading(name, kind, "", dead >= limit, float(dead), limit, message)]
    if kind == "broken_schedule":
        return _broken_schedules(rule, now)
    readings = []
    for queue_name in rule.get("queues") or conf.queue_names():
        if kind == "failure_rate":
            window = int(rule.get("window", 600))
            (rates,) = metric_rates(since=_window_start(now, window), queue=queue_name)
            ended = rates.finished + rates.failed
            rate = rates.failure_rate or 0.0
            limit = float(threshold if threshold is not None else 0.2)
            firing = ended >= int(rule.get("min_jobs", 10)) and rate > limit
            message = (
                f"queue {queue_name}: {rate:.0%} of attempts failed in the last {window // 60} min "
                f"({rates.failed} of {ended}; threshold {limit:.0%})"
            )
            readings.append(Reading(name, kind, queue_name, firing, rate, limit, message))
        elif kind == "queue_length":
            length = queue_live_list([queue_name])[0].queued
            limit = float(threshold if threshold is not None else 1000)
            message = f"queue {queue_name}: {length} jobs waiting (threshold {limit:g})"
            readings.append(Reading(name, kind, queue_name, length > limit, float(length), limit, message))
        elif kind == "oldest_job_age":
            age = queue_oldest_wait(queue_name, now=now)
            limit = float(threshold if threshold is not None else 300)
            message = f"queue {queue_name}: the oldest waiting job has waited {age:.0f} s (threshold {limit:g} s)"
            readings.append(Reading(name, kind, queue_name, age > limit, age, limit, message))
        elif kind == "no_live_worker":
            listening = sum(1 for worker in worker_list() if queue_name in worker.queues)
            message = f"queue {queue_name}: {listening} live workers listen on it"
            readings.append(Reading(name, kind, queue_name, listening == 0, float(listening), None, message))
    return readings
