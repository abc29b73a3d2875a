from django.urls import path

from . import views, views_alerts

app_name = "dashboard"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("alerts/", views_alerts.alerts, name="alerts"),
]
