"""Delete old job history: `manage.py prune_jobs --older-than 30d`."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from workers.management.base import SettingsChecked, usage_error
from workers.services.retention import parse_age, retention_apply


class Command(SettingsChecked, BaseCommand):
    help = (
        "Delete ended job records (finished, canceled, stopped, discarded dead letters) and their errors "
        "older than --older-than, in batches; dead letters are kept unless --include-dead. "
        "Also deletes roll-up minutes older than JOBSITE['METRIC_RETENTION_DAYS'] (all-time totals stay) "
        "and audit entries older than JOBSITE['AUDIT_RETENTION_DAYS']."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--older-than",
            default=None,
            help="Age like 30d, 12h, 2w (default: JOBSITE['RETENTION_DAYS'] days).",
        )
        parser.add_argument("--include-dead", action="store_true", help="Delete old dead letters too.")
        parser.add_argument("--batch-size", type=int, default=None, help="Rows per delete (default PRUNE_BATCH).")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["older_than"] is not None:
            try:
                age = parse_age(options["older_than"])
            except ValueError as exc:
                raise usage_error(str(exc)) from exc
            if age.total_seconds() <= 0:
                raise usage_error("--older-than must be more than zero")
        if options["batch_size"] is not None and options["batch_size"] < 1:
            raise usage_error("--batch-size must be at least 1")
        result = retention_apply(
            older_than=options["older_than"], include_dead=options["include_dead"], batch_size=options["batch_size"]
        )
        self.stdout.write(result.summary())
