"""What delivery holds about a person, for erasure and export (registered in DeliveryConfig.ready)."""

from delivery.models import DeadLetter, Delivery, DeliveryAttempt, DeliveryEvent, SandboxMessage
from preferences.privacy import fields_of

DELIVERY_FIELDS = [
    "id", "channel", "status", "status_history", "provider", "provider_message_id", "content", "attempts",
    "created_at", "sent_at", "delivered_at", "read_at", "clicked_at", "failed_at", "error_code", "error_message",
]
EVENT_FIELDS = ["source", "event", "occurred_at", "received_at", "payload"]
ATTEMPT_FIELDS = ["number", "provider", "started_at", "finished_at", "outcome", "provider_message_id", "error_code", "error_message"]


def export_delivery(delivery: Delivery) -> dict:
    """One delivery with its attempts and receipts (prefetch `attempt_log` and `events`)."""
    return {
        **fields_of(delivery, DELIVERY_FIELDS),
        "attempt_log": [fields_of(a, ATTEMPT_FIELDS) for a in delivery.attempt_log.all()],
        "events": [fields_of(e, EVENT_FIELDS) for e in delivery.events.all()],
    }


def erase(recipient) -> None:
    """Blank rendered content, provider error texts, receipt payloads and sandbox copies; keep statuses."""
    deliveries = Delivery.objects.filter(notification__recipient=recipient)
    deliveries.update(content={}, error_message="")
    DeliveryAttempt.objects.filter(delivery__in=deliveries).update(error_message="")
    SandboxMessage.objects.filter(delivery__in=deliveries).update(to=[], content={})
    DeliveryEvent.objects.filter(delivery__in=deliveries).update(payload={})
    for letter in DeadLetter.objects.filter(delivery__in=deliveries).only("payload"):
        letter.payload = {k: v for k, v in letter.payload.items() if k != "variables"}
        letter.error_message = ""
        letter.save(update_fields=["payload", "error_message"])
