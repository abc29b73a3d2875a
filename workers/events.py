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
from collections.abc import Callable, Mapping
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
QUEUE, FUNC = "q", "f"
# The arguments as JSON, beside their reprs, when they round-trip (``json_arguments``).
ARGS_JSON = "json"
# How the event's facts were learnt: absent when a jobsite worker or producer observed the
# transition, RECONCILED when a reconciliation pass read them from RQ's registries later.
HOW, RECONCILED = "how", "reconciled"
# Why a job waits, when its status alone does not say (a dependency that is dead).
REASON = "why"


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


def fitted(text: str, limit: int) -> str:
    """``text`` storable and at most ``limit`` characters (a database column's size, which
    the recorder checks), saying how much was cut."""
    text = storable(text)
    if len(text) <= limit:
        return text
    cut = len(text) - limit
    while True:  # the note's own length depends on the count it gives: settles in 2-3 rounds
        note = f"… [{cut} more characters]"
        keep = max(limit - len(note), 0)
        if len(text) - keep == cut:
            return (text[:keep] + note)[:limit]
        cut = len(text) - keep


def safe_repr(value: Any, limit: int | None = None, clean: Callable[[str], str] | None = None) -> str:
    """repr() that never raises and never returns more than ``limit`` characters.

    ``clean`` (a redaction) sees the whole repr before it is cut: no half secret is left."""
    limit = limit or setting("REPR_LIMIT")
    try:
        if isinstance(value, (bytes, bytearray)) and len(value) > limit:
            value = bytes(value[:limit])
        text = repr(value)
    except Exception as exc:  # a user's __repr__ may raise anything
        text = f"<unrepresentable {type(value).__name__}: {type(exc).__name__}>"
    return bounded(clean(text) if clean is not None else text, limit)


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


def json_arguments(
    args: Any, kwargs: Any, *, reprs: tuple[str, str] = ("", ""), clean: Callable[[str], str] | None = None
) -> dict[str, Any] | None:
    """``{"args": [...], "kwargs": {...}}`` when the arguments round-trip through JSON, fit in
    REPR_LIMIT characters and their ``reprs`` were not cut (searches narrow by the reprs'
    index first); else None. Build it from the same (redacted) values as the reprs, with
    ``clean`` (the call's text redaction) applied to every string in it, as to the reprs."""
    if (not args and not kwargs) or any(is_cut(text) for text in reprs):
        return None
    value = {"args": list(args), "kwargs": dict(kwargs)}
    if not _jsonable(value):
        return None
    if clean is not None:
        value = _strings_cleaned(value, clean)
    # JSON of such values is at most 1.5 times their repr (an escape \u0007 against \x07):
    # short reprs need no trial encoding (this runs on every enqueue).
    limit = setting("REPR_LIMIT")
    if reprs[0] and reprs[1] and (len(reprs[0]) + len(reprs[1])) * 1.5 + 32 <= limit:
        return value
    return value if json_size(value) <= limit else None


def _strings_cleaned(value: Any, clean: Callable[[str], str]) -> Any:
    """``value`` (JSON-able) with ``clean`` applied to every string in it, keys included."""
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, list):
        return [_strings_cleaned(item, clean) for item in value]
    if isinstance(value, dict):
        return {clean(key): _strings_cleaned(item, clean) for key, item in value.items()}
    return value


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
    status: str, *, job_id: str, attempt: int, descriptor: dict[str, Any], next_at: float | None = None,
    reason: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Queued, scheduled (``next_at``: when it is due), deferred (``reason``: why, when it
    will not end by itself) or canceled."""
    return _event(status, job_id, attempt, descriptor, next=next_at, why=bounded(reason, 255) if reason else None)


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
        xt=fitted(exc_type, 255), xm=bounded(message), tb=bounded(traceback_text, setting("TRACEBACK_LIMIT")),
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


def reconciled(event: dict[str, Any], *, at: float) -> dict[str, Any]:
    """Mark ``event`` (from a builder above) as read from RQ by reconciliation, not
    observed; ``at`` is when RQ says the transition happened."""
    event[HOW] = RECONCILED
    event[TIME] = at
    return event


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


class InvalidEvent(ValueError):
    """A stream entry that is not an event the recorder can apply; the message names the field."""


def decode(fields: Mapping[bytes, bytes]) -> dict[str, Any]:
    """The event in a stream entry, checked by ``validate``; raises ``InvalidEvent`` saying why not."""
    raw = fields.get(b"d")
    if raw is None:
        raise InvalidEvent("the entry has no field d (an event is one field d holding a JSON object)")
    if not isinstance(raw, bytes):  # a client that decodes replies: not one of ours
        raise InvalidEvent(f"field d is a {type(raw).__name__}, not bytes")
    limit = max_event_bytes()
    if len(raw) > limit:
        raise InvalidEvent(f"field d has {len(raw)} bytes, more than any event can ({limit})")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidEvent(f"field d is not UTF-8 (byte {exc.start}: {exc.reason})") from exc
    try:
        event = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise InvalidEvent(f"field d is not JSON ({type(exc).__name__}: {str(exc)[:120]})") from exc
    problem = validate(event)
    if problem is not None:
        raise InvalidEvent(problem)
    return event


def append(connection: Any, event: dict[str, Any]) -> None:
    """XADD ``event``; ``connection`` may be a pipeline, so it rides RQ's own round trip."""
    connection.xadd(STREAM_KEY, encode(event))


