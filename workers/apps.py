from django.apps import AppConfig


class WorkersConfig(AppConfig):
    name = "workers"
    verbose_name = "Background jobs"
    default_auto_field = "django.db.models.BigAutoField"
