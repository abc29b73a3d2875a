from django.urls import path
from django.views.generic import RedirectView

from .views import favicon, login, metrics

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="dashboard:overview"), name="home"),
    path("login/", login.login, name="login"),
    path("logout/", login.logout, name="logout"),
    path("healthz", metrics.healthz, name="healthz"),
    path("readyz", metrics.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("favicon.ico", favicon.favicon, name="favicon"),
]
