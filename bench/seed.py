"""Fill the database with realistic job history, fast (bulk_create), for benchmarks and demos.

    from bench.seed import seed_records
    seed_records(100_000, dead=2_000)        # inside a configured Django

or from the shell (uses DATABASE_URL like the app):

    DJANGO_SETTINGS_MODULE=jobsite.settings.base python -m bench.seed 100000 --dead 2000
"""

from __future__ import annotations

import argparse
import random
from datetime import datetime, timedelta

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
                records.append(
                    JobRecord(
                        job_id=f"{prefix}-{i:08d}",
                        queue=queue,
                        func=func,
                        args_repr=f"({rng.randint(1000, 99999)},)",
                        kwargs_repr=f"{{'locale': '{rng.choice(['en', 'de', 'fr'])}'}}",
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


def main() -> None:
    import django

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("n", type=int)
    parser.add_argument("--dead", type=int, default=0)
    parser.add_argument("--retrying", type=int, default=0)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--prefix", default="seed")
    args = parser.parse_args()
    django.setup()
    created = seed_records(
        args.n, dead=args.dead, retrying=args.retrying, span=timedelta(days=args.days), prefix=args.prefix
    )
    print(f"created {created} job records")


if __name__ == "__main__":
    main()
