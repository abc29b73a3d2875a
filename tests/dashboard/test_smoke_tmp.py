import pytest
from tests.factories import JobErrorFactory, JobRecordFactory, JobMetricFactory

pytestmark = pytest.mark.django_db

def test_smoke(staff_client, htmx_client):
    JobRecordFactory.create_batch(5)
    e = JobErrorFactory(job__args_repr="('<script>alert(1)</script>',)")
    JobMetricFactory(finished=10, failed=2)
    for url in ["/dashboard/", "/dashboard/jobs/", f"/dashboard/jobs/{e.job.job_id}/", "/dashboard/dead-letters/", "/dashboard/workers/", "/dashboard/queues/default/", "/dashboard/jobs/?status=nope&since=xx"]:
        r = staff_client.get(url)
        assert r.status_code == 200, (url, r.content[:3000])
        r = htmx_client.get(url)
        assert r.status_code in (200, 286), url
    print(staff_client.get(f"/dashboard/jobs/{e.job.job_id}/").content.decode()[:200])
