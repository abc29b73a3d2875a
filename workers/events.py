"""Lifecycle events: their one format, a builder per kind, and their encoding.

An event is one entry on the ``jobsite:events`` stream with a single field ``d`` holding a
JSON object. Every event has ``e`` (its kind: a job status, ``progress`` or ``log``),
``id`` (the job id), ``a`` (the attempt it belongs to) and ``t`` (epoch seconds); a
status event adds what the record needs to exist (see ``DESCRIPTOR_FIELDS``) and what
that transition knows. The builders below are the only places an event is put together;
the Lua scripts of ordered jobs build theirs with ``lua_queued_event``.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

from .conf import setting
from .redis import STREAM_KEY
from .statuses import JobStatus

PROGRESS = "progress"
LOG = "log"
KINDS = frozenset({*JobStatus.values, PROGRESS, LOG})

# The fields every event has.
KIND, JOB_ID, ATTEMPT, TIME = "e", "id", "a", "t"
# What a job's descriptor (``TrackedJob.descriptor()``) may carry: queue, function,
# arguments (reprs, and JSON when they round-trip), ordering key, origin, parent job, max
# attempts, enqueue time, timeout.
DESCRIPTOR_FIELDS = ("q", "f", "args", "kwargs", "key", "origin", "parent", "max", "enq", "timeout", "json")
QUEUE = "q"
# The arguments as JSON, beside their reprs, when they round-trip (``json_arguments``).
ARGS_JSON = "json"


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


def _jsonable(value: Any, depth: int = 0) -> bool:
    """``value`` comes back from JSON as it went in, and both databases store it as it is."""
    kind = type(value)
    if kind is str:
        return "\x00" not in value and (value.isascii() or _utf8(value))  # PostgreSQL refuses \u0000
    if value is None or kind is bool:
        return True
    if kind is int:
        return -(2**63) <= value < 2**63  # SQLite's JSON keeps 64-bit integers
    if kind is float:
        return math.isfinite(value)
    if depth >= 20:
        return False
    if kind is list:
        return all(_jsonable(item, depth + 1) for item in value)
    if kind is dict:
        return all(type(k) is str and _jsonable(k) and _jsonable(v, depth + 1) for k, v in value.items())
    return False  # tuples, sets, dates, objects: not what JSON gives back


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def is_cut(text: str) -> bool:
    """Was ``text`` shortened by ``bounded``?"""
    return text.endswith(" more characters]") and "… [" in text


def json_arguments(args: Any, kwargs: Any, *, reprs: tuple[str, str] = ("", "")) -> dict[str, Any] | None:
    """``{"args": [...], "kwargs": {...}}`` when the arguments round-trip through JSON, fit in
    REPR_LIMIT characters and their ``reprs`` were not cut (searches narrow by the reprs'
    index first); else None. Build it from the same (redacted) values as the reprs."""
    if (not args and not kwargs) or any(is_cut(text) for text in reprs):
        return None
    value = {"args": list(args), "kwargs": dict(kwargs)}
    if not _jsonable(value):
        return None
    # JSON of such values is at most 1.5 times their repr (an escape \u0007 against \x07):
    # short reprs need no trial encoding (this runs on every enqueue).
    limit = setting("REPR_LIMIT")
    if reprs[0] and reprs[1] and (len(reprs[0]) + len(reprs[1])) * 1.5 + 32 <= limit:
        return value
    return value if json_size(value) <= limit else None


def json_size(value: Any) -> int:
    """Characters of ``value`` as compact JSON text: what REPR_LIMIT bounds."""
    return len(_SIZE_ENCODER.encode(value))


def valid_json_arguments(value: Any) -> bool:
    """What a recorder may store and index: the shape ``json_arguments`` builds, bounded."""
    return (
        type(value) is dict
        and value.keys() == {"args", "kwargs"}
        and type(value["args"]) is list
        and type(value["kwargs"]) is dict
        and _jsonable(value)
        and json_size(value) <= setting("REPR_LIMIT")
    )


# --- builders ----------------------------------------------------------------------------


def _event(kind: str, job_id: str, attempt: int, descriptor: dict[str, Any] | None, **fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {KIND: kind, JOB_ID: job_id, ATTEMPT: attempt}
    event.update(descriptor or {})
    event.update({name: value for name, value in fields.items() if value is not None})
    return event


def waiting(
    status: str, *, job_id: str, attempt: int, descriptor: dict[str, Any], next_at: float | None = None
) -> dict[str, Any]:
    """Queued, scheduled (``next_at``: when it is due), deferred or canceled."""
    return _event(status, job_id, attempt, descriptor, next=next_at)


def started(
    *, job_id: str, attempt: int, worker: str, start: float | None, descriptor: dict[str, Any]
) -> dict[str, Any]:
    return _event(JobStatus.STARTED, job_id, attempt, descriptor, w=worker, start=start)


def finished(
    *, job_id: str, attempt: int, worker: str, result: str, start: float | None, end: float | None,
    descriptor: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    return _event(JobStatus.FINISHED, job_id, attempt, descriptor, w=worker, res=result, start=start, end=end)


def failed(
    status: str, *, job_id: str, attempt: int, worker: str, failure: tuple[str, str, str], start: float | None,
    end: float | None, descriptor: dict[str, Any], next_at: float | None = None,
) -> dict[str, Any]:  # fmt: skip
    """An attempt that failed: retrying (``next_at``: when the next one is due), dead or stopped."""
    exc_type, message, traceback_text = failure
    return _event(
        status, job_id, attempt, descriptor, w=worker, start=start, end=end, next=next_at,
        xt=bounded(exc_type, 255), xm=bounded(message), tb=bounded(traceback_text, setting("TRACEBACK_LIMIT")),
    )  # fmt: skip


def progress(*, job_id: str, attempt: int, percent: int, message: str) -> dict[str, Any]:
    return _event(PROGRESS, job_id, attempt, None, p=percent, m=message)


def log_lines(*, job_id: str, attempt: int, lines: list[list[Any]]) -> dict[str, Any]:
    """Captured log lines of a running job: ``[[seq, epoch, level, logger, message], ...]``."""
    return _event(LOG, job_id, attempt, None, lines=lines)


def lua_queued_event(*, job_id: str, attempt: str, moment: str, queue: str) -> str:
    """A Lua table constructor for a ``queued`` event, from Lua expressions for its values:
    the ordering scripts encode it with ``cjson`` in the same atomic step as the push."""
    return (
        f"{{{KIND} = '{JobStatus.QUEUED}', {JOB_ID} = {job_id}, {ATTEMPT} = {attempt}, "
        f"{TIME} = {moment}, {QUEUE} = {queue}}}"
    )


# --- encoding ------------------------------------------------------------------------------

# One encoder for every event: json.dumps() with options builds a new one per call, which
# showed in the enqueue latency (bench/enqueue.py).
_ENCODER = json.JSONEncoder(default=str, separators=(",", ":"))
_SIZE_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def encode(event: dict[str, Any]) -> dict[str, str]:
    event.setdefault(TIME, time.time())
    return {"d": _ENCODER.encode(event)}


def decode(fields: dict[bytes, bytes]) -> dict[str, Any]:
    return json.loads(fields[b"d"])


def append(connection: Any, event: dict[str, Any]) -> None:
    """XADD ``event``; ``connection`` may be a pipeline, so it rides RQ's own round trip."""
    connection.xadd(STREAM_KEY, encode(event))
