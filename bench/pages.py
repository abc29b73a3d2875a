"""(c) Dashboard server time with 1,000,000 job records (10,000 dead) / with 10,000.

Rows are generated inside PostgreSQL (INSERT ... SELECT over generate_series: no row
crosses the wire), newest first: the first 10,000 cover the last seven hours, the next
990,000 the month before, 1 % of them dead with three failed attempts each. The roll-ups
hold seven days of minutes for 3 queues x 8 functions, the same in both measurements:
their size follows time and functions, not the number of jobs.

Each page is requested through Django's test Client (middleware, session, template)
as a logged-in staff user; the figure is the median of repeated requests after warm-up.
Pages that do not exist yet (another branch builds them) are reported as not available.
"""

from __future__ import annotations

import os
import time

from django.contrib.auth import get_user_model
from django.db import connection as db
from django.test import Client
from django.urls import NoReverseMatch, reverse
from redis import Redis

from workers.models import RUNTIME_BUCKET_FIELDS, JobError, JobMetric, JobRecord

from .common import Result, log, median, not_available

PAGES = {
    "overview": "dashboard:overview",
    "jobs list": "dashboard:jobs",
    "dead letters": "dashboard:dead_letters",
    "/metrics": "metrics",
}
SMALL, LARGE, DEAD_EVERY = 10_000, 1_000_000, 100
FUNCS = [f"shop.jobs.task_{n}" for n in range(8)]
QUEUES = ["high", "default", "low"]
TARGET_MS = 100.0


def _load_records(first: int, last: int) -> None:
    """Job records first..last (1 = newest, 2.5 s apart); every 100th dead with 3 errors."""
    records, errors = JobRecord._meta.db_table, JobError._meta.db_table
    funcs = "ARRAY[" + ",".join(f"'{f}'" for f in FUNCS) + "]"
    queues = "ARRAY[" + ",".join(f"'{q}'" for q in QUEUES) + "]"
    with db.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {records} (job_id, queue, func, args_repr, kwargs_repr, status, attempts, max_attempts,
                enqueued_at, started_at, ended_at, duration, worker, result_repr, key, progress_message, origin,
                parent_job_id, last_error, last_fingerprint, status_changed_at, created_at, updated_at)
            SELECT 'bench-' || g, ({queues})[1 + g %% 3], ({funcs})[1 + g %% 8], '(' || g || ', ''order'')', '{{}}',
                CASE WHEN g %% {DEAD_EVERY} = 7 THEN 'dead' ELSE 'finished' END,
                CASE WHEN g %% {DEAD_EVERY} = 7 THEN 3 ELSE 1 END, 3,
                t, t + interval '1 second', t + interval '2 seconds', 1.0, 'bench-worker', '', '', '', 'event', '',
                CASE WHEN g %% {DEAD_EVERY} = 7 THEN 'builtins.ValueError: card declined' ELSE '' END,
                CASE WHEN g %% {DEAD_EVERY} = 7 THEN md5(({funcs})[1 + g %% 8])::varchar(16) ELSE '' END,
                t + interval '2 seconds', t, t
            FROM (SELECT g, now() - g * interval '2.5 seconds' AS t FROM generate_series(%s, %s) g) s
            """,
            [first, last],
        )
        cursor.execute(
            f"""
            INSERT INTO {errors} (job_id, attempt, exc_type, message, traceback, worker, failed_at, fingerprint)
            SELECT r.id, a, 'builtins.ValueError', 'card declined',
                'Traceback (most recent call last):' || chr(10) || '  File "shop/jobs.py", line 12, in charge'
                    || chr(10) || 'ValueError: card declined',
                'bench-worker', r.ended_at, md5(r.func)::varchar(16)
            FROM {records} r CROSS JOIN generate_series(1, 3) a
            WHERE r.status = 'dead' AND r.job_id IN (SELECT 'bench-' || g FROM generate_series(%s, %s) g
                                                     WHERE g %% {DEAD_EVERY} = 7)
            """,
            [first, last],
        )
        # What autovacuum does for a table that has lived a while: statistics and the
        # visibility map (index-only scans).
        cursor.execute(f"VACUUM ANALYZE {records}")
        cursor.execute(f"VACUUM ANALYZE {errors}")


def _load_metrics(days: int = 7) -> None:
    table = JobMetric._meta.db_table
    buckets = ", ".join(RUNTIME_BUCKET_FIELDS)
    bucket_values = ", ".join("(m %% 7)" if i in (3, 4, 5) else "0" for i in range(len(RUNTIME_BUCKET_FIELDS)))
    with db.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {table} (minute, queue, func, enqueued, started, finished, failed, dead, runtime_total,
                runtime_max, {buckets})
            SELECT date_trunc('minute', now()) - m * interval '1 minute', q, f, 20, 20, 19, 1, (m %% 2), 4.0, 0.9,
                {bucket_values}
            FROM generate_series(0, %s) m, unnest(%s::text[]) q, unnest(%s::text[]) f
            """,
            [days * 1440 - 1, QUEUES, FUNCS],
        )
        cursor.execute(f"VACUUM ANALYZE {table}")


