"""Deliveries and what became of them, for ops: records read, never edited; a dead letter requeued."""

import json

from django.contrib import admin, messages
from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils.html import format_html

from core.admin import (
    AuditAdmin,
    Button,
    DateRangeFilter,
    ExactSearch,
    change_url,
    changelist_url,
    history_table,
    moment,
    short_id,
    table,
    values_filter,
)
from delivery.models import DeadLetter, Delivery, DeliveryAttempt, DeliveryEvent, SandboxMessage, Suppression
from delivery.outcomes import requeue_dead_letter
from delivery.providers import PROVIDER_CLASSES

# Its own permission, not "change dead letter": nobody edits a dead letter, and on-call staff can be given
# the one thing they need (send it again) without anything else.
REQUEUE_PERMISSION = "delivery.requeue_deadletter"
REQUEUED = "Requeued"
# Who reports events: the receipt webhooks, the events API, Herald's tracked links and pixel, the inbox.
EVENT_SOURCES = ["sendgrid", "twilio", "app", "herald", "inbox"]
ProviderFilter = values_filter("provider", sorted(PROVIDER_CLASSES))


def notification_link(notification_id) -> str:
    return short_id(notification_id, change_url("notifications.notification", notification_id))


def delivery_link(delivery_id) -> str:
    return short_id(delivery_id, change_url(Delivery, delivery_id))


def person_link(recipient) -> str:
    """A person as callers know them: their user id (the database id only in the link)."""
    return format_html('<a href="{}">{}</a>', change_url("preferences.recipient", recipient.pk), recipient.external_id)


def pretty_json(value) -> str:
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True))


def attempts_table(delivery_id) -> str:
    attempts = DeliveryAttempt.objects.filter(delivery_id=delivery_id).order_by("number")
    rows = [[format_html('<a href="{}">{}</a>', change_url(DeliveryAttempt, a.pk), a.number), a.provider, a.started_at,
             a.finished_at, a.outcome or "running", a.error_code, a.retry_in_seconds, a.error_message] for a in attempts]
    return table(["#", "provider", "started", "finished", "outcome", "error code", "retry in (s)", "error"], rows,
                 "No attempt yet.")


@admin.register(Delivery)
class DeliveryAdmin(ExactSearch, AuditAdmin):
    list_display = ["id_short", "notification_short_id", "user_id", "channel", "status", "provider", "attempts",
                    "created_at", "sent_at", "error_code"]
    list_filter = ["status", "channel", ProviderFilter, ("created_at", DateRangeFilter), ("sent_at", DateRangeFilter)]
    list_select_related = ["notification__recipient"]
    ordering = ["-created_at"]
    sortable_by = ["created_at"]
    exact_search = ("id", "notification", "notification__recipient__external_id", "provider_message_id")
    search_help_text = "A delivery or notification id, a user id, or a provider's message id, exactly."
    fieldsets = [
        (None, {"fields": ["id", "notification_short_id", "user_id", "channel", "priority", "status", "provider",
                           "provider_message_id", "attempts", "template_version", "template_locale", "locale_fallback",
                           "experiment_arm", "escalation_step", "fallback_from_short_id"]}),
        ("Times", {"fields": ["created_at", "available_at", "held_until", "claimed_at", "claimed_by", "sent_at",
                              "delivered_at", "read_at", "clicked_at", "failed_at"]}),
        ("Outcome", {"fields": ["error_code", "error_message", "unknown_outcome_action"]}),
        ("Content as sent", {"fields": ["content_sent"], "classes": ["collapse"]}),
    ]
    readonly_fields = ["notification_short_id", "user_id", "fallback_from_short_id", "content_sent"]

    @admin.display(description="id")
    def id_short(self, delivery):
        return short_id(delivery.pk)

    @admin.display(description="notification")
    def notification_short_id(self, delivery):
        return notification_link(delivery.notification_id)

    @admin.display(description="user id")
    def user_id(self, delivery):
        return person_link(delivery.notification.recipient)

    @admin.display(description="fallback from")
    def fallback_from_short_id(self, delivery):
        return delivery_link(delivery.fallback_from_id) if delivery.fallback_from_id else "—"

    @admin.display(description="content")
    def content_sent(self, delivery):
        return pretty_json(delivery.content)

    def sections(self, request, delivery):
        letters = [[short_id(letter.pk, change_url(DeadLetter, letter.pk)), letter.reason, letter.error_code,
                    letter.created_at, letter.requeued_at] for letter in delivery.dead_letters.order_by("created_at")]
        events = [[event.source, event.event, "yes" if event.applied else "no", event.occurred_at, event.received_at]
                  for event in delivery.events.order_by("received_at")]
        all_attempts = format_html('<p><a href="{}" id="all-attempts">All attempts of this delivery</a></p>',
                                   changelist_url(DeliveryAttempt, delivery=delivery.pk))
        return [
            ("Attempts", format_html("{}{}", attempts_table(delivery.pk), all_attempts)),
            ("Dead letters", table(["dead letter", "reason", "error code", "created", "requeued"], letters,
                                   "Not dead-lettered.")),
            ("Status history", history_table(delivery.status_history)),
            ("Receipts and engagement", table(["source", "event", "applied", "occurred", "received"], events, "None yet.")),
        ]


