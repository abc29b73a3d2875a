"""What monitoring asks for: ``/metrics`` and ``/healthz``.

``/metrics``: Prometheus text format, built at scrape time from workers' reads. None of them
reads the job history: ``jobsite_jobs`` and ``jobsite_dead_letters`` come from the counts
that triggers on the job table keep (``job_status_counts``), the totals and runtimes from
the roll-ups, so a scrape costs the same with ten thousand records or ten million.

Names follow django-rq's collector where it has one (``rq_jobs``, ``rq_workers``) and
Flower's for the runtime histogram (``jobsite_task_runtime_seconds``).

Access: with ``JOBSITE["METRICS_TOKEN"]`` set (env ``JOBSITE_METRICS_TOKEN``) a scraper
sends ``Authorization: Bearer <token>``; without one, only requests from the machine
itself (loopback) are answered.

``/healthz`` answers anyone: 200 when the database and Redis both answer, else 503 with
which one failed (its exception type only). For monitoring: are the backing services up?

``/readyz`` answers anyone: the same checks plus "every migration of this code is applied";
200 only then, else 503 with what is missing. For a load balancer: send this web process
traffic? Until `migrate` has run for a release, its new code would fail on the old schema.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from ipaddress import ip_address

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from workers.conf import queue_names, setting
from workers.models import RUNTIME_BUCKETS, JobStatus
from workers.reads.health import health_get, readiness_get
from workers.reads.live import queue_live_list, worker_list
from workers.reads.rollups import function_runtime_list, job_status_counts
from workers.reads.schedules import schedule_broken_list
from workers.reads.unapplied import unapplied_count
from workers.statuses import OPEN_STATUSES


class JobsiteCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        rq_jobs = GaugeMetricFamily("rq_jobs", "RQ jobs by queue and registry, from Redis", labels=["queue", "status"])
        for queue in queue_live_list():
            for status in ("queued", "started", "scheduled", "deferred", "failed", "finished"):
                rq_jobs.add_metric([queue.name, status], getattr(queue, status))
        yield rq_jobs

        workers = worker_list()
        rq_workers = GaugeMetricFamily("rq_workers", "RQ workers", labels=["name", "state", "queues"])
        by_state = {"busy": 0, "idle": 0, "suspended": 0}
        for worker in workers:
            rq_workers.add_metric([worker.name, worker.state, ",".join(worker.queues)], 1)
            by_state[worker.state] = by_state.get(worker.state, 0) + 1
        yield rq_workers
        jobsite_workers = GaugeMetricFamily("jobsite_workers", "Workers by state", labels=["state"])
        for state, count in by_state.items():
            jobsite_workers.add_metric([state], count)
        yield jobsite_workers

        counts = job_status_counts()
        jobsite_jobs = GaugeMetricFamily(
            "jobsite_jobs", "Recorded jobs in flight and dead letters, by queue and status", labels=["queue", "status"]
        )
        for queue_name in sorted({q for q, _ in counts} | set(queue_names())):
            for status in OPEN_STATUSES:
                jobsite_jobs.add_metric([queue_name, status], counts.get((queue_name, status), 0))
        yield jobsite_jobs
        yield GaugeMetricFamily(
            "jobsite_dead_letters",
            "Dead letters waiting for an operator (not discarded)",
            value=sum(n for (_, status), n in counts.items() if status == JobStatus.DEAD),
        )
        yield GaugeMetricFamily(
            "jobsite_events_unapplied",
            "Tracking events the recorder set aside instead of applying (see /dashboard/unapplied-events/)",
            value=unapplied_count(),
        )

        yield GaugeMetricFamily(
            "jobsite_schedules_broken",
            "Enabled schedules set aside because their runs cannot be pushed",
            value=len(schedule_broken_list()),
        )

        table = function_runtime_list()
        labels = ["queue", "func"]
        totals = {
            name: CounterMetricFamily(f"jobsite_jobs_{name}", help_text, labels=labels)
            for name, help_text in (
                ("enqueued", "Jobs first seen, by queue and function"),
                ("finished", "Jobs that finished, by queue and function"),
                ("failed", "Failed attempts (retried or not), by queue and function"),
                ("dead", "Jobs dead-lettered after their last attempt, by queue and function"),
            )
        }
        runtime = HistogramMetricFamily(
            "jobsite_task_runtime_seconds", "Runtime of attempts that ended, by queue and function", labels=labels
        )
        for row in sorted(table, key=lambda r: (r.queue, r.func)):
            for name, family in totals.items():
                family.add_metric([row.queue, row.func], getattr(row, name))
            cumulative, buckets = 0, []
            for bound, count in zip([*RUNTIME_BUCKETS, float("inf")], row.buckets, strict=True):
                cumulative += count
                buckets.append(("+Inf" if bound == float("inf") else repr(float(bound)), cumulative))
            runtime.add_metric([row.queue, row.func], buckets=buckets, sum_value=row.runtime_total)
        yield from totals.values()
        yield runtime


def _allowed(request: HttpRequest) -> bool:
    token = setting("METRICS_TOKEN") or ""
    if token:
        given = request.headers.get("Authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())
    try:
        return ip_address(request.META.get("REMOTE_ADDR", "")).is_loopback
    except ValueError:
        return False


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    if not _allowed(request):
        return HttpResponse("metrics need a bearer token or a request from this machine\n", status=403)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(JobsiteCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    checks = health_get()
    healthy = all(value == "ok" for value in checks.values())
    return JsonResponse({"status": "ok" if healthy else "error", **checks}, status=200 if healthy else 503)


@require_GET
def readyz(request: HttpRequest) -> HttpResponse:
    checks = readiness_get()
    ready = all(value == "ok" for value in checks.values())
    return JsonResponse({"status": "ok" if ready else "error", **checks}, status=200 if ready else 503)
