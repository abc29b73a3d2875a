"""What a job function may ask about the attempt it runs in."""

from __future__ import annotations

from rq import get_current_job

from workers.redis import META_ATTEMPT, META_MAX_ATTEMPTS
from workers.rq.retry import policy_for


def current_job_id() -> str:
    job = get_current_job()
    return job.id if job is not None else ""


def is_final_attempt() -> bool:
    """True when a failure now would dead-letter the job (also outside any job)."""
    job = get_current_job()
    if job is None:
        return True
    attempt = int(job.meta.get(META_ATTEMPT, 1))
    max_attempts = int(job.meta.get(META_MAX_ATTEMPTS) or policy_for(job.origin).max_attempts)
    return attempt >= max_attempts