@admin.register(DeliveryAttempt)
class DeliveryAttemptAdmin(ExactSearch, AuditAdmin):
    list_display = ["number", "delivery_short_id", "provider", "outcome", "started_at", "finished_at", "error_code",
                    "retry_in_seconds"]
    list_display_links = ["number"]
    list_filter = ["outcome", ProviderFilter, ("started_at", DateRangeFilter)]
    ordering = ["-id"]
    sortable_by = []
    exact_search = ("delivery", "provider_message_id")
    search_help_text = "A delivery id or a provider's message id, exactly."
    fields = ["delivery_short_id", "number", "provider", "started_at", "finished_at", "outcome", "provider_message_id",
              "error_code", "error_message", "retry_in_seconds"]
    readonly_fields = ["delivery_short_id"]

    @admin.display(description="delivery")
    def delivery_short_id(self, attempt):
        return delivery_link(attempt.delivery_id)


@admin.register(DeadLetter)
class DeadLetterAdmin(ExactSearch, AuditAdmin):
    list_display = ["id", "delivery_short_id", "user_id", "channel", "reason", "error_code", "created_at", "requeued_at"]
    list_filter = ["reason", ("created_at", DateRangeFilter), "requeued_at"]
    list_select_related = ["delivery__notification__recipient"]
    ordering = ["-created_at"]
    sortable_by = ["created_at"]
    exact_search = ("delivery", "delivery__notification", "delivery__notification__recipient__external_id")
    search_help_text = "A delivery or notification id, or a user id, exactly."
    fields = ["delivery_short_id", "delivery_status", "notification_short_id", "user_id", "channel", "reason", "error_code",
              "error_message", "created_at", "requeued_at", "requeued_by", "payload_shown"]
    readonly_fields = ["delivery_short_id", "delivery_status", "notification_short_id", "user_id", "channel", "requeued_by",
                       "payload_shown"]
    actions = ["requeue"]

    def has_requeue_permission(self, request, obj=None) -> bool:
        return request.user.has_perm(REQUEUE_PERMISSION)

    @admin.display(description="delivery")
    def delivery_short_id(self, letter):
        return delivery_link(letter.delivery_id)

    @admin.display(description="its delivery now")
    def delivery_status(self, letter):
        return f"{letter.delivery.status}, {letter.delivery.attempts} attempt(s)"

    @admin.display(description="notification")
    def notification_short_id(self, letter):
        return notification_link(letter.delivery.notification_id)

    @admin.display(description="user id")
    def user_id(self, letter):
        return person_link(letter.delivery.notification.recipient)

    @admin.display(description="channel")
    def channel(self, letter):
        return letter.delivery.channel

    @admin.display(description="payload")
    def payload_shown(self, letter):
        return pretty_json(letter.payload)

    @admin.display(description="requeued by")
    def requeued_by(self, letter):
        entry = (LogEntry.objects.filter(content_type=ContentType.objects.get_for_model(DeadLetter), object_id=str(letter.pk),
                                         change_message=REQUEUED)
                 .select_related("user").order_by("-action_time").first())
        if entry:
            return f"{entry.user.get_username()} at {moment(entry.action_time)}"
        return "nobody recorded (requeued through the API)" if letter.requeued_at else "—"

    def buttons(self, request, letter):
        if letter.requeued_at or not self.has_requeue_permission(request):
            return []
        return [Button("Requeue", reverse("admin:delivery_deadletter_requeue", args=[letter.pk]), "requeue-form",
                       "Sends its delivery again with a fresh set of attempts.")]

    def sections(self, request, letter):
        return [("Attempts of its delivery", attempts_table(letter.delivery_id))]

    def get_urls(self):
        own = [path("<int:pk>/requeue/", self.admin_site.admin_view(self.requeue_view), name="delivery_deadletter_requeue")]
        return own + super().get_urls()

    def requeue_view(self, request, pk):
        letter = self.object_to_act_on(request, pk, self.has_requeue_permission(request))
        if requeue_dead_letter(letter.pk):
            self.log_change(request, letter, REQUEUED)
            messages.success(request, "Requeued: its delivery is queued again with a fresh set of attempts.")
        else:
            messages.warning(request, "Not requeued: it was requeued already, or its delivery moved on.")
        return redirect(change_url(DeadLetter, letter.pk))

    @admin.action(description="Requeue selected dead letters", permissions=["requeue"])
    def requeue(self, request, queryset):
        letters = list(queryset)
        requeued = [letter for letter in letters if requeue_dead_letter(letter.pk)]
        for letter in requeued:
            self.log_change(request, letter, REQUEUED)
        self.message_user(request, f"Requeued {len(requeued)} of {len(letters)} dead letter(s).", messages.SUCCESS)


