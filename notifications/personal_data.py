"""What notifications hold about a person, for erasure and export (registered in NotificationsConfig.ready)."""

from django.db.models import Prefetch

from delivery.models import Delivery
from delivery.personal_data import export_delivery
from notifications.models import Notification
from preferences.privacy import fields_of

NOTIFICATION_FIELDS = [
    "id", "type", "priority", "template_name", "variables", "requested_channels", "metadata", "idempotency_key",
    "scheduled_at", "created_at", "status", "status_changed_at", "status_history", "skipped_channels",
]


def export(recipient) -> list[dict]:
    """Every notification to the person, oldest first, with its deliveries, attempts and receipts."""
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
    return [{**fields_of(n, NOTIFICATION_FIELDS), "deliveries": [export_delivery(d) for d in n.deliveries.all()]} for n in notifications]


def erase(recipient) -> None:
    Notification.objects.filter(recipient=recipient).update(variables={}, metadata={})
