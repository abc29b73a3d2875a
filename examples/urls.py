from django.urls import path

from . import views

app_name = "examples"

urlpatterns = [
    # Public: the page-view demo.
    path("demo/articles/", views.article_list, name="article-list"),
    path("demo/articles/<int:pk>/", views.article_detail, name="article-detail"),
    # Staff: the examples' panel of the dashboard.
    path("dashboard/examples/", views.examples_dashboard, name="dashboard"),
    path("dashboard/examples/panels/", views.examples_panels, name="panels"),
    path("dashboard/examples/campaigns/send/", views.campaign_send, name="campaign-send"),
    path("dashboard/examples/etl/start/", views.etl_start, name="etl-start"),
    path("dashboard/examples/etl/runs/<int:run_id>/rerun/", views.etl_run_rerun, name="etl-run-rerun"),
    path("dashboard/examples/etl/pages/<int:page_id>/rerun/", views.etl_page_rerun, name="etl-page-rerun"),
]
