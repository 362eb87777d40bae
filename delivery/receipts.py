"""Receipts: provider events and app engagement reports moving deliveries through their states.

Providers resend events and send them out of order, so every event is stored once (by its
source and key) and applied with the state machine's forward-only moves: a late "delivered"
after "read" changes nothing. An event that beats the worker's own "sent" update waits,
unapplied, and is replayed once the delivery is sent.
"""

import logging
from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from core import redis_client
from core.states import Status, transition
from delivery import accounting, signals
from delivery.models import Delivery, DeliveryEvent, Suppression
from delivery.providers import receipts_reader
from delivery.providers.base import ReceiptEffect
from delivery.states import DELIVERY_TRANSITIONS

log = logging.getLogger(__name__)


def engagement_effect(event: str) -> ReceiptEffect:
    """What the app's or the inbox's report of an open or click does to its delivery."""
    if event == "clicked":
        return ReceiptEffect(Status.READ, ("read_at", "clicked_at"))
    return ReceiptEffect(Status.READ, ("read_at",))


def record_event(
    *, source: str, event: str, event_key: str, delivery: Delivery | None, provider_message_id: str,
    occurred_at: datetime | None, payload: dict, effect: ReceiptEffect,
) -> bool:
    """Store an event once and apply it if its delivery is far enough along; False if seen before."""
    try:
        with transaction.atomic():
            stored = DeliveryEvent.objects.create(
                delivery=delivery, source=source, event=event, event_key=event_key[:255],
                provider_message_id=provider_message_id[:255], occurred_at=occurred_at, payload=payload,
            )
    except IntegrityError:
        # Seen before. If applying it failed last time (a crash after the insert), do it now.
        stored = DeliveryEvent.objects.filter(source=source, event_key=event_key[:255], applied=False).first()
        if stored is not None and stored.delivery_id is not None:
            apply(stored, effect)
        return False
    if delivery is not None:
        # Flag before looking at the delivery's status; the worker looks at the flag after
        # recording "sent", so one of the two always sees the other's write.
        redis_client.shared().set(f"herald:receipts:{delivery.pk}", 1, ex=86400)
        apply(stored, effect)
    return True


def has_early_events(delivery_id) -> bool:
    """Whether any receipt arrived for this delivery (checked right after the worker records the send)."""
    return bool(with_early_events([delivery_id]))


def with_early_events(delivery_ids: list) -> set:
    """Those of `delivery_ids` that receipts arrived for (checked right after the sends are recorded)."""
    if not delivery_ids:
        return set()
    pipe = redis_client.shared().pipeline(transaction=False)
    for delivery_id in delivery_ids:
        pipe.exists(f"herald:receipts:{delivery_id}")
    return {delivery_id for delivery_id, found in zip(delivery_ids, pipe.execute(), strict=True) if found}


def apply(stored: DeliveryEvent, effect: ReceiptEffect) -> bool:
    """Move the event's delivery as the effect says; leave the event pending if it is not sent yet."""
    delivery = stored.delivery
    if effect.status is None:
        DeliveryEvent.objects.filter(pk=stored.pk).update(applied=True)
        return False
    if Delivery.objects.filter(pk=delivery.pk, status__in=[Status.QUEUED, Status.SENDING]).exists():
        return False  # the provider answered before our worker recorded the send; replayed after it
    at = stored.occurred_at or timezone.now()
    fields = {name: at for name in effect.timestamps}
    if effect.error_code:
        fields.update(error_code=effect.error_code, error_message=effect.error_message)
    # The move, its consequences (suppression, fallback) and marking the event applied commit
    # together: a crash in between would otherwise leave a bounce nobody acts on.
    with transaction.atomic():
        moved = transition(Delivery, DELIVERY_TRANSITIONS, delivery.pk, effect.status,
                           reason=f"{stored.source}:{stored.event}", at=at, **fields)
        if not moved:
            # Already in that state (a click after an open): still record timestamps seen for the first time.
            first_time = [name for name in effect.timestamps
                          if Delivery.objects.filter(pk=delivery.pk, status=effect.status, **{f"{name}__isnull": True}).update(**{name: at})]
            accounting.receipt(delivery, None, first_time, stored.source, at)
        else:
            accounting.receipt(delivery, effect.status, list(effect.timestamps), stored.source, at, effect.error_code or "")
        if moved and effect.suppress:
            suppress_and_fall_back(delivery, effect)
        DeliveryEvent.objects.filter(pk=stored.pk).update(applied=True)
        if moved:
            signals.delivery_moved.send(sender=Delivery, notification_id=delivery.notification_id, status=effect.status)
    return moved


def suppress_and_fall_back(delivery: Delivery, effect: ReceiptEffect) -> None:
    delivery = Delivery.objects.select_related("notification__recipient").get(pk=delivery.pk)
    address = delivery.notification.recipient.contact_addresses().get(delivery.channel)
    if address:
        Suppression.objects.get_or_create(
            channel=delivery.channel, address=address,
            defaults={"reason": effect.error_code, "detail": effect.error_message},
        )
    signals.delivery_cannot_reach.send(sender=Delivery, delivery=delivery, reason=effect.error_code)


def apply_pending(delivery: Delivery) -> None:
    """Replay events that arrived before the delivery was recorded as sent, in the order they happened."""
    pending = DeliveryEvent.objects.filter(applied=False).filter(
        Q(delivery=delivery) | Q(delivery__isnull=True, provider_message_id=delivery.provider_message_id)
        if delivery.provider_message_id else Q(delivery=delivery)
    ).order_by("occurred_at", "received_at")
    for stored in pending:
        if stored.delivery_id is None:
            DeliveryEvent.objects.filter(pk=stored.pk).update(delivery=delivery)
            stored.delivery = delivery
        apply(stored, effect_of(stored))


def effect_of(stored: DeliveryEvent) -> ReceiptEffect:
    reader = receipts_reader(stored.source)
    return reader.receipt_effect(stored.payload) if reader else engagement_effect(stored.event)
