"""How the dashboard answers htmx: one request type, one way to pick a page's partial, one
way to answer an operator's action.

A page answers its live part (a django-template-partials partial) to htmx requests, so
the same URL serves the page and its polled fragment. An action is a POST that answers
the refreshed fragment with a notice to htmx, and a redirect with the notice as a Django
message to a plain form post, so every page works without JavaScript.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django_htmx.middleware import HtmxDetails


class HtmxHttpRequest(HttpRequest):
    """What django-htmx's middleware adds to every request."""

    htmx: HtmxDetails


def partial_name(request: HtmxHttpRequest, template: str, partial: str) -> str:
    """The whole page, or only its named partial for an htmx request."""
    return f"{template}#{partial}" if request.htmx else template


def action_answer(
    request: HtmxHttpRequest,
    *,
    ok: bool,
    text: str,
    url: str,
    partial: str,
    context: Callable[[], dict[str, Any]],
) -> HttpResponse:
    """An action's answer: ``partial`` ("template#partial") rendered with a notice for htmx,
    else a redirect to ``url`` with the notice as a message.

    ``context`` is called only for htmx: a redirect's target builds its own.
    """
    if not request.htmx:
        (messages.success if ok else messages.error)(request, text)
        return HttpResponseRedirect(url)
    return render(request, partial, {**context(), "notice": {"ok": ok, "text": text}})