def _time_pages(client: Client, urls: dict[str, str], repeats: int) -> dict[str, float]:
    timings = {}
    for label, url in urls.items():
        for _ in range(3):  # warm-up: templates, plans, caches
            response = client.get(url)
            if response.status_code != 200:
                raise AssertionError(f"{url} answered {response.status_code}")
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            client.get(url)
            samples.append((time.perf_counter() - start) * 1000)
        timings[label] = median(samples)
    return timings


def run(connection: Redis) -> list[Result]:
    large = int(os.environ.get("BENCH_RECORDS", str(LARGE)))
    repeats = int(os.environ.get("BENCH_PAGE_REPEATS", "15"))
    urls, missing = {}, []
    for label, name in PAGES.items():
        try:
            urls[label] = reverse(name)
        except NoReverseMatch:
            missing.append(label)
    JobError.objects.all().delete()
    JobRecord.objects.all().delete()
    JobMetric.objects.all().delete()
    user_model = get_user_model()
    user = user_model.objects.filter(username="bench").first() or user_model.objects.create_superuser(
        "bench", "", "bench-password"
    )
    client = Client()
    client.force_login(user)
    connection.flushdb()
    _load_metrics()
    _load_records(1, SMALL)
    log(f"pages: {JobRecord.objects.count()} records loaded; timing {', '.join(urls)}")
    small = _time_pages(client, urls, repeats)
    started = time.monotonic()
    _load_records(SMALL + 1, large)
    load_seconds = time.monotonic() - started
    dead = JobRecord.objects.filter(status="dead").count()
    log(f"pages: {large} records ({dead} dead) loaded in {load_seconds:.0f} s; timing again")
    big = _time_pages(client, urls, repeats)
    results = []
    for label in urls:
        ratio = big[label] / small[label]
        results.append(
            Result(
                name=f"server time {label}, {large // 1000}k/{SMALL // 1000}k records",
                ratio=ratio,
                target="<= 1.5",
                detail={
                    "ms_small": round(small[label], 2),
                    "ms_large": round(big[label], 2),
                    "records_large": large,
                    "dead_large": dead,
                    "extra_target": f"< {TARGET_MS:.0f} ms at {large} records",
                    "extra_target_met": big[label] < TARGET_MS,
                    "load_seconds": round(load_seconds, 1),
                },
                note=f"{small[label]:.1f} ms -> {big[label]:.1f} ms (target also < {TARGET_MS:.0f} ms)",
            )
        )
    for label in missing:
        results.append(
            not_available(
                f"server time {label}, 1M/10k records", "<= 1.5", f"no URL named {PAGES[label]!r} on this branch"
            )
        )
    return results
