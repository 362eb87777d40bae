from django.contrib import admin, messages

from core.admin import HistoryInline
from delivery.models import Delivery
from notifications.models import ApiKey, Batch, BatchItem, Notification, Outbox, WorkflowStep


class DeliveryInline(admin.TabularInline):
    model = Delivery
    extra = 0
    can_delete = False
    fields = ["channel", "status", "provider", "provider_message_id", "attempts", "sent_at", "error_code", "error_message"]
    readonly_fields = fields
    show_change_link = True


class WorkflowStepInline(HistoryInline):
    model = WorkflowStep
    fields = ["position", "kind", "channels", "condition", "wait_seconds", "state", "due_at", "finished_at", "reason", "detail"]


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ["id", "recipient", "type", "priority", "template_name", "status", "created_at"]
    list_filter = ["status", "type", "priority"]
    search_fields = ["id", "recipient__external_id", "idempotency_key", "template_name"]
    raw_id_fields = ["recipient", "api_key"]
    readonly_fields = ["status", "status_changed_at", "status_history", "skipped_channels", "request_hash", "created_at",
                       "send_time", "schedule_id"]
    inlines = [DeliveryInline, WorkflowStepInline]
    date_hierarchy = "created_at"


@admin.register(Outbox)
class OutboxAdmin(admin.ModelAdmin):
    list_display = ["notification", "available_at", "relay_count"]
    raw_id_fields = ["notification"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "created_at", "revoked_at"]
    readonly_fields = ["prefix", "key_hash", "created_at"]
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False  # keys are issued with `manage.py create_api_key`, which shows the secret once

    @admin.action(description="Revoke selected keys")
    def revoke(self, request, queryset):
        from django.utils import timezone

        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"Revoked {count} key(s).", messages.SUCCESS)


class BatchItemInline(HistoryInline):
    model = BatchItem
    fields = ["position", "notification", "added_at"]


@admin.register(Batch)
class BatchAdmin(admin.ModelAdmin):
    """Open batches and how they closed: their key, items, window and the message they became."""

    list_display = ["key", "recipient", "state", "count", "opened_at", "closes_at", "closed_at"]
    list_filter = ["state", "type"]
    search_fields = ["key", "recipient__external_id"]
    readonly_fields = [f.name for f in Batch._meta.fields]
    inlines = [BatchItemInline]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
