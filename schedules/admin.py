from django.contrib import admin

from core.admin import HistoryInline
from schedules.models import Schedule, ScheduleRun


class ScheduleRunInline(HistoryInline):
    model = ScheduleRun
    fields = ["occurrence", "due_at", "fired_at", "outcome", "notification_id", "campaign_id", "skipped_before", "error"]


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin):
    list_display = ["__str__", "kind", "state", "rrule", "cron", "timezone", "next_run_at", "fired", "skipped", "parked_reason"]
    list_filter = ["state", "kind"]
    search_fields = ["name", "id"]
    readonly_fields = ["kind", "payload", "next_occurrence", "next_run_at", "upcoming", "last_occurrence", "last_run_at", "fired",
                       "skipped", "count_end", "api_key", "created_at", "updated_at"]
    fields = ["name", "state", "parked_reason", "rrule", "cron", "timezone", "starts_at", "ends_at", "missed", *readonly_fields]
    inlines = [ScheduleRunInline]

    def has_add_permission(self, request):
        return False  # created through the API, which checks the recurrence and what it sends

    def has_change_permission(self, request, obj=None):
        return False  # pause, resume and cancel through the API keep next_run_at right
