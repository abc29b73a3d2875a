"""Stream entries the recorder did not apply, and the one format they are kept in.

An entry that is not a valid event (``events.decode`` says why), or that the database
refuses, is set aside: one JSON entry on the ``UNAPPLIED_KEY`` list with its stream id, its
raw fields and the reason, where the dashboard shows it (``reads/unapplied.py``) and an
operator deletes it (``services/unapplied.py``). An event for a job that has no record and
that does not describe the job (progress, log lines, a status without queue and function)
may be early rather than wrong: another recorder may still be committing the event that
creates the record. It is held on ``HELD_KEY`` (scored by when it was first held) and
tried again until ``JOBSITE["RECORDER_HOLD"]`` seconds have passed, then set aside too.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .. import events

# Raw field names and values are kept as text when they are UTF-8, else as base64; each
# is cut to what an event may hold at most, saying so: a giant entry is not copied whole.
_BASE64 = "base64"


def _kept(value: Any, limit: int) -> tuple[str | dict[str, str], int | None]:
    """A raw field name or value as JSON can hold it, and its full size if it was cut."""
    raw = value if isinstance(value, bytes) else str(value).encode("utf-8", "surrogatepass")
    cut = len(raw) if len(raw) > limit else None
    raw = raw[:limit]
    try:
        return raw.decode("utf-8"), cut
    except UnicodeDecodeError:
        return {_BASE64: base64.b64encode(raw).decode("ascii")}, cut


def set_aside_entry(*, entry_id: Any, fields: Mapping[Any, Any], reason: str, recorder: str) -> str:
    """The JSON kept on the unapplied list for one stream entry."""
    limit = events.max_event_bytes()
    kept, cut = [], []
    for name, value in fields.items():
        kept_name, _ = _kept(name, 256)
        kept_value, size = _kept(value, limit)
        kept.append([kept_name, kept_value])
        if size is not None:
            cut.append([kept_name, size])
    entry: dict[str, Any] = {
        "id": entry_id.decode("ascii", "replace") if isinstance(entry_id, bytes) else str(entry_id),
        "reason": events.bounded(reason, 1000),
        "at": time.time(),
        "by": recorder,
        "fields": kept,
    }
    if cut:
        entry["cut"] = cut  # [name, bytes it had]: only the first max_event_bytes() were kept
    return json.dumps(entry, separators=(",", ":"))


@dataclass(frozen=True)
class UnappliedField:
    name: str
    value: str
    binary: bool  # not UTF-8: shown with \x escapes
    cut_from: int | None  # the bytes it had, when only a part was kept


@dataclass(frozen=True)
class UnappliedEvent:
    ref: str  # names this entry of the list (a hash of it): what a delete asks for
    entry_id: str
    reason: str
    at: datetime | None
    recorder: str
    fields: list[UnappliedField]


def ref_of(raw: bytes) -> str:
    return hashlib.sha1(raw).hexdigest()[:16]


def _readable(value: Any) -> tuple[str, bool]:
    if isinstance(value, dict) and isinstance(value.get(_BASE64), str):
        try:
            return base64.b64decode(value[_BASE64]).decode("utf-8", "backslashreplace"), True
        except ValueError:
            return value[_BASE64], True
    return (value, False) if isinstance(value, str) else (json.dumps(value), False)


def set_aside_parse(raw: bytes, *, value_limit: int | None = None) -> UnappliedEvent:
    """One element of the unapplied list, whatever it holds (an earlier version kept bare
    event JSON there, and anyone can push anything there): never raises. Values longer
    than ``value_limit`` characters are cut, saying so."""
    try:
        entry = json.loads(raw)
        if isinstance(entry, dict) and isinstance(entry.get("fields"), list):
            return _parsed(raw, entry, value_limit)
    except Exception:  # anything else is shown raw below
        pass
    text = events.bounded(raw.decode("utf-8", "backslashreplace"), value_limit or len(raw) + 1)
    return UnappliedEvent(
        ref=ref_of(raw),
        entry_id="",
        reason="kept without a reason (by an earlier version, or not by a recorder)",
        at=None,
        recorder="",
        fields=[UnappliedField(name="", value=text, binary=False, cut_from=None)],
    )


def _parsed(raw: bytes, entry: dict[str, Any], value_limit: int | None) -> UnappliedEvent:
    cut = {str(pair[0]): int(pair[1]) for pair in entry.get("cut") or []}
    fields = []
    for name, value in entry["fields"]:
        name_text, _ = _readable(name)
        value_text, binary = _readable(value)
        if value_limit is not None:
            value_text = events.bounded(value_text, value_limit)
        fields.append(UnappliedField(name=name_text, value=value_text, binary=binary, cut_from=cut.get(name_text)))
    at = entry.get("at")
    return UnappliedEvent(
        ref=ref_of(raw),
        entry_id=str(entry.get("id", "")),
        reason=str(entry.get("reason", "")),
        at=datetime.fromtimestamp(float(at), tz=UTC) if at is not None else None,
        recorder=str(entry.get("by", "")),
        fields=fields,
    )


# --- held events ---------------------------------------------------------------------------


def held_member(*, entry_id: Any, fields: Mapping[bytes, bytes]) -> str:
    """What the held set keeps of a valid event's entry: its id and field ``d``."""
    entry_text = entry_id.decode("ascii", "replace") if isinstance(entry_id, bytes) else str(entry_id)
    return json.dumps({"id": entry_text, "d": fields[b"d"].decode("utf-8")}, separators=(",", ":"))


def held_parse(member: bytes) -> tuple[str, dict[bytes, bytes]]:
    """A held member back as (entry id, stream fields); raises ValueError if it is not one."""
    held = json.loads(member)
    if not isinstance(held, dict) or not isinstance(held.get("id"), str) or not isinstance(held.get("d"), str):
        raise ValueError("not a held event")
    return held["id"], {b"d": held["d"].encode("utf-8")}


# Move held members to the unapplied list, each only if this call removed it: two recorders
# giving up on the same event set it aside once. KEYS: held, unapplied; ARGV: member, entry, ...
MOVE_ASIDE_SCRIPT = """
local moved = 0
for i = 1, #ARGV, 2 do
  if redis.call('ZREM', KEYS[1], ARGV[i]) == 1 then
    redis.call('RPUSH', KEYS[2], ARGV[i + 1])
    moved = moved + 1
  end
end
return moved
"""
