from django.urls import path

from . import views, views_schedules

app_name = "dashboard"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("schedules/", views_schedules.schedules, name="schedules"),
    path("schedules/<int:pk>/pause/", views_schedules.schedule_pause_view, name="schedule_pause"),
    path("schedules/<int:pk>/resume/", views_schedules.schedule_resume_view, name="schedule_resume"),
    path("schedules/<int:pk>/run/", views_schedules.schedule_run_view, name="schedule_run"),
    path("keys/", views_schedules.keys, name="keys"),
]
