from typing import Any

from django.apps import AppConfig
from django.core import checks


class WorkersConfig(AppConfig):
    name = "workers"
    verbose_name = "Background jobs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        checks.register(check_declared_schedules)
        checks.register(check_redaction)
        checks.register(check_settings)
        checks.register(check_plain_rq_retry)


def check_declared_schedules(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """`manage.py check` (and runserver) report a bad JOBSITE_SCHEDULES before the scheduler starts."""
    from .conf import declared_schedules
    from .scheduling.validation import DECLARED_SCHEDULES_CHECK, declared_schedule_errors

    return [
        checks.Error(problem, id=DECLARED_SCHEDULES_CHECK, hint="See README, 'Schedules and ordered jobs'.")
        for problem in declared_schedule_errors(declared_schedules())
    ]


def check_redaction(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """`manage.py check` reports a bad JOBSITE["REDACT"] (workers skip its bad entries and go on)."""
    from .conf import setting
    from .redaction import setting_errors

    return [
        checks.Error(problem, id="workers.E005", hint="See README, 'Security', 'Redaction'.")
        for problem in setting_errors(setting("REDACT"))
    ]


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """`manage.py check` reports Redis settings (REDIS_URL or Sentinel, ENQUEUE_WAIT), a
    serializer or a queue list jobsite cannot use."""
    from .conf import settings_problems

    return [
        checks.Error(problem, id="workers.E002", hint="See README, 'Configuration'.") for problem in settings_problems()
    ]


def check_plain_rq_retry(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """A PLAIN_RQ_RETRY the retry decision cannot read is reported (workers fall back to "rq")."""
    from .conf import setting
    from .rq.retry import plain_rq_retry_error

    problem = plain_rq_retry_error(setting("PLAIN_RQ_RETRY"))
    return [checks.Error(problem, id="workers.E002", hint="See README, 'Retries'.")] if problem else []
