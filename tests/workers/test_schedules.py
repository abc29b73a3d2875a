"""Schedules: validation, timezone-aware due times, catch-up, the code sync, and exactly-once
firing with two scheduler processes driven by a controllable clock."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management import call_command
from rq import Queue

import tests.schedfuncs  # noqa: F401  (registers the schedulable functions)
from tests.conftest import ROOT, database_url, wait_for
from workers.apps import check_declared_schedules
from workers.models import CatchUp, JobOrigin, JobRecord, Schedule, ScheduleRun, ScheduleSource
from workers.reads.schedules import schedule_list
from workers.recording.consumer import drain
from workers.scheduling.sync import schedule_save, schedules_sync
from workers.scheduling.tick import schedules_fire_due
from workers.scheduling.validation import schedule_validate
from workers.services.audit import Actor
from workers.services.schedules import ScheduleNotFound, schedule_pause, schedule_resume, schedule_run_now

OPERATOR = Actor("tester")  # who the audit trail says acted
TICK = "tests.schedfuncs.tick"
T0 = datetime(2026, 1, 5, 12, 0, 0, tzinfo=UTC)


def make(now: datetime = T0, **fields: object) -> Schedule:
    values: dict[str, object] = {"name": "s", "func": TICK, **fields}
    return schedule_save(schedule=Schedule(**values), now=now)


def queued_job_ids(redis_conn, queue: str = "default") -> list[str]:
    return [j.decode() for j in redis_conn.lrange(Queue(queue, connection=redis_conn).key, 0, -1)]


def errors_of(**fields: object) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as info:
        schedule_validate(Schedule(**{"name": "bad", "func": TICK, "interval": 60, **fields}))
    return info.value.message_dict


# --- validation -----------------------------------------------------------------------------


def test_bad_definitions_are_refused_with_messages_that_say_what_to_fix(db):
    four_fields = errors_of(interval=None, cron="*/5 * * *")
    assert "needs 5 fields" in four_fields["cron"][0]
    out_of_range = errors_of(interval=None, cron="61 * * * *")
    assert "'61 * * * *' is not a valid cron expression" in out_of_range["cron"][0]
    unknown = errors_of(func="os.system")
    assert "'os.system' is not a schedulable function" in unknown["func"][0]
    assert TICK in unknown["func"][0]  # the message lists what can be chosen
    assert "args must be a JSON list" in errors_of(args={"a": 1})["args"][0]
    assert "kwargs must be a JSON object" in errors_of(kwargs=[1])["kwargs"][0]
    assert "unknown timezone 'Mars/Olympus'" in errors_of(timezone="Mars/Olympus")["timezone"][0]
    assert "unknown queue 'urgent'" in errors_of(queue="urgent")["queue"][0]
    assert "exactly one trigger" in errors_of(interval=None)["__all__"][0]
    assert "not cron and interval" in errors_of(cron="* * * * *")["__all__"][0]
    with pytest.raises(ValidationError):
        schedule_save(schedule=Schedule(name="x", func=TICK, cron="nope"))
    assert not Schedule.objects.exists()


def test_declared_schedules_with_mistakes_are_reported_by_the_check_and_skipped_by_the_sync(db, settings):
    settings.JOBSITE_SCHEDULES = [
        {"name": "ok", "func": TICK, "interval": 5},
        {"name": "typo", "func": TICK, "cron": "0 9 * *"},
        {"name": "who", "func": "tests.schedfuncs.missing", "interval": 5},
        {"name": "when", "func": TICK, "at": "next tuesday"},
        {"func": TICK, "interval": 5},
    ]
    problems = [message.msg for message in check_declared_schedules()]
    assert len(problems) == 4
    assert any("('typo') cron:" in p and "needs 5 fields" in p for p in problems)
    assert any("('who') func:" in p for p in problems)
    assert any("'at' must be an ISO datetime" in p for p in problems)
    assert any("needs a non-empty 'name'" in p for p in problems)
    result = schedules_sync()
    assert result.invalid == problems
    assert result.created == ["ok"]  # the good one is synced all the same
    assert list(Schedule.objects.values_list("name", flat=True)) == ["ok"]


# --- due times --------------------------------------------------------------------------------


def test_cron_is_read_in_the_schedules_timezone_across_daylight_saving(db):
    # 09:00 in Berlin is 08:00 UTC in winter and 07:00 UTC in summer (DST began 29 March).
    schedule = make(now=datetime(2026, 3, 28, 10, 0, tzinfo=UTC), cron="0 9 * * *", timezone="Europe/Berlin")
    assert schedule.next_run_at == datetime(2026, 3, 29, 7, 0, tzinfo=UTC)
    assert schedule.trigger == "cron 0 9 * * * (Europe/Berlin)"

    schedules_fire_due(now=datetime(2026, 3, 29, 7, 0, 1, tzinfo=UTC))

    schedule.refresh_from_db()
    assert schedule.next_run_at == datetime(2026, 3, 30, 7, 0, tzinfo=UTC)
    assert ScheduleRun.objects.get().due_at == datetime(2026, 3, 29, 7, 0, tzinfo=UTC)


def test_a_due_schedule_makes_a_job_with_origin_schedule_linked_as_its_last_run(transactional_db, redis_conn):
    schedule = make(interval=60, args=["hello"])
    assert schedule.next_run_at == T0 + timedelta(seconds=60)
    assert schedules_fire_due(now=T0 + timedelta(seconds=59)) == []

    [run] = schedules_fire_due(now=T0 + timedelta(seconds=61))
    drain()

    schedule.refresh_from_db()
    assert schedule.last_job_id == run.job_id
    assert schedule.next_run_at == T0 + timedelta(seconds=120)
    assert queued_job_ids(redis_conn) == [run.job_id]
    record = JobRecord.objects.get(job_id=run.job_id)
    assert (record.origin, record.func, record.args_repr) == (JobOrigin.SCHEDULE, TICK, "('hello',)")
    assert record.status == "queued"
    [view] = schedule_list()
    assert view.last.record == record
    assert view.last.outcome == "queued"


@pytest.mark.parametrize(
    ("catch_up", "runs", "missed"),
    [(CatchUp.ONCE, 1, 9), (CatchUp.SKIP, 0, 10)],
    ids=["once", "skip"],
)
def test_after_downtime_catch_up_runs_once_or_skips(transactional_db, redis_conn, catch_up, runs, missed):
    schedule = make(interval=3600, catch_up=catch_up)
    # The scheduler was down through ten hourly due times; the last one is 10 minutes old,
    # past the grace period, so it counts as missed too.
    late = T0 + timedelta(hours=10, minutes=10)

    fired = schedules_fire_due(now=late)

    schedule.refresh_from_db()
    assert len(fired) == runs
    assert len(queued_job_ids(redis_conn)) == runs
    assert schedule.missed_runs == missed
    assert schedule.next_run_at == T0 + timedelta(hours=11)
    if runs:
        assert fired[0].due_at == T0 + timedelta(hours=10)  # the latest missed due time


def test_a_slightly_late_scheduler_still_fires_with_catch_up_skip(transactional_db, redis_conn):
    schedule = make(interval=3600, catch_up=CatchUp.SKIP)
    [run] = schedules_fire_due(now=T0 + timedelta(hours=1, seconds=30))  # within the grace period
    schedule.refresh_from_db()
    assert run.due_at == T0 + timedelta(hours=1)
    assert schedule.missed_runs == 0


def test_a_one_time_schedule_fires_once_and_is_done(transactional_db, redis_conn):
    schedule = make(run_at=T0 + timedelta(minutes=5))
    schedules_fire_due(now=T0 + timedelta(minutes=5, seconds=1))
    schedules_fire_due(now=T0 + timedelta(minutes=6))

    schedule.refresh_from_db()
    assert schedule.next_run_at is None
    assert len(queued_job_ids(redis_conn)) == 1


# --- operator actions ---------------------------------------------------------------------------


def test_pause_stops_firing_resume_continues_from_now_and_run_now_fires_at_once(transactional_db, redis_conn):
    schedule = make(interval=60)
    schedule_pause(schedule_id=schedule.pk, actor=OPERATOR, now=T0)
    assert schedules_fire_due(now=T0 + timedelta(minutes=10)) == []

    resumed = schedule_resume(schedule_id=schedule.pk, actor=OPERATOR, now=T0 + timedelta(minutes=10))
    assert resumed.paused_at is None
    assert resumed.next_run_at == T0 + timedelta(minutes=11)  # paused time is not caught up

    run = schedule_run_now(schedule_id=schedule.pk, actor=OPERATOR, now=T0 + timedelta(minutes=10, seconds=5))
    resumed.refresh_from_db()
    assert resumed.last_job_id == run.job_id
    assert resumed.next_run_at == T0 + timedelta(minutes=11)
    assert queued_job_ids(redis_conn) == [run.job_id]
    with pytest.raises(ScheduleNotFound):
        schedule_pause(schedule_id=999999, actor=OPERATOR)


def test_a_run_claimed_by_a_scheduler_that_died_before_pushing_is_pushed_by_the_next_tick(transactional_db, redis_conn):
    schedule = make(interval=60)
    # What a scheduler leaves when it dies between its commit and its push to Redis.
    ScheduleRun.objects.create(schedule=schedule, job_id="schedule-lost-1", due_at=T0, fired_at=T0)

    schedules_fire_due(now=T0 + timedelta(seconds=10))
    schedules_fire_due(now=T0 + timedelta(seconds=20))

    assert queued_job_ids(redis_conn) == ["schedule-lost-1"]
    assert ScheduleRun.objects.get(job_id="schedule-lost-1").enqueued


# --- declared in code -----------------------------------------------------------------------------


def test_declared_schedules_are_created_updated_and_disabled_by_name_keeping_operator_state(db):
    declared = [
        {"name": "flush", "func": TICK, "interval": 5, "queue": "high"},
        {"name": "digest", "func": TICK, "cron": "0 8 * * 1", "timezone": "Europe/Paris", "catch_up": "skip"},
    ]
    first = schedules_sync(declared=declared, now=T0)
    assert sorted(first.created) == ["digest", "flush"]
    flush = Schedule.objects.get(name="flush")
    assert (flush.source, flush.queue, flush.next_run_at) == (ScheduleSource.CODE, "high", T0 + timedelta(seconds=5))
    schedule_pause(schedule_id=flush.pk, actor=OPERATOR)

    again = schedules_sync(declared=declared, now=T0)
    assert (again.created, again.updated) == ([], [])

    changed = schedules_sync(declared=[{**declared[0], "interval": 10}], now=T0)
    assert changed.updated == ["flush"]
    assert changed.disabled == ["digest"]
    flush.refresh_from_db()
    assert flush.interval == 10
    assert flush.is_paused  # an operator's pause survives a deploy
    assert not Schedule.objects.get(name="digest").enabled


def test_run_scheduler_syncs_declared_schedules_and_fires_what_is_due(transactional_db, redis_conn, settings):
    settings.JOBSITE_SCHEDULES = [{"name": "now", "func": TICK, "at": "2020-01-01T00:00:00Z"}]

    call_command("run_scheduler", "--once", "--name", "test")

    schedule = Schedule.objects.get(name="now")
    assert schedule.source == ScheduleSource.CODE
    assert queued_job_ids(redis_conn) == [schedule.last_job_id]


# --- two schedulers -----------------------------------------------------------------------------


@pytest.mark.slow
def test_two_scheduler_processes_fire_each_of_100_due_times_exactly_once(transactional_db, redis_conn, tmp_path):
    schedule = make(now=T0, interval=60, args=["x"])
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "jobsite.settings.test",
        "DATABASE_URL": database_url(),
        "REDIS_URL": settings.REDIS_URL,
    }
    names = ["sched-a", "sched-b"]
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.scheduler_driver", name],
            cwd=ROOT,
            env=env,
            stdout=(tmp_path / f"{name}.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        for name in names
    ]
    try:
        wait_for(lambda: redis_conn.llen("test:clock:ready") == 2, timeout=60)
        fired = 0
        for n in range(1, 101):
            # Both processes get the same moment, just past the n-th due time, and race for it.
            moment = (T0 + timedelta(seconds=60 * n, milliseconds=250)).timestamp()
            for name in names:
                redis_conn.rpush(f"test:clock:{name}", moment)
            for _ in names:
                _key, done = redis_conn.blpop(["test:clock:done"], timeout=30)
                fired += int(done.decode().rsplit(":", 1)[1])
        for name in names:
            redis_conn.rpush(f"test:clock:{name}", "stop")
        for process in processes:
            process.wait(timeout=30)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()

    expected = [T0 + timedelta(seconds=60 * n) for n in range(1, 101)]
    assert fired == 100
    assert sorted(ScheduleRun.objects.values_list("due_at", flat=True)) == expected
    job_ids = queued_job_ids(redis_conn)
    assert len(job_ids) == len(set(job_ids)) == 100
    assert set(job_ids) == {f"schedule-{schedule.pk}-{int(due.timestamp())}" for due in expected}
    schedule.refresh_from_db()
    assert schedule.next_run_at == T0 + timedelta(seconds=60 * 101)
    assert schedule.missed_runs == 0


def test_the_schedules_shipped_in_settings_sync_and_are_due_in_the_future(db):
    result = schedules_sync(now=T0)

    assert sorted(result.created) == sorted(entry["name"] for entry in settings.JOBSITE_SCHEDULES)
    assert all(s.next_run_at and s.next_run_at > T0 for s in Schedule.objects.all())
