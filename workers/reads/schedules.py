"""Reads of schedules: each with its latest runs, and the scheduler processes alive."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import F, Window
from django.db.models.functions import RowNumber

from ..models import JobRecord, Schedule, ScheduleRun
from ..redis import SCHEDULER_HEARTBEAT_KEY
from ..redis import connection as redis_connection


@dataclass(frozen=True)
class RunView:
    run: ScheduleRun
    record: JobRecord | None

    @property
    def outcome(self) -> str:
        if self.record is not None:
            return self.record.status
        return "queued" if self.run.enqueued else "claimed"


@dataclass(frozen=True)
class ScheduleView:
    schedule: Schedule
    recent: list[RunView]

    @property
    def last(self) -> RunView | None:
        return self.recent[0] if self.recent else None


def schedule_list(*, recent: int = 5) -> list[ScheduleView]:
    """Every schedule with its latest runs and their job records, in three queries."""
    schedules = list(Schedule.objects.all())
    ranked = ScheduleRun.objects.annotate(
        rank=Window(RowNumber(), partition_by=[F("schedule_id")], order_by=[F("fired_at").desc(), F("id").desc()])
    )
    runs = list(ranked.filter(rank__lte=recent).order_by("schedule_id", "-fired_at", "-id"))
    records = {r.job_id: r for r in JobRecord.objects.filter(job_id__in=[run.job_id for run in runs])}
    by_schedule: dict[int, list[RunView]] = {}
    for run in runs:
        by_schedule.setdefault(run.schedule_id, []).append(RunView(run, records.get(run.job_id)))
    return [ScheduleView(s, by_schedule.get(s.pk, [])) for s in schedules]


def schedule_broken_list() -> list[Schedule]:
    """Enabled schedules the scheduler has set aside because their runs cannot be pushed,
    longest broken first."""
    broken = Schedule.objects.filter(enabled=True, broken_since__isnull=False).order_by("broken_since", "pk")
    # Not its definition: what broke it may be a value that cannot even be read.
    return list(broken.only("name", "broken_reason", "broken_since", "retry_at", "push_failures"))


def schedulers_alive(connection: Any = None) -> list[str]:
    """Names of the scheduler processes that reported in the last few seconds."""
    connection = connection if connection is not None else redis_connection()
    prefix = SCHEDULER_HEARTBEAT_KEY.format("")
    return sorted(key.decode()[len(prefix) :] for key in connection.scan_iter(match=prefix + "*", count=100))
