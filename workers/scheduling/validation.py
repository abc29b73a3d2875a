"""What a schedule must be for the scheduler to run it: one home for the checks that the
admin, the dashboard, ``JOBSITE_SCHEDULES`` (and ``manage.py check``) and the tick share."""

from __future__ import annotations

import json
import zoneinfo
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from croniter import croniter
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from .. import conf
from ..models import CatchUp, Schedule
from ..registry import schedulable_functions


def cron_error(expression: str) -> str | None:
    """Why ``expression`` is not a 5-field cron expression, or None when it is one."""
    fields = expression.split()
    if len(fields) != 5:
        return (
            f"{expression!r} is not a cron expression: it needs 5 fields (minute hour day-of-month month "
            f"day-of-week), not {len(fields)}, e.g. '*/15 * * * *' or '0 9 * * 1'"
        )
    try:
        croniter(expression)
    except (ValueError, KeyError) as exc:
        return f"{expression!r} is not a valid cron expression: {exc}"
    return None


def schedule_validate(schedule: Schedule) -> None:
    """Raise ValidationError (by field) for anything the scheduler could not run."""
    errors: dict[str, list[str]] = {}

    def add(name: str, message: str) -> None:
        errors.setdefault(name, []).append(message)

    triggers = [name for name, value in (("cron", schedule.cron), ("interval", schedule.interval),
                                          ("run_at", schedule.run_at)) if value not in (None, "")]  # fmt: skip
    if len(triggers) != 1:
        message = "give exactly one trigger: a cron expression, an interval in seconds, or a one-time run_at"
        add("__all__", message if not triggers else f"{message}, not {' and '.join(triggers)}")
    if schedule.cron and (problem := cron_error(schedule.cron)):
        add("cron", problem)
    if schedule.interval is not None and (not isinstance(schedule.interval, int) or schedule.interval < 1):
        add("interval", f"interval must be a whole number of seconds >= 1, not {schedule.interval!r}")
    if schedule.run_at is not None and timezone.is_naive(schedule.run_at):
        add("run_at", "run_at must carry a timezone")
    try:
        zoneinfo.ZoneInfo(schedule.timezone or "")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        add("timezone", f"unknown timezone {schedule.timezone!r}; use an IANA name like 'Europe/Berlin' or 'UTC'")
    functions = schedulable_functions()
    if schedule.func not in functions:
        known = ", ".join(functions) or "none registered"
        add("func", f"{schedule.func!r} is not a schedulable function (decorate it with @schedulable); known: {known}")
    if not isinstance(schedule.args, list):
        add("args", f'args must be a JSON list, e.g. [42, "weekly"], not {json.dumps(schedule.args)[:80]}')
    if not isinstance(schedule.kwargs, dict):
        add(
            "kwargs", f'kwargs must be a JSON object, e.g. {{"dry_run": false}}, not {json.dumps(schedule.kwargs)[:80]}'
        )
    if not conf.queue_is_configured(schedule.queue):
        add("queue", f"unknown queue {schedule.queue!r}; configured queues: {', '.join(conf.queue_names())}")
    if schedule.catch_up not in CatchUp.values:
        add("catch_up", f"catch_up must be one of {', '.join(CatchUp.values)}, not {schedule.catch_up!r}")
    if errors:
        raise ValidationError(errors)


def _from_declaration(entry: Any) -> tuple[str, dict[str, Any]]:
    """One JOBSITE_SCHEDULES entry -> (name, model field values); ValueError when malformed."""
    if not isinstance(entry, dict):
        raise ValueError(f"each schedule must be a dict, not {entry!r}")
    known = {"name", "func", "cron", "interval", "at", "queue", "args", "kwargs", "timezone", "catch_up", "enabled"}
    if unknown := set(entry) - known:
        raise ValueError(f"unknown field(s) {sorted(unknown)}; allowed: {sorted(known)}")
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValueError("every schedule needs a non-empty 'name'")
    values: dict[str, Any] = {
        "func": entry.get("func", ""),
        "cron": entry.get("cron") or "",
        "interval": entry.get("interval"),
        "run_at": None,
        "timezone": entry.get("timezone", "UTC"),
        "args": list(entry["args"]) if isinstance(entry.get("args"), (list, tuple)) else entry.get("args", []),
        "kwargs": entry.get("kwargs", {}),
        "queue": entry.get("queue", "default"),
        "catch_up": entry.get("catch_up", CatchUp.ONCE),
        "enabled": bool(entry.get("enabled", True)),
    }
    if entry.get("at") is not None:
        at = entry["at"] if isinstance(entry["at"], datetime) else parse_datetime(str(entry["at"]))
        if at is None:
            raise ValueError(f"'at' must be an ISO datetime like '2026-01-31T09:00:00+01:00', not {entry['at']!r}")
        if timezone.is_naive(at):
            try:
                at = at.replace(tzinfo=zoneinfo.ZoneInfo(values["timezone"]))
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                at = at.replace(tzinfo=UTC)  # the timezone error is reported by validation
        values["run_at"] = at
    return name.strip(), values


def declared_schedule_errors(declared: Iterable[Any]) -> list[str]:
    """Every problem of a JOBSITE_SCHEDULES list, one message per problem (empty when fine)."""
    problems: list[str] = []
    seen: set[str] = set()
    for index, entry in enumerate(declared):
        label = f"JOBSITE_SCHEDULES[{index}]"
        try:
            name, values = _from_declaration(entry)
        except ValueError as exc:
            problems.append(f"{label}: {exc}")
            continue
        label = f"{label} ({name!r})"
        if name in seen:
            problems.append(f"{label}: the name is declared twice")
        seen.add(name)
        try:
            schedule_validate(Schedule(name=name, **values))
        except ValidationError as exc:
            for field_name, messages in exc.message_dict.items():
                problems.extend(f"{label} {field_name}: {message}" for message in messages)
    return problems
