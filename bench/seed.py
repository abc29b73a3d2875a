"""Fill the database with realistic job history, fast, for benchmarks and demos.

    from bench.seed import seed_records
    seed_records(100_000, dead=2_000)        # inside a configured Django (bulk_create, any database)

    from bench.seed import copy_records
    copy_records(1, 10_000_000)              # PostgreSQL's COPY: millions of rows, indexes and counts rebuilt after

or from the shell (uses DATABASE_URL like the app):

    DJANGO_SETTINGS_MODULE=jobsite.settings.base python -m bench.seed 100000 --dead 2000
    DJANGO_SETTINGS_MODULE=jobsite.settings.base python -m bench.seed 10000000 --copy
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

QUEUES = ("high", "default", "low")
FUNCS = (
    "shop.jobs.send_receipt",
    "shop.jobs.render_invoice",
    "media.jobs.resize_image",
    "search.jobs.reindex_product",
    "billing.jobs.charge_card",
    "mail.jobs.send_newsletter",
)
FAILURES = (
    ("builtins.ConnectionError", "connection refused by smtp.example.com:587", "send"),
    ("builtins.TimeoutError", "payment gateway did not answer within 30 s", "charge"),
    ("builtins.KeyError", "'customer_email'", "render"),
    ("PIL.UnidentifiedImageError", "cannot identify image file 'upload-8812.heic'", "open"),
)


def _traceback(func: str, frame: str, exc_type: str, message: str) -> str:
    module = func.rsplit(".", 1)[0].replace(".", "/")
    return (
        "Traceback (most recent call last):\n"
        f'  File "/srv/app/{module}.py", line 42, in {func.rsplit(".", 1)[1]}\n'
        f"    result = {frame}(payload)\n"
        f'  File "/srv/app/{module}.py", line 88, in {frame}\n'
        f"    raise {exc_type.rsplit('.', 1)[1]}({message!r})\n"
        f"{exc_type}: {message}"
    )


def seed_records(
    n: int,
    *,
    dead: int = 0,
    retrying: int = 0,
    span: timedelta = timedelta(days=7),
    now: datetime | None = None,
    batch_size: int = 5000,
    seed: int = 7,
    prefix: str = "seed",
) -> int:
    """Create ``n`` JobRecords spread over ``span`` before ``now`` (newest last); ``dead`` of
    them, spread evenly, are dead letters and ``retrying`` are retrying, each with its
    JobError history; the rest finished. Also writes the matching per-minute JobMetric
    roll-ups. Returns the number of records created."""
    from django.db import transaction
    from django.utils import timezone

    from workers.models import JobError, JobMetric, JobRecord, JobStatus
    from workers.recording.apply import fingerprint

    rng = random.Random(seed)
    now = now or timezone.now()
    start = now - span
    step = span / max(n, 1)
    metrics: dict[tuple[datetime, str, str], list[float]] = {}
    dead_at = set(range(n - 1, -1, -max(n // max(dead, 1), 1))[:dead])
    retrying_at = {i - 1 for i in range(n - 1, 0, -max(n // max(retrying, 1), 1))[:retrying]} - dead_at
    created = 0
    with transaction.atomic():
        for offset in range(0, n, batch_size):
            records, failures = [], []
            for i in range(offset, min(offset + batch_size, n)):
                func = FUNCS[i % len(FUNCS)]
                queue = QUEUES[(i // 7) % len(QUEUES)]
                enqueued = start + step * i
                runtime = round(rng.uniform(0.02, 2.5), 3)
                status = (
                    JobStatus.DEAD if i in dead_at else JobStatus.RETRYING if i in retrying_at else JobStatus.FINISHED
                )
                attempts = 3 if status == JobStatus.DEAD else 1
                # Failed attempts 5 s apart: the last one ends the record.
                ended = enqueued + timedelta(seconds=runtime + 0.05 + 5 * (attempts - 1))
                failure = FAILURES[i % len(FAILURES)] if status != JobStatus.FINISHED else None
                order, locale = rng.randint(1000, 99999), rng.choice(["en", "de", "fr"])
                records.append(
                    JobRecord(
                        job_id=f"{prefix}-{i:08d}",
                        queue=queue,
                        func=func,
                        args_repr=f"({order},)",
                        kwargs_repr=f"{{'locale': '{locale}'}}",
                        args_json={"args": [order], "kwargs": {"locale": locale}},
                        status=status,
                        attempts=attempts,
                        max_attempts=3,
                        enqueued_at=enqueued,
                        started_at=ended - timedelta(seconds=runtime),
                        ended_at=ended,
                        duration=runtime,
                        worker=f"worker-{i % 4 + 1}",
                        result_repr="None" if status == JobStatus.FINISHED else "",
                        last_error=f"{failure[0]}: {failure[1]}" if failure else "",
                        last_fingerprint=(
                            fingerprint(failure[0], func, _traceback(func, failure[2], failure[0], failure[1]))
                            if failure
                            else ""
                        ),
                        status_changed_at=ended,
                    )
                )
                if failure:
                    failures.append((i, func, failure, attempts, ended))
                minute = ended.replace(second=0, microsecond=0)
                m = metrics.setdefault((minute, queue, func), [0, 0, 0, 0, 0, 0.0, 0.0])
                m[0] += 1
                m[1] += attempts
                m[2] += status == JobStatus.FINISHED
                m[3] += attempts if failure else 0
                m[4] += status == JobStatus.DEAD
                m[5] += runtime
                m[6] = max(m[6], runtime)
            JobRecord.objects.bulk_create(records, batch_size=batch_size)
            created += len(records)
            if failures:
                ids = dict(
                    JobRecord.objects.filter(job_id__in=[f"{prefix}-{i:08d}" for i, *_ in failures]).values_list(
                        "job_id", "pk"
                    )
                )
                errors = []
                for i, func, (exc_type, message, frame), attempts, ended in failures:
                    tb = _traceback(func, frame, exc_type, message)
                    for attempt in range(1, attempts + 1):
                        errors.append(
                            JobError(
                                job_id=ids[f"{prefix}-{i:08d}"],
                                attempt=attempt,
                                exc_type=exc_type,
                                message=message,
                                traceback=tb,
                                worker=f"worker-{(i + attempt) % 4 + 1}",
                                failed_at=ended - timedelta(seconds=(attempts - attempt) * 5),
                                fingerprint=fingerprint(exc_type, func, tb),
                            )
                        )
                JobError.objects.bulk_create(errors, batch_size=batch_size)
        JobMetric.objects.bulk_create(
            [
                JobMetric(
                    minute=minute, queue=queue, func=func, enqueued=m[0], started=m[1], finished=m[2],
                    failed=m[3], dead=m[4], runtime_total=m[5], runtime_max=m[6],
                )
                for (minute, queue, func), m in metrics.items()
            ],
            batch_size=batch_size,
            ignore_conflicts=True,
        )  # fmt: skip
    return created


# --- COPY: millions of rows -------------------------------------------------------------

COPY_FUNCS = [f"shop.jobs.task_{n}" for n in range(8)]
COPY_QUEUES = ["high", "default", "low"]
DEAD_EVERY = 100  # every 100th record is a dead letter with three failed attempts
NEEDLE_AT = 3  # the one job whose arguments hold NEEDLE ("a term in one recent job")
NEEDLE = "zebra7f3a9c"
_RECORD_COLUMNS = (
    "id", "job_id", "queue", "func", "args_repr", "kwargs_repr", "args_json", "status", "attempts", "max_attempts",
    "enqueued_at", "started_at", "ended_at", "duration", "worker", "result_repr", "key", "progress_message",
    "origin", "parent_job_id", "last_error", "last_fingerprint", "status_changed_at", "created_at", "updated_at",
    "status_reason",
)  # fmt: skip
_ERROR_COLUMNS = ("job_id", "attempt", "exc_type", "message", "traceback", "worker", "failed_at", "fingerprint")
# The failures dead letters end with, in turn: what a search for an error word narrows.
COPY_FAILURES = (
    ("builtins.ValueError", "card declined"),
    ("builtins.ConnectionError", "connection refused by smtp.example.com:587"),
    ("builtins.TimeoutError", "payment gateway did not answer within 30 s"),
    ("builtins.KeyError", "'customer_email'"),
)


def _copy_traceback(exc_type: str, message: str) -> str:
    name = exc_type.rsplit(".", 1)[1]
    return f'Traceback (most recent call last):\\n  File "shop/jobs.py", line 12, in charge\\n{name}: {message}'


def copy_job_id(g: int) -> str:
    """Record ``g``'s job id: hex that starts differently for every record, as RQ's uuids do."""
    return f"{(g * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFF:012x}{g:010x}"


def copy_order_id(g: int) -> int:
    return 100_000_000 + g


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f+00")


def _record_lines(first: int, last: int, now: datetime) -> Iterator[tuple[str, list[str]]]:
    """COPY text lines of records ``first``..``last`` (1 = newest, 2.5 s apart) and of the
    failed attempts of the dead ones. Only characters COPY needs no escape for, but ``\\n``."""
    fingerprints = {
        (f, kind): hashlib.md5(f"{f}|{kind}".encode()).hexdigest()[:16]
        for f in COPY_FUNCS
        for kind in range(len(COPY_FAILURES))
    }
    for g in range(first, last + 1):
        enqueued = now - timedelta(seconds=2.5 * g)
        started, ended = enqueued + timedelta(seconds=1), enqueued + timedelta(seconds=2)
        func, queue = COPY_FUNCS[g % 8], COPY_QUEUES[g % 3]
        dead = g % DEAD_EVERY == 7
        order, customer = copy_order_id(g), f"c{g % 100_000}"
        extra = {"ref": NEEDLE} if g == NEEDLE_AT else {}
        args_repr = "({" + f"'order_id': {order}" + "".join(f", '{k}': '{v}'" for k, v in extra.items()) + "},)"
        kwargs_repr = f"{{'customer': '{customer}', 'locale': 'en'}}"
        args_json = json.dumps(
            {"args": [{"order_id": order, **extra}], "kwargs": {"customer": customer, "locale": "en"}},
            separators=(",", ":"),
        )
        e, s_, t = _stamp(enqueued), _stamp(started), _stamp(ended)
        kind = (g // DEAD_EVERY) % len(COPY_FAILURES)
        exc_type, message = COPY_FAILURES[kind]
        fp = fingerprints[(func, kind)] if dead else ""
        line = "\t".join((
            str(g), copy_job_id(g), queue, func, args_repr, kwargs_repr, args_json.replace("\\", "\\\\"),
            "dead" if dead else "finished", "3" if dead else "1", "3", e, s_, t, "1.0", f"bench-worker-{g % 4}",
            "" if dead else "None", "", "", "event", "", f"{exc_type}: {message}" if dead else "", fp,
            t, e, e, "",
        ))  # fmt: skip
        errors = []
        if dead:
            for attempt in (1, 2, 3):
                errors.append("\t".join((
                    str(g), str(attempt), exc_type, message, _copy_traceback(exc_type, message), "bench-worker", t, fp,
                )))  # fmt: skip
        yield line, errors


def copy_records(first: int, last: int, *, now: datetime | None = None, rebuild_indexes: bool = False) -> float:
    """Load records ``first``..``last`` (and their errors) with PostgreSQL's COPY; with
    ``rebuild_indexes`` the job table's secondary indexes are dropped first and built again
    after (what a bulk load does: much faster than updating them row by row). The job
    status counts' triggers are off during the load and the counts rebuilt after. Ends with
    VACUUM ANALYZE, as autovacuum would leave a table that has lived a while. Returns seconds."""
    from django.db import connection, transaction

    from workers.models import JobError, JobRecord
    from workers.services.counts import job_status_counts_suspended

    started = time.monotonic()
    now = now or datetime.now(UTC)
    records, errors = JobRecord._meta.db_table, JobError._meta.db_table
    # The status-count triggers would collect every copied row for one count: off for the
    # load, the counts rebuilt from the rows after it (in the same transaction).
    with transaction.atomic(), job_status_counts_suspended(), connection.cursor() as wrapper:
        cursor = wrapper.cursor  # psycopg's own, for COPY
        dropped: list[tuple[str, str]] = []
        if rebuild_indexes:
            cursor.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s AND indexname NOT IN"
                " (SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass)",
                [records, records],
            )
            dropped = list(cursor.fetchall())
            for name, _definition in dropped:
                cursor.execute(f'DROP INDEX "{name}"')
        pending_errors: list[str] = []
        with cursor.copy(f"COPY {records} ({', '.join(_RECORD_COLUMNS)}) FROM STDIN") as copy_in:
            chunk: list[str] = []
            for line, failed in _record_lines(first, last, now):
                chunk.append(line)
                pending_errors.extend(failed)
                if len(chunk) >= 5000:
                    copy_in.write("\n".join(chunk) + "\n")
                    chunk = []
            if chunk:
                copy_in.write("\n".join(chunk) + "\n")
        with cursor.copy(f"COPY {errors} ({', '.join(_ERROR_COLUMNS)}) FROM STDIN") as copy_in:
            for n in range(0, len(pending_errors), 5000):
                copy_in.write("\n".join(pending_errors[n : n + 5000]) + "\n")
        if dropped:
            cursor.execute("SET LOCAL maintenance_work_mem = '512MB'")
            for _name, definition in dropped:
                cursor.execute(definition)
        cursor.execute(f"SELECT setval(pg_get_serial_sequence('{records}', 'id'), (SELECT max(id) FROM {records}))")
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {records}")
        cursor.execute(f"VACUUM ANALYZE {errors}")
    return time.monotonic() - started


def main() -> None:
    import django

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("n", type=int)
    parser.add_argument("--dead", type=int, default=0)
    parser.add_argument("--retrying", type=int, default=0)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--prefix", default="seed")
    parser.add_argument("--copy", action="store_true", help="PostgreSQL COPY (bench rows; --dead etc. ignored)")
    args = parser.parse_args()
    django.setup()
    if args.copy:
        from workers.models import JobRecord

        first = (JobRecord.objects.order_by("-id").values_list("id", flat=True).first() or 0) + 1
        seconds = copy_records(first, first + args.n - 1, rebuild_indexes=args.n >= 1_000_000)
        print(f"copied {args.n} job records in {seconds:.0f} s")
        return
    created = seed_records(
        args.n, dead=args.dead, retrying=args.retrying, span=timedelta(days=args.days), prefix=args.prefix
    )
    print(f"created {created} job records")


if __name__ == "__main__":
    main()
