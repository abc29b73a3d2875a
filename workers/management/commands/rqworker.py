"""django-rq's ``rqworker``, with jobsite's defaults: the tracking worker, its recorder and
RQ's scheduler (so delayed retries and scheduled jobs run) all on unless switched off."""

from __future__ import annotations

from typing import Any

from django_rq.management.commands.rqworker import Command as DjangoRQWorkerCommand

from workers.management.base import SettingsChecked, usage_error


class Command(SettingsChecked, DjangoRQWorkerCommand):
    help = "Run a jobsite worker: tracked jobs, retries, the event recorder and RQ's scheduler."

    def add_arguments(self, parser: Any) -> None:
        from workers.conf import serializer

        super().add_arguments(parser)
        # Read payloads with the serializer producers write them with (JOBSITE_SERIALIZER).
        parser.set_defaults(serializer=serializer())
        parser.add_argument(
            "--without-scheduler",
            action="store_true",
            help="Do not run RQ's scheduler in this worker (delayed jobs and retries wait for one that does).",
        )
        parser.add_argument(
            "--no-recorder",
            action="store_true",
            help="Do not apply tracking events in this worker (run `manage.py record_events` instead).",
        )
        parser.add_argument(
            "--simple",
            action="store_true",
            help="Run jobs in the worker process itself (SimpleWorker) instead of a forked work horse.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from workers.conf import queue_names

        configured = queue_names()
        unknown = [name for name in args if name not in configured]
        if unknown:
            raise usage_error(
                f"unknown queue{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
                f"configured queues: {', '.join(configured)}"
            )
        _check_classes(options)
        if not args:
            args = tuple(configured)  # all queues, in priority order
        options["with_scheduler"] = not options["without_scheduler"]
        if options["simple"] and not options.get("worker_class"):
            options["worker_class"] = "workers.runtime.worker.TrackingSimpleWorker"
        if options["no_recorder"]:
            from workers.runtime.worker import TrackingMixin

            TrackingMixin.run_recorder = False
        super().handle(*args, **options)


# Options naming a class by its dotted path, and the class it must be (or extend).
_CLASS_OPTIONS = (
    ("worker_class", "--worker-class", "rq.worker.BaseWorker"),
    ("queue_class", "--queue-class", "rq.queue.Queue"),
    ("job_class", "--job-class", "rq.job.Job"),
)


def _check_classes(options: dict[str, Any]) -> None:
    """A class option that does not import, or is not the right kind of class, is a usage
    error here rather than a traceback from deep inside django-rq."""
    from rq.utils import import_attribute

    from workers.conf import one_line, serializer_problem

    for key, flag, base_path in _CLASS_OPTIONS:
        path = options.get(key)
        if not path:
            continue
        base = import_attribute(base_path)
        try:
            found = import_attribute(path)
        except Exception as exc:  # importing a dotted path can raise anything
            raise usage_error(f"{flag} {path!r} cannot be imported ({one_line(exc)})") from exc
        if not (isinstance(found, type) and issubclass(found, base)):  # type: ignore[arg-type]
            raise usage_error(f"{flag} {path!r} is not a subclass of {base_path}")
    problem = serializer_problem(options.get("serializer") or "", what="--serializer")
    if problem:
        raise usage_error(problem)
