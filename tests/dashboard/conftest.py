from __future__ import annotations

import pytest
from django.test import Client

from tests.conftest import create_operator


@pytest.fixture
def staff(db):
    return create_operator("operator", "pw")


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
