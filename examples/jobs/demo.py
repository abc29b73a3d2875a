"""The everyday jobs demo traffic enqueues: quick, slow, flaky, broken, long, ordered.

They stand in for an application's own jobs; each does something small but real (a Redis
write, a computation) so that what the dashboard shows is what happened.
"""

from __future__ import annotations

import hashlib
import time

from workers import progress
from workers.redis import connection as redis_connection


def thumbnail_resize(image_id: int, width: int = 320) -> str:
    """Quick: a few milliseconds of work."""
    digest = hashlib.sha256(f"{image_id}:{width}".encode()).hexdigest()[:12]
    return f"image {image_id} -> {width}px ({digest})"


def search_reindex(doc_id: int, seconds: float = 2.0) -> str:
    """Slow: holds a worker for a while."""
    time.sleep(seconds)
    return f"document {doc_id} reindexed"


def webhook_deliver(delivery_id: str, failures: int = 1) -> str:
    """Transient failures: the partner answers 503 the first ``failures`` times, then 200."""
    calls = redis_connection().incr(f"examples:demo:webhook:{delivery_id}")
    redis_connection().expire(f"examples:demo:webhook:{delivery_id}", 3600)
    if calls <= failures:
        raise ConnectionError(f"partner endpoint answered 503 Service Unavailable (call {calls})")
    return f"delivered after {calls} calls"


def invoice_sync(invoice_id: int) -> str:
    """Permanent failure: the invoice references a customer the accounting system lacks."""
    raise LookupError(f"invoice {invoice_id}: customer C-{invoice_id % 97:04d} does not exist in accounting")


def report_render(report_id: int, steps: int = 10, step_seconds: float = 1.0) -> str:
    """Long: reports its progress as it goes."""
    for step in range(1, steps + 1):
        time.sleep(step_seconds)
        progress(step, steps, f"rendering section {step} of {steps}")
    return f"report {report_id}: {steps} sections"


def ledger_apply(account_id: int, entry: int, cents: int) -> int:
    """Ordered (enqueued with key="account:<id>"): appends to the account's ledger in Redis."""
    key = f"examples:demo:ledger:{account_id}"
    redis_connection().rpush(key, f"{entry}:{cents}")
    redis_connection().expire(key, 24 * 3600)
    return int(redis_connection().incrby(f"{key}:balance", cents))
