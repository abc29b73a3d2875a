"""The job that runs a bulk operation (``workers.services.bulk``)."""

from __future__ import annotations

from workers.api import progress
from workers.models import BulkOperation
from workers.services.bulk import bulk_operation_run as run


def _report(operation: BulkOperation) -> None:
    progress(operation.done + operation.skipped, max(operation.expected, 1), f"{operation.done} done")


def bulk_operation_run(operation_id: int) -> str:
    """Retry or discard the operation's jobs from its cursor on; RQ runs it again after a
    crash, and it goes on from where the last batch ended."""
    return run(operation_id=operation_id, report=_report).detail
