"""The test settings with JOBSITE_SCHEDULES entries that JSON cannot hold, beside a good
one: what `run_scheduler` must start and fire with (tests/workers/test_schedules_broken.py)."""

from datetime import UTC, datetime

from jobsite.settings.test import *  # noqa: F403

_CHECK = "alerts.jobs.alerts_check"  # schedulable in every process (no test module needed)

JOBSITE_SCHEDULES = [
    {"name": "good", "func": _CHECK, "at": "2020-01-01T00:00:00Z", "queue": "high"},
    {"name": "objects", "func": _CHECK, "interval": 60, "args": [object()]},
    {"name": "a datetime", "func": _CHECK, "interval": 60, "kwargs": {"when": datetime(2026, 1, 1, tzinfo=UTC)}},
    {"name": "a set", "func": _CHECK, "interval": 60, "kwargs": {"s": {1, 2}}},
    {"name": "args not a list", "func": _CHECK, "interval": 60, "args": "abc"},
    {"name": "kwargs not a dict", "func": _CHECK, "interval": 60, "kwargs": [1]},
]
