"""The job search language (``reads.search``) in SQL: ``search_q`` turns a Search into a Q.

Every term compiles to SQL an index can answer on PostgreSQL: LIKE 'prefix%' (the
varchar_pattern_ops btree of job ids, functions, keys), ILIKE '%word%' (pg_trgm's GIN over
the argument reprs and the last error, migration 0012) and jsonpath `@@` (the
jsonb_path_ops GIN over the JSON arguments). SQLite runs the same terms by reading rows.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

from django.db import NotSupportedError
from django.db.models import BooleanField, F, Func, Lookup, Q

from ..statuses import JobStatus
from .search import JsonValue, Pattern, Search, SearchError, Term


def _like(pattern: Pattern) -> str:
    return "%".join(re.sub(r"([\\%_])", r"\\\1", part) for part in pattern.parts)


def _glob(pattern: Pattern) -> str:
    return "*".join(re.sub(r"([*?\[])", r"[\1]", part) for part in pattern.parts)


class _Matches(Lookup):
    """``lhs`` matches a ``Pattern`` as a whole, case-sensitively: LIKE on PostgreSQL (its
    pattern btree takes a fixed start), GLOB on SQLite (whose LIKE ignores case)."""

    lookup_name = "jobsite_matches"
    prepare_rhs = False

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        lhs, params = self.process_lhs(compiler, connection)
        return f"{lhs} LIKE %s", [*params, _like(self.rhs)]

    def as_sqlite(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        lhs, params = self.process_lhs(compiler, connection)
        return f"{lhs} GLOB %s", [*params, _glob(self.rhs)]


class _Contains(Lookup):
    """``lhs`` contains a ``Pattern``, ignoring case: ILIKE '%…%', which pg_trgm's GIN index
    answers on PostgreSQL (Django's icontains is UPPER(…) LIKE, which it cannot)."""

    lookup_name = "jobsite_contains"
    prepare_rhs = False

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        lhs, params = self.process_lhs(compiler, connection)
        return f"{lhs} ILIKE %s", [*params, f"%{_like(self.rhs)}%"]

    def as_sqlite(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        lhs, params = self.process_lhs(compiler, connection)
        return f"{lhs} LIKE %s ESCAPE '\\'", [*params, f"%{_like(self.rhs)}%"]


def _matches(column: str, pattern: Pattern) -> Q:
    return Q(**{column: pattern.parts[0]}) if pattern.is_exact else Q(_Matches(F(column), pattern))


def _contains(column: str, pattern: Pattern) -> Q:
    return Q(_Contains(F(column), pattern))


class _ArgumentsMatch(Func):
    """A JSON-arguments term (``args.order_id:42``, ``kwargs.email:*@example.com``).

    A path's keys are looked up through arrays, as jsonpath's lax mode does: ``args.order_id``
    is any positional argument that is an object with that key; a number picks a position.
    """

    output_field = BooleanField()

    def __init__(self, term: Term) -> None:
        super().__init__(F("args_json"), F("args_repr" if term.field == "args" else "kwargs_repr"))
        self.term = term

    @property
    def value(self) -> JsonValue:
        value: JsonValue = self.term.values[0]
        return value

    def as_sql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:  # type: ignore[override]
        raise NotSupportedError(f"argument searches run on PostgreSQL and SQLite, not {connection.vendor}")

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        column, params = compiler.compile(self.source_expressions[0])
        path = (
            "$."
            + json.dumps(self.term.field)
            + "".join(
                f"[{step}]" if isinstance(step, int) else "." + json.dumps(step, ensure_ascii=False)
                for step in self.term.path
            )
        )
        if self.value.candidates:
            # `@@` with equalities: the jsonb_path_ops index looks these up.
            predicate = " || ".join(f"{path} == {_jsonpath_literal(c)}" for c in self.value.candidates)
            return self._known(f"{column} @@ %s::jsonpath"), [*params, predicate]
        # A pattern: jsonpath's like_regex has no index, so the repr's trigram index narrows
        # first, by the pattern's longest run of letters or digits (written the same in a repr).
        regex = "^" + ".*".join(re.escape(part) for part in self.value.pattern.parts) + "$"
        query = f'{path} ? (@ like_regex {json.dumps(regex, ensure_ascii=False)} flag "i")'
        reprs, repr_params = compiler.compile(self.source_expressions[1])
        run = max(re.findall(r"[^\W_]+", " ".join(self.value.pattern.parts)), key=len)
        return (
            f"({reprs} ILIKE %s AND {self._known(f'{column} @? %s::jsonpath')})",
            [*repr_params, f"%{_like(Pattern((run,)))}%", *params, query],
        )

    def _known(self, sql: str) -> str:
        # jsonpath answers NULL for "unknown" (no JSON, 7 == "42"): false for NOT to turn into
        # true. Only there: COALESCE(...) is no expression the index can answer.
        return f"COALESCE({sql}, false)" if self.term.negated else sql

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        column, params = compiler.compile(self.source_expressions[0])
        unwrap = r"(?:\[\d+\])?"  # one level of arrays, as jsonpath's lax mode
        path = r"^\$" + _key_regex(self.term.field) + unwrap
        for step in self.term.path:
            path += (rf"\[{step}\]" if isinstance(step, int) else _key_regex(step)) + unwrap
        conditions, values = [], []
        for candidate in self.value.candidates:
            if candidate is None or isinstance(candidate, bool):
                conditions.append(f"t.type = '{'null' if candidate is None else str(candidate).lower()}'")
            elif isinstance(candidate, str):
                conditions.append("(t.type = 'text' AND t.atom = %s)")
                values.append(candidate)
            else:
                conditions.append("(t.type IN ('integer', 'real') AND t.atom = %s)")
                values.append(candidate)
        if not self.value.candidates:
            conditions.append("(t.type = 'text' AND t.atom LIKE %s ESCAPE '\\')")
            values.append(_like(self.value.pattern))
        sql = (
            f"EXISTS (SELECT 1 FROM json_tree({column}) AS t WHERE t.fullkey REGEXP %s AND ({' OR '.join(conditions)}))"
        )
        return sql, [*params, path + "$", *values]


def _key_regex(key: str) -> str:
    escaped = re.escape(key)
    return rf'\.(?:{escaped}|"{escaped}")'


def _jsonpath_literal(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return format(Decimal(str(value)), "f")


def _term_q(term: Term) -> Q:
    values = term.values
    if term.field == "":
        pattern: Pattern = values[0]
        found = _contains("args_repr", pattern) | _contains("kwargs_repr", pattern) | _contains("last_error", pattern)
        if pattern.is_exact:  # a job id's start too (its pattern index)
            found |= Q(_Matches(F("job_id"), Pattern((pattern.parts[0], ""))))
        return found
    if term.field == "status":
        statuses = {p.text for p in values}
        # A dead letter is a dead job nobody discarded, as the dead-letter list has it.
        found = Q(status__in=sorted(statuses - {JobStatus.DEAD}))
        if JobStatus.DEAD in statuses:
            found |= Q(status=JobStatus.DEAD, discarded_at__isnull=True)
        return found
    if term.field == "origin":
        return Q(origin__in=sorted(p.text for p in values))
    if term.field in ("queue", "func", "worker", "key"):
        found = Q()
        for pattern in values:
            found |= _matches(term.field, pattern)
        return found
    if term.field == "id":
        return Q(_Matches(F("job_id"), Pattern((values[0], ""))))
    if term.field == "error":
        return _contains("last_error", values[0])
    if term.field == "after":
        return Q(enqueued_at__gte=values[0])
    if term.field == "before":
        return Q(enqueued_at__lt=values[0])
    if term.field in ("ran", "attempts"):
        column = "duration" if term.field == "ran" else "attempts"
        lookup = {":": "exact", ">": "gt", ">=": "gte", "<": "lt", "<=": "lte"}[term.op]
        return Q(**{f"{column}__{lookup}": values[0]})
    if term.field in ("args", "kwargs"):
        return Q(_ArgumentsMatch(term))
    raise SearchError(f"no way to search {term.field!r}", start=term.start, end=term.end)


def search_q(search: Search) -> Q:
    """Every term of ``search`` must hold (``-`` negates one)."""
    found = Q()
    for term in search.terms:
        condition = _term_q(term)
        found &= ~condition if term.negated else condition
    return found


# Terms whose share of rows PostgreSQL cannot estimate (pattern and jsonpath operators get a
# fixed guess): with them it may walk the whole history newest-first looking for a rare match.
_GUESSED = ("", "error", "args", "kwargs")


def guessed(search: Search) -> bool:
    return search.has(*_GUESSED, negated=False)


class Unindexed(Func):
    """The same value, in a form no index is ordered by: the planner then fetches the rows
    the search's own indexes find and sorts them, instead of walking an ordered index."""

    def as_sql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:  # type: ignore[override]
        return compiler.compile(self.source_expressions[0])

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        sql, params = compiler.compile(self.source_expressions[0])
        return f"({sql} + interval '0 seconds')", params
