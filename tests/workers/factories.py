"""Records as the recorder would have written them, for tests of reads and retention."""

from __future__ import annotations

import factory
from django.utils import timezone

from workers.models import JobError, JobMetric, JobRecord, JobStatus


class JobRecordFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = JobRecord

    job_id = factory.Sequence(lambda n: f"job-{n:06d}")
    queue = "default"
    func = "shop.jobs.send_receipt"
    status = JobStatus.FINISHED
    attempts = 1
    enqueued_at = factory.LazyFunction(timezone.now)
    started_at = factory.LazyAttribute(lambda o: o.enqueued_at)
    ended_at = factory.LazyAttribute(lambda o: o.enqueued_at)
    status_changed_at = factory.LazyAttribute(lambda o: o.ended_at or o.enqueued_at)


class JobErrorFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = JobError

    job = factory.SubFactory(JobRecordFactory, status=JobStatus.DEAD)
    attempt = 1
    exc_type = "builtins.ValueError"
    message = "boom"
    failed_at = factory.LazyAttribute(lambda o: o.job.ended_at or timezone.now())


class JobMetricFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = JobMetric

    minute = factory.LazyFunction(lambda: timezone.now().replace(second=0, microsecond=0))
    queue = "default"
    func = "shop.jobs.send_receipt"
