"""The Schedule admin: what an operator typing a bad schedule is told."""

from __future__ import annotations

import pytest

import tests.schedfuncs  # noqa: F401  (registers the schedulable functions)
from workers.models import Schedule, ScheduleSource
from workers.scheduling.sync import schedule_save, schedules_sync

pytestmark = pytest.mark.django_db

ADD = "/admin/workers/schedule/add/"


def form(**fields: str) -> dict[str, str]:
    return {"name": "digest", "func": "tests.schedfuncs.tick", "cron": "", "interval": "", "run_at_0": "",
            "run_at_1": "", "timezone": "UTC", "args": "[]", "kwargs": "{}", "queue": "default",
            "catch_up": "once", "enabled": "on", **fields}  # fmt: skip


def test_a_valid_schedule_is_saved_with_its_next_run(admin_client):
    response = admin_client.post(ADD, form(cron="0 8 * * 1", timezone="Europe/Paris", args='["weekly"]'))
    assert response.status_code == 302
    schedule = Schedule.objects.get(name="digest")
    assert schedule.args == ["weekly"]
    assert schedule.next_run_at is not None and schedule.next_run_at.weekday() == 0
    assert schedule.source == ScheduleSource.ADMIN


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"cron": "0 8 * *"}, "it needs 5 fields"),
        ({"cron": "0 25 * * *"}, "&#x27;0 25 * * *&#x27; is not a valid cron expression"),
        ({"interval": "60", "args": "[1, 2"}, "args is not valid JSON: Expecting"),
        ({"interval": "60", "kwargs": '{"a": }'}, "kwargs is not valid JSON: Expecting value at line 1, column 7"),
        ({"interval": "60", "args": '{"a": 1}'}, "args must be a JSON list"),
        ({"interval": "60", "func": "os.system"}, "Select a valid choice. os.system is not one of the available"),
        ({"interval": "60", "timezone": "Moon/Base"}, "unknown timezone &#x27;Moon/Base&#x27;"),
        ({}, "give exactly one trigger"),
    ],
    ids=["cron-fields", "cron-range", "args-json", "kwargs-json", "args-type", "func", "timezone", "no-trigger"],
)
def test_bad_input_is_refused_with_a_clear_message(admin_client, fields, message):
    response = admin_client.post(ADD, form(**fields))
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Schedule.objects.exists()


def test_only_registered_functions_are_offered(admin_client):
    page = admin_client.get(ADD).content.decode()
    assert '<option value="tests.schedfuncs.tick">' in page
    assert "os.system" not in page


def test_a_schedule_declared_in_code_cannot_be_redefined_in_the_admin(admin_client):
    schedules_sync(declared=[{"name": "flush", "func": "tests.schedfuncs.tick", "interval": 5}])
    schedule = Schedule.objects.get(name="flush")
    page = admin_client.get(f"/admin/workers/schedule/{schedule.pk}/change/").content.decode()
    assert 'name="interval"' not in page  # shown read-only: JOBSITE_SCHEDULES owns it


@pytest.mark.django_db(transaction=True)
def test_admin_actions_pause_and_run(admin_client, redis_conn):
    schedule = schedule_save(schedule=Schedule(name="s", func="tests.schedfuncs.tick", interval=60))
    changelist = "/admin/workers/schedule/"
    admin_client.post(changelist, {"action": "pause_selected", "_selected_action": [schedule.pk]})
    assert Schedule.objects.get(pk=schedule.pk).is_paused
    admin_client.post(changelist, {"action": "run_selected_now", "_selected_action": [schedule.pk]})
    assert redis_conn.llen("rq:queue:default") == 1
