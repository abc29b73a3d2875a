from django.urls import path

from .views import alerts, audit, dead_letters, job_detail, jobs, keys, overview, queues, schedules, unapplied, workers

app_name = "dashboard"

urlpatterns = [
    path("", overview.overview, name="overview"),
    path("schedules/", schedules.schedules, name="schedules"),
    path("schedules/<int:pk>/pause/", schedules.schedule_pause_view, name="schedule_pause"),
    path("schedules/<int:pk>/resume/", schedules.schedule_resume_view, name="schedule_resume"),
    path("schedules/<int:pk>/run/", schedules.schedule_run_view, name="schedule_run"),
    path("keys/", keys.keys, name="keys"),
    path("jobs/", jobs.jobs, name="jobs"),
    path("jobs/bulk/", jobs.jobs_bulk, name="jobs_bulk"),
    path("jobs/new/", jobs.jobs_new, name="jobs_new"),
    path("jobs/<str:job_id>/", job_detail.job_detail, name="job_detail"),
    path("jobs/<str:job_id>/retry/", job_detail.job_retry, name="job_retry"),
    path("jobs/<str:job_id>/retry-now/", job_detail.job_retry_now, name="job_retry_now"),
    path("jobs/<str:job_id>/cancel/", job_detail.job_cancel, name="job_cancel"),
    path("jobs/<str:job_id>/run-again/", job_detail.job_run_again, name="job_run_again"),
    path("dead-letters/", dead_letters.dead_letters, name="dead_letters"),
    path("dead-letters/new/", dead_letters.dead_letters_new, name="dead_letters_new"),
    path("dead-letters/bulk/", dead_letters.dead_letters_bulk, name="dead_letters_bulk"),
    path("workers/", workers.workers, name="workers"),
    path("queues/", queues.queues, name="queues"),
    path("queues/<str:name>/", queues.queue_detail, name="queue_detail"),
    path("queues/<str:name>/pause/", queues.queue_pause, name="queue_pause"),
    path("queues/<str:name>/resume/", queues.queue_resume, name="queue_resume"),
    path("alerts/", alerts.alerts, name="alerts"),
    path("alerts/banner/", alerts.alerts_banner, name="alerts_banner"),
    path("alerts/<int:pk>/acknowledge/", alerts.alert_acknowledge, name="alert_acknowledge"),
    path("alerts/<int:pk>/mute/", alerts.alert_mute, name="alert_mute"),
    path("audit/", audit.audit, name="audit"),
    path("unapplied-events/", unapplied.unapplied_events, name="unapplied_events"),
    path("unapplied-events/delete/", unapplied.unapplied_events_delete, name="unapplied_events_delete"),
]
