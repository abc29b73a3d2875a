"""Captured log lines: what a job logs while it runs is kept beside its record.

A handler is installed on the root logger for the duration of ``Job.perform()`` in the
process that runs the job (the work horse, or a simple worker). It keeps only records
emitted by that thread, ships each as a lifecycle event on the jobsite stream (so the job
never waits on the database), and stops after ``LOG_LINES_LIMIT`` lines per attempt,
noting how many it dropped. The recorder writes them as ``JobLogLine`` rows.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .. import events, redaction
from ..conf import setting

# The worker's own chatter is not the job's: RQ's and jobsite's machinery loggers.
_MACHINERY = ("rq", "workers.rq", "workers.recording", "workers.runtime", "workers.ordering")
_FORMATTER = logging.Formatter()


def _limit() -> int:
    return int(setting("LOG_LINES_LIMIT"))


class JobLogHandler(logging.Handler):
    def __init__(self, job: Any, attempt: int) -> None:
        super().__init__(level=logging.NOTSET)
        self.job, self.attempt = job, attempt
        self.thread = threading.get_ident()
        self.seq = 0
        self.dropped = 0

    def _is_job_record(self, record: logging.LogRecord) -> bool:
        if record.thread != self.thread:
            return False
        name = record.name
        return not any(name == m or name.startswith(m + ".") for m in _MACHINERY)

    def emit(self, record: logging.LogRecord) -> None:
        if not self._is_job_record(record):
            return
        if self.seq >= _limit():
            self.dropped += 1
            return
        try:
            text = record.getMessage()
            if record.exc_info:
                text = f"{text}\n{_FORMATTER.formatException(record.exc_info)}"
            self._ship(record.created, record.levelname, record.name, text)
        except Exception:
            self.handleError(record)

    def _ship(self, created: float, level: str, name: str, text: str) -> None:
        self.seq += 1
        text = redaction.call_of(self.job).text(text)
        line = [self.seq, created, level[:16], events.fitted(name, 255), events.bounded(text)]
        events.append(self.job.connection, events.log_lines(job_id=self.job.id, attempt=self.attempt, lines=[line]))

    def close_attempt(self) -> None:
        if self.dropped:
            note = f"… {self.dropped} more log lines were not kept (limit {_limit()} per attempt)"
            self._ship(time.time(), "WARNING", "jobsite", note)


@contextmanager
def captured_logs(job: Any) -> Iterator[None]:
    """Ship what the running job logs; never lets a logging problem fail the job."""
    handler = JobLogHandler(job, attempt=max(int(job.attempt), 1))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        try:
            handler.close_attempt()
        except Exception:
            logging.getLogger(__name__).warning("could not ship the log note of job %s", job.id)
