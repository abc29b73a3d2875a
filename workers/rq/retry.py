"""Retry policy: how many attempts a job gets, how long to wait between them, and the one
decision of what a failed attempt leads to."""

from __future__ import annotations

import logging
import random
from dataclasses import asdict, dataclass
from typing import Any

from rq.job import Job

from ..conf import setting
from ..redis import META_ATTEMPT, META_MAX_ATTEMPTS, META_RETRY, META_RUN_BASE
from ..statuses import JobStatus

log = logging.getLogger(__name__)

# PLAIN_RQ_RETRY values: RQ's own rule (no retry without `Retry`), or jobsite's policy.
PLAIN_RQ, POLICY = "rq", "policy"


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


def _plain_rq_follows_policy(queue: str) -> bool:
    """Does jobsite's policy cover a plain-RQ job without `Retry` on ``queue``?"""
    choice = setting("PLAIN_RQ_RETRY")
    if choice == POLICY:
        return True
    if isinstance(choice, (list, tuple, set, frozenset)):
        return queue in choice
    if choice != PLAIN_RQ:
        # Reported by `manage.py check` (workers.E002); until fixed, the safe reading.
        log.warning("JOBSITE['PLAIN_RQ_RETRY'] = %r is not 'rq', 'policy' or a list of queues; using 'rq'", choice)
    return False


def plain_rq_retry_error(choice: Any) -> str | None:
    """What is wrong with a PLAIN_RQ_RETRY value, or None."""
    if choice in (PLAIN_RQ, POLICY):
        return None
    if isinstance(choice, (list, tuple, set, frozenset)) and all(isinstance(q, str) for q in choice):
        return None
    return f"JOBSITE['PLAIN_RQ_RETRY'] is {choice!r}; use 'rq', 'policy' or a list of queue names"


def _run_attempt(job: Job) -> tuple[int, int]:
    """(attempt now running or last run, attempts made before this run began)."""
    attempt = max(int(job.meta.get(META_ATTEMPT, 0)), 1)
    base = int(job.meta.get(META_RUN_BASE, 0))
    return attempt, min(base, attempt - 1)


def has_rq_retry(job: Job) -> bool:
    """The job carries RQ's own `Retry` (RQ sets its intervals with it, jobsite never does)."""
    return META_MAX_ATTEMPTS not in job.meta and job.retry_intervals is not None


def _policy(job: Job) -> tuple[RetryPolicy, int] | None:
    """The jobsite policy that covers ``job`` and its attempts per run, or None (RQ's way)."""
    if META_MAX_ATTEMPTS in job.meta:
        policy = policy_for(job.origin, job.meta.get(META_RETRY))
        return policy, int(job.meta.get(META_MAX_ATTEMPTS) or policy.max_attempts)
    if has_rq_retry(job) or not _plain_rq_follows_policy(job.origin):
        return None
    policy = policy_for(job.origin)
    return policy, policy.max_attempts


def max_attempts_of(job: Job, *, waiting: bool = False) -> int:
    """The attempt number at which ``job`` is dead-lettered if every attempt fails.

    Attempts are counted over the job's whole life (a `Repeat` run continues the count),
    so this is the attempts before the current run plus what the run may take.
    ``waiting``: the job waits for its next attempt (none of this run's is running).
    """
    if META_MAX_ATTEMPTS in job.meta:  # the enqueue path: nothing else to read
        attempt, base = int(job.meta.get(META_ATTEMPT, 0)), int(job.meta.get(META_RUN_BASE, 0))
        return min(base, attempt) + int(job.meta[META_MAX_ATTEMPTS])
    made = int(job.meta.get(META_ATTEMPT, 0))
    if has_rq_retry(job):
        # RQ's count: one run per retry left, after the attempts already made.
        return made + (1 if waiting or made == 0 else 0) + max(job.retries_left or 0, 0)
    base = min(int(job.meta.get(META_RUN_BASE, 0)), made)
    covered = _policy(job)
    return base + (covered[1] if covered else 1)


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
    """The one retry decision, for a worker that saw the attempt fail, for the watchdog
    that found its worker dead and for RQ's own abandoned-job cleanup.

    - a job enqueued through ``workers.enqueue`` (jobsite meta): its policy, counted per
      run (a `Repeat` run is a new run, not another attempt);
    - a job with RQ's own ``Retry``: exactly RQ's rule, its retries left and intervals;
    - any other plain-RQ job: ``PLAIN_RQ_RETRY`` (default: no retry, as bare RQ);
    - a job an operator stopped: stopped, never retried.
    """
    attempt, base = _run_attempt(job)
    if stopped:
        return RetryDecision(JobStatus.STOPPED, attempt, max_attempts_of(job), None)
    if has_rq_retry(job):
        left = max(job.retries_left or 0, 0)
        if left:
            return RetryDecision(JobStatus.RETRYING, attempt, attempt + left, float(Job.get_retry_interval(job)))
        return RetryDecision(JobStatus.DEAD, attempt, attempt, None)
    covered = _policy(job)
    if covered is None:
        return RetryDecision(JobStatus.DEAD, attempt, attempt, None)
    policy, per_run = covered
    in_run = attempt - base
    if in_run < per_run:
        return RetryDecision(JobStatus.RETRYING, attempt, base + per_run, policy.delay(in_run))
    return RetryDecision(JobStatus.DEAD, attempt, base + per_run, None)


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
