"""``/dashboard/keys/``: ordered keys with work waiting, and which of them are stuck."""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from workers.conf import setting
from workers.ordering.watchdog import key_states

from ..access import viewer_required
from ..htmx import HtmxHttpRequest, partial_name


@require_GET
@viewer_required
def keys(request: HtmxHttpRequest) -> HttpResponse:
    context = {"keys": key_states(), "stall_timeout": setting("KEY_STALL_TIMEOUT")}
    return render(request, partial_name(request, "dashboard/keys.html", "key-table"), context)
