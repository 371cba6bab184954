from django.contrib import admin

from analytics.models import AnalysisRun


@admin.register(AnalysisRun)
class AnalysisRunAdmin(admin.ModelAdmin):
    list_display = ["pk", "trial", "kind", "status", "progress", "created_at", "finished_at"]
    list_filter = ["status", "kind"]
    readonly_fields = [f.name for f in AnalysisRun._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False
