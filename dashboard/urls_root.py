from django.urls import path

from .views import favicon, metrics

urlpatterns = [
    path("healthz", metrics.healthz, name="healthz"),
    path("readyz", metrics.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("favicon.ico", favicon.favicon, name="favicon"),
]
