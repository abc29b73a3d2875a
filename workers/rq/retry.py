"""Retry policy: how many attempts a job gets, how long to wait between them, and the one
decision of what a failed attempt leads to."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any

from rq.job import Job

from ..conf import setting
from ..redis import META_ATTEMPT, META_MAX_ATTEMPTS, META_RETRY
from ..statuses import JobStatus


@dataclass(frozen=True)
class RetryPolicy:
    """Attempts in all (the first run included) and exponential backoff with jitter."""

    max_attempts: int = 3
    base: float = 5.0
    factor: float = 2.0
    cap: float = 3600.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise ValueError(f"max_attempts must be a whole number >= 1, not {self.max_attempts!r}")
        if self.base < 0 or self.cap < 0:
            raise ValueError("base and cap of a retry policy must not be negative")
        if self.factor < 1:
            raise ValueError(f"factor must be >= 1, not {self.factor!r}")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"jitter must be in [0, 1), not {self.jitter!r}")

    def delay(self, attempt: int, rand: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        raw = min(self.cap, self.base * self.factor ** max(attempt - 1, 0))
        spread = (2 * (random.random() if rand is None else rand) - 1) * self.jitter
        return max(raw * (1 + spread), 0.0)

    def as_meta(self) -> dict[str, Any]:
        return asdict(self)


def policy_for(queue: str, override: dict[str, Any] | None = None) -> RetryPolicy:
    """Settings' default, then the queue's override, then the job's own."""
    values = dict(setting("RETRY"))
    values.update(setting("QUEUE_RETRY").get(queue, {}))
    values.update(override or {})
    return RetryPolicy(**values)


@dataclass(frozen=True)
class RetryDecision:
    """What a failed attempt leads to: another attempt after ``delay`` seconds, or the end."""

    status: str  # retrying, dead or stopped
    attempt: int
    max_attempts: int
    delay: float | None

    @property
    def retries_left(self) -> int:
        return max(self.max_attempts - self.attempt, 0) if self.status == JobStatus.RETRYING else 0


def retry_decision(job: Job, *, stopped: bool = False) -> RetryDecision:
    """The one retry decision, for a worker that saw the attempt fail and for the watchdog
    that found its worker dead: retry while attempts are left, unless an operator stopped it."""
    policy = policy_for(job.origin, job.meta.get(META_RETRY))
    max_attempts = int(job.meta.get(META_MAX_ATTEMPTS) or policy.max_attempts)
    attempt = max(int(job.meta.get(META_ATTEMPT, 0)), 1)
    if stopped:
        return RetryDecision(JobStatus.STOPPED, attempt, max_attempts, None)
    if attempt < max_attempts:
        return RetryDecision(JobStatus.RETRYING, attempt, max_attempts, policy.delay(attempt))
    return RetryDecision(JobStatus.DEAD, attempt, max_attempts, None)


def is_final_attempt(job: Job) -> bool:
    """Would a failure of the attempt ``job`` is running now dead-letter it?"""
    return retry_decision(job).status != JobStatus.RETRYING


def attempts_after_operator_retry(job: Job) -> int:
    """The job's attempts in all once an operator retries it: one more than it has run
    when its attempts ran out (dead at 3 of 3 -> attempt 4 of 4, dead again if that
    fails), else unchanged (a canceled or stopped job keeps the attempts it had left)."""
    policy = policy_for(job.origin, job.meta.get(META_RETRY))
    max_attempts = int(job.meta.get(META_MAX_ATTEMPTS) or policy.max_attempts)
    return max(max_attempts, int(job.meta.get(META_ATTEMPT, 0)) + 1)
