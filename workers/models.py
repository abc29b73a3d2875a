"""What the database keeps of every job: written by the recorder, read by the dashboard."""

from __future__ import annotations

import bisect

from django.db import models

from .statuses import ENDED_STATUSES, OPEN_STATUSES, JobStatus


class JobOrigin(models.TextChoices):
    EVENT = "event"
    SCHEDULE = "schedule"
    RETRY = "retry"
    FANOUT = "fanout", "fan-out parent"


class JobRecord(models.Model):
    job_id = models.CharField(max_length=128, unique=True)
    queue = models.CharField(max_length=100, db_index=True)
    func = models.CharField(max_length=255, db_index=True)
    args_repr = models.TextField(blank=True, default="")
    kwargs_repr = models.TextField(blank=True, default="")
    # {"args": [...], "kwargs": {...}} when the arguments round-trip through JSON and fit in
    # REPR_LIMIT (and were redacted like the reprs): `args.order_id:42` searches look here.
    args_json = models.JSONField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    # Set when an operator discards a dead letter: the record and its errors stay.
    discarded_at = models.DateTimeField(null=True, blank=True)
    # The attempt the status belongs to (0 until the first attempt starts).
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(null=True, blank=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    scheduled_for = models.DateTimeField(null=True, blank=True, help_text="When a scheduled run or retry is due.")
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    duration = models.FloatField(null=True, blank=True, help_text="Seconds the last attempt ran.")
    worker = models.CharField(max_length=255, blank=True, default="")
    result_repr = models.TextField(blank=True, default="")
    key = models.CharField(max_length=255, blank=True, default="", db_index=True)
    progress = models.PositiveSmallIntegerField(null=True, blank=True)
    progress_message = models.CharField(max_length=255, blank=True, default="")
    origin = models.CharField(max_length=16, choices=JobOrigin.choices, default=JobOrigin.EVENT)
    parent_job_id = models.CharField(max_length=128, blank=True, default="")
    timeout = models.IntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True, default="")
    # The JobError.fingerprint of the last failed attempt: dead letters group by it.
    last_fingerprint = models.CharField(max_length=64, blank=True, default="")
    status_changed_at = models.DateTimeField(null=True, blank=True)
    # Set when the current status was taken from RQ's registries by a reconciliation pass
    # (a bare `rq worker` ran the job, say) rather than observed by a jobsite worker.
    reconciled_at = models.DateTimeField(null=True, blank=True)
    # Why the job is in its status, when the status alone does not say (a deferred job
    # waiting on a dead parent).
    status_reason = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(fields=["-enqueued_at", "-id"], name="jobrecord_newest"),
            models.Index(fields=["status", "-enqueued_at", "-id"], name="jobrecord_status_newest"),
            models.Index(fields=["queue", "-enqueued_at", "-id"], name="jobrecord_queue_newest"),
            models.Index(fields=["func", "-enqueued_at", "-id"], name="jobrecord_func_newest"),
            # The dead-letter list and its per-queue counts read only this small slice.
            models.Index(
                fields=["queue", "-enqueued_at", "-id"],
                name="jobrecord_dead_letters",
                condition=models.Q(status="dead", discarded_at__isnull=True),
            ),
            # Dead letters by failure group, newest last: the groups come from this index
            # alone, however many dead letters there are.
            models.Index(
                fields=["last_fingerprint", "ended_at"],
                name="jobrecord_dead_groups",
                condition=models.Q(status="dead", discarded_at__isnull=True),
            ),
            # Work in flight and dead letters: few rows however long the history (lists,
            # dead-letter counts, and rebuilding the counts of JobStatusCount).
            models.Index(
                fields=["status", "queue", "discarded_at"],
                name="jobrecord_open",
                condition=models.Q(status__in=[str(s) for s in OPEN_STATUSES]),
            ),
        ]
        # Staff may look at the dashboard; acting on jobs and queues needs this too.
        permissions = [("operate_jobs", "Can retry, cancel and discard jobs, and pause queues and schedules")]

    def __str__(self) -> str:
        return f"{self.func} [{self.job_id}] {self.status}"

    @property
    def is_ended(self) -> bool:
        return self.status in ENDED_STATUSES

    @property
    def attempts_started(self) -> int:
        """Attempts that ran. ``attempts`` is the attempt the status belongs to, and a
        canceled job's status belongs to the attempt it was canceled before."""
        if self.status == JobStatus.CANCELED:
            return max(self.attempts - 1, 0)
        return self.attempts


