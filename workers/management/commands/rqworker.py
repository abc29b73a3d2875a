"""django-rq's ``rqworker``, with jobsite's defaults: the tracking worker, its recorder and
RQ's scheduler (so delayed retries and scheduled jobs run) all on unless switched off."""

from __future__ import annotations

from typing import Any

from django_rq.management.commands.rqworker import Command as DjangoRQWorkerCommand


class Command(DjangoRQWorkerCommand):
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

        if not args:
            args = tuple(queue_names())  # all queues, in priority order
        options["with_scheduler"] = not options["without_scheduler"]
        if options["simple"] and not options.get("worker_class"):
            options["worker_class"] = "workers.runtime.worker.TrackingSimpleWorker"
        if options["no_recorder"]:
            from workers.runtime.worker import TrackingMixin

            TrackingMixin.run_recorder = False
        super().handle(*args, **options)
