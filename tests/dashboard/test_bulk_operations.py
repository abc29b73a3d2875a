""" "All matching" beyond BULK_LIMIT on the list pages: a bulk operation in the background,
its progress bar polled on the page, and a Cancel button."""

from __future__ import annotations

import pytest

from tests.factories import JobRecordFactory
from workers.models import AuditEntry, BulkOperation, JobRecord, JobStatus
from workers.services.jobs import BULK_LIMIT

pytestmark = pytest.mark.django_db(transaction=True)

HTMX = {"HX-Request": "true"}
COUNT = BULK_LIMIT + 200


def _discard_all(client, **extra):
    form = {"action": "discard", "all": "1", "expected": str(BULK_LIMIT + 1), **extra}
    return client.post("/dashboard/dead-letters/bulk/", form, headers=HTMX).content.decode()


def test_discarding_all_of_more_than_a_click_runs_in_the_background_with_a_progress_bar(staff_client, run_burst):
    JobRecordFactory.create_batch(COUNT, status=JobStatus.DEAD)
    page = staff_client.get("/dashboard/dead-letters/").content.decode()
    assert f"more than {BULK_LIMIT} dead letters matching this filter" in page and "in the background" in page

    answer = _discard_all(staff_client)
    operation = BulkOperation.objects.get()
    assert f"Discarding all {COUNT:,} matching jobs in the background" in answer
    assert (operation.state, operation.expected, operation.filters) == ("queued", COUNT, {"status": "dead"})
    # The list shows the operation polled, with its bar and a Cancel button; nothing acted on yet.
    assert f'hx-get="/dashboard/bulk/{operation.pk}/"' in answer and 'data-poll="2000"' in answer
    assert '<progress max="100" value="0">' in answer and ">Cancel</button>" in answer
    assert JobRecord.objects.filter(status=JobStatus.DEAD, discarded_at__isnull=True).count() == COUNT

    run_burst("low")

    panel = staff_client.get(f"/dashboard/bulk/{operation.pk}/", headers=HTMX)
    assert panel.status_code == 286  # ended: the page stops polling it
    html = panel.content.decode()
    assert '<progress max="100" value="100">' in html and f"{COUNT} done" in html and "finished" in html
    assert "data-poll" not in html and "Cancel" not in html
    assert not JobRecord.objects.filter(status=JobStatus.DEAD, discarded_at__isnull=True).exists()
    parent = AuditEntry.objects.get(action="bulk.discard", parent__isnull=True)
    assert (parent.actor, parent.count, parent.outcome) == ("operator", COUNT, "ok")
    # The page still shows how it went, a while after.
    assert f"{COUNT} done" in staff_client.get("/dashboard/dead-letters/").content.decode()


def test_cancel_from_the_page_stops_it_and_is_audited(staff_client, run_burst):
    JobRecordFactory.create_batch(COUNT, status=JobStatus.DEAD)
    _discard_all(staff_client)
    operation = BulkOperation.objects.get()
    answer = staff_client.post(f"/dashboard/bulk/{operation.pk}/cancel/", headers=HTMX).content.decode()
    assert "Canceled" in answer and "canceled" in answer and ">Cancel</button>" not in answer
    run_burst("low")
    operation.refresh_from_db()
    assert (operation.state, operation.done) == ("canceled", 0)
    assert JobRecord.objects.filter(status=JobStatus.DEAD, discarded_at__isnull=True).count() == COUNT
    assert AuditEntry.objects.filter(action="bulk.cancel", actor="operator", outcome="ok").count() == 1
    again = staff_client.post(f"/dashboard/bulk/{operation.pk}/cancel/", headers=HTMX).content.decode()
    assert "has canceled already" in again


def test_cancel_needs_an_operator_and_an_operation_that_exists(client, staff_client):
    assert staff_client.post("/dashboard/bulk/999/cancel/").status_code == 404
    assert staff_client.get("/dashboard/bulk/999/cancel/").status_code == 405
    assert client.post("/dashboard/bulk/999/cancel/").status_code == 302  # to the login page


def test_more_matching_than_a_click_on_the_jobs_page_starts_an_operation_too(staff_client, run_burst):
    JobRecordFactory.create_batch(COUNT, status=JobStatus.DEAD)
    form = {"action": "discard", "all": "1", "expected": str(BULK_LIMIT + 1), "q": "status:dead"}
    staff_client.post("/dashboard/jobs/bulk/", form, headers=HTMX)
    operation = BulkOperation.objects.get()
    assert operation.filters == {"q": "status:dead"}
    assert f'id="bulk-operation-{operation.pk}"' in staff_client.get("/dashboard/jobs/").content.decode()
    assert f'id="bulk-operation-{operation.pk}"' not in staff_client.get("/dashboard/dead-letters/").content.decode()
    run_burst("low")
    operation.refresh_from_db()
    assert (operation.state, operation.done) == ("finished", COUNT)
