"""Lifecycle events: appended to a Redis stream beside RQ's own writes, applied by the recorder.

An event is one stream entry with a single field ``d`` holding JSON:
``{"e": status or "progress", "id": job id, "a": attempt, "t": epoch seconds, "q": queue,
"f": function, ...}`` plus what that transition knows (worker, result, error, ...).
"""

from __future__ import annotations

import json
import time
from typing import Any

from .conf import setting

STREAM_KEY = "jobsite:events"
GROUP = "jobsite-recorder"
PROGRESS = "progress"
# Captured log lines of a running job: {"e": "log", "lines": [[seq, epoch, level, logger, message], ...]}.
LOG = "log"


def storable(text: str) -> str:
    """``text`` as a database can store it: NUL (refused by PostgreSQL) and lone surrogates
    (from bytes decoded with surrogateescape; not UTF-8) become visible escapes."""
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def bounded(text: str, limit: int | None = None) -> str:
    """Cut ``text`` to the configured size, saying how much was cut; always storable."""
    limit = limit or setting("REPR_LIMIT")
    if len(text) > limit:
        text = f"{text[:limit]}… [{len(text) - limit} more characters]"
    return storable(text)


def safe_repr(value: Any, limit: int | None = None) -> str:
    """repr() that never raises and never returns more than ``limit`` characters."""
    limit = limit or setting("REPR_LIMIT")
    try:
        if isinstance(value, (bytes, bytearray)) and len(value) > limit:
            value = bytes(value[:limit])
        text = repr(value)
    except Exception as exc:  # a user's __repr__ may raise anything
        text = f"<unrepresentable {type(value).__name__}: {type(exc).__name__}>"
    return bounded(text, limit)


# One encoder for every event: json.dumps() with options builds a new one per call, which
# showed in the enqueue latency (bench/enqueue.py).
_ENCODER = json.JSONEncoder(default=str, separators=(",", ":"))


def encode(event: dict[str, Any]) -> dict[str, str]:
    event.setdefault("t", time.time())
    return {"d": _ENCODER.encode(event)}


def decode(fields: dict[bytes, bytes]) -> dict[str, Any]:
    return json.loads(fields[b"d"])


def append(connection: Any, event: dict[str, Any]) -> None:
    """XADD ``event``; ``connection`` may be a pipeline, so it rides RQ's own round trip."""
    connection.xadd(STREAM_KEY, encode(event))
