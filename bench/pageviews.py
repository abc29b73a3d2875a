"""(e) Page views through Redis / direct UPDATE: visits per second, and no visit lost.

Uses the page-view workload of the examples app (another branch builds it):
``examples.services.article_view_record(article_id=...)`` records one visit, a setting
switches it between the Redis-counter mode and the direct ``UPDATE ... + 1`` mode, and
a flush function moves Redis counts into the database. 8 threads record visits for 10
seconds per mode; in Redis mode flushes run all the while and once more at the end.
Then the database must hold exactly the visits recorded: none lost, none doubled.

What it looks for, so that it keeps working when the names settle (override with env):
- the mode setting: BENCH_PAGEVIEW_SETTING (dotted, e.g. ``EXAMPLES.PAGE_VIEWS_MODE``)
  or the first setting whose name has VIEW and MODE in it, top level or inside a dict
  setting; mode values from BENCH_PAGEVIEW_MODES ("redis,direct") or the first values
  among its choices that mention redis and update/direct/db;
- the flush: BENCH_PAGEVIEW_FLUSH (dotted path) or a callable with "flush" in its name
  in examples.services or examples.jobs;
- the article: ``examples.models.Article`` and its integer field with "view" in its name.
"""

from __future__ import annotations

import importlib
import inspect
import os
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connections, models
from django.test import override_settings
from django.utils.module_loading import import_string
from redis import Redis

from .common import Result, log, not_available

NAME = "page views Redis/direct UPDATE, visits per second"
TARGET = ">= 20"
THREADS, SECONDS = 8, 10.0


def _find_setting() -> tuple[str, str | None]:
    """(top-level setting name, key inside it or None)."""
    wanted = os.environ.get("BENCH_PAGEVIEW_SETTING")
    if wanted:
        top, _, inner = wanted.partition(".")
        return top, inner or None
    for name in dir(settings):
        if not name.isupper():
            continue
        value = getattr(settings, name)
        if "VIEW" in name and "MODE" in name:
            return name, None
        if isinstance(value, dict):
            for key in value:
                if isinstance(key, str) and "VIEW" in key.upper() and "MODE" in key.upper():
                    return name, key
    raise LookupError("no page-view mode setting (a name with VIEW and MODE) found")


def _with_mode(top: str, inner: str | None, mode: str) -> override_settings:
    if inner is None:
        return override_settings(**{top: mode})
    return override_settings(**{top: {**getattr(settings, top), inner: mode}})


def _find_flush() -> Callable[[], Any]:
    wanted = os.environ.get("BENCH_PAGEVIEW_FLUSH")
    if wanted:
        return import_string(wanted)
    for module_name in ("examples.services", "examples.jobs"):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        for name, value in inspect.getmembers(module, callable):
            if "flush" in name and getattr(value, "__module__", "") == module_name:
                return value
    raise LookupError("no flush function (a callable with 'flush' in its name) in examples.services or examples.jobs")


def _modes() -> tuple[str, str]:
    wanted = os.environ.get("BENCH_PAGEVIEW_MODES", "redis,direct")
    redis_mode, direct_mode = (part.strip() for part in wanted.split(","))
    return redis_mode, direct_mode


def _visit_for(seconds: float, record: Callable[..., Any], article_id: int) -> int:
    counts = [0] * THREADS
    stop = time.monotonic() + seconds

    def visitor(n: int) -> None:
        try:
            while time.monotonic() < stop:
                record(article_id=article_id)
                counts[n] += 1
        finally:
            connections.close_all()

    threads = [threading.Thread(target=visitor, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts)


def run(connection: Redis) -> list[Result]:
    try:
        services = importlib.import_module("examples.services")
        record = services.article_view_record
        article_model = import_string("examples.models.Article")
        top, inner = _find_setting()
        flush = _find_flush()
    except (ImportError, AttributeError, LookupError) as exc:
        return [not_available(NAME, TARGET, f"the page-view workload is not on this branch ({exc})")]
    count_field = next(
        f.name for f in article_model._meta.get_fields() if isinstance(f, models.IntegerField) and "view" in f.name
    )
    redis_mode, direct_mode = _modes()
    rates, lost = {}, {}
    for mode in (direct_mode, redis_mode):
        connection.flushdb()
        article = article_model.objects.create(**_article_fields(article_model))
        with _with_mode(top, inner, mode):
            flushing = threading.Event()

            background = threading.Thread(target=_flusher, args=(flush, flushing)) if mode == redis_mode else None
            if background:
                background.start()
            start = time.perf_counter()
            visits = _visit_for(SECONDS, record, article.pk)
            rates[mode] = visits / (time.perf_counter() - start)
            if background:
                flushing.set()
                background.join()
                flush()
        stored = article_model.objects.filter(pk=article.pk).values_list(count_field, flat=True).get()
        lost[mode] = visits - stored
        log(f"page views {mode}: {rates[mode]:.0f} visits/s, {visits} visits, {stored} stored")
    ratio = rates[redis_mode] / rates[direct_mode]
    return [
        Result(
            name=NAME,
            ratio=ratio,
            target=TARGET,
            detail={
                "redis_visits_per_s": round(rates[redis_mode], 1),
                "direct_visits_per_s": round(rates[direct_mode], 1),
                "lost_visits": lost,
                "extra_target": "zero visits lost",
                "extra_target_met": not any(lost.values()),
                "threads": THREADS,
            },
            note=f"Redis {rates[redis_mode]:.0f}/s, UPDATE {rates[direct_mode]:.0f}/s, lost {sum(lost.values())}",
        )
    ]


def _flusher(flush: Callable[[], Any], stop: threading.Event) -> None:
    """Flush every half second while visits come in: a flush must never lose one."""
    try:
        while not stop.wait(0.5):
            flush()
    finally:
        close_old_connections()


def _article_fields(article_model: type[models.Model]) -> dict[str, Any]:
    """Values for the article's required text fields."""
    values: dict[str, Any] = {}
    for f in article_model._meta.concrete_fields:
        if f.primary_key or f.has_default() or f.null or f.blank:
            continue
        if isinstance(f, (models.CharField, models.TextField)):  # a SlugField too; may be unique
            values[f.name] = f"bench-article-{uuid.uuid4().hex[:12]}"
    return values
