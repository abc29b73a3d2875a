from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client


@pytest.fixture
def staff(db):
    return get_user_model().objects.create_user("operator", password="pw", is_staff=True)


@pytest.fixture
def staff_client(staff) -> Client:
    client = Client()
    client.force_login(staff)
    return client


@pytest.fixture
def htmx_client(staff) -> Client:
    client = Client(headers={"HX-Request": "true"})
    client.force_login(staff)
    return client
