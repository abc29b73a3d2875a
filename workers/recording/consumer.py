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
    HELD_KEY,
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
from . import unapplied
from .apply import apply_events, is_transient

log = logging.getLogger(__name__)

# A consumer that has not acknowledged an event for this long is presumed dead: another
# recorder claims its pending events.
CLAIM_IDLE_MS = 30_000
# How often a running recorder looks for such events.
CLAIM_EVERY = 5.0
# How often a running recorder tries its held events again (see ``unapplied``), and how
# many of the oldest it reads each time.
RELEASE_EVERY = 1.0
HELD_READ = 5000


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
        self._move_aside = connection.register_script(unapplied.MOVE_ASIDE_SCRIPT)
        # Stream entries this recorder set aside or held (``record_events --burst`` says).
        self.set_aside = self.held = 0

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
        """Apply a batch of stream entries, set aside or hold the ones it cannot, then
        acknowledge them all: whatever an entry holds, it never stops the batch."""
        if not entries:
            return 0
        decoded: list[tuple[bytes, dict[bytes, bytes], dict[str, Any]]] = []
        aside: list[str] = []
        for entry_id, fields in entries:
            try:
                decoded.append((entry_id, fields, events.decode(fields)))
            except events.InvalidEvent as exc:
                aside.append(self._set_aside(entry_id, fields, str(exc)))
            except Exception as exc:  # a check that did not foresee this entry: still only this entry
                log.exception("recorder %s: stream entry %r cannot be read", self.name, entry_id)
                aside.append(self._set_aside(entry_id, fields, f"it cannot be read: {type(exc).__name__}: {exc}"))
        unrecorded, refused = self._apply([event for _, _, event in decoded])
        entry_of = {id(event): (entry_id, fields) for entry_id, fields, event in decoded}
        for event, reason in refused:
            aside.append(self._set_aside(*entry_of[id(event)], reason))
        now = time.time()
        held = {unapplied.held_member(entry_id=entry_of[id(e)][0], fields=entry_of[id(e)][1]): now for e in unrecorded}
        ids = [entry_id for entry_id, _ in entries]
        # One MULTI: an entry leaves the stream only as it lands on the unapplied list or
        # the held set (or after its record was committed).
        with self.connection.pipeline(transaction=True) as pipe:
            if aside:
                pipe.rpush(UNAPPLIED_KEY, *aside)
            if held:
                pipe.zadd(HELD_KEY, held, nx=True)
            pipe.xack(STREAM_KEY, STREAM_GROUP, *ids)
            pipe.xdel(STREAM_KEY, *ids)
            pipe.execute()
        self.set_aside += len(aside)
        self.held += len(held)
        return len(entries)

    def _set_aside(self, entry_id: bytes | str, fields: dict[bytes, bytes], reason: str) -> str:
        log.warning("recorder %s: stream entry %r set aside in %s: %s", self.name, entry_id, UNAPPLIED_KEY, reason)
        return unapplied.set_aside_entry(entry_id=entry_id, fields=fields, reason=reason, recorder=self.name)

    def _apply(self, decoded: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[tuple[dict[str, Any], str]]]:
        """Apply valid events: returns those whose job has no record yet, and those the
        database refused, with why. Only the database being away (transient) raises."""
        try:
            return apply_events(decoded).unrecorded, []
        except Exception as exc:
            if is_transient(exc):
                raise  # the database is away: leave the events pending, try again later
        # One event the database refuses must not block the others: apply them one by one.
        unrecorded: list[dict[str, Any]] = []
        refused: list[tuple[dict[str, Any], str]] = []
        for event in decoded:
            try:
                unrecorded += apply_events([event]).unrecorded
            except Exception as exc:
                if is_transient(exc):
                    raise
                log.exception("recorder %s: the event for job %s cannot be applied", self.name, event.get("id"))
                refused.append((event, f"it cannot be applied: {type(exc).__name__}: {exc}"))
        return unrecorded, refused

    def release_held(self) -> int:
        """Apply held events whose job has a record by now; set aside those held longer
        than RECORDER_HOLD. Returns how many left the held set."""
        members = self.connection.zrange(HELD_KEY, 0, HELD_READ - 1, withscores=True)
        done = 0
        for start in range(0, len(members), self.batch_size):
            done += self._release(members[start : start + self.batch_size])
        return done

    def _release(self, members: list[tuple[bytes, float]]) -> int:
        parsed, aside = [], []
        for member, held_at in members:
            try:
                entry_id, fields = unapplied.held_parse(member)
                parsed.append((member, held_at, entry_id, fields, events.decode(fields)))
            except Exception as exc:  # someone else wrote to the held set: keep it where it can be read
                reason = f"unreadable held entry: {type(exc).__name__}: {exc}"
                aside.append((member, self._set_aside(b"", {b"held": member}, reason)))
        unrecorded, refused = self._apply([event for *_, event in parsed])
        waiting = {id(event) for event in unrecorded}
        why_refused = {id(event): reason for event, reason in refused}
        hold = float(setting("RECORDER_HOLD"))
        applied: list[bytes] = []
        for member, held_at, entry_id, fields, event in parsed:
            if id(event) in why_refused:
                aside.append((member, self._set_aside(entry_id, fields, why_refused[id(event)])))
            elif id(event) not in waiting:
                applied.append(member)
            elif time.time() - held_at >= hold:
                reason = (
                    f"no record for job {event['id']} and the event does not describe it (no queue and function); "
                    f"waited {hold:g} s for one"
                )
                aside.append((member, self._set_aside(entry_id, fields, reason)))
        if applied:
            self.connection.zrem(HELD_KEY, *applied)
        moved = 0
        if aside:
            moved = self._move_aside(keys=[HELD_KEY, UNAPPLIED_KEY], args=[part for pair in aside for part in pair])
        return len(applied) + int(moved)

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
            read = [e for _stream, batch in (reply or []) for e in batch]  # type: ignore[str-unpack, union-attr]
            gone = [entry_id for entry_id, fields in read if not fields]
            if gone:  # deleted from the stream while we held them: nothing left to apply or keep
                log.warning("recorder %s: entries %r were deleted before being applied", self.name, gone)
                self.connection.xack(STREAM_KEY, STREAM_GROUP, *gone)
            entries = [e for e in read if e[1]]
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
        next_claim = next_release = 0.0
        while not stop.is_set():
            try:
                if between is not None:
                    between()
                moment = time.monotonic()
                if moment >= next_claim:
                    self.claim_stale()
                    next_claim = moment + CLAIM_EVERY
                if moment >= next_release:
                    self.release_held()
                    next_release = moment + RELEASE_EVERY
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
        """Apply everything pending now, including what other consumers left unacknowledged,
        then the held events whose job is recorded by now; returns the stream entries read."""
        total = self.claim_stale(min_idle_ms=0)
        while applied := self.step():
            total += applied
        self.release_held()
        return total


def drain(connection: Redis | None = None) -> int:
    """Apply every pending event synchronously (tests, burst workers, ``record_events --burst``)."""
    return Recorder(connection or redis_connection(), name="drain").drain()
