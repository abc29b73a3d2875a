"""Poison isolation in the scheduler: a schedule whose run cannot be pushed is marked broken
with the reason and tried again after a backoff, while the others fire on time; what JSON
cannot give back is refused wherever a schedule is written (admin, code, `manage.py check`)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from django.core.checks import Error
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import connection
from rq import Queue

import tests.schedfuncs  # noqa: F401  (registers the schedulable functions)
from tests.conftest import ROOT, database_url
from workers.api import QueueUnavailable
from workers.apps import check_declared_schedules
from workers.models import Schedule, ScheduleRun
from workers.scheduling.sync import schedule_save, schedules_sync
from workers.scheduling.tick import schedules_fire_due
from workers.services.audit import Actor
from workers.services.schedules import ScheduleActionError, schedule_resume, schedule_run_now

TICK = "tests.schedfuncs.tick"
T0 = datetime(2026, 1, 5, 12, 0, 0, tzinfo=UTC)
# A number no float holds: Python reads it back from the JSON column as inf.
HUGE = "[1" + "0" * 400 + ".5]"


def make(name: str, now: datetime = T0, **fields: object) -> Schedule:
    return schedule_save(schedule=Schedule(name=name, func=TICK, **{"interval": 1, **fields}), now=now)


def queued_job_ids(redis_conn, queue: str = "default") -> list[str]:
    return [j.decode() for j in redis_conn.lrange(Queue(queue, connection=redis_conn).key, 0, -1)]


def corrupt(name: str, **fields: object) -> Schedule:
    """A row as a migration, a hand-written UPDATE or a deploy leaves it: never validated."""
    schedule = make(name)
    Schedule.objects.filter(pk=schedule.pk).update(**fields)
    return schedule


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# --- the tick ---------------------------------------------------------------------------------


def test_a_one_second_schedule_fires_on_time_beside_every_kind_of_schedule_that_cannot(transactional_db, redis_conn):
    healthy = make("healthy")
    bad = {
        "queue removed": corrupt("queue removed", queue="gone"),
        "function not importable": corrupt("function not importable", func="tests.schedfuncs.vanished"),
        "function not schedulable": corrupt("function not schedulable", func="tests.jobfuncs.add"),
        "args a number": corrupt("args a number", args=5),
        "args a string": corrupt("args a string", args="abc"),
        "kwargs a list": corrupt("kwargs a list", kwargs=[1]),
        "bad cron": corrupt("bad cron", interval=None, cron="61 * * * *"),
        "args not JSON": make("args not JSON"),
        # Claimed by a scheduler before a deploy removed its queue: the unpushed run (the
        # outbox row) used to be retried first on every tick, and its failure ended the tick.
        "left unpushed": corrupt("left unpushed", queue="gone"),
    }
    with connection.cursor() as cursor:
        cursor.execute("UPDATE workers_schedule SET args = %s WHERE id = %s", [HUGE, bad["args not JSON"].pk])
    left = bad["left unpushed"]
    ScheduleRun.objects.create(schedule=left, job_id="schedule-left-1", due_at=at(-60), fired_at=at(-60))
    # Disabled (or paused) by an operator: left alone, its unpushed run too.
    disabled = corrupt("disabled", queue="gone", enabled=False)
    ScheduleRun.objects.create(schedule=disabled, job_id="schedule-left-2", due_at=at(-60), fired_at=at(-60))
    paused = corrupt("paused", queue="gone", paused_at=at(-1))

    fired: list[list[str]] = []
    for n in range(1, 41):
        fired.append([run.schedule.name for run in schedules_fire_due(now=at(n + 0.25))])

    assert fired == [["healthy"]] * 40  # every second, on time, and nothing else
    due_times = list(ScheduleRun.objects.filter(schedule=healthy).order_by("due_at").values_list("due_at", flat=True))
    assert due_times == [at(n) for n in range(1, 41)]
    assert queued_job_ids(redis_conn) == [f"schedule-{healthy.pk}-{int(at(n).timestamp())}" for n in range(1, 41)]
    assert queued_job_ids(redis_conn, "high") == queued_job_ids(redis_conn, "low") == []

    reasons = {
        "queue removed": "unknown queue 'gone'",
        "function not importable": "'tests.schedfuncs.vanished' is not a schedulable function",
        "function not schedulable": "'tests.jobfuncs.add' is not a schedulable function",
        "args a number": 'args must be a JSON list, e.g. [42, "weekly"], not 5',
        "args a string": "args must be a JSON list, e.g. [42, \"weekly\"], not 'abc'",
        "kwargs a list": 'kwargs must be a JSON object, e.g. {"dry_run": false}, not [1]',
        "bad cron": "'61 * * * *' is not a valid cron expression",
        "args not JSON": "args[0] is inf, which JSON cannot hold",
        "left unpushed": "unknown queue 'gone'",
    }
    for name, reason in reasons.items():
        schedule = Schedule.objects.get(name=name)
        assert schedule.is_broken, name
        assert reason in schedule.broken_reason, (name, schedule.broken_reason)
        # Tried at 1.25 s, then after 5, 10 and 20 s (6.25, 16.25, 36.25); next after 40 s.
        assert schedule.broken_since == at(1.25), name
        assert (schedule.push_failures, schedule.retry_at) == (4, at(76.25)), name
    assert not ScheduleRun.objects.get(job_id="schedule-left-1").enqueued
    assert ScheduleRun.objects.filter(schedule__name__in=reasons).count() == 1  # nothing claimed while broken
    for left_alone in (disabled, paused):
        left_alone.refresh_from_db()
        assert (left_alone.is_broken, left_alone.push_failures) == (False, 0)
    assert not ScheduleRun.objects.get(job_id="schedule-left-2").enqueued


def test_the_backoff_doubles_up_to_its_cap(transactional_db, settings):
    settings.JOBSITE = {**settings.JOBSITE, "SCHEDULE_RETRY_BASE": 5, "SCHEDULE_RETRY_CAP": 30}
    schedule = corrupt("queue removed", queue="gone")
    tries = []
    for n in range(1, 121):
        schedules_fire_due(now=at(n))
        schedule.refresh_from_db()
        if not tries or schedule.push_failures != tries[-1][0]:
            tries.append((schedule.push_failures, n))
    assert tries == [(1, 1), (2, 6), (3, 16), (4, 36), (5, 66), (6, 96)]  # waits 5, 10, 20, 30, 30


def test_a_deploy_that_removed_a_queue_breaks_its_schedule_until_the_queue_is_back(
    transactional_db, redis_conn, settings
):
    schedule = make("nightly", queue="low", interval=60)
    queues = dict(settings.RQ_QUEUES)
    settings.RQ_QUEUES = {name: config for name, config in queues.items() if name != "low"}

    assert schedules_fire_due(now=at(60.5)) == []
    schedule.refresh_from_db()
    assert "unknown queue 'low'" in schedule.broken_reason
    assert schedule.next_run_at == at(60)  # nothing claimed: the due time waits for the fix

    settings.RQ_QUEUES = queues  # the next deploy brings it back: the retry goes through
    assert schedules_fire_due(now=at(64)) == []  # still within the backoff
    [run] = schedules_fire_due(now=at(65.5))
    schedule.refresh_from_db()
    assert not schedule.is_broken and schedule.broken_reason == "" and schedule.push_failures == 0
    assert run.due_at == at(60)
    assert queued_job_ids(redis_conn, "low") == [run.job_id]


def test_a_run_whose_push_fails_after_the_claim_waits_for_the_backoff_and_then_goes(
    transactional_db, redis_conn, settings
):
    schedule = make("nightly", queue="low", interval=60)
    # Every client comes from the one connection factory: Redis goes away between the
    # claim (a database write) and the push.
    working = settings.REDIS_URL
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nobody listens

    with pytest.raises(QueueUnavailable):  # the tick ends: run_scheduler waits for Redis
        schedules_fire_due(now=at(60.5))

    schedule.refresh_from_db()
    assert "Redis is unavailable" in schedule.broken_reason
    [run] = ScheduleRun.objects.filter(schedule=schedule)
    assert not run.enqueued  # claimed, not pushed: it waits for the schedule's next try

    settings.REDIS_URL = working
    schedules_fire_due(now=at(62))  # not yet
    assert not ScheduleRun.objects.get(pk=run.pk).enqueued
    schedules_fire_due(now=at(65.5))
    assert ScheduleRun.objects.get(pk=run.pk).enqueued
    assert queued_job_ids(redis_conn, "low") == [run.job_id]
    schedule.refresh_from_db()
    assert not schedule.is_broken


def test_fixing_resuming_or_disabling_a_broken_schedule(transactional_db, redis_conn):
    fixed = corrupt("fixed", args="abc")
    resumed = corrupt("resumed", func="tests.jobfuncs.add")
    disabled = corrupt("disabled", kwargs=[1])
    schedules_fire_due(now=at(1.5))
    assert all(s.is_broken for s in Schedule.objects.all())

    # The admin (or the dashboard) saves a fixed definition: mended, tried at the next tick.
    fixed.refresh_from_db()
    fixed.args = ["abc"]
    schedule_save(schedule=fixed, now=at(2))
    assert not Schedule.objects.get(pk=fixed.pk).is_broken
    # Resuming mends too; whether it then fires is up to its definition.
    schedule_resume(schedule_id=resumed.pk, actor=Actor("tester"), now=at(2))
    assert Schedule.objects.get(pk=resumed.pk).push_failures == 0
    disabled.refresh_from_db()
    disabled.enabled = False
    with pytest.raises(ValidationError, match="kwargs must be a JSON object"):
        schedule_save(schedule=disabled, now=at(2))  # the admin refuses to save it as it is
    Schedule.objects.filter(pk=disabled.pk).update(enabled=False)  # the admin's list action, say

    fired = schedules_fire_due(now=at(2.5))

    assert [run.schedule.name for run in fired] == ["fixed"]
    assert queued_job_ids(redis_conn) == [fired[0].job_id]
    resumed.refresh_from_db()
    assert resumed.is_broken and resumed.push_failures == 1  # broken again, its backoff from the start
    assert resumed.retry_at == at(7.5)
    assert Schedule.objects.get(pk=disabled.pk).push_failures == 1  # left alone since


def test_run_now_of_a_broken_schedule_says_why_and_pushes_nothing(transactional_db, redis_conn):
    schedule = corrupt("report", queue="gone")
    with pytest.raises(ScheduleActionError, match="report cannot run: unknown queue 'gone'"):
        schedule_run_now(schedule_id=schedule.pk, actor=Actor("tester"), now=at(1))
    assert not ScheduleRun.objects.exists()
    assert queued_job_ids(redis_conn) == []


# --- what may be written ------------------------------------------------------------------------


class Opaque:
    def __repr__(self) -> str:
        return "<Opaque>"


BAD_DECLARATIONS = [
    ({"args": [Opaque()]}, "args[0] (<Opaque>) is of type Opaque, which JSON cannot hold"),
    ({"args": [datetime(2026, 1, 1, tzinfo=UTC)]}, "is of type datetime"),
    ({"kwargs": {"when": datetime(2026, 1, 1)}}, "kwargs['when'] (datetime.datetime(2026, 1, 1, 0, 0)) is of type"),
    ({"kwargs": {"deep": [{"o": Opaque()}]}}, "kwargs['deep'][0]['o'] (<Opaque>) is of type Opaque"),
    ({"args": {1, 2}}, 'args must be a JSON list, e.g. [42, "weekly"], not {1, 2}'),
    ({"args": [{1, 2}]}, "args[0] ({1, 2}) is of type set"),
    ({"kwargs": {"s": {3}}}, "kwargs['s'] ({3}) is of type set"),
    ({"args": "abc"}, "args must be a JSON list, e.g. [42, \"weekly\"], not 'abc'"),
    ({"args": 5}, 'args must be a JSON list, e.g. [42, "weekly"], not 5'),
    ({"args": ("weekly",)}, "args must be a JSON list, e.g. [42, \"weekly\"], not ('weekly',)"),
    ({"args": [("a", 1)]}, "args[0] (('a', 1)) is of type tuple"),
    ({"args": [float("nan")]}, "args[0] is nan, which JSON cannot hold"),
    ({"kwargs": [1]}, 'kwargs must be a JSON object, e.g. {"dry_run": false}, not [1]'),
    ({"kwargs": {1: "a"}}, "kwargs has the key 1 (int): JSON object keys are text"),
    ({"kwargs": "x=1"}, "kwargs must be a JSON object"),
    ({"func": ["x"]}, '["x"] is not a schedulable function'),
    ({"func": "tests.jobfuncs.add"}, "'tests.jobfuncs.add' is not a schedulable function"),
    ({"interval": True}, "interval must be a whole number of seconds >= 1, not true"),
    ({"interval": None, "cron": {"*"}}, "cron must be text like"),
    ({"timezone": 5}, "unknown timezone 5"),
    ({"queue": Opaque()}, "unknown queue <Opaque>"),
    ({"catch_up": ["once"]}, "catch_up must be one of once, skip"),
]


def test_manage_py_check_reports_every_bad_declaration_and_never_crashes(db, settings):
    good = {"name": "good", "func": TICK, "interval": 5}
    loops: list = [1]
    loops.append(loops)
    declared = [
        good,
        *({"name": f"bad {i}", "func": TICK, "interval": 5, **bad} for i, (bad, _) in enumerate(BAD_DECLARATIONS)),
        {"name": "loop", "func": TICK, "interval": 5, "args": loops},
        {"name": "weird key", "func": TICK, "interval": 5, 3: "x"},
    ]
    settings.JOBSITE_SCHEDULES = declared

    errors = check_declared_schedules()

    assert all(isinstance(e, Error) and e.id == "workers.E001" for e in errors)
    for i, (_fields, message) in enumerate(BAD_DECLARATIONS):
        mine = [e.msg for e in errors if e.msg.startswith(f"JOBSITE_SCHEDULES[{i + 1}] ('bad {i}')")]
        assert len(mine) == 1 and message in mine[0], (message, mine)
    assert any("('loop') args: args[1] contains itself" in e.msg for e in errors)
    assert any("JOBSITE_SCHEDULES[" in e.msg and "unknown field(s) 3" in e.msg for e in errors)
    assert not any("'good'" in e.msg for e in errors)
    with pytest.raises(SystemCheckError) as info:
        call_command("check")
    assert "('bad 0') args: args[0] (<Opaque>) is of type Opaque" in str(info.value)

    result = schedules_sync(now=T0)  # run_scheduler's sync: the good one goes through, the rest are listed
    assert result.created == ["good"]
    assert len(result.invalid) == len(errors)
    assert list(Schedule.objects.values_list("name", flat=True)) == ["good"]


def test_a_sync_keeps_a_wrongly_declared_schedule_as_it_was_and_mends_a_broken_one(transactional_db, settings):
    flush = {"name": "flush", "func": TICK, "interval": 5}
    digest = {"name": "digest", "func": TICK, "interval": 60, "args": ["weekly"]}
    schedules_sync(declared=[flush, digest], now=T0)
    queues = dict(settings.RQ_QUEUES)
    settings.RQ_QUEUES = {name: config for name, config in queues.items() if name != "default"}
    schedules_fire_due(now=at(60))
    assert Schedule.objects.get(name="flush").is_broken

    settings.RQ_QUEUES = queues  # the deploy that brings the queue back syncs as it starts
    result = schedules_sync(declared=[flush, {**digest, "args": [Opaque()]}, {"func": TICK}], now=at(61))

    assert (result.created, result.updated, result.disabled) == ([], [], [])
    assert len(result.invalid) == 2
    assert not Schedule.objects.get(name="flush").is_broken  # tried again at the next tick
    kept = Schedule.objects.get(name="digest")
    assert (kept.enabled, kept.args) == (True, ["weekly"])  # not vanished, and not redefined as something wrong
    # Once every entry has a name again, a schedule no longer declared is disabled as before.
    assert schedules_sync(declared=[flush], now=at(62)).disabled == ["digest"]


def test_the_admin_refuses_what_json_would_not_give_back(admin_client):
    form = {"name": "digest", "func": TICK, "cron": "", "interval": "60", "run_at_0": "", "run_at_1": "",
            "timezone": "UTC", "args": "[Infinity]", "kwargs": "{}", "queue": "default", "catch_up": "once",
            "enabled": "on"}  # fmt: skip
    response = admin_client.post("/admin/workers/schedule/add/", form)
    assert response.status_code == 200
    assert "args[0] is inf, which JSON cannot hold" in response.content.decode()
    assert not Schedule.objects.exists()


def test_run_scheduler_starts_and_fires_beside_bad_declarations(transactional_db, redis_conn, tmp_path):
    from django.conf import settings

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings_bad_schedules",
        "DATABASE_URL": database_url(),
        "REDIS_URL": settings.REDIS_URL,
    }
    # manage.py itself, system checks included: a bad entry is reported, not fatal.
    done = subprocess.run(
        [sys.executable, "manage.py", "run_scheduler", "--once", "--name", "t"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stderr
    assert "JOBSITE_SCHEDULES entries skipped" in done.stderr
    assert "('objects') args: args[0] (<object object at " in done.stderr
    assert "('a set') kwargs: kwargs['s'] ({1, 2}) is of type set" in done.stderr
    assert "fired good:" in done.stdout
    good = Schedule.objects.get(name="good")
    assert queued_job_ids(redis_conn, "high") == [good.last_job_id]
    assert list(Schedule.objects.values_list("name", flat=True)) == ["good"]


def test_redis_away_retries_at_the_base_delay_however_long_the_outage(transactional_db, redis_conn, settings):
    """Not the schedule's fault: it fires soon after Redis is back, not after a grown backoff."""
    schedule = make("nightly", queue="low", interval=60)
    working = settings.REDIS_URL
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nobody listens
    for moment in (60.5, 66, 72, 78):  # four failed pushes in a row
        with pytest.raises(QueueUnavailable):
            schedules_fire_due(now=at(moment))
        schedule.refresh_from_db()
        assert schedule.retry_at == at(moment) + timedelta(seconds=5)
    assert schedule.push_failures == 4 and "Redis is unavailable" in schedule.broken_reason

    settings.REDIS_URL = working
    schedules_fire_due(now=at(83.5))
    schedule.refresh_from_db()
    assert not schedule.is_broken
    assert queued_job_ids(redis_conn, "low") == [ScheduleRun.objects.get(schedule=schedule).job_id]
