"""(e) The recorder's apply rate with and without the search indexes, and with and without
the status-count triggers.

The search indexes (migration 0012: pg_trgm's GIN over the argument reprs and the last
error, the jsonb_path_ops GIN over the JSON arguments) and the triggers that keep the job
status counts for /metrics (migration 0015) are work for every record the recorder writes.
Here the recorder's own ``apply_events`` applies the events of new jobs — queued (with the
arguments, as reprs and JSON), then started and finished — in batches of RECORDER_BATCH,
in stream order (a job's later events arrive in a later batch), over a table that already
holds BENCH_APPLY_BASE records. For each of the two, rounds with it and without it
alternate (the indexes dropped and built again between them, the triggers disabled and
enabled, the table vacuumed), so a change in the machine's load hits both sides alike;
each side's rate is its events over its total time. Beside the wall-clock rate, the events
per CPU second of the recorder and its database session (which other work on a shared
machine does not move) and the WAL bytes per event. After the trigger rounds the counts
must equal a fresh count of the records (the rounds without triggers are recounted).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.db import connection
from redis import Redis

from workers import events
from workers.conf import setting
from workers.models import JobError, JobMetric, JobMetricTotal, JobRecord
from workers.reads.rollups import job_status_counts
from workers.recording.apply import apply_events
from workers.services.counts import job_status_count_triggers, job_status_counts_rebuild

from .common import Result, log, not_available
from .seed import copy_records

SEARCH_INDEXES = ("jobrecord_search_text", "jobrecord_search_args")
LAG = 200  # a job's started and finished events come this many jobs after its queued event


def _definitions() -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE indexname = ANY(%s)", [list(SEARCH_INDEXES)])
        return dict(cursor.fetchall())


def _stream(round_no: int, jobs: int, *, prefix: str) -> list[dict[str, Any]]:
    """The events of ``jobs`` new jobs in the order a stream would hold them."""
    now = time.time()
    stream: list[dict[str, Any]] = []

    def descriptor(n: int) -> dict[str, Any]:
        args, kwargs = ({"order_id": 500_000_000 + round_no * jobs + n, "sku": f"SKU-{n % 977}"},), {"locale": "en"}
        reprs = (events.safe_repr(args), events.safe_repr(kwargs))
        return {
            "q": "default", "f": f"shop.jobs.task_{n % 8}", "args": reprs[0], "kwargs": reprs[1], "enq": now,
            events.ARGS_JSON: events.json_arguments(args, kwargs, reprs=reprs), "max": 3,
        }  # fmt: skip

    def job_id(n: int) -> str:
        return f"apply-{prefix}-{round_no}-{n:07d}"

    for n in range(jobs + LAG):
        if n < jobs:
            stream.append(events.waiting("queued", job_id=job_id(n), attempt=1, descriptor=descriptor(n)) | {"t": now})
        if n >= LAG:
            m = n - LAG
            stream.append(
                events.started(job_id=job_id(m), attempt=1, worker="w1", start=now, descriptor=descriptor(m))
                | {"t": now + 0.001}
            )
            stream.append(
                events.finished(
                    job_id=job_id(m), attempt=1, worker="w1", result="None", start=now, end=now + 0.01,
                    descriptor=descriptor(m),
                )
                | {"t": now + 0.01}
            )  # fmt: skip
    return stream


def _apply(stream: list[dict[str, Any]], batch: int) -> tuple[float, float, float]:
    """Apply ``stream`` in batches: wall seconds, CPU seconds (this process and its database
    session, which share nothing with other work on the machine) and WAL bytes written."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid(), pg_current_wal_lsn()")
        pid, wal_start = cursor.fetchone()

    def cpu() -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK") + sum(os.times()[:2])

    cpu_start, started = cpu(), time.perf_counter()
    for n in range(0, len(stream), batch):
        apply_events(stream[n : n + batch])
    wall, cpu_seconds = time.perf_counter() - started, cpu() - cpu_start
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s)", [wal_start])
        wal = float(cursor.fetchone()[0])
    return wall, cpu_seconds, wal


def _toggle_indexes(definitions: dict[str, str]) -> Callable[[bool], None]:
    def toggle(on: bool) -> None:
        with connection.cursor() as cursor:
            for name, definition in definitions.items():
                cursor.execute(f"DROP INDEX IF EXISTS {name}")
                if on:
                    cursor.execute(definition)

    return toggle


def _toggle_triggers(names: list[str]) -> Callable[[bool], None]:
    def toggle(on: bool) -> None:
        with connection.cursor() as cursor:
            for name in names:
                cursor.execute(f"ALTER TABLE {JobRecord._meta.db_table} {'ENABLE' if on else 'DISABLE'} TRIGGER {name}")
        if on:  # what the rounds without them did not count
            job_status_counts_rebuild()

    return toggle


