"""Tracking events the recorder set aside: how many, why, and deleting them.

An entry lands here when it is not a valid event, the database refused it, or it was for
a job that has no record and did not describe one (workers/recording/unapplied.py).
Thin views: read through ``workers.reads.unapplied``, act through ``workers.services.unapplied``;
htmx gets the panel back, a plain form post a redirect with a message.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST
from django_htmx.middleware import HtmxDetails

from workers.reads.unapplied import unapplied_list
from workers.services.unapplied import unapplied_delete, unapplied_delete_all

from .access import operator_required, viewer_required

SHOWN = 50
PANEL = "dashboard/unapplied_events.html#unapplied-panel"


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


@require_GET
@viewer_required
def unapplied_events(request: HtmxHttpRequest) -> HttpResponse:
    template = PANEL if request.htmx else "dashboard/unapplied_events.html"
    return render(request, template, {"page": unapplied_list(limit=SHOWN), "shown": SHOWN})


@require_POST
@operator_required
def unapplied_events_delete(request: HtmxHttpRequest) -> HttpResponse:
    """Field ``ref`` deletes one entry; ``all=1`` deletes every one."""
    ref = request.POST.get("ref", "")
    if request.POST.get("all") == "1":
        ok, text = True, f"Deleted {unapplied_delete_all()} set-aside events."
    elif ref:
        ok = unapplied_delete(ref=ref[:64])
        text = "Deleted the set-aside event." if ok else "That event is no longer set aside (deleted meanwhile?)."
    else:
        ok, text = False, "Say which event to delete (ref) or all=1."
    if request.htmx:
        notice = {"ok": ok, "text": text}
        return render(request, PANEL, {"page": unapplied_list(limit=SHOWN), "shown": SHOWN, "notice": notice})
    (messages.success if ok else messages.error)(request, text)
    return redirect("dashboard:unapplied_events")
