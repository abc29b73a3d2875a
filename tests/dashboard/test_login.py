"""Getting in and out: ``/`` leads to the dashboard, the dashboard to jobsite's own login page
(``/admin/login/`` still works), and the header's Log out button (a POST) out again."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from tests.conftest import create_operator

pytestmark = pytest.mark.django_db


def test_the_site_root_leads_to_the_dashboard(client):
    response = client.get("/")
    assert response.status_code == 302 and response["Location"] == "/dashboard/"


def test_the_dashboard_sends_a_stranger_to_jobsites_login_page(client):
    response = client.get("/", follow=True)

    assert response.redirect_chain == [("/dashboard/", 302), ("/login/?next=/dashboard/", 302)]
    body = response.content.decode()
    assert "<title>Log in · jobsite</title>" in body and "Log in to the dashboard" in body
    assert "dashboard/dashboard.css" in body and "Django administration" not in body
    assert 'name="next" value="/dashboard/"' in body


def test_staff_log_in_and_land_where_they_were_going():
    create_operator("ops", "correct horse")
    client = Client(enforce_csrf_checks=True)
    client.get("/login/")

    response = client.post(
        "/login/",
        {"username": "ops", "password": "correct horse", "next": "/dashboard/dead-letters/"},
        headers={"X-CSRFToken": client.cookies["csrftoken"].value},
    )

    assert response.status_code == 302 and response["Location"] == "/dashboard/dead-letters/"
    assert client.get("/dashboard/dead-letters/").status_code == 200


def test_without_next_the_login_lands_on_the_overview(client):
    create_operator("ops", "correct horse")
    response = client.post("/login/", {"username": "ops", "password": "correct horse"})
    assert response.status_code == 302 and response["Location"] == "/dashboard/"


@pytest.mark.parametrize("password", ["wrong", "right"])
def test_a_wrong_password_or_an_account_that_is_not_staff_stays_out(client, password):
    get_user_model().objects.create_user("customer", password="right", is_staff=False)

    response = client.post("/login/", {"username": "customer", "password": password, "next": "/dashboard/"})

    assert response.status_code == 200
    assert "Please enter the correct username and password for a staff account." in response.content.decode()
    assert client.get("/dashboard/").status_code == 302


def test_a_signed_in_account_without_staff_is_told_why_it_is_back_at_the_login_page(client):
    client.force_login(get_user_model().objects.create_user("customer", password="pw", is_staff=False))

    response = client.get("/dashboard/", follow=True)

    assert response.redirect_chain[-1] == ("/login/?next=/dashboard/", 302)
    assert "You are logged in as customer, which is not a staff account" in response.content.decode()


def test_the_admin_login_page_still_works(client):
    create_operator("ops", "correct horse")
    assert "Django administration" in client.get("/admin/login/").content.decode()

    response = client.post("/admin/login/?next=/dashboard/", {"username": "ops", "password": "correct horse"})

    assert response.status_code == 302 and response["Location"] == "/dashboard/"


def test_the_header_has_the_admin_and_a_log_out_button_that_posts(staff_client):
    body = staff_client.get("/dashboard/").content.decode()
    header = body.split('<header class="topbar">', 1)[1].split("</header>", 1)[0]

    assert 'href="/admin/"' in header and "operator" in header
    assert '<form method="post" action="/logout/">' in header and ">Log out</button>" in header
    assert 'name="csrfmiddlewaretoken"' in header


def test_log_out_is_a_post_and_ends_the_session(staff_client):
    assert staff_client.get("/logout/").status_code == 405  # a link or a prefetch logs nobody out

    response = staff_client.post("/logout/")

    assert response.status_code == 302 and response["Location"] == "/login/"
    assert staff_client.get("/dashboard/")["Location"] == "/login/?next=/dashboard/"


def test_staff_already_signed_in_see_the_plain_form(staff_client):
    body = staff_client.get("/login/").content.decode()
    assert 'id="id_username"' in body and "not a staff account" not in body
