from django.contrib import admin

from inbox.models import InboxItem


@admin.register(InboxItem)
class InboxItemAdmin(admin.ModelAdmin):
    list_display = ["id", "recipient", "title", "category", "created_at", "read_at", "archived_at"]
    list_filter = ["category"]
    search_fields = ["recipient__external_id", "title", "group_key"]
    raw_id_fields = ["recipient", "delivery", "notification"]
    readonly_fields = ["version"]
