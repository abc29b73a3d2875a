"""Poison isolation: whatever a stream entry holds, the recorder applies it or sets it aside
with the reason, and goes on with the rest (shared/DESIGN.md, "Bad input and faults")."""

from __future__ import annotations

import json
import time

import pytest
from django.db import connection

from workers import events
from workers.models import JobLogLine, JobRecord, JobStatus
from workers.reads.unapplied import unapplied_count, unapplied_list
from workers.recording.consumer import Recorder
from workers.redis import HELD_KEY, STREAM_KEY, UNAPPLIED_KEY
from workers.services.audit import Actor
from workers.services.unapplied import unapplied_delete, unapplied_delete_all

pytestmark = pytest.mark.django_db


def good(job_id: str, kind: str = "queued", **extra) -> dict[bytes, bytes]:
    event = {"e": kind, "id": job_id, "a": 1, "t": time.time(), "q": "default", "f": "app.jobs.work", **extra}
    return {b"d": json.dumps(event).encode()}


def raw(**event) -> dict[bytes, bytes]:
    return {b"d": json.dumps(event).encode()}


def base(**extra) -> dict:
    return {"e": "queued", "id": "poison", "a": 1, "t": time.time(), "q": "default", "f": "app.jobs.work", **extra}


# (stream entry, what the reason must say)
POISON = [
    ({b"d": b"null"}, "holds a JSON null, not an object"),
    ({b"d": b"[1,2]"}, "holds a JSON array"),
    ({b"d": b'"str"'}, "holds a JSON string"),
    ({b"d": b"7"}, "holds a JSON number"),
    ({b"d": b"{not json"}, "field d is not JSON"),
    ({b"d": b"[" * 100_000}, "field d is not JSON (RecursionError"),
    ({b"data": b"{}"}, "the entry has no field d"),
    ({b"\xff\x00": b"\x80\x81"}, "the entry has no field d"),
    ({b"d": b'{"e": "queued", "id": "caf\xe9"}'}, "field d is not UTF-8"),
    (raw(**base(e="exploded")), "e (the kind) is 'exploded'"),
    (raw(**base(e=["queued"])), "e (the kind) is ['queued']"),
    (raw(**{k: v for k, v in base().items() if k != "id"}), "id is missing"),
    (raw(**base(id="")), "id is '': a job id is 1 to 128"),
    (raw(**base(id="x" * 200)), "id has 200 characters, more than 128"),
    (raw(**base(id="a\x00b")), "id contains a NUL character"),
    (raw(**base(id="../../etc")), "a job id is 1 to 128 printable characters, no space or /"),
    (raw(**base(a="1")), "a is '1', not a whole number"),
    (raw(**base(a=True)), "a is True, not a whole number"),
    (raw(**base(a=-1)), "a is -1, not between 0"),
    (raw(**base(t="now")), "t is 'now', not a number"),
    ({b"d": json.dumps(base(t=float("nan"))).encode()}, "t is nan, not between"),
    (raw(**base(t=1e300)), "t is 1e+300, not between"),
    (raw(**base(q=7)), "q is a number, not a string"),
    (raw(**base(f="x" * 300)), "f has 300 characters, more than 255"),
    (raw(**base(xm="\ud800")), "xm contains a lone surrogate"),
    (raw(**base(max=2**40)), "max is 1099511627776, not between 0 and 2147483647"),
    (raw(**base(e="progress", p=150)), "p is 150, not between 0 and 100"),
    (raw(**base(e="progress")), "p is missing (a progress event needs it)"),
    (raw(**base(e="log", lines=[[1, 2]])), "lines line 0 is [1, 2], not [seq, epoch, level, logger, message]"),
    (raw(**base(e="log", lines=[[1, time.time(), "INFO", "app", 5]])), "lines line 0: its message is a number"),
    (raw(**base(e="log", lines="many")), "lines is a string, not a list of lines"),
]


def reasons(redis_conn) -> list[str]:
    return [json.loads(entry)["reason"] for entry in redis_conn.lrange(UNAPPLIED_KEY, 0, -1)]


