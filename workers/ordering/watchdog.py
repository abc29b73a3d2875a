"""The stuck-key watchdog (run by every worker's companion thread, one pass at a time
across workers): it re-drives keys that made no progress, see ``workers.ordering.keys``."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from redis import Redis
from rq.job import Job
from rq.rate_limit import RateLimitRegistry
from rq.utils import now, utcformat

from ..conf import setting
from ..redis import (
    KEYS_SUSPECT_HASH,
    KEYS_WATCHDOG_LOCK,
    KEYS_ZSET,
    REQUEUE_GUARD_KEY,
    REQUEUE_GUARD_SECONDS,
    STREAM_KEY,
)
from ..redis import connection as redis_connection
from .keys import QUEUE_PREFIX, _scripts, blocks_on_dead, holder_key, key_release, waiting_key

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KeyState:
    key: str
    holder: str
    holder_status: str
    waiting: int
    idle_seconds: float
    state: str  # running | queued | retrying | limited | blocked | stalled | free
    note: str

    @property
    def is_stalled(self) -> bool:
        return self.state in ("stalled", "blocked")


_HEALTHY = {
    "started": ("running", ""),
    "scheduled": ("retrying", "waiting for its next attempt"),
    "rate_limited": ("limited", "waiting for a slot of its limit"),
}


# LPOS is linear in the queue's length: look for at most this many queued holders per
# pass, and only for keys idle longer than the stall timeout.
MAX_QUEUE_SCANS = 100


def _inspect(connection: Redis, entries: list[tuple[str, float]], moment: float) -> list[tuple[KeyState, str]]:
    """Each key's state plus the action the watchdog would take: '', release, redrive, orphan."""
    stall_timeout = float(setting("KEY_STALL_TIMEOUT"))
    scans = 0
    with connection.pipeline(transaction=False) as pipe:
        for key, _score in entries:
            pipe.get(holder_key(key))
            pipe.llen(waiting_key(key))
        raw = pipe.execute()
    holders = [h.decode() if h else "" for h in raw[0::2]]
    waiting = [int(n) for n in raw[1::2]]
    with connection.pipeline(transaction=False) as pipe:
        for holder in holders:
            pipe.hmget(Job.key_for(holder) if holder else "jobsite:none", "status", "origin")
        fields = pipe.execute()
    out: list[tuple[KeyState, str]] = []
    for (key, score), holder, count, (status_raw, origin_raw) in zip(entries, holders, waiting, fields, strict=True):
        status = status_raw.decode() if status_raw else ""
        origin = origin_raw.decode() if origin_raw else ""
        idle = max(moment - score, 0.0)
        action = ""
        if not holder:
            state, note = ("stalled", "jobs wait but no job holds the key") if count else ("free", "")
            action = "orphan" if count else "forget"
        elif not status:
            state, note, action = "stalled", "its holder job no longer exists", "release"
        elif status in ("finished", "canceled"):
            state, note, action = "stalled", f"its holder is {status} but did not hand the key on", "release"
        elif status in ("failed", "stopped"):
            if blocks_on_dead(key):
                state, note = "blocked", f"holder is {'dead' if status == 'failed' else status}: retry or discard it"
            else:
                state, note, action = "stalled", f"its holder is {status} but did not hand the key on", "release"
        elif status == "queued" and (idle < stall_timeout or scans >= MAX_QUEUE_SCANS):
            state, note = "queued", ""
        elif status == "queued":
            scans += 1
            in_queue = connection.lpos(QUEUE_PREFIX + origin, holder) is not None
            in_flight = connection.lpos(f"{QUEUE_PREFIX}{origin}:intermediate", holder) is not None
            if in_queue or in_flight:
                state, note = "queued", ""
            else:
                state, note, action = "stalled", "its holder is queued but in no queue (lost by a worker)", "redrive"
        elif status == "deferred":
            state, note, action = "stalled", "its holder was granted the key but never queued", "redrive"
        else:
            state, note = _HEALTHY.get(status, ("running", status))
        out.append((KeyState(key, holder, status, count, idle, state, note), action))
    return out


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _keys_by_age(connection: Redis, count: int) -> list[tuple[str, float]]:
    """Keys with work, longest without progress first, with the epoch of their last progress."""
    entries: Any = connection.zrange(KEYS_ZSET, 0, count - 1, withscores=True)
    return [(_text(key), float(score)) for key, score in entries]


