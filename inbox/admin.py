from django.contrib import admin

from core.admin import AuditAdmin, DateRangeFilter, ExactSearch, change_url, short_id
from inbox.models import InboxItem


@admin.register(InboxItem)
class InboxItemAdmin(ExactSearch, AuditAdmin):
    """What each person's inbox holds: written by in-app deliveries, changed only by the person (read, archive)."""

    list_display = ["id", "recipient", "title", "category", "created_at", "read_at", "archived_at"]
    list_select_related = ["recipient"]
    list_filter = [("created_at", DateRangeFilter)]
    ordering = ["-id"]
    sortable_by = []
    exact_search = ("recipient__external_id",)
    search_help_text = "A user id, exactly."
    fields = ["recipient", "notification_short_id", "delivery_short_id", "title", "body", "icon", "image", "action_url",
              "category", "group_key", "created_at", "seen_at", "read_at", "archived_at", "version"]
    readonly_fields = ["notification_short_id", "delivery_short_id"]

    @admin.display(description="notification")
    def notification_short_id(self, item):
        return short_id(item.notification_id, change_url("notifications.notification", item.notification_id)) \
            if item.notification_id else "—"

    @admin.display(description="delivery")
    def delivery_short_id(self, item):
        return short_id(item.delivery_id, change_url("delivery.delivery", item.delivery_id)) if item.delivery_id else "—"
