"""Routing: which channels a notification goes out on, and falling back to the next one when a channel
cannot reach the person. The only place that creates Delivery rows."""

import hashlib
import json
import logging
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, F, JSONField, Q, Value
from django.utils import timezone

from core import wake
from core.queues import routing_queue
from core.states import JSONBAppend, Status, transition
from core.vocabulary import Channel
from delivery.models import Delivery, Suppression
from delivery.publishing import publish_delivery
from notifications.models import Notification, Outbox
from notifications.policy import choose_channels, fallback_order, unreachable_reason
from notifications.states import NOTIFICATION_TRANSITIONS
from preferences import policy as preference_policy
from preferences.models import Recipient
from templates_app.models import Template

log = logging.getLogger(__name__)


class LostClaim(Exception):
    """Another worker took this notification over while it was being routed."""


def claim_for_routing(notification_id) -> datetime | None:
    """Take the notification for routing; the claim's time, or None if another worker has it or it is done."""
    now = timezone.now()
    if transition(
        Notification, NOTIFICATION_TRANSITIONS, notification_id, Status.ROUTING,
        sources={Status.PENDING, Status.SCHEDULED, Status.QUEUED},
        condition=Q(scheduled_at__isnull=True) | Q(scheduled_at__lte=now), at=now,
    ):
        return now
    stale = now - timedelta(seconds=settings.HERALD_DELIVERY_LEASE_SECONDS)
    if transition(
        Notification, NOTIFICATION_TRANSITIONS, notification_id, Status.ROUTING,
        sources={Status.ROUTING}, condition=Q(status_changed_at__lt=stale), reason="worker_lost", at=now,
    ):
        return now
    return None


ROUTE_LANE_TASK = "notifications.tasks.route_lane"

# One statement claims a chunk of one priority's routable notifications: accepted ones
# (pending, or queued by an older release), scheduled ones now due, and those whose routing
# worker died (claim older than the lease). SKIP LOCKED lets concurrent claimers take
# different rows; each row's claim time fences its routing as in claim_for_routing.
CLAIM_CHUNK_SQL = """
WITH waiting AS (
    SELECT id FROM notifications_notification
    WHERE status IN ('pending', 'queued') AND priority = %(priority)s
    ORDER BY created_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED
), due AS (
    SELECT id FROM notifications_notification
    WHERE status = 'scheduled' AND scheduled_at <= %(now)s AND priority = %(priority)s
    LIMIT %(limit)s FOR UPDATE SKIP LOCKED
), abandoned AS (
    SELECT id FROM notifications_notification
    WHERE status = 'routing' AND status_changed_at < %(stale)s AND priority = %(priority)s
    LIMIT %(limit)s FOR UPDATE SKIP LOCKED
)
UPDATE notifications_notification AS n
SET status = 'routing', status_changed_at = %(now)s,
    status_history = n.status_history || CASE WHEN n.status = 'routing' THEN %(history_lost)s::jsonb ELSE %(history)s::jsonb END
WHERE n.id IN (SELECT id FROM waiting UNION ALL SELECT id FROM due UNION ALL SELECT id FROM abandoned)
RETURNING n.id
"""


def claim_chunk(priority: str, limit: int) -> tuple[list, datetime]:
    """Claim up to `limit` routable notifications of `priority` in one statement: (ids, the claim's time)."""
    now = timezone.now()
    entry = {"status": Status.ROUTING.value, "at": now.isoformat()}
    with connection.cursor() as cursor:
        cursor.execute(CLAIM_CHUNK_SQL, {
            "priority": priority, "limit": limit, "now": now,
            "stale": now - timedelta(seconds=settings.HERALD_DELIVERY_LEASE_SECONDS),
            "history": json.dumps([entry]), "history_lost": json.dumps([{**entry, "reason": "worker_lost"}]),
        })
        return [row[0] for row in cursor.fetchall()], now


def wake_routing(priority: str) -> bool:
    """Make sure a worker on `priority`'s routing lane will look for work (core/wake.py)."""
    return wake.wake(ROUTE_LANE_TASK, routing_queue(priority), f"route:{priority}", [priority])


def route_lane(priority: str) -> int:
    """Route `priority`'s waiting notifications, a chunk at a time, for up to HERALD_CHUNK_BUDGET_SECONDS."""
    deadline = time.monotonic() + settings.HERALD_CHUNK_BUDGET_SECONDS
    routed = 0
    while True:
        wake.woken(f"route:{priority}")
        ids, claimed_at = claim_chunk(priority, settings.HERALD_ROUTE_CHUNK)
        for done, notification_id in enumerate(ids):
            try:
                route_claimed(notification_id, claimed_at)
            except Exception:
                give_back(ids[done + 1:], claimed_at)  # the retried task takes them at once
                raise
        routed += len(ids)
        if len(ids) < settings.HERALD_ROUTE_CHUNK:
            return routed
        if time.monotonic() > deadline:
            wake_routing(priority)  # more may wait: hand the lane to the next message
            return routed


