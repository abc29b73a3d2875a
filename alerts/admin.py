from django.contrib import admin

from .models import Alert


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ["rule", "subject", "opened_at", "resolved_at", "value", "threshold", "notified"]
    list_filter = ["rule", "kind", ("resolved_at", admin.EmptyFieldListFilter)]
    search_fields = ["rule", "subject", "message"]
    readonly_fields = [f.name for f in Alert._meta.fields]

    def has_add_permission(self, request):  # history is written by the evaluator only
        return False
