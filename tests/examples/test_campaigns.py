"""Multicast email: one email per recipient through retries; refused recipients dead-lettered one by one."""

from __future__ import annotations

from collections import Counter

from django.core import mail

from examples import services
from examples.faults import FAULTS_KEY, fault_arm
from examples.models import Delivery
from tests.examples.factories import SubscriberFactory
from workers import enqueue
from workers.models import JobOrigin, JobRecord, JobStatus

BAD = [f"bounce{n}@{services.REFUSING_DOMAIN}" for n in range(3)]
GREYLISTED = [f"slow{n}@{services.GREYLISTING_DOMAIN}" for n in range(2)]


def _subscribers(good: int) -> list[str]:
    emails = [SubscriberFactory().email for _ in range(good)]
    emails += [SubscriberFactory(email=e).email for e in BAD + GREYLISTED]
    SubscriberFactory(active=False)  # unsubscribed: never mailed
    return emails


def test_each_recipient_gets_exactly_one_email_through_batch_failures_and_reruns(settle, redis_conn):
    emails = _subscribers(good=95)  # 100 recipients: 4 batches of 25
    # The SMTP connection drops twice mid-batch: after 10 sends, and right after the next.
    fault_arm(name="examples.email.batch", times=2, after=10)
    campaign = services.campaign_start(key="digest-1", subject="Digest", body="News.", batch_size=25)

    settle("default", "low")

    received = Counter(address for message in mail.outbox for address in message.to)
    delivered = set(emails) - set(BAD)
    assert set(received) == delivered
    assert all(count == 1 for count in received.values())
    assert len(mail.outbox) == 97
    assert redis_conn.hget(FAULTS_KEY, "examples.email.batch:times") == b"0"
    statuses = Counter(Delivery.objects.filter(campaign=campaign).values_list("status", flat=True))
    assert statuses == {Delivery.Status.SENT: 97, Delivery.Status.FAILED: 3}

    manager = JobRecord.objects.get(func="examples.jobs.campaigns.campaign_send")
    assert manager.status == JobStatus.FINISHED
    assert manager.progress == 100
    batches = JobRecord.objects.filter(func="examples.jobs.campaigns.campaign_send_batch")
    assert batches.count() == 4
    assert set(batches.values_list("origin", "parent_job_id", "status")) == {
        (JobOrigin.FANOUT, manager.job_id, JobStatus.FINISHED)
    }
    # Two batches failed halfway and were retried whole; nobody got a second email.
    assert sorted(b.errors.count() for b in batches) == [0, 0, 1, 1]

    # Rerunning the manager (a schedule firing twice, an operator's retry) sends nothing new.
    enqueue("examples.jobs.campaigns.campaign_send", campaign.pk)
    settle("default", "low")
    assert len(mail.outbox) == 97


def test_refused_recipients_are_retried_then_dead_lettered_one_by_one(settle):
    _subscribers(good=20)
    services.campaign_start(key="digest-2", subject="Digest", body="News.", batch_size=10)

    settle("default", "low")

    singles = JobRecord.objects.filter(func="examples.jobs.campaigns.campaign_send_one")
    batch_ids = set(
        JobRecord.objects.filter(func="examples.jobs.campaigns.campaign_send_batch").values_list("job_id", flat=True)
    )
    dead = list(singles.filter(status=JobStatus.DEAD))
    assert len(dead) == 3  # one dead letter per refused recipient, not a dead batch
    for record in dead:
        delivery = Delivery.objects.get(job_id=record.job_id)
        assert delivery.subscriber.email in BAD
        assert delivery.status == Delivery.Status.FAILED
        assert "550 5.1.1 mailbox unavailable" in delivery.last_error
        assert record.origin == JobOrigin.FANOUT and record.parent_job_id in batch_ids
        assert list(record.errors.values_list("attempt", flat=True)) == [1, 2, 3]
        assert record.errors.first().exc_type == "smtplib.SMTPRecipientsRefused"
    # Greylisted recipients were refused once by the batch, then sent by their own job.
    finished = singles.filter(status=JobStatus.FINISHED)
    assert finished.count() == 2
    assert {Delivery.objects.get(job_id=r.job_id).subscriber.email for r in finished} == set(GREYLISTED)
    assert sorted(address for m in mail.outbox for address in m.to if address in GREYLISTED) == sorted(GREYLISTED)
    assert not JobRecord.objects.filter(func="examples.jobs.campaigns.campaign_send_batch", status=JobStatus.DEAD)


def test_weekly_digest_makes_one_campaign_per_week(settle):
    _subscribers(good=5)
    enqueue("examples.jobs.campaigns.weekly_digest")
    enqueue("examples.jobs.campaigns.weekly_digest")  # the schedule fired twice

    settle("default", "low")

    assert Delivery.objects.values("campaign").distinct().count() == 1
    assert len(mail.outbox) == 7
    assert mail.outbox[0].subject.startswith("Your weekly digest, week ")