def _compare(
    what: str, toggle: Callable[[bool], None], *, base: int, jobs: int, rounds: int, batch: int
) -> list[Result]:
    """Rounds with ``what`` (``toggle(True)``) and without it, alternating; leaves it on."""
    seconds = {"with": 0.0, "without": 0.0}
    cpu = {"with": 0.0, "without": 0.0}
    wal = {"with": 0.0, "without": 0.0}
    applied = {"with": 0, "without": 0}
    for round_no, side in enumerate(["with", "without"] * rounds):
        toggle(side == "with")
        with connection.cursor() as cursor:
            # Each round starts from a vacuumed table, as autovacuum keeps a recorder's.
            cursor.execute(f"VACUUM ANALYZE {JobRecord._meta.db_table}")
            cursor.execute(f"VACUUM ANALYZE {JobMetric._meta.db_table}")
            cursor.execute("CHECKPOINT")
        stream = _stream(round_no, jobs, prefix=what.split()[-1])
        took, cpu_took, wal_bytes = _apply(stream, batch)
        seconds[side] += took
        cpu[side] += cpu_took
        wal[side] += wal_bytes
        applied[side] += len(stream)
        log(f"apply: round {round_no + 1} {side} {what}: {len(stream) / took:.0f} events/s, "
            f"{len(stream) / cpu_took:.0f} per CPU second, {wal_bytes / len(stream):.0f} WAL bytes each")  # fmt: skip
    toggle(True)  # leave the database as migrated
    rate = {side: applied[side] / seconds[side] for side in seconds}
    cpu_rate = {side: applied[side] / cpu[side] for side in cpu}
    wal_each = {side: wal[side] / applied[side] for side in wal}
    detail = {
        "events_per_s_with": round(rate["with"]),
        "events_per_s_without": round(rate["without"]),
        "events_per_cpu_s_with": round(cpu_rate["with"]),
        "events_per_cpu_s_without": round(cpu_rate["without"]),
        "wal_bytes_per_event_with": round(wal_each["with"]),
        "wal_bytes_per_event_without": round(wal_each["without"]),
        "events": applied["with"] + applied["without"],
        "base_records": base,
        "batch": batch,
    }
    return [
        Result(
            name=f"recorder apply rate with/without {what}",
            ratio=rate["with"] / rate["without"],
            target=">= 0.90",
            detail=detail,
            note=f"{base // 1000}k records, batches of {batch}: with {rate['with']:.0f} events/s, "
            f"without {rate['without']:.0f} events/s; WAL {wal_each['with']:.0f} / {wal_each['without']:.0f} B each",
        ),
        Result(
            name=f"recorder apply CPU with/without {what}",
            ratio=cpu_rate["with"] / cpu_rate["without"],
            target=">= 0.90",
            detail=detail,
            note=f"events per CPU second of the recorder and its database session: with {cpu_rate['with']:.0f}, "
            f"without {cpu_rate['without']:.0f}",
        ),
    ]


def run(connection_: Redis) -> list[Result]:
    base = int(os.environ.get("BENCH_APPLY_BASE", "100000"))
    jobs = int(os.environ.get("BENCH_APPLY_JOBS", "3000"))
    rounds = int(os.environ.get("BENCH_APPLY_ROUNDS", "4"))
    batch = setting("RECORDER_BATCH")
    sizes = {"base": base, "jobs": jobs, "rounds": rounds, "batch": batch}
    with connection.cursor() as cursor:
        tables = ", ".join(m._meta.db_table for m in (JobError, JobRecord, JobMetric, JobMetricTotal))
        cursor.execute(f"TRUNCATE {tables} CASCADE")
    copy_records(1, base, rebuild_indexes=True)
    results: list[Result] = []
    definitions = _definitions()
    if set(definitions) == set(SEARCH_INDEXES):
        results += _compare("search indexes", _toggle_indexes(definitions), **sizes)
    else:
        results.append(Result(name="recorder apply rate with/without search indexes", ratio=None,
                              target=">= 0.90", note=f"not available: the search indexes are missing "
                              f"({sorted(definitions)})"))  # fmt: skip
    triggers = job_status_count_triggers()
    if triggers:
        results += _compare("status-count triggers", _toggle_triggers(triggers), **sizes)
        counted, fresh = job_status_counts(), job_status_counts_rebuild()
        if counted != fresh:  # a benchmark of a count that is wrong measures nothing
            raise AssertionError(f"status counts {counted} after the rounds, a fresh count says {fresh}")
    else:
        results.append(not_available("recorder apply rate with/without status-count triggers", ">= 0.90",
                                     "the job table has no status-count triggers"))  # fmt: skip
    return results
