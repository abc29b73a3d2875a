"""What jobsite's commands share: bad settings or bad arguments end them with one line and
exit status 2, before they touch Redis or the database, never with a traceback; Redis or
the database out of reach ends them with one line and exit status 1."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError
from django.db import InterfaceError, OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

# argparse's own status for a bad command line; Django's CommandError defaults to 1.
USAGE_ERROR = 2


def usage_error(message: str) -> CommandError:
    return CommandError(message, returncode=USAGE_ERROR)


class SettingsChecked:
    """Mixed into a command (before BaseCommand): check jobsite's settings first."""

    def execute(self, *args: Any, **options: Any) -> Any:
        from workers.conf import one_line, redis_description, settings_problems

        # Not JOBSITE_SCHEDULES: one bad schedule stops no command; the scheduler skips it
        # and says so, and `manage.py check` reports it (workers.E001).
        problems = settings_problems()
        if problems:
            raise usage_error("bad settings: " + "; ".join(problems))
        try:
            return super().execute(*args, **options)  # type: ignore[misc]
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise CommandError(f"Redis is out of reach ({redis_description()}): {one_line(exc)}") from exc
        except (OperationalError, InterfaceError) as exc:
            raise CommandError(f"the database is out of reach or not ready: {one_line(exc)}") from exc
