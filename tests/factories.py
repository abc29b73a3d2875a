"""factory_boy factories for records the dashboard reads."""

from __future__ import annotations

from datetime import timedelta

import factory
from django.utils import timezone

from workers.models import JobError, JobMetric, JobRecord, JobStatus


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
    status_changed_at = factory.LazyAttribute(lambda o: o.enqueued_at)


class JobErrorFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = JobError

    job = factory.SubFactory(JobRecordFactory, status=JobStatus.DEAD)
    attempt = 1
    exc_type = "builtins.ValueError"
    message = "boom"
    traceback = 'Traceback (most recent call last):\n  File "tests/jobfuncs.py", line 25, in fail\nValueError: boom'
    failed_at = factory.LazyFunction(timezone.now)
    fingerprint = "f00d"


class JobMetricFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = JobMetric

    minute = factory.LazyFunction(lambda: timezone.now().replace(second=0, microsecond=0))
    queue = "default"
    func = "tests.jobfuncs.add"
