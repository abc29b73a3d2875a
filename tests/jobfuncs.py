"""Job functions the tests enqueue: importable by worker processes."""

from __future__ import annotations

import os
import time

from django.conf import settings
from redis import Redis

from workers import progress


def _redis() -> Redis:
    return Redis.from_url(settings.REDIS_URL)


def add(a: int, b: int) -> int:
    return a + b


def fail(message: str = "boom") -> None:
    raise ValueError(message)


def flaky(name: str, failures: int) -> str:
    """Fails the first ``failures`` calls for ``name``, then succeeds."""
    calls = _redis().incr(f"test:flaky:{name}")
    if calls <= failures:
        raise ConnectionError(f"transient failure {calls} of {failures}")
    return f"ok after {calls} calls"


def nap(seconds: float) -> str:
    time.sleep(seconds)
    return "rested"


def hang_and_report_pid(name: str, seconds: float = 60) -> None:
    """Publishes the process id running it, then hangs: for kill tests."""
    _redis().set(f"test:pid:{name}", os.getpid())
    time.sleep(seconds)


def count_and_report(steps: int) -> int:
    for done in range(1, steps + 1):
        progress(done, steps, f"step {done}")
    return steps


def hang_first_time(name: str) -> str:
    """Hangs (reporting its pid) on the first call for ``name``; later calls return at once."""
    if _redis().incr(f"test:calls:{name}") == 1:
        hang_and_report_pid(name)
    return "second attempt ok"


def chatty(lines: int, fail_after: bool = False) -> int:
    """Logs ``lines`` INFO lines (and a warning), then returns or raises."""
    import logging

    log = logging.getLogger("shop.jobs.chatty")
    for n in range(1, lines + 1):
        log.info("processed item %d of %d", n, lines)
    log.warning("done <b>here</b>")
    if fail_after:
        raise RuntimeError("chatty failed after logging")
    return lines


def slow_steps(steps: int, pause: float) -> int:
    """Reports progress step by step, pausing between steps: for live progress views."""
    for done in range(1, steps + 1):
        time.sleep(pause)
        progress(done, steps, f"step {done} of {steps}")
    return steps
