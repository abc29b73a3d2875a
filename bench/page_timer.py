"""A page timer on a database of its own, driven by bench/pages.py.

    DATABASE_URL=… python -m bench.page_timer --records 10000

Loads the database (migrate, then ``--records`` job records with COPY and seven days of
roll-ups), says ``ready``, then for each URL read from stdin requests it once through
Django's test Client as a staff user and answers ``<ms> <status> <rows listed>``. Two of
these, one per size, let pages.py alternate requests between a small and a large history
so that the machine's other load hits both alike.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime


def main() -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobsite.settings.base")
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, required=True)
    parser.add_argument("--now", type=float, required=True, help="epoch seconds the newest record is at")
    parser.add_argument("--migrate", action="store_true")
    args = parser.parse_args()
    django.setup()

    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import setup_test_environment

    from workers.models import JobError, JobMetric, JobMetricTotal, JobRecord

    from .pages import load_metrics
    from .seed import copy_records

    setup_test_environment()  # lets the test client run against ALLOWED_HOSTS
    if args.migrate:
        call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        tables = ", ".join(m._meta.db_table for m in (JobError, JobRecord, JobMetric, JobMetricTotal))
        cursor.execute(f"TRUNCATE {tables} CASCADE")
    load_metrics()
    now = datetime.fromtimestamp(args.now, tz=UTC)
    seconds = copy_records(1, args.records, now=now, rebuild_indexes=args.records > 100_000)
    with connection.cursor() as cursor:
        cursor.execute("CHECKPOINT")  # the load's dirty pages are written before timing
    user_model = get_user_model()
    user = user_model.objects.filter(username="bench").first() or user_model.objects.create_superuser(
        "bench", "", "bench-password"
    )
    client = Client()
    client.force_login(user)
    print(f"ready {seconds:.1f}", flush=True)
    for line in sys.stdin:
        url = line.strip()
        if not url:
            continue
        start = time.perf_counter()
        response = client.get(url)
        ms = (time.perf_counter() - start) * 1000
        body = response.content.decode(errors="replace")
        rows = body.count('data-job-id="') + body.count('<th class="field-job_id">')
        print(f"{ms:.3f} {response.status_code} {rows}", flush=True)


if __name__ == "__main__":
    main()
