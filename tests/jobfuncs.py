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


CHAOS_TABLE = "chaos_effect"


def chaos_effect(token: str, ms: int, fail: bool = False) -> str:
    """An idempotent job: its effect is one row per token however often it runs.

    Counts every execution in Redis, so a test can see at-least-once delivery at work.
    """
    from django.db import connection

    _redis().hincrby("test:chaos:runs", token, 1)
    time.sleep(ms / 1000)
    if fail:
        raise ValueError(f"chaos job {token} always fails")
    with connection.cursor() as cursor:
        # The idempotency: an upsert keyed by the job's own token, not "insert and hope".
        cursor.execute(f"INSERT INTO {CHAOS_TABLE} (token) VALUES (%s) ON CONFLICT (token) DO NOTHING", [token])
    return token


def blob_size(blob: str) -> int:
    return len(blob)


def fail_with(message: str) -> None:
    """Raises ``message`` as is: NUL, lone surrogates, markup, whatever a caller passes."""
    raise ValueError(message)


def raw_bytes() -> bytes:
    return b"\xff\xfe\x00not utf-8 \xc3\x28"


def unpicklable_result() -> object:
    import threading

    return threading.Lock()


def log_and_fail(text: str) -> None:
    import logging

    logging.getLogger("jobsite.tests").warning("about to fail: %s", text)
    raise RuntimeError(text)


def use_secrets(user: str, pin: str, db_password: str, *, config: dict, note: str, card: str, fail: bool = False):
    """Receives secrets every way a job can: it records what it got (the real values), logs
    them, reports them as progress, and returns them or raises with them in the message."""
    import json
    import logging

    _redis().rpush("test:secrets:received", json.dumps([user, pin, db_password, config, note, card]))
    log = logging.getLogger("shop.jobs.secrets")
    log.info("connecting as %s with password=%s and %s", user, db_password, note)
    log.warning("pin %s, card %s, key %s", pin, card, config["api_key"])
    progress(1, 2, f"checking pin {pin} with {note}")
    if fail:
        raise ValueError(f"login failed for {user}: password={db_password}, pin {pin}, card {card}, {config}")
    return {"user": user, "session_token": config["api_key"], "echo": f"pin {pin} card {card}"}


# A job function whose dotted path, and an exception whose type name, are longer than the
# 255 characters their columns hold.
LONG_NAME = "long_" + "n" * 300


def _fail_with_a_long_exception_name() -> None:
    raise type("E" + "x" * 300, (Exception,), {})("a long exception type")


globals()[LONG_NAME] = _fail_with_a_long_exception_name


def note_run(path: str) -> str:
    """Appends the running job's id to the file at ``path``: a trace of every run that no
    Redis fail-over can take back."""
    from rq import get_current_job

    job = get_current_job()
    with open(path, "a") as trace:
        trace.write(f"{job.id if job else '?'}\n")
    return "noted"


def fail_counted(name: str) -> None:
    """Counts its runs under ``name``, then fails: how often did it really run?"""
    _redis().incr(f"test:runs:{name}")
    raise ValueError(f"{name} failed")


def fail_on_run(name: str, run: int) -> int:
    """Counts its runs under ``name`` and fails on run number ``run`` only."""
    calls = int(_redis().incr(f"test:runs:{name}"))
    if calls == run:
        raise ValueError(f"{name} failed on run {calls}")
    return calls


def count_failure_callback(job, connection, exc_type, exc_value, tb) -> None:  # noqa: ANN001
    """An RQ on_failure callback that counts how often it fired for the job's first argument."""
    _redis().incr(f"test:on_failure:{job.args[0]}")


def return_retry(name: str):  # noqa: ANN201
    """Counts its runs under ``name`` and asks RQ for a retry by returning its `Retry`."""
    from rq import Retry

    _redis().incr(f"test:runs:{name}")
    return Retry(max=1)


def claimed_elsewhere(fail: bool = False) -> str:
    """While it runs, another worker takes the job over, as after a watchdog presumed this
    one dead: its claim goes to attempt 2 elsewhere and the job hash says so. Then it
    returns (or raises) as if it had been cut off meanwhile."""
    from rq import get_current_job

    from workers.redis import CLAIM_KEY

    job = get_current_job()
    assert job is not None
    redis = _redis()
    redis.set(CLAIM_KEY.format(job.id), "2 elsewhere 0000")
    redis.hset(job.key, mapping={"status": "started", "worker_name": "elsewhere"})
    if fail:
        raise ValueError("late failure of attempt 1")
    return "late result of attempt 1"


def run_counted(runs_dir: str, name: str, seconds: float = 0.0, fail_runs: int = 0) -> str:
    """Counts its runs under ``name`` (a line appended to a file in ``runs_dir``), sleeps,
    and fails its first ``fail_runs`` runs: the multi-host test's load, countable however
    often a job ran. The count is kept on the shared disk, not in Redis: the test cuts the
    network to Redis, and a count lost with it would fail the job for the test's own sake."""
    with open(os.path.join(runs_dir, name), "a") as runs_file:
        runs_file.write("run\n")
    with open(os.path.join(runs_dir, name)) as runs_file:
        runs = sum(1 for _line in runs_file)
    if seconds:
        time.sleep(seconds)
    if runs <= fail_runs:
        raise ConnectionError(f"{name}: transient failure on run {runs} of {fail_runs}")
    return f"{name} ran {runs} time(s)"