# --- validation ----------------------------------------------------------------------------
# The recorder applies only events that pass ``validate``: any other entry is set aside with
# the reason (recording/consumer.py). The limits are what the database columns hold.

INT_MAX = 2**31 - 1  # PostgreSQL's integer
# Epoch seconds a record's timestamps may hold: from 1970 to the start of year 9999.
MOMENT_MAX = 253370764800.0
JOB_ID_MAX = 128


def max_event_bytes() -> int:
    """The most field ``d`` of a real event can hold: every text a builder puts in one is
    bounded by TRACEBACK_LIMIT or REPR_LIMIT characters, each at most 12 bytes of JSON
    (a surrogate pair escaped), plus room for the short fields."""
    return 12 * (setting("TRACEBACK_LIMIT") + 5 * setting("REPR_LIMIT")) + 65536


def _json_type(value: Any) -> str:
    for kind, name in ((dict, "object"), (list, "array"), (str, "string"), (bool, "boolean")):
        if isinstance(value, kind):
            return name
    if isinstance(value, (int, float)):
        return "number"
    return "null" if value is None else type(value).__name__


def _shown(value: Any) -> str:
    return safe_repr(value, 60)


def _text_problem(value: Any, limit: int | None = None) -> str | None:
    if not isinstance(value, str):
        return f"is a {_json_type(value)}, not a string"
    if limit is not None and len(value) > limit:
        return f"has {len(value)} characters, more than {limit}"
    if "\x00" in value:
        return "contains a NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate (not UTF-8)"
    return None


def _text(limit: int | None = None) -> Callable[[Any], str | None]:
    return lambda value: _text_problem(value, limit)


def _integer(low: int, high: int) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int):
            return f"is {_shown(value)}, not a whole number"
        if not low <= value <= high:
            return f"is {value}, not between {low} and {high}"
        return None

    return check


def _number(low: float, high: float) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"is {_shown(value)}, not a number"
        if not math.isfinite(value) or not low <= value <= high:
            return f"is {_shown(value)}, not between {low:g} and {high:g}"
        return None

    return check


_moment = _number(0, MOMENT_MAX)


def _log_lines_problem(value: Any) -> str | None:
    if not isinstance(value, list):
        return f"is a {_json_type(value)}, not a list of lines"
    checks = (_integer(0, INT_MAX), _moment, _text(), _text(), _text())
    for n, line in enumerate(value):
        if not isinstance(line, list) or len(line) != 5:
            return f"line {n} is {_shown(line)}, not [seq, epoch, level, logger, message]"
        for part, (name, check) in enumerate(zip(("seq", "epoch", "level", "logger", "message"), checks, strict=True)):
            problem = check(line[part])
            if problem:
                return f"line {n}: its {name} {problem}"
    return None


# Every field an event may carry, whatever its kind, with its check; absent or null is fine.
_FIELDS: dict[str, Callable[[Any], str | None]] = {
    # The job's descriptor (``DESCRIPTOR_FIELDS``).
    "q": _text(100), "f": _text(255), "args": _text(), "kwargs": _text(), "key": _text(255), "origin": _text(16),
    "parent": _text(JOB_ID_MAX), "max": _integer(0, INT_MAX), "enq": _moment, "timeout": _number(-INT_MAX, INT_MAX),
    # What a transition knows: worker, times, result, failure.
    "w": _text(255), "start": _moment, "end": _moment, "next": _moment, "res": _text(), "xt": _text(255),
    "xm": _text(), "tb": _text(),
    # Progress and log lines.
    "p": _integer(0, 100), "m": _text(), "lines": _log_lines_problem,
}  # fmt: skip
_REQUIRED = {PROGRESS: ("p",), LOG: ("lines",)}


def _job_id_problem(value: Any) -> str | None:
    problem = _text_problem(value, JOB_ID_MAX)
    if problem:
        return problem
    if not value or not value.isprintable() or any(c.isspace() or c == "/" for c in value):
        return f"is {_shown(value)}: a job id is 1 to {JOB_ID_MAX} printable characters, no space or /"
    return None


def validate(event: Any) -> str | None:
    """What is wrong with a decoded event, naming the field; None if the recorder can apply it."""
    if not isinstance(event, dict):
        return f"field d holds a JSON {_json_type(event)}, not an object"
    kind = event.get(KIND)
    if not isinstance(kind, str) or kind not in KINDS:
        return f"{KIND} (the kind) is {_shown(kind)}, not one of {', '.join(sorted(KINDS))}"
    for name, check in ((JOB_ID, _job_id_problem), (ATTEMPT, _integer(0, INT_MAX)), (TIME, _moment)):
        if event.get(name) is None:
            return f"{name} is missing"
        problem = check(event[name])
        if problem:
            return f"{name} {problem}"
    for name in _REQUIRED.get(kind, ()):
        if event.get(name) is None:
            return f"{name} is missing (a {kind} event needs it)"
    for name, check in _FIELDS.items():
        value = event.get(name)
        if value is not None:
            problem = check(value)
            if problem:
                return f"{name} {problem}"
    return None


def describes_job(event: dict[str, Any]) -> bool:
    """Whether the event says enough (queue and function) for a record of its job to exist."""
    return bool(event.get(QUEUE)) and bool(event.get(FUNC))
