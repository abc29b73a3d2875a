"""The search language's parser (workers/reads/search.py): terms, values, and mistakes that
point at the term they are about. No database: the parser is plain Python."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workers.reads.search import JsonValue, Pattern, SearchError, from_fields, parse, quote

CHOICES = {
    "status": ["queued", "scheduled", "deferred", "started", "finished", "retrying", "dead", "canceled", "stopped"],
    "origin": ["event", "schedule", "retry", "fanout"],
}
ISSUE_EXAMPLE = (
    "status:dead queue:default func:billing.* worker:host-3 key:account:7 id:7334c2 origin:schedule "
    'args.order_id:42 kwargs.email:*@example.com error:"does not exist" after:2026-12-01 '
    "before:2026-12-02T10:00 ran>5s attempts>2"
)


def _parse(text):
    return parse(text, choices=CHOICES)


def test_the_issue_example_parses_term_by_term():
    search = _parse(ISSUE_EXAMPLE + " timeout -order")
    by_field = {t.field: t for t in search.terms}

    assert [p.text for p in by_field["status"].values] == ["dead"]
    assert by_field["func"].values == (Pattern(("billing.", "")),)
    assert by_field["key"].values == (Pattern(("account:7",)),)  # a colon inside the value
    assert by_field["id"].values == ("7334c2",)
    assert by_field["args"].path == ("order_id",)
    assert by_field["args"].values == (JsonValue(Pattern(("42",)), ("42", 42)),)
    assert by_field["kwargs"].values[0].pattern == Pattern(("", "@example.com"))
    assert by_field["error"].values == (Pattern(("does not exist",)),)
    assert by_field["after"].values == (datetime(2026, 12, 1, tzinfo=UTC),)
    assert by_field["before"].values == (datetime(2026, 12, 2, 10, 0, tzinfo=UTC),)
    assert (by_field["ran"].op, by_field["ran"].values) == (">", (5.0,))
    assert (by_field["attempts"].op, by_field["attempts"].values) == (">", (2,))
    free = [t for t in search.terms if t.field == ""]
    assert [(t.values[0].text, t.negated) for t in free] == [("timeout", False), ("order", True)]
    # Each term knows where it stands in the text.
    text = ISSUE_EXAMPLE + " timeout -order"
    assert [text[t.start : t.end] for t in search.terms] == [
        "status:dead", "queue:default", "func:billing.*", "worker:host-3", "key:account:7", "id:7334c2",
        "origin:schedule", "args.order_id:42", "kwargs.email:*@example.com", 'error:"does not exist"',
        "after:2026-12-01", "before:2026-12-02T10:00", "ran>5s", "attempts>2", "timeout", "-order",
    ]  # fmt: skip


@pytest.mark.parametrize(
    "text, field, values",
    [
        ("status:dead,retrying", "status", ["dead", "retrying"]),
        ("STATUS:DEAD", "status", ["dead"]),
        ("queue:low,default", "queue", ["low", "default"]),
        ('func:"a*b"', "func", ["a*b"]),  # quoted: the * is literal
        ("func:a*b*", "func", ["a*b*"]),
        ("ran>=1.5m", "ran", [90.0]),
        ("ran<200ms", "ran", [0.2]),
        ("attempts:3", "attempts", [3]),
        ("after:2026-12-01T10:00:00+02:00", "after", [datetime(2026, 12, 1, 8, 0, tzinfo=UTC)]),
        ("after:2026-12-01T10:00Z", "after", [datetime(2026, 12, 1, 10, 0, tzinfo=UTC)]),
    ],
)
def test_values(text, field, values):
    (term,) = _parse(text).terms
    assert term.field == field
    assert [v.text if isinstance(v, Pattern) else v for v in term.values] == values


def test_quotes_keep_spaces_and_escapes():
    (term,) = _parse(r'error:"say \"hi\" twice"').terms
    assert term.values == (Pattern(('say "hi" twice',)),)
    (free,) = _parse('-"card declined"').terms
    assert free.negated and free.values == (Pattern(("card declined",)),)


def test_argument_values_stand_for_the_json_they_may_be():
    def value(text):
        return _parse(text).terms[0]

    assert value("args:true").values[0].candidates == ("true", True)
    assert value("args:null").values[0].candidates == ("null", None)
    assert value("args:4.50").values[0].candidates == ("4.50", 4.5)
    assert value('args:"42"').values[0].candidates == ("42",)  # quoted: only the text
    assert value("args:" + "9" * 20).values[0].candidates == ("9" * 20,)  # too big for a JSON number
    assert value("args.0.items.2.sku:X-1").path == (0, "items", 2, "sku")
    assert value("kwargs.Email:a@b.c").path == ("Email",)  # keys keep their case


@pytest.mark.parametrize(
    "text, term, message",
    [
        ("status:exploded", "status:exploded", "unknown status 'exploded'"),
        ("queue:low status:dead,nope", "status:dead,nope", "unknown status 'nope'"),
        ("origin:cron", "origin:cron", "unknown origin"),
        ("ab", "ab", "search words need 3+ characters"),
        ("func:x a-b-c", "a-b-c", "need 3+ characters"),  # no 3 letters or digits in a row
        ("error:ab", "error:ab", "error text need 3+ characters"),
        ("kwargs.email:*@b", "kwargs.email:*@b", "values with * need 3+ characters"),
        ("colour:red", "colour:red", "unknown field 'colour'"),
        ("after:yesterday", "after:yesterday", "not a date"),
        ("after:2026-02-30", "after:2026-02-30", "not a date"),
        ("before:1970-01-01T00:00:00+99:00", "before:1970-01-01T00:00:00+99:00", "not a date"),
        ("after:0001-01-01T00:00+01:00", "after:0001-01-01T00:00+01:00", "not a date"),
        ("ran>5x", "ran>5x", "not a duration"),
        ("ran:5s", "ran:5s", "ran compares with > or >= or < or <="),
        ("status>dead", "status>dead", "status compares with :"),
        ("attempts>two", "attempts>two", "whole number"),
        ('error:"open', '"open', "never closed"),
        ("status:dead - timeout", "-", "must be followed by the term"),
        ("id:ab*cd", "id:ab*cd", "start of a job id"),
        ("id:*", "id:*", "start of a job id"),
        ("kwargs:1", "kwargs:1", "kwargs needs the argument's name"),
        ("func.x:y", "func.x:y", "func takes no path"),
        ("status:", "status:", "needs a value"),
        ("after:2026-12-02 before:2026-12-01", "after:2026-12-02", "after: must be earlier than before:"),
        ("foo\x00bar", "\x00", "NUL"),
    ],
)
def test_a_mistake_points_at_its_term(text, term, message):
    with pytest.raises(SearchError) as caught:
        _parse(text)
    error = caught.value
    assert message in error.message
    assert text[error.start : error.end] == term


def test_too_many_terms():
    with pytest.raises(SearchError, match="at most 30"):
        _parse(" ".join(f"word{n}" for n in range(31)))


def test_unknown_comparisons_are_text_and_a_field_like_text_can_be_quoted():
    assert _parse("abc<def").terms[0].field == ""
    assert _parse('"http://example.com"').terms[0].values == (Pattern(("http://example.com",)),)


def test_an_unknown_field_is_a_mistake_whose_suggested_quoting_parses_as_text():
    with pytest.raises(SearchError) as raised:
        _parse("status:dead bogus:thing")
    assert (raised.value.start, raised.value.end) == (12, 23)
    suggested = re.search(r"quote it: (.+)\)$", raised.value.message).group(1)
    assert suggested == '"bogus:thing"'
    (term,) = _parse(suggested).terms
    assert term.field == "" and term.values == (Pattern(("bogus:thing",)),)


def test_older_filter_fields_become_terms():
    text = from_fields(status="dead", queue="low", func="shop.jobs.x y", since="2026-12-01 10:00", until="")
    assert text == 'status:dead queue:low func:"shop.jobs.x y" after:2026-12-01T10:00'
    assert [t.field for t in _parse(text).terms] == ["status", "queue", "func", "after"]
    # A literal * in an older exact-match field stays literal.
    (term,) = _parse(from_fields(func="a*b")).terms
    assert term.values == (Pattern(("a*b",)),)


@settings(max_examples=400, deadline=None)
@given(st.text(st.characters(exclude_categories=("Cs",)), max_size=120))
def test_any_text_parses_or_says_where_it_is_wrong(text):
    try:
        search = _parse(text)
    except SearchError as error:
        assert 0 <= error.start <= error.end <= len(text)
        assert error.message
    else:
        for term in search.terms:
            assert 0 <= term.start < term.end <= len(text)


_FIELD_TERMS = st.sampled_from(
    [
        "status:dead",
        "status:finished,retrying",
        "queue:default",
        "func:billing.*",
        "worker:host-3",
        "key:account:7",
        "id:7334c2",
        "origin:schedule",
        "args.order_id:42",
        "kwargs.email:*@example.com",
        'error:"does not exist"',
        "after:2026-12-01",
        "before:2026-12-02T10:00",
        "ran>5s",
        "attempts>2",
    ]
)
_WORDS = st.text("abcxyz019-_.*:' ", min_size=0, max_size=12)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.one_of(_FIELD_TERMS, _WORDS)), max_size=8))
def test_searches_made_of_language_pieces_parse_or_point_at_a_piece(pieces):
    text = " ".join(("-" if negate else "") + piece for negate, piece in pieces)
    try:
        search = _parse(text)
    except SearchError as error:
        assert 0 <= error.start <= error.end <= len(text)
    else:
        fields = [t.field for t in search.terms]
        expected = [p.split(":")[0].split(">")[0].split(".")[0] for _, p in pieces if p in _FIELD_TERMS.elements]
        assert [f for f in fields if f] == expected


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), min_size=1, max_size=40))
def test_a_quoted_value_means_exactly_itself(value):
    (term,) = _parse(f"func:{quote(value)}").terms
    assert term.values == (Pattern((value,)),)
