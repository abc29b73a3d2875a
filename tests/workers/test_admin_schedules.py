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


@pytest.mark.django_db(transaction=True)
def test_a_broken_schedule_shows_its_reason_and_saving_it_fixed_mends_it(admin_client):
    from datetime import timedelta

    from workers.scheduling.tick import schedules_fire_due

    schedule = schedule_save(schedule=Schedule(name="digest", func="tests.schedfuncs.tick", interval=60))
    Schedule.objects.filter(pk=schedule.pk).update(args="abc")  # written by a migration, say
    schedules_fire_due(now=schedule.next_run_at + timedelta(seconds=1))

    listing = admin_client.get("/admin/workers/schedule/").content.decode()
    assert '<td class="field-is_broken"><img src="/static/admin/img/icon-yes.svg" alt="True"></td>' in listing
    change = f"/admin/workers/schedule/{schedule.pk}/change/"
    page = admin_client.get(change).content.decode()
    assert "args must be a JSON list, e.g. [42, &quot;weekly&quot;], not &#x27;abc&#x27;" in page

    response = admin_client.post(change, form(interval="60", args='["abc"]'))

    assert response.status_code == 302
    schedule.refresh_from_db()
    assert (schedule.args, schedule.is_broken, schedule.broken_reason, schedule.retry_at) == (["abc"], False, "", None)


def test_arguments_only_read_are_shown_redacted(admin_client, client):
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission

    args, kwargs = ["weekly", "sk_live_4eC39HqLyjWDarjtT1zdp7dc"], {"api_key": "AK-77-secret", "region": "eu"}
    edited = schedule_save(schedule=Schedule(name="edited", func="tests.schedfuncs.report", interval=60,
                                             args=args, kwargs=kwargs))  # fmt: skip
    schedules_sync(declared=[{"name": "declared", "func": "tests.schedfuncs.report", "interval": 60,
                              "args": args, "kwargs": kwargs}])  # fmt: skip
    declared = Schedule.objects.get(name="declared")
    viewer = get_user_model().objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_schedule"))
    client.force_login(viewer)

    for who, schedule in ((client, edited), (client, declared), (admin_client, declared)):
        page = who.get(f"/admin/workers/schedule/{schedule.pk}/change/").content.decode()
        assert "sk_live_4eC39HqLyjWDarjtT1zdp7dc" not in page and "AK-77-secret" not in page
        assert "[&quot;weekly&quot;, &quot;[redacted]&quot;]" in page
        assert "&quot;api_key&quot;: &quot;[redacted]&quot;" in page and "&quot;region&quot;: &quot;eu&quot;" in page
    # Whoever may edit a schedule edits its real arguments (the form saves them back).
    page = admin_client.get(f"/admin/workers/schedule/{edited.pk}/change/").content.decode()
    assert "sk_live_4eC39HqLyjWDarjtT1zdp7dc" in page and 'name="args"' in page
