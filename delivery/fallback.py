"""Falling back to another channel when one cannot reach the person at all."""

import logging

from django.db import transaction
from django.utils import timezone

from core.states import Status
from delivery.models import Delivery
from delivery.publishing import publish_delivery
from delivery.reachability import unreachable_channels
from notifications.models import Notification
from notifications.policy import fallback_order
from notifications.routing import dedup_key
from preferences import policy as preference_policy
from templates_app.models import Template

log = logging.getLogger(__name__)


def fall_back(delivery: Delivery, reason: str) -> Delivery | None:
    """Queue the next channel of the type's fallback order after `delivery`'s, once per notification.

    Used when a channel cannot reach the person (no device left, every token dead, a hard
    bounce, an invalid number), not for transient failures, which are retried instead.
    """
    order = fallback_order(delivery.notification.type)
    if delivery.channel not in order:
        return None
    with transaction.atomic():
        notification = Notification.objects.select_for_update().select_related("recipient").get(pk=delivery.notification_id)
        siblings = Delivery.objects.filter(notification=notification)
        if siblings.filter(fallback_from__isnull=False).exists():
            return None
        used = set(siblings.values_list("channel", flat=True))
        templates = set(Template.objects.filter(name=notification.template_name).values_list("channel", flat=True))
        unreachable = unreachable_channels(notification.recipient)
        for channel in order[order.index(delivery.channel) + 1:]:
            if channel in used or channel not in templates or unreachable.get(channel):
                continue
            now = timezone.now()
            # The person's choices and quiet hours apply to a fallback channel as to any other.
            [decision] = preference_policy.decide(
                notification.recipient, notification.type, [channel], notification.priority,
                dedup_key(notification), now, admission_id=str(notification.pk),
            )
            if decision.action == preference_policy.SUPPRESS:
                continue
            held_until = decision.hold_until if decision.action == preference_policy.HOLD else None
            created = Delivery.objects.create(
                notification=notification, channel=channel, fallback_from=delivery, created_at=now,
                status=Status.QUEUED, status_changed_at=now, available_at=held_until or now, held_until=held_until,
                status_history=[{"status": Status.QUEUED, "at": now.isoformat(), "reason": f"fallback_from_{delivery.channel}:{reason}"}],
            )
            if held_until is None:
                transaction.on_commit(lambda pk=created.pk, ch=channel: publish_delivery(pk, ch, notification.priority))
            log.info("notification %s: %s could not reach the person (%s); falling back to %s",
                     notification.pk, delivery.channel, reason, channel)
            return created
    return None
