"""What a schedule must be for the scheduler to run it: one home for the checks that the
admin, the dashboard, ``JOBSITE_SCHEDULES`` (and ``manage.py check``) and the tick share."""

from __future__ import annotations

import json
import math
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from croniter import croniter
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from .. import conf
from ..models import CatchUp, Schedule
from ..registry import schedulable_functions

# The id of the system check that reports bad JOBSITE_SCHEDULES entries (workers/apps.py).
DECLARED_SCHEDULES_CHECK = "workers.E001"
_JSON_KINDS = "numbers, text, true/false, null, lists and objects with text keys"


def _shown(value: Any, limit: int = 80) -> str:
    """``value`` as an operator would write it: lists and objects as JSON when they are JSON,
    true/false/null as in JSON, anything else as its repr."""
    try:
        as_json = value is None or isinstance(value, bool)
        as_json = as_json or (isinstance(value, (list, dict)) and json_problem(value, "") is None)
        text = json.dumps(value) if as_json else repr(value)
    except Exception:  # a repr that raises is no reason to fail a check
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


def json_problem(value: Any, where: str) -> str | None:
    """Where ``value`` holds something that would not come back from JSON as it went in
    (an object, a datetime, a set, a tuple, NaN, a non-text key...), or None when nothing does.

    Schedules keep args and kwargs in a JSON column and the job gets them back from there:
    what JSON cannot give back as it was is refused where it is written, not when it fires.
    """
    stack: list[tuple[str, Any]] = [(where, value)]
    seen: set[int] = set()
    while stack:
        path, item = stack.pop()
        if item is None or isinstance(item, (str, bool, int)):
            continue
        if isinstance(item, float):
            if math.isfinite(item):
                continue
            return f"{path} is {item!r}, which JSON cannot hold"
        if isinstance(item, (list, dict)):
            if id(item) in seen:
                return f"{path} contains itself"
            seen.add(id(item))
            if isinstance(item, list):
                children = [(f"{path}[{index}]", child) for index, child in enumerate(item)]
            else:
                children = []
                for key, child in item.items():
                    if not isinstance(key, str):
                        return f"{path} has the key {_shown(key)} ({type(key).__name__}): JSON object keys are text"
                    children.append((f"{path}[{key!r}]", child))
            stack.extend(reversed(children))  # the first bad value is the one reported
            continue
        return f"{path} ({_shown(item)}) is of type {type(item).__name__}, which JSON cannot hold; use {_JSON_KINDS}"
    return None


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

    cron, interval, run_at = schedule.cron, schedule.interval, schedule.run_at
    triggers = [name for name, value in (("cron", cron), ("interval", interval), ("run_at", run_at))
                if value not in (None, "")]  # fmt: skip
    if len(triggers) != 1:
        message = "give exactly one trigger: a cron expression, an interval in seconds, or a one-time run_at"
        add("__all__", message if not triggers else f"{message}, not {' and '.join(triggers)}")
    if not isinstance(cron, str):
        add("cron", f"cron must be text like '*/15 * * * *', not {_shown(cron)}")
    elif cron and (problem := cron_error(cron)):
        add("cron", problem)
    if interval is not None and (not isinstance(interval, int) or isinstance(interval, bool) or interval < 1):
        add("interval", f"interval must be a whole number of seconds >= 1, not {_shown(interval)}")
    if run_at is not None and not isinstance(run_at, datetime):
        add("run_at", f"run_at must be a datetime, not {_shown(run_at)}")
    elif run_at is not None and timezone.is_naive(run_at):
        add("run_at", "run_at must carry a timezone")
    try:
        zoneinfo.ZoneInfo(schedule.timezone if isinstance(schedule.timezone, str) else "")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        add("timezone", f"unknown timezone {_shown(schedule.timezone)}; use an IANA name like 'Europe/Berlin' or 'UTC'")
    functions = schedulable_functions()
    if not isinstance(schedule.func, str) or schedule.func not in functions:
        known = ", ".join(functions) or "none registered"
        add("func", f"{_shown(schedule.func)} is not a schedulable function (decorate it with @schedulable); "
                    f"known: {known}")  # fmt: skip
    if not isinstance(schedule.args, list):
        add("args", f'args must be a JSON list, e.g. [42, "weekly"], not {_shown(schedule.args)}')
    elif problem := json_problem(schedule.args, "args"):
        add("args", problem)
    if not isinstance(schedule.kwargs, dict):
        add("kwargs", f'kwargs must be a JSON object, e.g. {{"dry_run": false}}, not {_shown(schedule.kwargs)}')
    elif problem := json_problem(schedule.kwargs, "kwargs"):
        add("kwargs", problem)
    if not conf.queue_is_configured(schedule.queue):
        add("queue", f"unknown queue {_shown(schedule.queue)}; configured queues: {', '.join(conf.queue_names())}")
    if schedule.catch_up not in CatchUp.values:
        add("catch_up", f"catch_up must be one of {', '.join(CatchUp.values)}, not {_shown(schedule.catch_up)}")
    if errors:
        raise ValidationError(errors)


