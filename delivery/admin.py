from django.contrib import admin, messages

from delivery.models import DeadLetter, Delivery, DeliveryAttempt, DeliveryEvent, SandboxMessage, Suppression
from delivery.outcomes import requeue_dead_letter


class AttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    fields = ["number", "provider", "started_at", "finished_at", "outcome", "error_code", "error_message", "retry_in_seconds"]
    readonly_fields = fields


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ["id", "notification", "channel", "status", "provider", "attempts", "sent_at", "error_code", "fallback_from"]
    list_filter = ["status", "channel", "provider"]
    search_fields = ["id", "provider_message_id", "notification__id"]
    raw_id_fields = ["notification", "fallback_from"]
    readonly_fields = ["status", "status_changed_at", "status_history", "claimed_at", "attempts"]
    inlines = [AttemptInline]


@admin.register(DeadLetter)
class DeadLetterAdmin(admin.ModelAdmin):
    list_display = ["id", "delivery", "reason", "error_code", "created_at", "requeued_at"]
    list_filter = ["reason", "requeued_at"]
    search_fields = ["delivery__id", "error_code", "error_message"]
    raw_id_fields = ["delivery"]
    readonly_fields = ["delivery", "reason", "error_code", "error_message", "payload", "created_at", "requeued_at"]
    actions = ["requeue"]

    @admin.action(description="Requeue selected deliveries")
    def requeue(self, request, queryset):
        requeued = sum(requeue_dead_letter(letter.pk) for letter in queryset)
        self.message_user(request, f"Requeued {requeued} of {queryset.count()} dead letter(s).", messages.SUCCESS)


@admin.register(SandboxMessage)
class SandboxMessageAdmin(admin.ModelAdmin):
    list_display = ["id", "channel", "to", "created_at"]
    list_filter = ["channel"]
    readonly_fields = ["delivery", "channel", "to", "content", "created_at"]


@admin.register(Suppression)
class SuppressionAdmin(admin.ModelAdmin):
    list_display = ["channel", "address", "reason", "created_at"]
    list_filter = ["channel", "reason"]
    search_fields = ["address"]


@admin.register(DeliveryEvent)
class DeliveryEventAdmin(admin.ModelAdmin):
    list_display = ["source", "event", "delivery", "applied", "occurred_at", "received_at"]
    list_filter = ["source", "event", "applied"]
    search_fields = ["provider_message_id", "delivery__id", "event_key"]
    raw_id_fields = ["delivery"]
    readonly_fields = ["delivery", "source", "event", "event_key", "provider_message_id", "occurred_at", "received_at", "applied", "payload"]
