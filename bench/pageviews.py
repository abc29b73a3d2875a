"""(e) Page views through Redis / direct UPDATE: visits per second, and no visit lost.

The page-view workload of the examples app: ``article_view_record`` counts one visit, with
one HINCRBY in the Redis mode or one ``UPDATE ... + 1`` in the direct mode
(``EXAMPLES["PAGE_VIEWS_MODE"]``), and ``page_views_flush`` moves the Redis counts into the
database. Visitors are separate processes, as web workers are: threads would measure
Python's GIL rather than Redis against the database. In the Redis mode flushes run every
half second all the while and once more at the end; then the database must hold exactly
the visits recorded in both modes: none lost, none doubled.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connections
from django.test import override_settings
from redis import Redis

from examples.models import Article
from examples.services import article_view_record, page_views_flush

from .common import Result, log

NAME = "page views Redis/direct UPDATE, visits per second"
TARGET = ">= 20"
VISITORS, SECONDS = 8, 10.0
MODES = ("direct", "redis")


def _visitor(article_id: int, until: float, count: Any) -> None:
    """One visiting process: record visits until the deadline, then report how many."""
    n = 0
    try:
        while time.monotonic() < until:
            article_view_record(article_id=article_id)
            n += 1
    finally:
        count.value = n
        connections.close_all()


def _visits_for(seconds: float, article_id: int) -> tuple[int, float]:
    """(visits recorded, elapsed seconds) by VISITORS processes at once."""
    context = multiprocessing.get_context("fork")
    connections.close_all()  # a forked child must open its own connections, never share ours
    until = time.monotonic() + seconds
    counts = [context.Value("q", 0) for _ in range(VISITORS)]
    start = time.perf_counter()
    processes = [context.Process(target=_visitor, args=(article_id, until, c)) for c in counts]
    for process in processes:
        process.start()
    for process in processes:
        process.join()
    elapsed = time.perf_counter() - start
    if any(p.exitcode for p in processes):
        raise RuntimeError(f"a visitor process failed: exit codes {[p.exitcode for p in processes]}")
    return sum(c.value for c in counts), elapsed


def _flusher(stop: threading.Event) -> None:
    """Flush every half second while visits come in: a flush must never lose one."""
    try:
        while not stop.wait(0.5):
            page_views_flush()
    finally:
        close_old_connections()


def run(connection: Redis) -> list[Result]:
    rates, lost = {}, {}
    for mode in MODES:
        connection.flushdb()
        article = Article.objects.create(slug=f"bench-{mode}-{time.time_ns()}", title=f"Bench article ({mode})")
        with override_settings(EXAMPLES={**settings.EXAMPLES, "PAGE_VIEWS_MODE": mode}):
            stop = threading.Event()
            background = threading.Thread(target=_flusher, args=(stop,)) if mode == "redis" else None
            if background:
                background.start()
            visits, elapsed = _visits_for(SECONDS, article.pk)
            if background:
                stop.set()
                background.join()
                page_views_flush()
        rates[mode] = visits / elapsed
        article.refresh_from_db()
        lost[mode] = visits - article.views
        log(f"page views {mode}: {rates[mode]:.0f} visits/s, {visits} visits, {article.views} stored")
    return [
        Result(
            name=NAME,
            ratio=rates["redis"] / rates["direct"],
            target=TARGET,
            detail={
                "redis_visits_per_s": round(rates["redis"], 1),
                "direct_visits_per_s": round(rates["direct"], 1),
                "lost_visits": lost,
                "extra_target": "zero visits lost",
                "extra_target_met": not any(lost.values()),
                "visitor_processes": VISITORS,
            },
            note=f"Redis {rates['redis']:.0f}/s, UPDATE {rates['direct']:.0f}/s, "
            f"{VISITORS} processes, lost {sum(lost.values())}",
        )
    ]
