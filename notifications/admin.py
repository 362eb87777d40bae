"""Notifications for ops: each one's deliveries, status history, skipped channels and workflow, read and
never edited; API keys, revoked with who did it."""

from django.contrib import admin, messages
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from core.admin import (
    AuditAdmin,
    Button,
    DateRangeFilter,
    ExactSearch,
    RecordPage,
    change_url,
    changelist_url,
    history_table,
    reasons_table,
    short_id,
    table,
)
from delivery.admin import delivery_link, notification_link, person_link
from delivery.models import Delivery
from notifications.models import ApiKey, Batch, Notification, Outbox

REVOKED = "Revoked"


@admin.register(Notification)
class NotificationAdmin(ExactSearch, AuditAdmin):
    list_display = ["id_short", "user_id", "type", "priority", "template_name", "status", "created_at"]
    list_filter = ["status", "type", "priority", ("created_at", DateRangeFilter)]
    list_select_related = ["recipient"]
    ordering = ["-created_at"]
    sortable_by = ["created_at"]
    exact_search = ("id", "recipient__external_id", "idempotency_key")
    search_help_text = "A notification id, a user id or an idempotency key, exactly."
    fieldsets = [
        (None, {"fields": ["id", "user_id", "type", "priority", "template_name", "status", "status_changed_at", "created_at",
                           "scheduled_at", "send_time", "converted_at"]}),
        ("Origin", {"fields": ["api_key", "campaign_short_id", "schedule_short_id", "batch", "batch_part", "batch_key"]}),
        ("Request", {"fields": ["requested_channels", "variables", "metadata", "idempotency_key", "escalation", "batch_policy"],
                     "classes": ["collapse"]}),
    ]
    readonly_fields = ["user_id", "campaign_short_id", "schedule_short_id"]

    @admin.display(description="id")
    def id_short(self, notification):
        return short_id(notification.pk)

    @admin.display(description="user id")
    def user_id(self, notification):
        return person_link(notification.recipient)

    @admin.display(description="campaign")
    def campaign_short_id(self, notification):
        return short_id(notification.campaign_id, change_url("campaigns.campaign", notification.campaign_id)) \
            if notification.campaign_id else "—"

    @admin.display(description="schedule")
    def schedule_short_id(self, notification):
        return short_id(notification.schedule_id, change_url("schedules.schedule", notification.schedule_id)) \
            if notification.schedule_id else "—"

    def sections(self, request, notification):
        deliveries = [[format_html('<a href="{}">{}</a>', change_url(Delivery, d.pk), d.channel), short_id(d.pk), d.status,
                       d.provider, d.attempts, d.sent_at, d.error_code, d.escalation_step,
                       delivery_link(d.fallback_from_id) if d.fallback_from_id else None]
                      for d in notification.deliveries.order_by("created_at", "channel")]
        in_the_list = format_html('<p><a href="{}" id="deliveries-in-list">These deliveries in the list</a></p>',
                                  changelist_url(Delivery, notification=notification.pk))
        steps = [[step.position, step.kind, step.channels, step.condition, step.wait_seconds, step.state, step.due_at,
                  step.finished_at, step.reason, ", ".join(f"{d.get('channel')}: {d.get('reason')}" for d in step.detail or [])]
                 for step in notification.workflow_steps.order_by("position")]
        return [
            ("Deliveries", format_html("{}{}", table(
                ["channel", "delivery", "status", "provider", "attempts", "sent", "error code", "escalation step",
                 "fallback from"], deliveries, "No delivery: see the skipped channels."), in_the_list)),
            ("Status history", history_table(notification.status_history)),
            ("Skipped channels", reasons_table(notification.skipped_channels)),
            ("Workflow", table(["#", "kind", "channels", "condition", "wait (s)", "state", "due", "finished", "reason",
                                "skipped channels"], steps, "No workflow: no escalation was planned.")),
        ]


@admin.register(Outbox)
class OutboxAdmin(ExactSearch, AuditAdmin):
    list_display = ["notification_short_id", "available_at", "relay_count"]
    list_display_links = None
    ordering = ["available_at"]
    sortable_by = ["available_at"]
    exact_search = ("notification",)
    search_help_text = "A notification id, exactly."
    fields = ["notification_short_id", "available_at", "relay_count"]
    readonly_fields = ["notification_short_id"]

    @admin.display(description="notification")
    def notification_short_id(self, row):
        return notification_link(row.notification_id)


@admin.register(ApiKey)
class ApiKeyAdmin(RecordPage, admin.ModelAdmin):
    list_display = ["name", "prefix", "created_at", "revoked_at"]
    readonly_fields = ["prefix", "key_hash", "created_at", "revoked_at"]
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False  # keys are issued with `manage.py create_api_key`, which shows the secret once

    def has_revoke_permission(self, request, obj=None) -> bool:
        # Revoking is a change to the key; whoever may change keys may revoke them.
        return self.has_change_permission(request, obj)

    def buttons(self, request, key):
        if key.revoked_at or not self.has_revoke_permission(request, key):
            return []
        return [Button("Revoke", reverse("admin:notifications_apikey_revoke", args=[key.pk]), "revoke-form",
                       "Requests with this key are refused from now on (within the key cache's few seconds).")]

    def get_urls(self):
        own = [path("<int:pk>/revoke/", self.admin_site.admin_view(self.revoke_view), name="notifications_apikey_revoke")]
        return own + super().get_urls()

    def revoke_view(self, request, pk):
        key = self.object_to_act_on(request, pk, self.has_revoke_permission(request))
        self.revoke(request, ApiKey.objects.filter(pk=key.pk))
        return redirect(change_url(ApiKey, key.pk))

    @admin.action(description="Revoke selected keys", permissions=["revoke"])
    def revoke(self, request, queryset):
        keys = list(queryset.filter(revoked_at__isnull=True))
        ApiKey.objects.filter(pk__in=[key.pk for key in keys], revoked_at__isnull=True).update(revoked_at=timezone.now())
        for key in keys:
            self.log_change(request, key, REVOKED)
        self.message_user(request, f"Revoked {len(keys)} key(s).", messages.SUCCESS)


@admin.register(Batch)
class BatchAdmin(ExactSearch, AuditAdmin):
    """Open batches and how they closed: their key, items, window and the message they became."""

    list_display = ["key", "user_id", "state", "count", "opened_at", "closes_at", "closed_at"]
    list_filter = ["state", "type", ("opened_at", DateRangeFilter)]
    list_select_related = ["recipient"]
    ordering = ["-id"]
    sortable_by = []
    exact_search = ("recipient__external_id",)
    search_help_text = "A user id, exactly."
    fields = ["key", "user_id", "type", "priority", "template_name", "requested_channels", "state", "opened_at", "closes_at",
              "latest_close_at", "window_seconds", "sliding", "max_items", "count", "closed_at"]
    readonly_fields = ["user_id"]

    @admin.display(description="user id")
    def user_id(self, batch):
        return person_link(batch.recipient)

    def sections(self, request, batch):
        items = [[item.position, notification_link(item.notification_id), item.added_at, item.part]
                 for item in batch.items.all()]
        sent_as = [[notification_link(message.pk), message.batch_part, message.status, message.created_at]
                   for message in batch.messages.order_by("batch_part")]
        return [("Items", table(["#", "notification", "added", "part"], items, "No item.")),
                ("Sent as", table(["notification", "part", "status", "created"], sent_as, "Not sent yet."))]
