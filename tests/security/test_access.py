"""Every dashboard page needs staff; every action needs workers.operate_jobs and CSRF."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.test import Client

from dashboard.access import OPERATE_PERMISSION, OPERATORS_GROUP, VIEWERS_GROUP, can_operate
from tests.security.routes import ACTIONS, PAGES, route
from workers.models import JobRecord, JobStatus

pytestmark = pytest.mark.django_db

JOB_ID = "0f6a1c3e-security-test"


@pytest.fixture
def dead_job():
    return JobRecord.objects.create(job_id=JOB_ID, queue="default", func="tests.jobfuncs.fail", status=JobStatus.DEAD)


def _user(name, *, staff=True, group=None):
    user = get_user_model().objects.create_user(name, password="pw", is_staff=staff)
    if group:
        user.groups.add(_group(group))
    return user


def _group(name):
    group, _ = Group.objects.get_or_create(name=name)
    if name == OPERATORS_GROUP:
        app_label, codename = OPERATE_PERMISSION.split(".")
        group.permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return group


def test_roles_viewer_cannot_operate_operator_and_superuser_can():
    viewer = _user("viewer", group=VIEWERS_GROUP)
    operator = _user("operator", group=OPERATORS_GROUP)
    outsider = _user("outsider", staff=False, group=OPERATORS_GROUP)
    boss = get_user_model().objects.create_superuser("boss", password="pw")

    assert [can_operate(u) for u in (viewer, operator, outsider, boss)] == [False, True, False, True]


@pytest.mark.parametrize("template", PAGES)
def test_pages_send_anonymous_and_non_staff_to_login(client, template, dead_job):
    path = route(template.format(job_id=JOB_ID))
    for user in (None, _user("customer", staff=False)):
        if user:
            client.force_login(user)
        response = client.get(path)
        assert response.status_code == 302, path
        assert response["Location"].startswith("/login/")


@pytest.mark.parametrize("template", PAGES)
def test_read_only_viewer_sees_pages(client, template, dead_job):
    path = route(template.format(job_id=JOB_ID))
    client.force_login(_user("viewer", group=VIEWERS_GROUP))

    response = client.get(path)

    assert response.status_code == 200, path


@pytest.mark.parametrize("template", ACTIONS)
def test_actions_refuse_anonymous_viewers_missing_csrf_and_get(template, dead_job):
    path = route(template.format(job_id=JOB_ID))
    data = {"action": "retry", "job_id": [JOB_ID]}

    anonymous = Client().post(path, data)
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/login/")

    viewer = Client()
    viewer.force_login(_user("viewer", group=VIEWERS_GROUP))
    assert viewer.post(path, data).status_code == 403

    operator = Client(enforce_csrf_checks=True)
    operator.force_login(_user("operator", group=OPERATORS_GROUP))
    assert operator.post(path, data).status_code == 403  # no CSRF token
    assert operator.get(path).status_code == 405

    dead_job.refresh_from_db()
    assert dead_job.status == JobStatus.DEAD and dead_job.discarded_at is None  # nothing happened