# What /metrics counts per queue and status: work in flight and dead letters nobody has
# discarded. JobStatusCount keeps these counts; job_status_counts_rebuild recounts them so.
STATUS_COUNTED = models.Q(status__in=[str(s) for s in OPEN_STATUSES]) & ~models.Q(
    status=JobStatus.DEAD, discarded_at__isnull=False
)


class JobStatusCount(models.Model):
    """Job records per queue and status (those ``STATUS_COUNTED`` covers), kept by database
    triggers on the job table (migration 0015), so that every writer is counted: the
    recorder, services, the admin, a bulk ``update()``, SQL typed by hand.

    The count of a (queue, status) is the sum of its rows: on PostgreSQL each session adds
    to the row of its shard (``pg_backend_pid() % 16``), so concurrent recorders do not all
    queue up on one row; SQLite has one writer at a time and uses shard 0. A shard's ``n``
    may be negative (a job recorded by one session and finished by another); the sum is not.
    Written only by the triggers and by ``workers.services.counts.job_status_counts_rebuild``.
    """

    queue = models.CharField(max_length=100)
    status = models.CharField(max_length=16)
    shard = models.SmallIntegerField(default=0)
    n = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["queue", "status", "shard"], name="jobstatuscount_one_per_shard"),
        ]

    def __str__(self) -> str:
        return f"{self.queue} {self.status} shard {self.shard}: {self.n}"


class JobError(models.Model):
    """One row per failed attempt; never overwritten: the error history."""

    job = models.ForeignKey(JobRecord, on_delete=models.CASCADE, related_name="errors")
    attempt = models.PositiveIntegerField()
    exc_type = models.CharField(max_length=255)
    message = models.TextField(blank=True, default="")
    traceback = models.TextField(blank=True, default="")
    worker = models.CharField(max_length=255, blank=True, default="")
    failed_at = models.DateTimeField()
    # exception type + function + frame where it was raised: groups dead letters.
    fingerprint = models.CharField(max_length=64, blank=True, default="", db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["job", "attempt"], name="joberror_one_per_attempt")]
        ordering = ["job", "attempt"]

    def __str__(self) -> str:
        return f"{self.job.job_id} attempt {self.attempt}: {self.exc_type}"


# Upper bounds (seconds) of the runtime histogram buckets every JobMetric row keeps; a last
# bucket holds what ran longer. Fixed, so rows from any minute add up; changing them needs a
# migration (the columns below are one per bucket).
RUNTIME_BUCKETS: tuple[float, ...] = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
RUNTIME_BUCKET_FIELDS: tuple[str, ...] = tuple(f"runtime_bucket_{i:02d}" for i in range(len(RUNTIME_BUCKETS) + 1))


def runtime_bucket(seconds: float) -> int:
    """Index of the histogram bucket ``seconds`` falls in (upper bounds are inclusive)."""
    return bisect.bisect_left(RUNTIME_BUCKETS, seconds)


