from core.vocabulary import Channel
from delivery.models import Suppression
from notifications.policy import unreachable_reason
from preferences.models import Recipient


def unreachable_channels(recipient: Recipient, active_devices: int | None = None) -> dict[str, str | None]:
    """For each channel, why `recipient` cannot receive it now (None when they can)."""
    if active_devices is None:
        active_devices = recipient.devices.filter(is_active=True).count()
    contact = {Channel.EMAIL: recipient.email, Channel.SMS: recipient.phone, Channel.WEBHOOK: recipient.webhook_url}
    suppressed = dict(
        Suppression.objects.filter(address__in=[a for a in contact.values() if a])
        .values_list("channel", "reason")
    ) if any(contact.values()) else {}
    reasons = {}
    for channel in Channel.values:
        reasons[channel] = unreachable_reason(
            channel, email=recipient.email, phone=recipient.phone,
            webhook_url=recipient.webhook_url, active_devices=active_devices,
        ) or (suppressed.get(channel) if contact.get(channel) else None)
    if not recipient.is_active:
        reasons = dict.fromkeys(reasons, "user_inactive")
    return reasons
