"""``/dashboard/schedules/``: what fires when and what ran; pause, resume or run one now."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from workers.reads.schedules import schedule_list, schedulers_alive
from workers.services.audit import Actor
from workers.services.schedules import (
    ScheduleActionError,
    ScheduleNotFound,
    schedule_pause,
    schedule_resume,
    schedule_run_now,
)

from ..access import operator_required, viewer_required
from ..htmx import HtmxHttpRequest, action_answer, partial_name


def _schedules_context() -> dict[str, Any]:
    return {"schedules": schedule_list(), "schedulers": schedulers_alive()}


@require_GET
@viewer_required
def schedules(request: HtmxHttpRequest) -> HttpResponse:
    return render(request, partial_name(request, "dashboard/schedules.html", "schedule-table"), _schedules_context())


def _schedule_action(request: HtmxHttpRequest, pk: int, act: Callable[..., Any], done: str) -> HttpResponse:
    try:
        result = act(schedule_id=pk, actor=Actor.from_request(request))
    except ScheduleNotFound as exc:
        raise Http404(str(exc)) from exc
    except ScheduleActionError as exc:
        ok, text = False, str(exc)
    else:
        # schedule_run_now answers the run (which knows its schedule), the others the schedule.
        schedule = getattr(result, "schedule", result)
        ok, text = True, f"{schedule.name}: {done}"
    return action_answer(
        request,
        ok=ok,
        text=text,
        url=reverse("dashboard:schedules"),
        partial="dashboard/schedules.html#schedule-table",
        context=_schedules_context,
    )


@require_POST
@operator_required
def schedule_pause_view(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    return _schedule_action(request, pk, schedule_pause, "paused")


@require_POST
@operator_required
def schedule_resume_view(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    return _schedule_action(request, pk, schedule_resume, "resumed")


@require_POST
@operator_required
def schedule_run_view(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    return _schedule_action(request, pk, schedule_run_now, "started a run now")