def test_every_kind_of_malformed_entry_is_set_aside_with_its_reason_and_the_good_ones_recorded(redis_conn):
    redis_conn.xadd(STREAM_KEY, good("before"))
    for fields, _ in POISON:
        redis_conn.xadd(STREAM_KEY, fields)
    redis_conn.xadd(STREAM_KEY, good("after"))

    assert Recorder(redis_conn, name="t", batch_size=7).drain() == len(POISON) + 2

    assert set(JobRecord.objects.values_list("job_id", flat=True)) == {"before", "after"}
    kept = reasons(redis_conn)
    assert len(kept) == len(POISON)
    for (_, expected), reason in zip(POISON, kept, strict=True):
        assert expected in reason
    assert redis_conn.xlen(STREAM_KEY) == 0
    assert redis_conn.xpending(STREAM_KEY, "jobsite-recorder")["pending"] == 0


def test_a_set_aside_entry_keeps_its_raw_fields_readable_and_says_what_it_cut(redis_conn):
    giant = b'{"e": "queued", "x": "' + b"y" * events.max_event_bytes() + b'"}'
    redis_conn.xadd(STREAM_KEY, {b"\xff\x00": b"\x80binary", b"d": giant})
    redis_conn.xadd(STREAM_KEY, good("fine"))

    Recorder(redis_conn, name="rec-1").drain()

    assert JobRecord.objects.filter(job_id="fine").exists()
    (entry,) = unapplied_list().events
    assert "field d has" in entry.reason and "more than any event can" in entry.reason
    assert entry.recorder == "rec-1" and entry.entry_id and entry.at is not None
    binary, d = entry.fields
    assert (binary.name, binary.value, binary.binary) == ("\\xff\x00", "\\x80binary", True)
    assert d.cut_from == len(giant) and d.value.startswith('{"e": "queued", "x": "yyy')
    assert len(d.value) < 25_000  # the page shows the start of it


def _refuse_records_named(job_id: str) -> None:
    """A trigger that makes the database itself refuse one job's record."""
    table = JobRecord._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "CREATE FUNCTION test_refuse() RETURNS trigger AS $$ BEGIN IF NEW.job_id = %s THEN "
                "RAISE EXCEPTION 'refused by a test trigger'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql",
                [job_id],
            )
            cursor.execute(
                f"CREATE TRIGGER test_refuse BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION test_refuse()"
            )
        else:
            cursor.execute(
                f"CREATE TRIGGER test_refuse BEFORE INSERT ON {table} WHEN NEW.job_id = '{job_id}' "
                "BEGIN SELECT RAISE(ABORT, 'refused by a test trigger'); END"
            )


def test_an_event_the_database_refuses_is_set_aside_and_the_rest_applied(redis_conn):
    _refuse_records_named("refused")
    for job_id in ("one", "refused", "two"):
        redis_conn.xadd(STREAM_KEY, good(job_id))

    Recorder(redis_conn, name="t").drain()

    assert set(JobRecord.objects.values_list("job_id", flat=True)) == {"one", "two"}
    (reason,) = reasons(redis_conn)
    assert reason.startswith("it cannot be applied: ") and "refused by a test trigger" in reason


def test_progress_for_a_job_with_no_record_never_invents_one(redis_conn, settings):
    settings.JOBSITE = {**settings.JOBSITE, "RECORDER_HOLD": 0}
    redis_conn.xadd(STREAM_KEY, raw(e="progress", id="ghost", a=1, t=time.time(), p=40, m="half"))
    redis_conn.xadd(
        STREAM_KEY, raw(e="log", id="ghost", a=1, t=time.time(), lines=[[1, time.time(), "INFO", "x", "hi"]])
    )
    redis_conn.xadd(STREAM_KEY, raw(e="started", id="ghost", a=1, t=time.time(), w="w1"))  # no queue, no function
    redis_conn.xadd(STREAM_KEY, good("real"))

    Recorder(redis_conn, name="t").drain()

    assert list(JobRecord.objects.values_list("job_id", flat=True)) == ["real"]
    kept = reasons(redis_conn)
    assert len(kept) == 3
    assert all(r.startswith("no record for job ghost and the event does not describe it") for r in kept)
    assert redis_conn.zcard(HELD_KEY) == 0


