"""What a job function may ask about the attempt it runs in."""

from __future__ import annotations

from rq import get_current_job

from workers.rq import retry


def current_job_id() -> str:
    job = get_current_job()
    return job.id if job is not None else ""


def is_final_attempt() -> bool:
    """True when a failure now would dead-letter the job (also outside any job)."""
    job = get_current_job()
    if job is None:
        return True
    return retry.is_final_attempt(job)  # the one retry decision: the job's own policy counts
