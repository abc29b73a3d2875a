"""Schedules and ordered keys: what fires when, what ran, and which keys are stuck.

Thin views: read through selectors, act through workers' services; htmx requests get the
page's table partial back, plain form posts a redirect (so the page works without JS).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST
from django_htmx.middleware import HtmxDetails

from workers.conf import setting
from workers.ordering.watchdog import key_states
from workers.reads.schedules import schedule_list, schedulers_alive
from workers.services.schedules import (
    ScheduleActionError,
    ScheduleNotFound,
    schedule_pause,
    schedule_resume,
    schedule_run_now,
)

from .access import operator_required, viewer_required


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def _schedules_context(**extra: Any) -> dict[str, Any]:
    return {"schedules": schedule_list(), "schedulers": schedulers_alive(), **extra}


@require_GET
@viewer_required
def schedules(request: HtmxHttpRequest) -> HttpResponse:
    template = "dashboard/schedules.html#schedule-table" if request.htmx else "dashboard/schedules.html"
    return render(request, template, _schedules_context())


def _act(request: HtmxHttpRequest, pk: int, action: Callable[..., Any], done: str) -> HttpResponse:
    try:
        result = action(schedule_id=pk)
    except ScheduleNotFound as exc:
        raise Http404(str(exc)) from exc
    except ScheduleActionError as exc:
        message, level = str(exc), messages.ERROR
    else:
        schedule = getattr(result, "schedule", result)
        message, level = f"{schedule.name}: {done}", messages.SUCCESS
    if request.htmx:
        context = _schedules_context(message=message, message_level="error" if level == messages.ERROR else "ok")
        return render(request, "dashboard/schedules.html#schedule-table", context)
    messages.add_message(request, level, message)
    return redirect("dashboard:schedules")


def _action_view(action: Callable[..., Any], done: str) -> Callable[[HtmxHttpRequest, int], HttpResponse]:
    """A staff-only POST view that runs one schedule service and answers like ``_act``."""

    @require_POST
    @operator_required
    def view(request: HtmxHttpRequest, pk: int) -> HttpResponse:
        return _act(request, pk, action, done)

    return view


schedule_pause_view = _action_view(schedule_pause, "paused")
schedule_resume_view = _action_view(schedule_resume, "resumed")
schedule_run_view = _action_view(schedule_run_now, "started a run now")


@require_GET
@viewer_required
def keys(request: HtmxHttpRequest) -> HttpResponse:
    template = "dashboard/keys.html#key-table" if request.htmx else "dashboard/keys.html"
    stall_timeout = setting("KEY_STALL_TIMEOUT")
    return render(request, template, {"keys": key_states(), "stall_timeout": stall_timeout})
