from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    # /demo/articles/ (public) and /dashboard/examples/ (staff): the worked examples.
    path("", include("examples.urls")),
    path("dashboard/", include("dashboard.urls")),
    path("", include("dashboard.urls_root")),
]
