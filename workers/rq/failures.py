"""What an operator reads of a failed attempt: its exception type, a message and the traceback."""

from __future__ import annotations

import signal
from typing import Any

# How a jobsite worker that is being stopped cold (a second SIGTERM or SIGINT mid-job, as a
# supervisor sends on a slow stop) ends the attempt it was running before it exits.
STOPPED_MID_JOB = "Worker stopped mid-job"


def describe_failure(exc_string: str, exc_info: tuple[Any, Any] | None, timeout: float | None) -> tuple[str, str, str]:
    """(exception type, message an operator can read, traceback) for one failed attempt."""
    if exc_string.startswith("Work-horse terminated unexpectedly"):
        return ("WorkerDied", f"worker died: {_horse_death(exc_string)}", exc_string)
    if exc_string.startswith(STOPPED_MID_JOB):
        detail = exc_string[len(STOPPED_MID_JOB) :].split("\n", 1)[0].lstrip(": ")
        return ("WorkerDied", f"worker was stopped mid-job{f' ({detail})' if detail else ''}", exc_string)
    if exc_string.startswith("Job stopped by user"):
        return ("JobStopped", "stopped by an operator; the work horse was terminated", exc_string)
    if exc_info is not None:
        exc_type, message = exc_info
    else:
        last = exc_string.strip().splitlines()[-1] if exc_string.strip() else "unknown error"
        exc_type, _, message = last.partition(": ")
    if exc_type.endswith("JobTimeoutException"):
        message = f"timed out after {timeout} s" if timeout else "timed out"
    return (exc_type, message, exc_string)


def _horse_death(exc_string: str) -> str:
    marker = "(signal "
    if marker in exc_string:
        number = int(exc_string.split(marker, 1)[1].split(")", 1)[0])
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        return f"the work horse was killed by {name} ({number}) mid-job"
    return "the work horse exited unexpectedly mid-job (" + exc_string.split("; ")[1] + ")"