class MetricCounters(models.Model):
    """What a roll-up counts, for a minute or for all time."""

    enqueued = models.PositiveIntegerField(default=0)
    started = models.PositiveIntegerField(default=0)
    finished = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0, help_text="Failed attempts, retried or not.")
    dead = models.PositiveIntegerField(default=0)
    runtime_total = models.FloatField(default=0.0)
    runtime_max = models.FloatField(default=0.0)
    # Runtime histogram of the attempts that ended this minute (finished or failed), one
    # column per bucket of RUNTIME_BUCKETS: p50 / p95 come from these, not from the history.
    runtime_bucket_00 = models.PositiveIntegerField(default=0, help_text="Attempts that ran ≤ 0.01 s.")
    runtime_bucket_01 = models.PositiveIntegerField(default=0, help_text="Attempts that ran > 0.01 s, ≤ 0.025 s.")
    runtime_bucket_02 = models.PositiveIntegerField(default=0, help_text="Attempts that ran > 0.025 s, ≤ 0.05 s.")
    runtime_bucket_03 = models.PositiveIntegerField(default=0, help_text="Attempts that ran > 0.05 s, ≤ 0.1 s.")
    runtime_bucket_04 = models.PositiveIntegerField(default=0, help_text="Attempts that ran > 0.1 s, ≤ 0.25 s.")
    runtime_bucket_05 = models.PositiveIntegerField(default=0, help_text="Attempts that ran > 0.25 s, ≤ 0.5 s.")
    runtime_bucket_06 = models.PositiveIntegerField(default=0, help_text="Attempts that ran > 0.5 s, ≤ 1 s.")
    runtime_bucket_07 = models.PositiveIntegerField(default=0, help_text="Attempts that ran > 1 s, ≤ 2.5 s.")
    runtime_bucket_08 = models.PositiveIntegerField(default=0, help_text="Attempts that ran > 2.5 s, ≤ 5 s.")
    runtime_bucket_09 = models.PositiveIntegerField(default=0, help_text="Attempts that ran > 5 s, ≤ 10 s.")
    runtime_bucket_10 = models.PositiveIntegerField(default=0, help_text="Attempts that ran > 10 s, ≤ 30 s.")
    runtime_bucket_11 = models.PositiveIntegerField(default=0, help_text="Attempts that ran > 30 s, ≤ 60 s.")
    runtime_bucket_12 = models.PositiveIntegerField(default=0, help_text="Attempts that ran > 60 s, ≤ 120 s.")
    runtime_bucket_13 = models.PositiveIntegerField(default=0, help_text="Attempts that ran > 120 s, ≤ 300 s.")
    runtime_bucket_14 = models.PositiveIntegerField(default=0, help_text="Attempts that ran > 300 s, ≤ 600 s.")
    runtime_bucket_15 = models.PositiveIntegerField(default=0, help_text="Attempts that ran > 600 s.")

    class Meta:
        abstract = True


class JobMetric(MetricCounters):
    """Per-minute roll-up per queue and function; charts and rates read only these."""

    minute = models.DateTimeField()
    queue = models.CharField(max_length=100)
    func = models.CharField(max_length=255)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["minute", "queue", "func"], name="jobmetric_one_per_minute"),
        ]
        indexes = [models.Index(fields=["queue", "minute"], name="jobmetric_queue_minute")]

    def __str__(self) -> str:
        return f"{self.minute:%Y-%m-%d %H:%M} {self.queue} {self.func}"


class CatchUp(models.TextChoices):
    ONCE = "once", "run once to catch up"
    SKIP = "skip", "skip missed runs"


class ScheduleSource(models.TextChoices):
    ADMIN = "admin", "admin"
    CODE = "code", "declared in code (JOBSITE_SCHEDULES)"


