"""Tracking events the recorder set aside: how many, why, and deleting them.

An entry lands here when it is not a valid event, the database refused it, or it was for
a job that has no record and did not describe one (workers/recording/unapplied.py).
Thin views: read through ``workers.reads.unapplied``, act through ``workers.services.unapplied``;
htmx gets the panel back, a plain form post a redirect with a message.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from workers.reads.unapplied import unapplied_list
from workers.services.audit import Actor
from workers.services.unapplied import unapplied_delete, unapplied_delete_all

from ..access import operator_required, viewer_required
from ..htmx import HtmxHttpRequest, action_answer, partial_name

SHOWN = 50
TEMPLATE = "dashboard/unapplied_events.html"


def _context() -> dict[str, Any]:
    return {"page": unapplied_list(limit=SHOWN), "shown": SHOWN}


@require_GET
@viewer_required
def unapplied_events(request: HtmxHttpRequest) -> HttpResponse:
    return render(request, partial_name(request, TEMPLATE, "unapplied-panel"), _context())


@require_POST
@operator_required
def unapplied_events_delete(request: HtmxHttpRequest) -> HttpResponse:
    """Field ``ref`` deletes one entry; ``all=1`` deletes every one."""
    ref = request.POST.get("ref", "")
    actor = Actor.from_request(request)
    if request.POST.get("all") == "1":
        ok, text = True, f"Deleted {unapplied_delete_all(actor=actor)} set-aside events."
    elif ref:
        ok = unapplied_delete(ref=ref[:64], actor=actor)
        text = "Deleted the set-aside event." if ok else "That event is no longer set aside (deleted meanwhile?)."
    else:
        ok, text = False, "Say which event to delete (ref) or all=1."
    return action_answer(
        request,
        ok=ok,
        text=text,
        url=reverse("dashboard:unapplied_events"),
        partial=f"{TEMPLATE}#unapplied-panel",
        context=_context,
    )
