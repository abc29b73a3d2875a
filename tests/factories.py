"""factory_boy factories: records as the recorder would have written them, for tests of reads
and retention."""

from __future__ import annotations

from datetime import timedelta

import factory
from django.utils import timezone

from workers.models import JobError, JobMetric, JobRecord, JobStatus

WAITING = {JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED}
ENDED = {JobStatus.FINISHED, JobStatus.DEAD, JobStatus.CANCELED, JobStatus.STOPPED}


class JobRecordFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = JobRecord

    job_id = factory.Sequence(lambda n: f"job-{n:06d}")
    queue = "default"
    func = "tests.jobfuncs.add"
    args_repr = "(1, 2)"
    kwargs_repr = "{}"
    status = JobStatus.FINISHED
    attempts = 1
    max_attempts = 3
    enqueued_at = factory.Sequence(lambda n: timezone.now() - timedelta(minutes=30) + timedelta(seconds=n))
    # A job that ran started and (if it ended) ended when it was enqueued: no wait, no runtime.
    started_at = factory.LazyAttribute(lambda o: None if o.status in WAITING else o.enqueued_at)
    ended_at = factory.LazyAttribute(lambda o: o.enqueued_at if o.status in ENDED else None)
    status_changed_at = factory.LazyAttribute(lambda o: o.ended_at or o.enqueued_at)


class JobErrorFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = JobError
        skip_postgeneration_save = True  # the hook saves what it changes

    job = factory.SubFactory(JobRecordFactory, status=JobStatus.DEAD)
    attempt = 1
    exc_type = "builtins.ValueError"
    message = "boom"
    traceback = 'Traceback (most recent call last):\n  File "tests/jobfuncs.py", line 25, in fail\nValueError: boom'
    failed_at = factory.LazyAttribute(lambda o: o.job.ended_at or timezone.now())
    fingerprint = "f00d"

    @factory.post_generation
    def recorded_on_its_job(obj, create, extracted, **kwargs):  # noqa: N805 (factory_boy's hook)
        """The recorder keeps the last failed attempt's fingerprint on the record."""
        if create and obj.attempt >= obj.job.attempts:
            obj.job.last_fingerprint = obj.fingerprint
            obj.job.save(update_fields=["last_fingerprint"])


class JobMetricFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = JobMetric

    minute = factory.LazyFunction(lambda: timezone.now().replace(second=0, microsecond=0))
    queue = "default"
    func = "tests.jobfuncs.add"