def schedule_problem(schedule: Schedule) -> str | None:
    """Why the scheduler cannot run ``schedule`` as it is now, in one line; None when it can.

    Checked again when it fires: a row written by a migration or by hand, or a deploy that
    removed its queue or its function, must not reach Redis (or stop the tick).
    """
    try:
        schedule_validate(schedule)
    except ValidationError as exc:
        return "; ".join(message for messages in exc.message_dict.values() for message in messages)
    except Exception as exc:  # a value no check foresaw: still this schedule's problem only
        return f"the schedule cannot be checked: {type(exc).__name__}: {exc}"
    return None


def _from_declaration(entry: Any) -> tuple[str, dict[str, Any]]:
    """One JOBSITE_SCHEDULES entry -> (name, model field values); ValueError when malformed."""
    if not isinstance(entry, dict):
        raise ValueError(f"each schedule must be a dict, not {_shown(entry)}")
    known = {"name", "func", "cron", "interval", "at", "queue", "args", "kwargs", "timezone", "catch_up", "enabled"}
    if unknown := set(entry) - known:
        raise ValueError(f"unknown field(s) {', '.join(sorted(map(repr, unknown)))}; allowed: {sorted(known)}")
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValueError("every schedule needs a non-empty 'name'")
    values: dict[str, Any] = {
        "func": entry.get("func", ""),
        "cron": entry.get("cron") or "",
        "interval": entry.get("interval"),
        "run_at": None,
        "timezone": entry.get("timezone", "UTC"),
        "args": entry.get("args", []),
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
            except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
                at = at.replace(tzinfo=UTC)  # the timezone error is reported by validation
        values["run_at"] = at
    return name.strip(), values


@dataclass(frozen=True)
class Declaration:
    """One JOBSITE_SCHEDULES entry as read: its name (None when it has none) and field
    values, or the problems that keep it from being synced."""

    name: str | None
    values: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def declarations_read(declared: Iterable[Any]) -> list[Declaration]:
    """Every entry of a JOBSITE_SCHEDULES list, each checked on its own: one bad entry is
    reported with what to fix and never keeps the others from being read."""
    read: list[Declaration] = []
    seen: set[str] = set()
    for index, entry in enumerate(declared):
        label = f"JOBSITE_SCHEDULES[{index}]"
        given = entry.get("name") if isinstance(entry, dict) else None
        try:
            name, values = _from_declaration(entry)
        except Exception as exc:  # ValueError, or a value no check foresaw: reported, never a crash
            problem = str(exc) if isinstance(exc, ValueError) else f"cannot be read: {type(exc).__name__}: {exc}"
            # A named entry still names its schedule: it is not gone, only wrong.
            named = given.strip() if isinstance(given, str) and given.strip() else None
            read.append(Declaration(named, problems=[f"{label}: {problem}"]))
            continue
        label = f"{label} ({name!r})"
        problems = [f"{label}: the name is declared twice"] if name in seen else []
        seen.add(name)
        try:
            schedule_validate(Schedule(name=name, **values))
        except ValidationError as exc:
            for field_name, messages in exc.message_dict.items():
                problems.extend(f"{label} {field_name}: {message}" for message in messages)
        except Exception as exc:
            problems.append(f"{label}: cannot be checked: {type(exc).__name__}: {exc}")
        read.append(Declaration(name, values, problems))
    return read


def declared_schedule_errors(declared: Iterable[Any]) -> list[str]:
    """Every problem of a JOBSITE_SCHEDULES list, one message per problem (empty when fine)."""
    return [problem for declaration in declarations_read(declared) for problem in declaration.problems]
