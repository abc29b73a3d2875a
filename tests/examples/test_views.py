"""The examples' staff panel: campaign progress, ETL pages, page views; actions."""

from __future__ import annotations

import pytest

from examples.models import Delivery, EtlPage, EtlRun
from tests.conftest import create_operator
from tests.examples.factories import ArticleFactory, CampaignFactory, DeliveryFactory
from workers.models import JobRecord

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):
    user = create_operator("ops", "pw")
    client.force_login(user)
    return client


def test_campaign_progress_shows_sent_failed_and_pending(staff_client):
    campaign = CampaignFactory(subject="Spring digest")
    for status, n in [(Delivery.Status.SENT, 4), (Delivery.Status.FAILED, 1), (Delivery.Status.RETRYING, 2)]:
        DeliveryFactory.create_batch(n, campaign=campaign, status=status)
    DeliveryFactory(campaign=campaign)  # pending in a batch

    html = staff_client.get("/dashboard/examples/").content.decode()

    row = html.split('data-campaign="' + campaign.key + '"')[1].split("</tr>")[0]
    assert "Spring digest" in row
    assert '<td class="sent">4</td>' in row
    assert '<td class="failed">1</td>' in row
    assert '<td class="pending">3</td>' in row
    assert "62%" in row  # 5 of 8 settled


def test_polled_panels_answer_only_the_fragment(staff_client):
    ArticleFactory(title="Counting views", views=41)

    response = staff_client.get("/dashboard/examples/panels/", headers={"HX-Request": "true"})

    body = response.content.decode()
    assert body.lstrip().startswith('<div id="examples-panels"')
    assert "<html" not in body
    assert "Counting views" in body and "<td>41</td>" in body


def test_the_panel_is_staff_only(client):
    response = client.get("/dashboard/examples/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_rerunning_a_failed_page_queues_a_new_job(staff_client, django_capture_on_commit_callbacks):
    run = EtlRun.objects.create(lo=0, hi=10, page_size=10)
    page = EtlPage.objects.create(run=run, lo=1, hi=11, stage=EtlPage.Stage.LOAD, status=EtlPage.Status.FAILED)

    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(f"/dashboard/examples/etl/pages/{page.pk}/rerun/", headers={"HX-Request": "true"})

    assert response.status_code == 200
    assert "is queued again" in response.content.decode()
    page.refresh_from_db()
    assert (page.stage, page.status) == (EtlPage.Stage.EXTRACT, EtlPage.Status.QUEUED)
    assert page.job_id
    from workers.recording.consumer import drain

    drain()
    assert JobRecord.objects.get(job_id=page.job_id).func == "examples.jobs.etl.etl_page_process"


def test_an_action_without_htmx_redirects_to_the_panel_and_says_what_it_did_once(
    staff_client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post("/dashboard/examples/etl/start/")

    assert response.status_code == 302 and response["Location"] == "/dashboard/examples/"
    assert staff_client.get("/dashboard/examples/").content.decode().count("An ETL run was requested.") == 1


def test_actions_reject_get_and_unknown_pages(staff_client):
    assert staff_client.get("/dashboard/examples/etl/pages/1/rerun/").status_code == 405
    assert staff_client.post("/dashboard/examples/etl/pages/999/rerun/").status_code == 404
    assert staff_client.post("/dashboard/examples/etl/runs/999/rerun/").status_code == 404
