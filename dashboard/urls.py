from django.urls import path

from . import views

app_name = "dashboard"

urlpatterns = [
    path("", views.overview, name="overview"),
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
]
