"""Response headers every page gets, and a clear 503 when Redis is away."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from workers.api import QueueUnavailable

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5


class SecurityHeadersMiddleware:
    """Content-Security-Policy (no inline script) and Permissions-Policy on every response.

    Django's SecurityMiddleware and XFrameOptionsMiddleware add nosniff, referrer policy,
    COOP, HSTS and X-Frame-Options; this adds what Django 5.2 has no setting for.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", settings.CONTENT_SECURITY_POLICY)
        response.headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
        return response


class QueueUnavailableMiddleware:
    """A view that enqueues while Redis is down answers 503 at once, not a 500 or a hang."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, (QueueUnavailable, RedisConnectionError, RedisTimeoutError)):
            return None
        log.warning("%s %s: Redis unavailable: %s", request.method, request.path, exception)
        message = "The job queue is unavailable right now; nothing was enqueued. Try again in a few seconds."
        if request.headers.get("Accept", "").startswith("application/json"):
            response: HttpResponse = JsonResponse({"error": "queue_unavailable", "detail": message}, status=503)
        else:
            response = HttpResponse(message, status=503, content_type="text/plain; charset=utf-8")
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
