"""The person's rights over their data: erasure and export."""

import uuid

from django.db import transaction
from django.utils import timezone

from core import personal_data
from core.vocabulary import NotificationType
from preferences import caps, store
from preferences.editing import effective_document
from preferences.models import Device, Preferences, Recipient

ERASED_PREFIX = "erased:"

RECIPIENT_FIELDS = ["email", "phone", "webhook_url", "locale", "timezone", "is_active", "created_at", "updated_at"]
DEVICE_FIELDS = ["platform", "token", "is_active", "invalidated_reason", "invalidated_at", "created_at", "registered_at"]


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
        personal_data.erase_everywhere(recipient)
        recipient.external_id = ERASED_PREFIX + uuid.uuid4().hex
        recipient.email = recipient.phone = recipient.webhook_url = ""
        recipient.locale, recipient.timezone, recipient.is_active = "en", "UTC", False
        recipient.save()
        store.forget_choices(recipient.pk)
        transaction.on_commit(lambda: caps.forget(recipient.pk, list(NotificationType.values)))


def export_recipient(recipient: Recipient) -> dict:
    """Everything held about the person: contact details, devices, preferences, and each app's section
    (notifications with deliveries and attempts, the inbox; see core.personal_data)."""
    stored = Preferences.objects.filter(recipient=recipient).first()
    return {
        "exported_at": timezone.now(),
        "user": {"user_id": recipient.external_id, **fields_of(recipient, RECIPIENT_FIELDS)},
        "devices": [fields_of(d, DEVICE_FIELDS) for d in recipient.devices.order_by("created_at")],
        "preferences": effective_document(recipient, store.choices_for(recipient.pk), store.category_policies()),
        "preferences_updated_at": stored.updated_at if stored else None,
        **personal_data.export_sections(recipient),
    }


def fields_of(obj, names: list[str]) -> dict:
    return {name: getattr(obj, name) for name in names}


def masked_email(email: str) -> str:
    """a***@example.com: enough for the person to recognise the address, not enough to harvest it."""
    local, at, domain = email.partition("@")
    if not at:
        return ""
    return f"{local[:1]}***@{domain}"
