"""(c) Server time of the pages and the searches with N job records (1 % dead) / with 10,000.

Records are loaded with PostgreSQL's COPY (``bench.seed.copy_records``; for the large load
the job table's secondary indexes are dropped and built again after, as a bulk load does),
newest first, 2.5 s apart: the first 10,000 cover the last seven hours. N is BENCH_RECORDS,
10,000,000 unless set (about 5 minutes and 8.5 GB of disk on a 2-core machine; the
database is dropped when the bench ends). Every 100th record is dead with
three failed attempts; arguments are JSON-able (``({'order_id': …},)``), so the JSON column
and both search indexes are filled. The roll-ups hold seven days of minutes for 3 queues x 8
functions, the same in both measurements: their size follows time and functions, not jobs.

The two sizes live in two databases at once (this run's and ``<name>_small``), each served
by a ``bench.page_timer`` process; requests alternate between them one by one, so that the
machine's other load hits both sizes alike. Each page is requested through Django's test
Client (middleware, session, template) as a logged-in staff user; the figure is the median
of repeated requests after warm-up. The
searches are those of the job list's box: a word in one recent job, a word in none, an
argument path, the start of a job id, a whole job id, and a combined filter (dead letters
of one queue and function family, with an error word, of the last six hours): each finds
the same jobs at both sizes, so the page shows the same rows and only finding them differs. The admin
changelist is timed plain and searching a job id. After the large load, the disk the search
needs (its two indexes and the JSON column) is reported per million records.
Pages that do not exist yet (another branch builds them) are reported as not available.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

from django.db import connection as db
from django.urls import NoReverseMatch, reverse
from redis import Redis

from workers.models import RUNTIME_BUCKET_FIELDS, JobMetric, JobRecord

from .common import Result, log, median, not_available
from .seed import COPY_FUNCS, COPY_QUEUES, NEEDLE, copy_job_id, copy_order_id

PAGES = {
    "overview": "dashboard:overview",
    "jobs list": "dashboard:jobs",
    "dead letters": "dashboard:dead_letters",
    "/metrics": "metrics",
    "admin changelist": "admin:workers_jobrecord_changelist",
}
SMALL, LARGE = 10_000, 10_000_000
FUNCS, QUEUES = COPY_FUNCS, COPY_QUEUES
TARGET_MS = 100.0
ROOT = Path(__file__).resolve().parent.parent


def _searches(now: datetime) -> dict[str, str]:
    """The search forms, as URLs: the same for both sizes (each finds the same jobs there)."""
    jobs, admin = reverse("dashboard:jobs"), reverse("admin:workers_jobrecord_changelist")
    # Six hours: within the small history too (seven hours), so both sizes find the same jobs.
    since = (now - timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M")
    forms = {
        "search, a word in one recent job": NEEDLE,
        "search, a word in no job": "qqqzzzxxx",
        "search, an argument path": f"args.order_id:{copy_order_id(5)}",
        "search, the start of a job id": f"id:{copy_job_id(2)[:8]}",
        "search, a whole job id": copy_job_id(1),
        "search, a combined filter": f"status:dead queue:default func:shop.jobs.* error:declined after:{since}",
    }
    urls = {label: f"{jobs}?{urlencode({'q': q})}" for label, q in forms.items()}
    urls["admin search, a job id"] = f"{admin}?{urlencode({'q': copy_job_id(1)})}"
    return urls


def _search_disk(records: int) -> Result:
    """Bytes the search adds per million records: its two indexes and the JSON column."""
    with db.cursor() as cursor:
        cursor.execute(
            "SELECT pg_relation_size('jobrecord_search_text'), pg_relation_size('jobrecord_search_args'),"
            f" (SELECT sum(pg_column_size(args_json)) FROM {JobRecord._meta.db_table})"
        )
        text_index, json_index, json_column = (int(v or 0) for v in cursor.fetchone())
    per_million = 1_000_000 / records
    mb = {name: value * per_million / 2**20 for name, value in
          (("text", text_index), ("json", json_index), ("column", json_column))}  # fmt: skip
    total = sum(mb.values())
    return Result(
        name="disk the search adds per 1M records",
        ratio=None,
        target="-",
        detail={
            "mb_per_million": round(total, 1),
            **{f"mb_{k}": round(v, 1) for k, v in mb.items()},
            "records": records,
        },  # fmt: skip
        note=f"{total:.0f} MB: trigram index {mb['text']:.0f} MB, JSON index {mb['json']:.0f} MB, "
        f"JSON column {mb['column']:.0f} MB ({records // 1000}k records)",
    )


def load_metrics(days: int = 7) -> None:
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


class _Timer:
    """A bench.page_timer process on a database of its own."""

    def __init__(self, database_url: str, records: int, now: datetime, *, migrate: bool) -> None:
        env = {**os.environ, "DATABASE_URL": database_url, "PYTHONUNBUFFERED": "1"}
        args = [sys.executable, "-m", "bench.page_timer", "--records", str(records), "--now", str(now.timestamp())]
        self.process = subprocess.Popen(
            [*args, *(["--migrate"] if migrate else [])], cwd=ROOT, env=env, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip

    def ready(self) -> float:
        line = self._line()
        if not line.startswith("ready"):
            raise RuntimeError(f"page timer: {line!r}")
        return float(line.split()[1])

    def get(self, url: str) -> tuple[float, int]:
        assert self.process.stdin is not None
        self.process.stdin.write(url + "\n")
        self.process.stdin.flush()
        ms, status, rows = self._line().split()
        if status != "200":
            raise AssertionError(f"{url} answered {status}")
        return float(ms), int(rows)

    def _line(self) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"page timer ended ({self.process.wait()})")
        return line.strip()

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _database_url(name: str) -> str:
    s = db.settings_dict
    auth = (s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "") + "@") if s.get("USER") else ""
    return f"postgres://{auth}{s.get('HOST') or '127.0.0.1'}:{s.get('PORT') or 5432}/{name}"


def _recreate(name: str) -> None:
    import psycopg

    with psycopg.connect(_database_url("postgres"), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')


def _drop(name: str) -> None:
    import psycopg

    with psycopg.connect(_database_url("postgres"), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(connection: Redis) -> list[Result]:
    large = int(os.environ.get("BENCH_RECORDS", str(LARGE)))
    repeats = int(os.environ.get("BENCH_PAGE_REPEATS", "15"))
    urls, missing = {}, []
    for label, name in PAGES.items():
        try:
            urls[label] = reverse(name)
        except NoReverseMatch:
            missing.append(label)
    now = datetime.now(UTC)
    urls.update(_searches(now))
    connection.flushdb()
    small_db = f"{db.settings_dict['NAME']}_small"
    _recreate(small_db)
    db.close()  # the large timer truncates and loads this database
    small = _Timer(_database_url(small_db), SMALL, now, migrate=True)
    big = _Timer(_database_url(db.settings_dict["NAME"]), large, now, migrate=False)
    try:
        small.ready()
        load_seconds = big.ready()
        log(f"pages: {SMALL} and {large} records loaded (the large with COPY in {load_seconds:.0f} s); timing")
        ms: dict[str, dict[str, float]] = {"small": {}, "big": {}}
        rows: dict[str, dict[str, int]] = {"small": {}, "big": {}}
        for label, url in urls.items():
            for timer in (small, big):
                for _ in range(3):  # warm-up: templates, plans, caches
                    timer.get(url)
            samples: dict[str, list[float]] = {"small": [], "big": []}
            for _ in range(repeats):  # one request each in turn: the machine's load hits both alike
                for side, timer in (("small", small), ("big", big)):
                    took, listed = timer.get(url)
                    samples[side].append(took)
                    rows[side][label] = listed
            for side in samples:
                ms[side][label] = median(samples[side])
        log(f"pages: rows the searches list, small {_searched(rows['small'])}, large {_searched(rows['big'])}")
    finally:
        small.close()
        big.close()
        _drop(small_db)
    dead = JobRecord.objects.filter(status="dead").count()
    size = f"{large // 1000}k/{SMALL // 1000}k records"
    results = []
    for label in urls:
        small_ms, big_ms = ms["small"][label], ms["big"][label]
        results.append(
            Result(
                name=f"server time {label}, {size}",
                ratio=big_ms / small_ms,
                target="<= 1.5",
                detail={
                    "url": urls[label],
                    "ms_small": round(small_ms, 2),
                    "ms_large": round(big_ms, 2),
                    "records_large": large,
                    "dead_large": dead,
                    "extra_target": f"< {TARGET_MS:.0f} ms at {large} records",
                    "extra_target_met": big_ms < TARGET_MS,
                    "load_seconds": round(load_seconds, 1),
                },
                note=f"{small_ms:.1f} ms -> {big_ms:.1f} ms (target also < {TARGET_MS:.0f} ms)",
            )
        )
    results.append(_search_disk(large))
    for label in missing:
        results.append(
            not_available(f"server time {label}, {size}", "<= 1.5", f"no URL named {PAGES[label]!r} on this branch")
        )
    return results


def _searched(rows: dict[str, int]) -> dict[str, int]:
    return {label.split(", ", 1)[1]: n for label, n in rows.items() if "search" in label}
