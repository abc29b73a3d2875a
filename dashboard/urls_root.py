from django.urls import path

from . import views, views_metrics

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("metrics", views_metrics.metrics_view, name="metrics"),
    path("favicon.ico", views.favicon, name="favicon"),
]
