"""Each notification type's default priority and fallback order, and who can receive which channel."""

from dataclasses import dataclass

from core.vocabulary import Channel, NotificationType, Priority


@dataclass(frozen=True)
class TypePolicy:
    priority: str
    # When a channel cannot reach the person, the next one in this order is tried, once.
    # (Which channels a type uses by default is a per-category setting ops edit: preferences.)
    fallback: tuple[str, ...] = ()


TYPE_POLICIES: dict[str, TypePolicy] = {
    NotificationType.SECURITY: TypePolicy(Priority.CRITICAL, (Channel.PUSH, Channel.SMS, Channel.EMAIL)),
    NotificationType.TRANSACTION: TypePolicy(Priority.HIGH, (Channel.PUSH, Channel.EMAIL, Channel.SMS)),
    NotificationType.REMINDER: TypePolicy(Priority.MEDIUM, (Channel.PUSH, Channel.EMAIL)),
    NotificationType.SOCIAL: TypePolicy(Priority.MEDIUM, (Channel.PUSH, Channel.IN_APP)),
    NotificationType.MARKETING: TypePolicy(Priority.LOW),
}


def default_priority(notification_type: str) -> str:
    return TYPE_POLICIES[notification_type].priority


def fallback_order(notification_type: str) -> tuple[str, ...]:
    return TYPE_POLICIES[notification_type].fallback


def unreachable_reason(channel: str, *, email: str, phone: str, webhook_url: str, active_devices: int) -> str | None:
    """Why the recipient cannot receive `channel`, or None if they can."""
    if channel == Channel.PUSH and active_devices == 0:
        return "no_device"
    if channel == Channel.EMAIL and not email:
        return "no_email"
    if channel == Channel.SMS and not phone:
        return "no_phone"
    if channel == Channel.WEBHOOK and not webhook_url:
        return "no_webhook_url"
    return None


def choose_channels(
    candidates: list[str],
    template_channels: set[str],
    unreachable: dict[str, str | None],
) -> tuple[list[str], list[dict]]:
    """Split candidate channels into those the person can receive and those skipped, with reasons.

    `unreachable` maps a channel to the reason the recipient cannot receive it (None when they can).
    """
    chosen, skipped = [], []
    for channel in candidates:
        reason = unreachable.get(channel)
        if reason is None and channel not in template_channels:
            reason = "no_template"
        if reason:
            skipped.append({"channel": channel, "reason": reason})
        else:
            chosen.append(channel)
    return chosen, skipped
