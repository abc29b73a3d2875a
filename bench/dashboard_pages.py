"""Server time of the dashboard's pages over a seeded job history (median of repeated GETs).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/jobsite_bench REDIS_URL=redis://127.0.0.1:6391/0 \\
        DJANGO_SETTINGS_MODULE=jobsite.settings.base python -m bench.dashboard_pages --records 100000

Migrates the database, tops it up to ``--records`` job records with ``bench.seed``, then
times each page in-process through Django's test client (URL routing, middleware,
queries and template rendering; no network).
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import timedelta


def page_times(paths: list[str], *, repeat: int = 15) -> dict[str, float]:
    """Median milliseconds per path, after one warm-up request each."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    user, _ = get_user_model().objects.get_or_create(username="bench-operator", defaults={"is_staff": True})
    client = Client()
    client.force_login(user)
    results = {}
    for path in paths:
        response = client.get(path)
        assert response.status_code in (200, 286), (path, response.status_code)
        samples = []
        for _ in range(repeat):
            start = time.perf_counter()
            client.get(path)
            samples.append((time.perf_counter() - start) * 1000)
        results[path] = statistics.median(samples)
    return results


def main() -> None:
    import django

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--dead-share", type=float, default=0.02)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    django.setup()
    from django.core.management import call_command
    from django.test.utils import setup_test_environment

    from bench.seed import seed_records
    from workers.models import JobRecord

    setup_test_environment()  # lets the test client run against ALLOWED_HOSTS
    call_command("migrate", verbosity=0)
    have = JobRecord.objects.count()
    if have < args.records:
        missing = args.records - have
        started = time.perf_counter()
        seed_records(missing, dead=int(missing * args.dead_share), retrying=20, span=timedelta(days=7),
                     prefix=f"bench{have}")  # fmt: skip
        print(f"seeded {missing} records in {time.perf_counter() - started:.1f} s")
    newest = JobRecord.objects.order_by("-enqueued_at").values_list("job_id", flat=True).first()
    dead = JobRecord.objects.filter(status="dead").values_list("job_id", flat=True).first()
    paths = [
        "/dashboard/",
        "/dashboard/jobs/",
        "/dashboard/jobs/?status=dead",
        "/dashboard/jobs/?queue=low&func=shop.jobs.send_receipt",
        "/dashboard/jobs/?q=customer_email",
        f"/dashboard/jobs/{newest}/",
        f"/dashboard/jobs/{dead}/",
        "/dashboard/dead-letters/",
        "/dashboard/queues/default/",
    ]
    print(f"{JobRecord.objects.count()} job records; median of {args.repeat} requests")
    for path, ms in page_times(paths, repeat=args.repeat).items():
        print(f"{ms:9.1f} ms  {path}")


if __name__ == "__main__":
    main()