def give_back(notification_ids: list, claimed_at: datetime) -> None:
    """Return claims this worker still holds to `queued`, so they need not wait for the lease."""
    entry = {"status": Status.QUEUED.value, "at": timezone.now().isoformat(), "reason": "routing_error"}
    Notification.objects.filter(pk__in=notification_ids, status=Status.ROUTING, status_changed_at=claimed_at).update(
        status=Status.QUEUED, status_changed_at=timezone.now(),
        status_history=JSONBAppend(F("status_history"), Value([entry], output_field=JSONField())),
    )


def route(notification_id) -> None:
    """Claim one notification and route it (the message of a single-row publish)."""
    claimed_at = claim_for_routing(notification_id)
    if claimed_at is None:
        log.info("notification %s already routed or canceled; skipping", notification_id)
        return
    route_claimed(notification_id, claimed_at)


def route_claimed(notification_id, claimed_at: datetime) -> None:
    """Create the deliveries of a notification this worker claimed at `claimed_at`, and publish them."""
    try:
        plan_and_create_deliveries(notification_id, claimed_at)
    except LostClaim:
        log.warning("notification %s was taken over by another worker mid-routing", notification_id)
    except Exception:
        # Give the claim back (if still ours) so the retried task can take it at once.
        transition(Notification, NOTIFICATION_TRANSITIONS, notification_id, Status.QUEUED,
                   sources={Status.ROUTING}, condition=Q(status_changed_at=claimed_at), reason="routing_error")
        raise


def plan_and_create_deliveries(notification_id, claimed_at: datetime) -> None:
    notification = (
        Notification.objects.select_related("recipient")
        .annotate(active_devices=Count("recipient__devices", filter=Q(recipient__devices__is_active=True)))
        .get(pk=notification_id)
    )
    recipient = notification.recipient
    candidates = notification.requested_channels or preference_policy.candidate_channels(recipient, notification.type)
    template_channels = set(Template.objects.filter(name=notification.template_name).values_list("channel", flat=True))
    reachable, skipped = choose_channels(candidates, template_channels, unreachable_channels(recipient, notification.active_devices))
    now = timezone.now()
    decisions = preference_policy.decide(
        recipient, notification.type, reachable, notification.priority, dedup_key(notification), now,
        admission_id=str(notification.pk),
    ) if reachable else []
    deliveries = []
    for decision in decisions:
        if decision.action == preference_policy.SUPPRESS:
            skipped.append({"channel": decision.channel, "reason": decision.reason})
            continue
        held = decision.action == preference_policy.HOLD
        if held:
            skipped.append({"channel": decision.channel, "reason": decision.reason, "until": decision.hold_until.isoformat()})
        deliveries.append(Delivery(
            notification=notification, channel=decision.channel, status=Status.QUEUED, status_changed_at=now,
            status_history=[{"status": Status.QUEUED, "at": now.isoformat(), **({"reason": decision.reason} if held else {})}],
            available_at=decision.hold_until if held else now, held_until=decision.hold_until if held else None,
            created_at=now,
        ))

    # Deliveries, the decision record and the status move commit together: a crash leaves
    # the notification in `routing`, to be taken over once its claim goes stale.
    with transaction.atomic():
        Delivery.objects.bulk_create(deliveries)
        moved = transition(
            Notification, NOTIFICATION_TRANSITIONS, notification_id, Status.SENDING if deliveries else Status.FAILED,
            sources={Status.ROUTING}, condition=Q(status_changed_at=claimed_at),
            reason="" if deliveries else "no_channel_to_send", skipped_channels=skipped,
        )
        if not moved:
            raise LostClaim(notification_id)  # rolls the deliveries back: the new owner makes its own
        Outbox.objects.filter(notification_id=notification_id).delete()
        due = [(d.pk, d.channel) for d in deliveries if d.held_until is None]
        transaction.on_commit(lambda: [publish_delivery(pk, channel, notification.priority) for pk, channel in due])


def dedup_key(notification: Notification) -> str:
    """Same person, template and variables: the same message, whatever its idempotency key."""
    canonical = json.dumps([notification.recipient_id, notification.template_name, notification.variables], sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def cancel(notification_id) -> bool:
    """Cancel a notification that has not started routing; False if it is too late."""
    with transaction.atomic():
        canceled = transition(
            Notification, NOTIFICATION_TRANSITIONS, notification_id, Status.CANCELED,
            sources={Status.SCHEDULED, Status.PENDING, Status.QUEUED}, reason="canceled_by_api",
        )
        if canceled:
            Outbox.objects.filter(notification_id=notification_id).delete()
    return canceled


def unreachable_channels(recipient: Recipient, active_devices: int | None = None) -> dict[str, str | None]:
    """For each channel, why `recipient` cannot receive it now (None when they can)."""
    if active_devices is None:
        active_devices = recipient.devices.filter(is_active=True).count()
    contact = recipient.contact_addresses()
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


def on_delivery_cannot_reach(sender, delivery, reason, **kwargs) -> None:
    fall_back(delivery, reason)