def key_states(*, limit: int = 200, connection: Redis | None = None) -> list[KeyState]:
    """Keys with work (held or waiting), stalled ones first, then the longest idle."""
    connection = connection or redis_connection()
    entries = _keys_by_age(connection, limit)
    states = [state for state, _action in _inspect(connection, entries, time.time()) if state.state != "free"]
    return sorted(states, key=lambda s: (not s.is_stalled, -s.idle_seconds))


def keys_watchdog(connection: Redis, *, moment: float | None = None, exclusive: bool = True) -> int:
    """One watchdog pass; returns how many keys it moved on.

    ``exclusive``: skip the pass when another worker ran one within the interval (every
    worker's companion calls this; one pass per interval is enough).
    """
    interval = float(setting("WATCHDOG_INTERVAL"))
    if exclusive and not connection.set(KEYS_WATCHDOG_LOCK, 1, nx=True, px=max(int(interval * 900), 100)):
        return 0
    moment = time.time() if moment is None else moment
    for registry in RateLimitRegistry.all(connection):
        registry.cleanup()  # frees slots of jobs that died or were dead-lettered by our watchdog
    timeout = float(setting("KEY_STALL_TIMEOUT"))
    entries = _keys_by_age(connection, 1000)
    raw_suspects: Any = connection.hgetall(KEYS_SUSPECT_HASH)
    suspects: dict[str, dict[str, Any]] = {_text(k): json.loads(v) for k, v in raw_suspects.items()}
    moved = 0
    for state, action in _inspect(connection, entries, moment):
        if action == "forget":
            connection.zrem(KEYS_ZSET, state.key)
        elif action == "release":
            # The holder is over: hand the key on now (a late release by its worker is a no-op).
            ended = state.holder_status or "missing"
            released, _promoted = key_release(connection, state.key, state.holder, if_status=ended)
            if released:
                log.warning("key watchdog: key %s moved on (%s)", state.key, state.note)
                moved += 1
        elif action in ("redrive", "orphan"):
            seen = suspects.get(state.key)
            if not seen or seen["holder"] != state.holder or seen["status"] != state.holder_status:
                seen = {"holder": state.holder, "status": state.holder_status, "since": moment}
                connection.hset(KEYS_SUSPECT_HASH, state.key, json.dumps(seen))
            elif moment - seen["since"] >= timeout:
                if _redrive(connection, state, action):
                    log.warning("key watchdog: key %s re-driven after %.0f s (%s)", state.key, timeout, state.note)
                    moved += 1
        elif state.key in suspects:
            connection.hdel(KEYS_SUSPECT_HASH, state.key)
    return moved


def _redrive(connection: Redis, state: KeyState, action: str) -> bool:
    if action == "orphan":
        return key_release(connection, state.key, "")[0]
    origin = _text(connection.hget(Job.key_for(state.holder), "origin") or b"")
    queue_key = QUEUE_PREFIX + origin
    return bool(
        _scripts(connection)["redrive"](
            keys=[
                holder_key(state.key),
                KEYS_ZSET,
                STREAM_KEY,
                Job.key_for(state.holder),
                queue_key,
                f"{queue_key}:intermediate",
                KEYS_SUSPECT_HASH,
                REQUEUE_GUARD_KEY.format(state.holder),
            ],
            args=[state.holder, state.key, time.time(), utcformat(now()), state.holder_status, REQUEUE_GUARD_SECONDS],
        )
    )