@admin.register(SandboxMessage)
class SandboxMessageAdmin(ExactSearch, AuditAdmin):
    list_display = ["id", "delivery_short_id", "channel", "to", "created_at"]
    list_filter = ["channel", ("created_at", DateRangeFilter)]
    ordering = ["-id"]
    sortable_by = []
    exact_search = ("delivery",)
    search_help_text = "A delivery id, exactly."
    fields = ["delivery_short_id", "channel", "to", "created_at", "content_shown", "headers"]
    readonly_fields = ["delivery_short_id", "content_shown"]

    @admin.display(description="delivery")
    def delivery_short_id(self, message):
        return delivery_link(message.delivery_id)

    @admin.display(description="content")
    def content_shown(self, message):
        return pretty_json(message.content)


@admin.register(Suppression)
class SuppressionAdmin(admin.ModelAdmin):
    list_display = ["channel", "address", "reason", "created_at"]
    list_filter = ["channel", "reason"]
    search_fields = ["address"]


@admin.register(DeliveryEvent)
class DeliveryEventAdmin(ExactSearch, AuditAdmin):
    list_display = ["id", "source", "event", "delivery_short_id", "applied", "occurred_at", "received_at"]
    list_filter = [values_filter("source", EVENT_SOURCES), "applied", ("received_at", DateRangeFilter)]
    ordering = ["-id"]
    sortable_by = []
    exact_search = ("delivery", "provider_message_id")
    search_help_text = "A delivery id or a provider's message id, exactly."
    fields = ["delivery_short_id", "source", "event", "event_key", "provider_message_id", "occurred_at", "received_at",
              "applied", "payload_shown"]
    readonly_fields = ["delivery_short_id", "payload_shown"]

    @admin.display(description="delivery")
    def delivery_short_id(self, event):
        return delivery_link(event.delivery_id) if event.delivery_id else "—"

    @admin.display(description="payload")
    def payload_shown(self, event):
        return pretty_json(event.payload)