class Schedule(models.Model):
    """A recurring (cron or interval) or one-time job definition. The scheduler fires it."""

    name = models.CharField(max_length=100, unique=True)
    func = models.CharField(max_length=255, help_text="A function registered with @schedulable.")
    cron = models.CharField(max_length=100, blank=True, default="", help_text="minute hour day month weekday")
    interval = models.PositiveIntegerField(null=True, blank=True, help_text="Seconds between runs.")
    run_at = models.DateTimeField(null=True, blank=True, help_text="One-time: run once at this moment.")
    timezone = models.CharField(max_length=64, default="UTC", help_text="Cron fields are read in this zone.")
    args = models.JSONField(default=list, blank=True, help_text='A JSON list, e.g. [42, "weekly"].')
    kwargs = models.JSONField(default=dict, blank=True, help_text='A JSON object, e.g. {"dry_run": false}.')
    queue = models.CharField(max_length=100, default="default")
    catch_up = models.CharField(max_length=8, choices=CatchUp.choices, default=CatchUp.ONCE)
    enabled = models.BooleanField(default=True)
    # Set by an operator (dashboard or admin); a code sync never clears it.
    paused_at = models.DateTimeField(null=True, blank=True)
    source = models.CharField(max_length=8, choices=ScheduleSource.choices, default=ScheduleSource.ADMIN)
    next_run_at = models.DateTimeField(null=True, blank=True, db_index=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_job_id = models.CharField(max_length=128, blank=True, default="")
    missed_runs = models.PositiveIntegerField(default=0, help_text="Due times skipped after downtime.")
    # Set by the scheduler when a run cannot be pushed (the queue is gone, the function is no
    # longer schedulable, args a JSON cannot hold...): the schedule is retried at retry_at,
    # with a backoff, and never holds up the others. Saving, syncing or resuming it clears them.
    broken_reason = models.TextField(blank=True, default="")
    broken_since = models.DateTimeField(null=True, blank=True)
    retry_at = models.DateTimeField(null=True, blank=True, help_text="When a broken schedule is tried again.")
    push_failures = models.PositiveIntegerField(default=0, help_text="Failed pushes in a row (sets the backoff).")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_paused(self) -> bool:
        return self.paused_at is not None

    @property
    def is_broken(self) -> bool:
        return self.broken_since is not None

    @property
    def trigger(self) -> str:
        if self.cron:
            return f"cron {self.cron} ({self.timezone})"
        if self.interval:
            return f"every {self.interval} s"
        if self.run_at:
            return f"once at {self.run_at:%Y-%m-%d %H:%M:%S %Z}"
        return "no trigger"


class ScheduleRun(models.Model):
    """One job a schedule made: a due time fired by the scheduler, or an operator's run-now."""

    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="runs")
    job_id = models.CharField(max_length=128, unique=True)
    due_at = models.DateTimeField(null=True, blank=True, help_text="Empty for a run started by hand.")
    fired_at = models.DateTimeField()
    # False between the claim (committed with the schedule's advance) and the push to
    # Redis: a scheduler that died in between has its run pushed by the next tick.
    enqueued = models.BooleanField(default=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["schedule", "due_at"], name="schedulerun_one_per_due_time")]
        indexes = [models.Index(fields=["schedule", "-fired_at"], name="schedulerun_newest")]
        ordering = ["-fired_at"]

    def __str__(self) -> str:
        return f"{self.schedule.name} @ {self.due_at or self.fired_at}"


class JobLogLine(models.Model):
    """A log record emitted while a job ran, captured by the worker; bounded per attempt."""

    job = models.ForeignKey(JobRecord, on_delete=models.CASCADE, related_name="log_lines")
    attempt = models.PositiveIntegerField()
    seq = models.PositiveIntegerField(help_text="Order within the attempt.")
    logged_at = models.DateTimeField()
    level = models.CharField(max_length=16)
    logger = models.CharField(max_length=255, blank=True, default="")
    message = models.TextField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["job", "attempt", "seq"], name="joblogline_one_per_seq"),
        ]
        ordering = ["job", "attempt", "seq"]

    def __str__(self) -> str:
        return f"{self.job_id} #{self.attempt}.{self.seq} {self.level}: {self.message[:60]}"


class JobMetricTotal(MetricCounters):
    """All-time totals per queue and function, kept by the recorder beside the minutes:
    /metrics reads these few rows, and pruning old minutes never makes a total go down."""

    queue = models.CharField(max_length=100)
    func = models.CharField(max_length=255)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["queue", "func"], name="jobmetrictotal_one_per_func")]

    def __str__(self) -> str:
        return f"all time {self.queue} {self.func}"


class AuditAction(models.TextChoices):
    JOB_RETRY = "job.retry", "retry"
    JOB_CANCEL = "job.cancel", "cancel"
    JOB_STOP = "job.stop", "stop"
    JOB_RUN_AGAIN = "job.run_again", "run again"
    DEAD_LETTER_DISCARD = "dead_letter.discard", "discard"
    BULK_RETRY = "bulk.retry", "bulk retry"
    BULK_DISCARD = "bulk.discard", "bulk discard"
    BULK_CANCEL = "bulk.cancel", "cancel bulk operation"
    QUEUE_PAUSE = "queue.pause", "pause queue"
    QUEUE_RESUME = "queue.resume", "resume queue"
    SCHEDULE_PAUSE = "schedule.pause", "pause schedule"
    SCHEDULE_RESUME = "schedule.resume", "resume schedule"
    SCHEDULE_RUN_NOW = "schedule.run_now", "run schedule now"
    ALERT_ACKNOWLEDGE = "alert.acknowledge", "acknowledge alert"
    ALERT_MUTE = "alert.mute", "mute alert"
    UNAPPLIED_DELETE = "unapplied.delete", "delete set-aside events"


