from django.urls import path

from . import views, views_alerts, views_schedules, views_unapplied

app_name = "dashboard"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("schedules/", views_schedules.schedules, name="schedules"),
    path("schedules/<int:pk>/pause/", views_schedules.schedule_pause_view, name="schedule_pause"),
    path("schedules/<int:pk>/resume/", views_schedules.schedule_resume_view, name="schedule_resume"),
    path("schedules/<int:pk>/run/", views_schedules.schedule_run_view, name="schedule_run"),
    path("keys/", views_schedules.keys, name="keys"),
    path("jobs/", views.jobs, name="jobs"),
    path("jobs/bulk/", views.jobs_bulk, name="jobs_bulk"),
    path("jobs/<str:job_id>/", views.job_detail, name="job_detail"),
    path("jobs/<str:job_id>/retry/", views.job_retry, name="job_retry"),
    path("jobs/<str:job_id>/cancel/", views.job_cancel, name="job_cancel"),
    path("jobs/<str:job_id>/run-again/", views.job_run_again, name="job_run_again"),
    path("dead-letters/", views.dead_letters, name="dead_letters"),
    path("dead-letters/bulk/", views.dead_letters_bulk, name="dead_letters_bulk"),
    path("workers/", views.workers, name="workers"),
    path("queues/", views.queues, name="queues"),
    path("queues/<str:name>/", views.queue_detail, name="queue_detail"),
    path("queues/<str:name>/pause/", views.queue_pause, name="queue_pause"),
    path("queues/<str:name>/resume/", views.queue_resume, name="queue_resume"),
    path("alerts/", views_alerts.alerts, name="alerts"),
    path("unapplied-events/", views_unapplied.unapplied_events, name="unapplied_events"),
    path("unapplied-events/delete/", views_unapplied.unapplied_events_delete, name="unapplied_events_delete"),
]
