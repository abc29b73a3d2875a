from typing import Any

from django.apps import AppConfig
from django.core import checks


class WorkersConfig(AppConfig):
    name = "workers"
    verbose_name = "Background jobs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        checks.register(check_declared_schedules)
        checks.register(check_redis_settings)


def check_declared_schedules(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """`manage.py check` (and runserver) report a bad JOBSITE_SCHEDULES before the scheduler starts."""
    from .conf import declared_schedules
    from .scheduling.validation import declared_schedule_errors

    return [
        checks.Error(problem, id="workers.E001", hint="See README, 'Schedules and ordered jobs'.")
        for problem in declared_schedule_errors(declared_schedules())
    ]


def check_redis_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """`manage.py check` reports malformed Redis settings (REDIS_SENTINELS, ENQUEUE_WAIT...)."""
    from django.core.exceptions import ImproperlyConfigured

    from .conf import enqueue_wait, redis_settings

    problems: list[checks.CheckMessage] = []
    for read in (redis_settings, enqueue_wait):
        try:
            read()
        except ImproperlyConfigured as exc:
            problems.append(checks.Error(str(exc), id="workers.E002", hint="See README, 'Redis Sentinel'."))
    return problems