class AuditOutcome(models.TextChoices):
    OK = "ok"
    PARTIAL = "partial", "partly done"
    REFUSED = "refused"
    FAILED = "failed"
    # A bulk action is written before its jobs, each committed with its own effect; one
    # that never got to its summary (the process died) still says so.
    INCOMPLETE = "incomplete"


class AuditEntry(models.Model):
    """One operator action: who, when, what, with which outcome, from where.

    Written by ``workers.services.audit`` only, in the transaction of the action's effect;
    no page edits or deletes an entry (retention removes old ones). A bulk action is one
    entry (its filter or selection and how many it did) with one child entry per job.
    """

    at = models.DateTimeField()
    actor = models.CharField(max_length=150, help_text="The username at the time.")
    # Not a foreign key: the entry outlives the account.
    actor_id = models.PositiveIntegerField(null=True, blank=True)
    client_address = models.GenericIPAddressField(null=True, blank=True)
    action = models.CharField(max_length=32, choices=AuditAction.choices)
    target_kind = models.CharField(max_length=16, help_text="job, queue, schedule or alert.")
    target_id = models.CharField(max_length=128, blank=True, default="", help_text="Empty for a bulk action.")
    # A bulk action on everything a filter matched: the filter, as posted.
    filters = models.JSONField(default=dict, blank=True)
    count = models.PositiveIntegerField(default=0, help_text="How many it acted on.")
    outcome = models.CharField(max_length=16, choices=AuditOutcome.choices)
    detail = models.TextField(blank=True, default="", help_text="What the operator was answered.")
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="children", help_text="Its bulk action."
    )

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name_plural = "audit entries"
        indexes = [
            models.Index(fields=["-at", "-id"], name="auditentry_newest"),
            models.Index(fields=["target_kind", "target_id", "at"], name="auditentry_target"),
            models.Index(fields=["actor", "-at"], name="auditentry_actor"),
        ]

    def __str__(self) -> str:
        target = f" {self.target_kind} {self.target_id}" if self.target_id else ""
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action}{target}: {self.outcome}"


class BulkOperation(models.Model):
    """A retry or discard of everything a filter matched, however many: run as a job of its
    own (``workers.jobs.bulk``), in batches walked by primary key from ``last_pk``, so a
    crash resumes where it stopped. Written by ``workers.services.bulk`` only."""

    class Action(models.TextChoices):
        RETRY = "retry"
        DISCARD = "discard"

    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        FINISHED = "finished"
        CANCELED = "canceled"
        FAILED = "failed"

    action = models.CharField(max_length=16, choices=Action.choices)
    # The filter, as posted (status, q, fingerprint): the job rebuilds the search from it.
    filters = models.JSONField(default=dict, blank=True)
    actor = models.CharField(max_length=150)
    actor_id = models.PositiveIntegerField(null=True, blank=True)
    client_address = models.GenericIPAddressField(null=True, blank=True)
    expected = models.PositiveIntegerField(default=0, help_text="How many matched when it was started.")
    done = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    # Every matching record with a primary key up to this one has been handled.
    last_pk = models.BigIntegerField(default=0)
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    cancel_requested = models.BooleanField(default=False)
    job_id = models.CharField(max_length=128, blank=True, default="")
    audit = models.ForeignKey(AuditEntry, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    detail = models.TextField(blank=True, default="")
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["state", "-created_at"], name="bulkoperation_state")]

    def __str__(self) -> str:
        return f"bulk {self.action} #{self.pk}: {self.state} {self.done + self.skipped}/{self.expected}"

    @property
    def is_active(self) -> bool:
        return self.state in (self.State.QUEUED, self.State.RUNNING)

    @property
    def percent(self) -> int:
        if not self.expected:
            return 100 if not self.is_active else 0
        return max(0, min(100, (self.done + self.skipped) * 100 // self.expected))
