"""The job search language: one line of terms, parsed into a ``Search`` (no database here).

    status:dead queue:default func:billing.* worker:host-3 key:account:7 id:7334c2
    origin:schedule args.order_id:42 kwargs.email:*@example.com error:"does not exist"
    after:2026-12-01 before:2026-12-02T10:00 ran>5s attempts>2 timeout -"card declined"

Terms are separated by spaces and all must hold; ``-`` before a term negates it. A term is
``field:value`` (``ran`` and ``attempts`` also compare with ``>``, ``>=``, ``<``, ``<=``) or a
free word, searched in the job's id (its start), arguments and last error. Double quotes
keep spaces (and a literal ``*``) inside one value; outside quotes ``*`` matches anything.
``status``, ``queue`` and ``origin`` take a comma-separated list of alternatives.

Free words and ``error:`` text need three letters or digits in a row: that is what a
trigram index can look up, and a shorter word would mean reading every job.

A mistake raises ``SearchError`` with the span of the term it is about, so a page can
point at it. ``workers.reads.jobs`` compiles a ``Search`` into a database filter.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

MAX_TERMS = 30
# Three letters or digits in a row: the shortest text pg_trgm can find by its index.
MIN_RUN = 3

# field -> the comparisons it takes
FIELDS: dict[str, tuple[str, ...]] = {
    "status": (":",),
    "queue": (":",),
    "origin": (":",),
    "func": (":",),
    "worker": (":",),
    "key": (":",),
    "id": (":",),
    "error": (":",),
    "after": (":",),
    "before": (":",),
    "ran": (">", ">=", "<", "<="),
    "attempts": (":", ">", ">=", "<", "<="),
    "args": (":",),
    "kwargs": (":",),
}
LIST_FIELDS = frozenset({"status", "queue", "origin"})
# Values compared case-insensitively (their choices are lower-case words).
LOWERED_FIELDS = frozenset({"status", "origin"})
EXAMPLES = {
    "ran": "ran>5s",
    "attempts": "attempts>2",
    "after": "after:2026-12-01",
    "before": "before:2026-12-02T10:00",
    "args": "args.order_id:42",
    "kwargs": "kwargs.email:*@example.com",
}

_HEAD = re.compile(r"([A-Za-z][A-Za-z0-9_]*)((?:\.[^\s.:<>=\"]+)*)(>=|<=|:|>|<)")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)?(?:Z|[+-]\d{2}:\d{2})?")
_DURATION = re.compile(r"(\d{1,9}(?:\.\d{1,6})?)(ms|s|m|h)?")
_INTEGER = re.compile(r"\d{1,9}")
_NUMBER = re.compile(r"-?\d{1,15}(?:\.\d{1,15})?")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


class SearchError(ValueError):
    """A search that cannot run; ``start``/``end`` delimit the term it is about."""

    def __init__(self, message: str, *, start: int = 0, end: int = 0) -> None:
        super().__init__(message)
        self.message, self.start, self.end = message, start, end


@dataclass(frozen=True)
class Pattern:
    """Text with wildcards: ``parts`` are literal pieces with "anything" between each two."""

    parts: tuple[str, ...]

    @property
    def is_exact(self) -> bool:
        return len(self.parts) == 1

    @property
    def text(self) -> str:
        return "*".join(self.parts)

    def longest_run(self) -> int:
        """The most letters or digits in a row in any literal piece."""
        return max((len(run) for part in self.parts for run in _runs(part)), default=0)


@dataclass(frozen=True)
class JsonValue:
    """A value to look for in the JSON arguments: what it may equal, or a text pattern."""

    pattern: Pattern
    # The JSON scalars the value stands for: "42" may be the number 42 or the text "42".
    candidates: tuple[Any, ...]


@dataclass(frozen=True)
class Term:
    field: str  # "" for a free word
    op: str  # ":", ">", ">=", "<", "<="
    values: tuple[Any, ...]  # Pattern, str, datetime, float or int, JsonValue, by field
    start: int
    end: int
    negated: bool = False
    # args/kwargs: the keys (str) and positions (int) below the arguments
    path: tuple[str | int, ...] = ()


@dataclass(frozen=True)
class Search:
    text: str = ""
    terms: tuple[Term, ...] = field(default_factory=tuple)

    def __bool__(self) -> bool:
        return bool(self.terms)

    def has(self, *fields: str, negated: bool | None = None) -> bool:
        return any(t.field in fields and (negated is None or t.negated == negated) for t in self.terms)


def _runs(text: str) -> list[str]:
    return re.findall(r"[^\W_]+", text)


def quote(value: str, *, always: bool = False) -> str:
    """``value`` as one literal search value: quoted when it holds spaces, quotes or ``*``
    (after a field name), or ``always`` (a whole term, where a ``:`` would name a field)."""
    if value and not always and not re.search(r'[\s"*\\]', value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _segments(text: str, start: int) -> tuple[list[tuple[str, bool]], int]:
    """Read one term from ``start``: its pieces (text, quoted) and where it ends."""
    pieces: list[tuple[str, bool]] = []
    i, n = start, len(text)
    current: list[str] = []
    while i < n and not text[i].isspace():
        if text[i] == '"':
            if current:
                pieces.append(("".join(current), False))
                current = []
            opening, i = i, i + 1
            quoted: list[str] = []
            while i < n and text[i] != '"':
                if text[i] == "\\" and i + 1 < n:
                    i += 1
                quoted.append(text[i])
                i += 1
            if i >= n:
                raise SearchError("this quote is never closed", start=opening, end=n)
            pieces.append(("".join(quoted), True))
            i += 1
        else:
            current.append(text[i])
            i += 1
    if current:
        pieces.append(("".join(current), False))
    return pieces, i


def _pattern(pieces: list[tuple[str, bool]]) -> Pattern:
    parts = [""]
    for piece, quoted in pieces:
        if quoted:
            parts[-1] += piece
            continue
        first, *rest = piece.split("*")
        parts[-1] += first
        parts.extend(rest)
    return Pattern(tuple(parts))


def parse(text: str, *, choices: Mapping[str, Collection[str]] | None = None) -> Search:
    """Parse ``text``; ``choices`` lists the values a field may take (``status``, ...)."""
    choices = choices or {}
    if "\x00" in text:
        at = text.index("\x00")
        raise SearchError("the search holds a NUL character", start=at, end=at + 1)
    terms: list[Term] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        start = i
        negated = text[i] == "-"
        if negated:
            i += 1
            if i >= n or text[i].isspace():
                raise SearchError("a '-' must be followed by the term it negates, as in -status:dead", start=start,
                                  end=i)  # fmt: skip
        pieces, i = _segments(text, i)
        terms.append(_term(pieces, start=start, end=i, negated=negated, choices=choices))
        if len(terms) > MAX_TERMS:
            raise SearchError(f"too many terms: at most {MAX_TERMS}", start=start, end=i)
    _check_range(terms)
    return Search(text=text.strip(), terms=tuple(terms))


def _check_range(terms: list[Term]) -> None:
    after = [t for t in terms if t.field == "after" and not t.negated]
    before = [t for t in terms if t.field == "before" and not t.negated]
    for start in after:
        for end in before:
            if start.values[0] >= end.values[0]:
                raise SearchError("after: must be earlier than before: (the range would hold nothing)",
                                  start=start.start, end=start.end)  # fmt: skip


def _term(
    pieces: list[tuple[str, bool]], *, start: int, end: int, negated: bool, choices: Mapping[str, Collection[str]]
) -> Term:
    head = _HEAD.match(pieces[0][0]) if not pieces[0][1] else None
    if head is None:
        return _free(pieces, start=start, end=end, negated=negated)
    name, dotted, op = head.group(1).lower(), head.group(2), head.group(3)
    if name not in FIELDS:
        if op != ":":  # "a<b" and the like: text to look for
            return _free(pieces, start=start, end=end, negated=negated)
        raise SearchError(
            f"unknown field {name!r}: fields are {', '.join(FIELDS)} (to search for this text, quote it: "
            f"{quote(''.join(p for p, _ in pieces), always=True)})",
            start=start,
            end=end,
        )
    if dotted and name not in ("args", "kwargs"):
        raise SearchError(f"{name} takes no path: write {name}:value", start=start, end=end)
    if op not in FIELDS[name]:
        allowed = " or ".join(FIELDS[name])
        raise SearchError(f"{name} compares with {allowed}, as in {EXAMPLES.get(name, name + ':value')}", start=start,
                          end=end)  # fmt: skip
    rest = [(pieces[0][0][head.end() :], False), *pieces[1:]]
    rest = [(p, q) for p, q in rest if p or q]
    if not rest:
        raise SearchError(f"{name}{dotted}{op} needs a value, as in {EXAMPLES.get(name, name + ':value')}",
                          start=start, end=end)  # fmt: skip
    span = {"start": start, "end": end}
    raw = "".join(p for p, _ in rest)
    pattern = _pattern(rest)
    values: tuple[Any, ...]
    path: tuple[str | int, ...] = ()
    if name in LIST_FIELDS:
        values = tuple(_listed(name, rest, choices.get(name), span))
    elif name in ("func", "worker", "key"):
        values = (pattern,)
    elif name == "id":
        # The start of a job id (a trailing * says the same); the prefix index finds it.
        if not pattern.parts[0] or not (pattern.is_exact or pattern.parts[1:] == ("",)):
            raise SearchError("id: takes the start of a job id, as in id:7334c2 (no * inside)", **span)
        values = (pattern.parts[0],)
    elif name == "error":
        _check_run(pattern, "error text", span)
        values = (pattern,)
    elif name in ("after", "before"):
        values = (_date(raw, span),)
    elif name == "ran":
        values = (_duration(raw, span),)
    elif name == "attempts":
        if not _INTEGER.fullmatch(raw):
            raise SearchError(f"attempts takes a whole number, as in attempts>2, not {raw[:40]!r}", **span)
        values = (int(raw),)
    else:  # args, kwargs
        path = _path(name, dotted, span)
        values = (_json_value(rest, pattern, span),)
    return Term(field=name, op=op, values=values, start=start, end=end, negated=negated, path=path)


def _free(pieces: list[tuple[str, bool]], *, start: int, end: int, negated: bool) -> Term:
    pattern = _pattern(pieces)
    _check_run(pattern, "search words", {"start": start, "end": end})
    return Term(field="", op=":", values=(pattern,), start=start, end=end, negated=negated)


def _check_run(pattern: Pattern, what: str, span: dict[str, int]) -> None:
    if pattern.longest_run() < MIN_RUN:
        raise SearchError(
            f"{what} need 3+ characters (3 letters or digits in a row): {pattern.text[:40]!r} is too short to search",
            **span,
        )


def _listed(name: str, pieces: list[tuple[str, bool]], allowed: Collection[str] | None, span: dict[str, int]) -> list:
    values: list[Any] = []
    for piece, quoted in pieces:
        for item in [piece] if quoted else piece.split(","):
            if not item and not quoted:
                continue
            if name in LOWERED_FIELDS:
                item = item.lower()
            if "*" in item and not quoted and name in LOWERED_FIELDS:
                raise SearchError(f"{name} takes one of: {', '.join(allowed or ())}", **span)
            if allowed is not None and "*" not in item and item not in allowed:
                raise SearchError(f"unknown {name} {item[:40]!r}: one of {', '.join(allowed)}", **span)
            values.append(_pattern([(item, quoted)]))
    if not values:
        raise SearchError(f"{name}: needs a value", **span)
    return values


def _date(raw: str, span: dict[str, int]) -> datetime:
    problem = f"not a date: {raw[:40]!r} (write 2026-12-01, 2026-12-01T10:00 or 2026-12-01T10:00:00+02:00)"
    if not _DATE.fullmatch(raw):
        raise SearchError(problem, **span)
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)  # times are UTC, as the pages show them
        return moment.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise SearchError(problem, **span) from exc


def _duration(raw: str, span: dict[str, int]) -> float:
    match = _DURATION.fullmatch(raw)
    if not match:
        raise SearchError(f"not a duration: {raw[:40]!r} (a number with ms, s, m or h, as in ran>1.5s)", **span)
    return float(match.group(1)) * _UNITS[match.group(2)]


def _path(name: str, dotted: str, span: dict[str, int]) -> tuple[str | int, ...]:
    keys = [key for key in dotted.split(".")[1:]]
    if name == "kwargs" and not keys:
        raise SearchError("kwargs needs the argument's name, as in kwargs.email:…", **span)
    if len(keys) > 10:
        raise SearchError("an argument path has at most 10 steps", **span)
    return tuple(int(key) if key.isdigit() and len(key) <= 6 else key for key in keys)


def _json_value(pieces: list[tuple[str, bool]], pattern: Pattern, span: dict[str, int]) -> JsonValue:
    if not pattern.is_exact:
        _check_run(pattern, "values with *", span)
        return JsonValue(pattern=pattern, candidates=())
    text = pattern.parts[0]
    if all(quoted for _, quoted in pieces):
        return JsonValue(pattern=pattern, candidates=(text,))
    candidates: list[Any] = [text]
    if text in ("true", "false"):
        candidates.append(text == "true")
    elif text == "null":
        candidates.append(None)
    elif _NUMBER.fullmatch(text):
        number = float(text) if "." in text else int(text)
        if abs(number) < 2**53:
            candidates.append(number)
    return JsonValue(pattern=pattern, candidates=tuple(candidates))


def from_fields(**fields: str) -> str:
    """The terms that the list pages' older filter fields (``status``, ``queue``, ``func``,
    ``since``, ``until``) stand for, so their links keep working in the search box."""
    words = []
    for name, term in (("status", "status"), ("queue", "queue"), ("func", "func"), ("since", "after"),
                       ("until", "before")):  # fmt: skip
        value = (fields.get(name) or "").strip()
        if not value:
            continue
        if name in ("since", "until"):
            value = value.replace(" ", "T")
        words.append(f"{term}:{quote(value)}")
    return " ".join(words)
