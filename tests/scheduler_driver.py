"""A scheduler process whose clock a test drives: it runs the real scheduler tick
(``schedules_fire_due``) at each moment the test pushes to it through Redis.

Started by tests/workers/test_schedules.py as ``python -m tests.scheduler_driver NAME``
with DJANGO_SETTINGS_MODULE, DATABASE_URL and REDIS_URL pointing at the test's own.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import django

django.setup()

from django.conf import settings  # noqa: E402
from redis import Redis  # noqa: E402

import tests.schedfuncs  # noqa: E402, F401  (registers the schedulable functions)
from workers.scheduling.tick import schedules_fire_due  # noqa: E402


def main(name: str) -> None:
    redis = Redis.from_url(settings.REDIS_URL)
    redis.rpush("test:clock:ready", name)
    while True:
        _key, raw = redis.blpop([f"test:clock:{name}"])
        if raw == b"stop":
            return
        fired = schedules_fire_due(now=datetime.fromtimestamp(float(raw), UTC))
        redis.rpush("test:clock:done", f"{name}:{len(fired)}")


if __name__ == "__main__":
    main(sys.argv[1])