def test_an_early_event_is_held_until_the_event_that_describes_its_job_arrives(redis_conn):
    t = time.time()
    line = [1, t, "INFO", "app", "rendering"]
    redis_conn.xadd(STREAM_KEY, raw(e="log", id="early", a=1, t=t, lines=[line]))
    recorder = Recorder(redis_conn, name="t")

    recorder.drain()  # another recorder is still committing the job's started event

    assert not JobRecord.objects.filter(job_id="early").exists()
    assert (unapplied_list().held, unapplied_count()) == (1, 0)

    redis_conn.xadd(STREAM_KEY, good("early", kind="started", w="w1", start=t))
    recorder.drain()

    record = JobRecord.objects.get(job_id="early")
    assert (record.status, record.queue, record.func) == (JobStatus.STARTED, "default", "app.jobs.work")
    assert list(JobLogLine.objects.filter(job=record).values_list("message", flat=True)) == ["rendering"]
    assert (unapplied_list().held, unapplied_count()) == (0, 0)


def test_entries_set_aside_are_listed_newest_first_and_deleted_one_or_all(redis_conn):
    for n in range(3):
        redis_conn.xadd(STREAM_KEY, {b"d": f"[{n}]".encode()})
    Recorder(redis_conn, name="t").drain()
    redis_conn.rpush(UNAPPLIED_KEY, b"\xffnot ours at all")  # an earlier version's, or anyone's

    page = unapplied_list()
    assert page.total == 4
    assert [e.fields[0].value for e in page.events] == ["\\xffnot ours at all", "[2]", "[1]", "[0]"]
    assert page.events[0].reason.startswith("kept without a reason")

    assert unapplied_delete(ref=page.events[2].ref, actor=Actor("tester")) is True
    assert unapplied_delete(ref=page.events[2].ref, actor=Actor("tester")) is False  # already gone
    assert [e.fields[0].value for e in unapplied_list().events] == ["\\xffnot ours at all", "[2]", "[0]"]
    assert unapplied_delete(ref="no-such-ref", actor=Actor("tester")) is False

    assert unapplied_delete_all(actor=Actor("tester")) == 3
    assert unapplied_count() == 0
    # Each delete is in the audit trail: who, what and how many.
    from workers.models import AuditAction, AuditEntry

    trail = AuditEntry.objects.filter(action=AuditAction.UNAPPLIED_DELETE).order_by("id")
    assert [(e.actor, e.target_id, e.count) for e in trail] == [
        ("tester", page.events[2].ref, 1),
        ("tester", page.events[2].ref, 0),
        ("tester", "no-such-ref", 0),
        ("tester", "all", 3),
    ]


def test_a_held_set_member_the_recorder_did_not_write_is_set_aside(redis_conn, settings):
    redis_conn.zadd(HELD_KEY, {b"\xffnot a held event": 0})

    Recorder(redis_conn, name="t").drain()

    assert redis_conn.zcard(HELD_KEY) == 0
    (entry,) = unapplied_list().events
    assert entry.reason.startswith("unreadable held entry: ")
    assert entry.fields[0].value == "\\xffnot a held event"


def test_an_entry_deleted_while_pending_is_acknowledged_not_read_forever(redis_conn):
    recorder = Recorder(redis_conn, name="t")
    recorder.ensure_group()
    entry_id = redis_conn.xadd(STREAM_KEY, good("gone"))
    redis_conn.xreadgroup("jobsite-recorder", "t", {STREAM_KEY: ">"})  # read, then lost before the ack
    redis_conn.xdel(STREAM_KEY, entry_id)
    redis_conn.xadd(STREAM_KEY, good("next"))

    while recorder.step():  # reads its own pending entries first, as after a failed batch
        pass

    assert redis_conn.xpending(STREAM_KEY, "jobsite-recorder")["pending"] == 0
    assert list(JobRecord.objects.values_list("job_id", flat=True)) == ["next"]
