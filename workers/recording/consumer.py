"""The recorder: reads lifecycle events from the stream and applies them in batches.

It reads as a consumer group, so any number of recorders share the work, and it
acknowledges (and deletes) events only after the database commit, so a crash or an
outage loses nothing. ``Recorder.run`` is the one loop, run by a worker's companion
thread and by ``manage.py record_events``.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any

from django.db import connections
from redis import Redis
from redis.exceptions import ResponseError

from .. import events
from ..conf import setting
from ..redis import (
    REDIS_DOWN,
    STREAM_GROUP,
    STREAM_KEY,
    UNAPPLIED_KEY,
    RedisOutage,
    backoff,
    raise_if_failing_over,
)
from ..redis import connection as redis_connection
from ..rq.forkguard import FORK_GUARD
from .apply import apply_events, is_transient

log = logging.getLogger(__name__)

# A consumer that has not acknowledged an event for this long is presumed dead: another
# recorder claims its pending events.
CLAIM_IDLE_MS = 30_000
# How often a running recorder looks for such events.
CLAIM_EVERY = 5.0


class Recorder:
    """One consumer of the jobsite stream; call ``step()`` in a loop or ``drain()``."""

    def __init__(
        self,
        connection: Redis,
        *,
        name: str | None = None,
        batch_size: int = 500,
    ) -> None:
        self.connection = connection
        self.name = name or f"{socket.gethostname()}:{id(self)}"
        self.batch_size = batch_size
        self._group_ready = False

    def _grouped(self, command: Any, *args: Any, **kwargs: Any) -> Any:
        """Run a consumer-group command; if Redis lost the group (a restart without
        persistence, a flush), make it again and retry once instead of failing forever."""
        try:
            return command(*args, **kwargs)
        except ResponseError as exc:
            raise_if_failing_over(exc)
            if "NOGROUP" not in str(exc):
                raise
            self._group_ready = False
            self.ensure_group()
            return command(*args, **kwargs)

    def ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            # From id 0: events written before any recorder existed are applied too.
            self.connection.xgroup_create(STREAM_KEY, STREAM_GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    def _apply_and_ack(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> int:
        if not entries:
            return 0
        decoded = []
        for _entry_id, fields in entries:
            try:
                decoded.append(events.decode(fields))
            except (KeyError, ValueError):
                log.error("dropping malformed jobsite event %r", fields)
        try:
            apply_events(decoded)
        except Exception as exc:
            if is_transient(exc):
                raise  # the database is away: leave the events pending, try again later
            self._apply_one_by_one(decoded)
        ids = [entry_id for entry_id, _ in entries]
        with self.connection.pipeline() as pipe:
            pipe.xack(STREAM_KEY, STREAM_GROUP, *ids)
            pipe.xdel(STREAM_KEY, *ids)
            pipe.execute()
        return len(entries)

    def _apply_one_by_one(self, decoded: list[dict[str, Any]]) -> None:
        # One bad event must not block the stream: it is set aside where an operator can
        # read it, and everything else is applied.
        for event in decoded:
            try:
                apply_events([event])
            except Exception as exc:
                if is_transient(exc):
                    raise
                log.exception("jobsite event for job %s cannot be applied; kept in %s", event.get("id"), UNAPPLIED_KEY)
                self.connection.rpush(UNAPPLIED_KEY, events.encode(dict(event))["d"])

    def claim_stale(self, min_idle_ms: int = CLAIM_IDLE_MS) -> int:
        """Apply events a dead recorder took but never acknowledged."""
        self.ensure_group()
        applied = 0
        start = "0-0"
        while True:
            start, entries, *_ = self._grouped(
                self.connection.xautoclaim,
                STREAM_KEY,
                STREAM_GROUP,
                self.name,
                min_idle_ms,
                start_id=start,
                count=self.batch_size,
            )
            applied += self._apply_and_ack([e for e in entries if e[1]])
            if start in (b"0-0", "0-0"):
                return applied

    def step(self, block_ms: int | None = None) -> int:
        """Read and apply one batch of new events; returns how many were applied."""
        self.ensure_group()
        # Our own pending entries first (left by a failed apply), then new ones.
        for stream_id in ("0", ">"):
            reply = self._grouped(
                self.connection.xreadgroup,
                STREAM_GROUP,
                self.name,
                {STREAM_KEY: stream_id},
                count=self.batch_size,
                block=block_ms if stream_id == ">" else None,
            )
            entries = [e for _stream, batch in (reply or []) for e in batch if e[1]]  # type: ignore[str-unpack, union-attr]
            if entries:
                return self._apply_and_ack(entries)  # type: ignore[arg-type]
        return 0

    def run(
        self, stop: threading.Event, *, between: Any = None, block_ms: int = 500, outage: RedisOutage | None = None
    ) -> None:
        """Apply batches until ``stop`` is set; Redis or the database being away never ends it.

        ``between`` (a callable) runs once per round first: the worker's companion does
        its watchdog passes there. After a small batch the loop waits RECORDER_PAUSE so
        events gather: one transaction for many jobs costs the jobs beside it far less.
        A Redis outage is waited out with a backoff and logged once (``outage``: the
        process's own, shared with its other loops); events wait in Redis meanwhile, and
        a batch applied but not acknowledged is applied again, which changes nothing.
        """
        outage = outage or RedisOutage(f"recorder {self.name}")
        failures = 0
        next_claim = 0.0
        while not stop.is_set():
            try:
                if between is not None:
                    between()
                moment = time.monotonic()
                if moment >= next_claim:
                    self.claim_stale()
                    next_claim = moment + CLAIM_EVERY
                applied = self.step(block_ms=block_ms)
                outage.ended()
                if 0 < applied < self.batch_size:
                    stop.wait(setting("RECORDER_PAUSE"))
                failures = 0
            except REDIS_DOWN as exc:
                failures += 1
                outage.began(exc)
                stop.wait(backoff(failures))
            except Exception:
                # The database is away: jobs go on, events wait in Redis.
                failures += 1
                log.exception("recorder %s: will retry", self.name)
                with FORK_GUARD:
                    connections.close_all()
                stop.wait(backoff(failures))

    def drain(self) -> int:
        """Apply everything pending now, including what other consumers left unacknowledged."""
        total = self.claim_stale(min_idle_ms=0)
        while applied := self.step():
            total += applied
        return total


def drain(connection: Redis | None = None) -> int:
    """Apply every pending event synchronously (tests, burst workers, ``record_events --burst``)."""
    return Recorder(connection or redis_connection(), name="drain").drain()
