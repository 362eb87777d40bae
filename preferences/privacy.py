"""The person's rights over their data: erasure and export."""

import uuid

from django.db import transaction
from django.db.models import Prefetch
from django.utils import timezone

from delivery.models import DeadLetter, Delivery, DeliveryAttempt, DeliveryEvent, SandboxMessage
from inbox.models import InboxItem
from notifications.models import Notification, NotificationType
from preferences import caps, store
from preferences.editing import effective_document
from preferences.models import Device, Preferences, Recipient

ERASED_PREFIX = "erased:"

RECIPIENT_FIELDS = ["email", "phone", "webhook_url", "locale", "timezone", "is_active", "created_at", "updated_at"]
DEVICE_FIELDS = ["platform", "token", "is_active", "invalidated_reason", "invalidated_at", "created_at", "registered_at"]
NOTIFICATION_FIELDS = [
    "id", "type", "priority", "template_name", "variables", "requested_channels", "metadata", "idempotency_key",
    "scheduled_at", "created_at", "status", "status_changed_at", "status_history", "skipped_channels",
]
DELIVERY_FIELDS = [
    "id", "channel", "status", "status_history", "provider", "provider_message_id", "content", "attempts",
    "created_at", "sent_at", "delivered_at", "read_at", "clicked_at", "failed_at", "error_code", "error_message",
]
EVENT_FIELDS = ["source", "event", "occurred_at", "received_at", "payload"]
INBOX_FIELDS = ["title", "body", "icon", "image", "action_url", "category", "created_at", "seen_at", "read_at", "archived_at"]
ATTEMPT_FIELDS = ["number", "provider", "started_at", "finished_at", "outcome", "provider_message_id", "error_code", "error_message"]


def erase_recipient(recipient: Recipient) -> None:
    """Erase the person's personal data while keeping anonymous delivery counts.

    The Recipient row stays (notifications reference it) but loses its contact details, and its
    user id becomes a random placeholder, so the caller's id no longer resolves. Devices and
    preferences and in-app inbox items are deleted; notification variables and metadata, rendered
    content, provider error texts and receipt payloads (they can quote addresses) and sandbox
    copies are blanked. Statuses and
    timestamps stay for the counts.
    """
    with transaction.atomic():
        recipient = Recipient.objects.select_for_update().get(pk=recipient.pk)
        Device.objects.filter(recipient=recipient).delete()
        Preferences.objects.filter(recipient=recipient).delete()
        notifications = Notification.objects.filter(recipient=recipient)
        notifications.update(variables={}, metadata={})
        deliveries = Delivery.objects.filter(notification__in=notifications)
        deliveries.update(content={}, error_message="")
        DeliveryAttempt.objects.filter(delivery__in=deliveries).update(error_message="")
        SandboxMessage.objects.filter(delivery__in=deliveries).update(to=[], content={})
        DeliveryEvent.objects.filter(delivery__in=deliveries).update(payload={})
        InboxItem.objects.filter(recipient=recipient).delete()
        for letter in DeadLetter.objects.filter(delivery__in=deliveries).only("payload"):
            letter.payload = {k: v for k, v in letter.payload.items() if k != "variables"}
            letter.error_message = ""
            letter.save(update_fields=["payload", "error_message"])
        recipient.external_id = ERASED_PREFIX + uuid.uuid4().hex
        recipient.email = recipient.phone = recipient.webhook_url = ""
        recipient.locale, recipient.timezone, recipient.is_active = "en", "UTC", False
        recipient.save()
        store.forget_choices(recipient.pk)
        transaction.on_commit(lambda: caps.forget(recipient.pk, list(NotificationType.values)))


def export_recipient(recipient: Recipient) -> dict:
    """Everything held about the person: contact details, devices, preferences, notifications with deliveries and attempts."""
    notifications = (
        Notification.objects.filter(recipient=recipient)
        .order_by("created_at")
        .prefetch_related(
            Prefetch(
                "deliveries",
                queryset=Delivery.objects.order_by("created_at", "channel").prefetch_related("attempt_log", "events"),
            )
        )
    )
    stored = Preferences.objects.filter(recipient=recipient).first()
    return {
        "exported_at": timezone.now(),
        "user": {"user_id": recipient.external_id, **_fields(recipient, RECIPIENT_FIELDS)},
        "devices": [_fields(d, DEVICE_FIELDS) for d in recipient.devices.order_by("created_at")],
        "preferences": effective_document(recipient, store.choices_for(recipient.pk), store.category_policies()),
        "preferences_updated_at": stored.updated_at if stored else None,
        "notifications": [
            {
                **_fields(n, NOTIFICATION_FIELDS),
                "deliveries": [
                    {
                        **_fields(d, DELIVERY_FIELDS),
                        "attempt_log": [_fields(a, ATTEMPT_FIELDS) for a in d.attempt_log.all()],
                        "events": [_fields(e, EVENT_FIELDS) for e in d.events.all()],
                    }
                    for d in n.deliveries.all()
                ],
            }
            for n in notifications
        ],
        "inbox": [_fields(item, INBOX_FIELDS) for item in InboxItem.objects.filter(recipient=recipient).order_by("id")],
    }


def _fields(obj, names: list[str]) -> dict:
    return {name: getattr(obj, name) for name in names}


def masked_email(email: str) -> str:
    """a***@example.com: enough for the person to recognise the address, not enough to harvest it."""
    local, at, domain = email.partition("@")
    if not at:
        return ""
    return f"{local[:1]}***@{domain}"
