"""(e) Page views through Redis / direct UPDATE: visits per second, and no visit lost.

The page-view workload of the examples app: ``article_view_record`` counts one visit, with
one HINCRBY in the Redis mode or one ``UPDATE ... + 1`` in the direct mode
(``EXAMPLES["PAGE_VIEWS_MODE"]``), and ``page_views_flush`` moves the Redis counts into the
database. Visitors are separate processes, as web workers are: threads would measure
Python's GIL rather than Redis against the database. In the Redis mode flushes run every
half second all the while and once more at the end; then the database must hold exactly
the visits recorded in both modes: none lost, none doubled.

What the Redis mode is for is the database's load, not the visitor's CPU, so the same run
also reports, per mode, the database statements per 10,000 visits (every statement the
visitors and the flushes send, counted by a Django execute wrapper in each process and
thread) and the p99 latency of one visit under the 8 concurrent visitors of one hot
article. Targets: at least 100x fewer statements and a p99 at least 5x lower.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connections
from django.test import override_settings
from redis import Redis

from examples.models import Article
from examples.services import article_view_record, page_views_flush

from .common import Result, log, percentile

NAME = "page views Redis/direct UPDATE, visits per second"
TARGET = ">= 20"
VISITORS, SECONDS = 8, 10.0
MODES = ("direct", "redis")


class _Statements:
    """A Django execute wrapper counting the statements its connection sends."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        self.count += 1
        return execute(sql, params, many, context)


def _visitor(article_id: int, until: float, count: Any, statements: Any, latencies: Any) -> None:
    """One visiting process: record visits until the deadline, timing each, then report how
    many, the statements they sent and their latencies."""
    n, spent, counter = 0, [], _Statements()
    clock = time.perf_counter
    try:
        with connections["default"].execute_wrapper(counter):
            while time.monotonic() < until:
                began = clock()
                article_view_record(article_id=article_id)
                spent.append(clock() - began)
                n += 1
    finally:
        count.value, statements.value = n, counter.count
        latencies.put(spent)
        connections.close_all()


@dataclass
class _Run:
    visits: int
    elapsed: float
    statements: int  # the visitors' (the flushes' are added by run())
    latencies: list[float]


def _visits_for(seconds: float, article_id: int) -> _Run:
    """Visits recorded by VISITORS processes at once, for ``seconds``."""
    context = multiprocessing.get_context("fork")
    connections.close_all()  # a forked child must open its own connections, never share ours
    until = time.monotonic() + seconds
    counts = [context.Value("q", 0) for _ in range(VISITORS)]
    statements = [context.Value("q", 0) for _ in range(VISITORS)]
    latencies = context.SimpleQueue()
    start = time.perf_counter()
    processes = [
        context.Process(target=_visitor, args=(article_id, until, c, q, latencies))
        for c, q in zip(counts, statements, strict=True)
    ]
    for process in processes:
        process.start()
    spent: list[float] = []
    for _ in processes:  # read before joining: a child blocks until its list is taken
        spent += latencies.get()
    for process in processes:
        process.join()
    elapsed = time.perf_counter() - start
    if any(p.exitcode for p in processes):
        raise RuntimeError(f"a visitor process failed: exit codes {[p.exitcode for p in processes]}")
    return _Run(sum(c.value for c in counts), elapsed, sum(q.value for q in statements), spent)


def _flusher(stop: threading.Event, counter: _Statements) -> None:
    """Flush every half second while visits come in: a flush must never lose one."""
    try:
        with connections["default"].execute_wrapper(counter):
            while not stop.wait(0.5):
                page_views_flush()
    finally:
        close_old_connections()


def run(connection: Redis) -> list[Result]:
    rates, lost, per_10k, p99 = {}, {}, {}, {}
    for mode in MODES:
        connection.flushdb()
        article = Article.objects.create(slug=f"bench-{mode}-{time.time_ns()}", title=f"Bench article ({mode})")
        flushes = _Statements()
        with override_settings(EXAMPLES={**settings.EXAMPLES, "PAGE_VIEWS_MODE": mode}):
            stop = threading.Event()
            background = threading.Thread(target=_flusher, args=(stop, flushes)) if mode == "redis" else None
            if background:
                background.start()
            visits = _visits_for(SECONDS, article.pk)
            if background:
                stop.set()
                background.join()
                with connections["default"].execute_wrapper(flushes):
                    page_views_flush()
        rates[mode] = visits.visits / visits.elapsed
        per_10k[mode] = (visits.statements + flushes.count) * 10_000 / visits.visits
        p99[mode] = percentile(visits.latencies, 0.99) * 1000
        article.refresh_from_db()
        lost[mode] = visits.visits - article.views
        log(
            f"page views {mode}: {rates[mode]:.0f} visits/s, {visits.visits} visits, {article.views} stored, "
            f"{per_10k[mode]:.1f} statements per 10,000 visits, p99 {p99[mode]:.3f} ms"
        )
    detail = {
        "redis_visits_per_s": round(rates["redis"], 1),
        "direct_visits_per_s": round(rates["direct"], 1),
        "statements_per_10k_visits": {mode: round(value, 2) for mode, value in per_10k.items()},
        "p99_visit_ms": {mode: round(value, 3) for mode, value in p99.items()},
        "lost_visits": lost,
        "extra_target": "zero visits lost",
        "extra_target_met": not any(lost.values()),
        "visitor_processes": VISITORS,
    }
    return [
        Result(
            name=NAME,
            ratio=rates["redis"] / rates["direct"],
            target=TARGET,
            detail=detail,
            note=f"Redis {rates['redis']:.0f}/s, UPDATE {rates['direct']:.0f}/s, "
            f"{VISITORS} processes, lost {sum(lost.values())}",
        ),
        Result(
            name="page views database statements per 10,000 visits, direct/Redis",
            ratio=per_10k["direct"] / per_10k["redis"] if per_10k["redis"] else None,
            target=">= 100",
            detail=detail,
            note=f"direct {per_10k['direct']:.0f}, Redis {per_10k['redis']:.2f} (flushes every 0.5 s), "
            f"lost {sum(lost.values())}",
        ),
        Result(
            name=f"page views p99 visit latency, one hot article, {VISITORS} visitors, direct/Redis",
            ratio=p99["direct"] / p99["redis"],
            target=">= 5",
            detail=detail,
            note=f"direct {p99['direct']:.2f} ms, Redis {p99['redis']:.3f} ms",
        ),
    ]
