"""django-rq's ``rqworker``, with jobsite's defaults: the tracking worker, its recorder and
RQ's scheduler (so delayed retries and scheduled jobs run) all on unless switched off, and
jobsite's Redis client (REDIS_URL, or the master Sentinel names) under all of them."""

from __future__ import annotations

import os
import sys
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
        self._work(args, options)

    def _work(self, queues: tuple[str, ...], options: dict[str, Any]) -> None:
        """django-rq's ``handle``, but the worker's queues get jobsite's client: django-rq
        would build one from RQ_QUEUES, and every client jobsite makes comes from
        workers.redis (so a Sentinel fail-over is followed by the worker, the work horses
        and RQ's scheduler, which rebuilds its client from the worker's)."""
        from django.core.management.base import CommandError
        from django_rq.jobs import get_job_class
        from django_rq.queues import get_queues
        from django_rq.utils import reset_db_connections
        from django_rq.workers import get_exception_handlers, get_worker_class
        from redis.exceptions import ConnectionError as RedisConnectionError
        from rq.logutils import setup_loghandlers

        from workers.redis import new_connection
        from workers.runtime.worker import NameTaken

        if options.get("pid"):
            with open(os.path.expanduser(options["pid"]), "w") as fp:
                fp.write(str(os.getpid()))
        level = {0: "WARNING", 1: "INFO"}.get(options["verbosity"], "DEBUG")
        setup_loghandlers(level)
        try:
            job_class = get_job_class(options["job_class"])
            rq_queues = get_queues(
                *queues, job_class=job_class, queue_class=options["queue_class"], connection=new_connection()
            )
            worker = get_worker_class(options["worker_class"])(
                rq_queues,
                connection=rq_queues[0].connection,
                exception_handlers=get_exception_handlers() or None,
                job_class=job_class,
                queue_class=type(rq_queues[0]),
                name=options["name"],
                worker_ttl=options["worker_ttl"],
                serializer=options["serializer"],
            )
            reset_db_connections()  # no database connection crosses a fork
            worker.work(
                burst=options.get("burst", False),
                with_scheduler=options.get("with_scheduler", False),
                logging_level=level,
                max_jobs=options["max_jobs"],
                max_idle_time=options["max_idle_time"],
            )
        except RedisConnectionError as exc:
            self.stderr.write(str(exc))
            sys.exit(1)
        except NameTaken as exc:
            raise CommandError(str(exc)) from None


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
