from django.contrib import admin

from core.admin import AuditAdmin, HistoryInline, change_url, short_id
from schedules.models import Schedule, ScheduleRun


class ScheduleRunInline(HistoryInline):
    model = ScheduleRun
    fields = ["occurrence", "due_at", "fired_at", "outcome", "notification_short_id", "campaign_short_id", "skipped_before",
              "error"]

    @admin.display(description="notification")
    def notification_short_id(self, run):
        return short_id(run.notification_id, change_url("notifications.notification", run.notification_id)) \
            if run.notification_id else "—"

    @admin.display(description="campaign")
    def campaign_short_id(self, run):
        return short_id(run.campaign_id, change_url("campaigns.campaign", run.campaign_id)) if run.campaign_id else "—"


@admin.register(Schedule)
class ScheduleAdmin(AuditAdmin):
    """Created, paused, resumed and canceled through the API, which checks the recurrence and keeps next_run_at
    right; deleting one here would take its runs (the record of what it sent) with it."""

    list_display = ["name_or_id", "kind", "state", "rrule", "cron", "timezone", "next_run_at", "fired", "skipped",
                    "parked_reason"]
    list_filter = ["state", "kind"]
    search_fields = ["name"]
    ordering = ["-created_at"]
    fields = ["name", "state", "parked_reason", "rrule", "cron", "timezone", "starts_at", "ends_at", "missed", "kind", "payload",
              "next_occurrence", "next_run_at", "upcoming", "last_occurrence", "last_run_at", "fired", "skipped", "count_end",
              "api_key", "created_at", "updated_at"]
    inlines = [ScheduleRunInline]

    @admin.display(description="schedule")
    def name_or_id(self, schedule):
        return schedule.name or short_id(schedule.pk)
