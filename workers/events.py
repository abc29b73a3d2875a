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
# arguments, ordering key, origin, parent job, max attempts, enqueue time, timeout.
DESCRIPTOR_FIELDS = ("q", "f", "args", "kwargs", "key", "origin", "parent", "max", "enq", "timeout")
QUEUE = "q"


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


# A lost event: dead, but only for an attempt whose outcome the records do not know yet.
LOST = "lost"
LOST_REASON = "lost: its RQ job vanished from Redis"


def lost(
    *, job_id: str, attempt: int, worker: str, detail: str, descriptor: dict[str, Any] | None = None
) -> dict[str, Any]:
    """An attempt whose RQ job vanished from Redis (it came back without its data, or failed
    over to a replica that never had the job): nothing is left to retry, so the job is dead
    with the reason. The recorder applies it only if no outcome of that attempt (or a later
    one) is recorded: a finished attempt whose hash was then lost stays finished."""
    message = f"{LOST_REASON} ({detail})"
    return _event(
        JobStatus.DEAD, job_id, attempt, descriptor, w=worker, xt="JobLost", xm=bounded(message), tb=bounded(message),
        **{LOST: 1},
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


def encode(event: dict[str, Any]) -> dict[str, str]:
    event.setdefault(TIME, time.time())
    return {"d": _ENCODER.encode(event)}


def decode(fields: dict[bytes, bytes]) -> dict[str, Any]:
    return json.loads(fields[b"d"])


def append(connection: Any, event: dict[str, Any]) -> None:
    """XADD ``event``; ``connection`` may be a pipeline, so it rides RQ's own round trip."""
    connection.xadd(STREAM_KEY, encode(event))
