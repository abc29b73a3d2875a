"""Every job status, its groups and ranks, and how RQ's statuses map onto them.

Adding a status is this module plus a migration (the model's ``choices``): the recorder,
the reads, the dashboard and the workers take everything they know of a status from here.
"""

from __future__ import annotations

from django.db import models
from rq.job import JobStatus as RQStatus


class JobStatus(models.TextChoices):
    QUEUED = "queued"
    SCHEDULED = "scheduled"
    DEFERRED = "deferred"
    STARTED = "started"
    FINISHED = "finished"
    RETRYING = "retrying"
    DEAD = "dead"
    CANCELED = "canceled"
    STOPPED = "stopped"


# Within one attempt a status never moves backwards: waiting < running < ended.
WAITING, RUNNING, ENDED = 0, 1, 2
STATUS_RANK = {
    JobStatus.QUEUED: WAITING,
    JobStatus.SCHEDULED: WAITING,
    JobStatus.DEFERRED: WAITING,
    JobStatus.STARTED: RUNNING,
    JobStatus.FINISHED: ENDED,
    JobStatus.RETRYING: ENDED,
    JobStatus.DEAD: ENDED,
    JobStatus.CANCELED: ENDED,
    JobStatus.STOPPED: ENDED,
}
WAITING_STATUSES = tuple(s for s, rank in STATUS_RANK.items() if rank == WAITING)
# Ended for good: no further attempt is coming (RETRYING ends an attempt, not the job).
ENDED_STATUSES = (JobStatus.FINISHED, JobStatus.DEAD, JobStatus.CANCELED, JobStatus.STOPPED)
# An attempt that failed: its error is kept in the history.
FAILURE_STATUSES = (JobStatus.RETRYING, JobStatus.DEAD, JobStatus.STOPPED)
# What an operator may run again as a new attempt.
RETRYABLE_STATUSES = (JobStatus.DEAD, JobStatus.CANCELED, JobStatus.STOPPED)
# Statuses whose records are few at any time (work in flight and dead letters): the partial
# index over these serves their lists, and /metrics counts them per queue from
# JobStatusCount, kept by triggers that name these statuses (migration 0015): changing
# this tuple needs a migration that creates those triggers again.
OPEN_STATUSES = (*WAITING_STATUSES, JobStatus.STARTED, JobStatus.RETRYING, JobStatus.DEAD)

# RQ statuses written outside a worker's own success/failure handling, as jobsite names them.
FROM_RQ_WAITING = {
    RQStatus.QUEUED: JobStatus.QUEUED,
    RQStatus.SCHEDULED: JobStatus.SCHEDULED,
    RQStatus.DEFERRED: JobStatus.DEFERRED,
    RQStatus.CANCELED: JobStatus.CANCELED,
    # Held back by a concurrency limit: waiting, like a job whose dependency has not run.
    RQStatus.RATE_LIMITED: JobStatus.DEFERRED,
}
# RQ's end state of a job -> the record status that says the same.
FROM_RQ_ENDED = {
    RQStatus.FINISHED.value: JobStatus.FINISHED,
    RQStatus.FAILED.value: JobStatus.DEAD,
    RQStatus.STOPPED.value: JobStatus.STOPPED,
    RQStatus.CANCELED.value: JobStatus.CANCELED,
}
