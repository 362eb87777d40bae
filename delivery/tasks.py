import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db import DatabaseError
from django.db.models import Q
from django.utils import timezone
from redis.exceptions import RedisError

from delivery.models import Delivery
from delivery.publishing import publish_delivery
from delivery.sending import attempt_delivery
from notifications.states import Status

log = logging.getLogger(__name__)


@shared_task(
    bind=True,
    # Infrastructure hiccups (database restarting) retry the whole task with backoff + jitter;
    # provider failures are decided per attempt in delivery.sending.
    autoretry_for=(DatabaseError, RedisError),
    retry_backoff=2,
    retry_backoff_max=120,
    retry_jitter=True,
    max_retries=20,
)
def deliver(self, delivery_id: str) -> None:
    step = attempt_delivery(delivery_id)
    if step.delay is not None:
        row = Delivery.objects.filter(pk=delivery_id).values("channel", "notification__priority").first()
        if row:
            publish_delivery(delivery_id, row["channel"], row["notification__priority"], countdown=step.delay)
        else:
            log.warning("delivery %s vanished before its retry", delivery_id)


@shared_task
def requeue_stalled_deliveries(limit: int = 1000) -> int:
    """Republish deliveries whose queue message was lost or whose worker died mid-attempt."""
    now = timezone.now()
    stalled_since = now - timedelta(seconds=settings.HERALD_STALL_SECONDS)
    lease_expired = now - timedelta(seconds=settings.HERALD_DELIVERY_LEASE_SECONDS)
    rows = list(
        Delivery.objects.filter(
            Q(status=Status.QUEUED, available_at__lt=stalled_since)
            | Q(status=Status.SENDING, claimed_at__lt=lease_expired)
        ).values_list("pk", "channel", "notification__priority", "status", "available_at")[:limit]
    )
    for pk, channel, priority, status, available_at in rows:
        if publish_delivery(pk, channel, priority) and status == Status.QUEUED:
            # Push the stall clock forward so a slow queue is not flooded with duplicates
            # (unless a retry set its own time meanwhile).
            Delivery.objects.filter(pk=pk, status=Status.QUEUED, available_at=available_at).update(available_at=now)
    if rows:
        log.warning("requeued %d stalled deliveries", len(rows))
    return len(rows)


@shared_task
def release_held_deliveries(limit: int = 1000) -> int:
    """Publish deliveries held for quiet hours whose window has ended."""
    now = timezone.now()
    rows = list(
        Delivery.objects.filter(status=Status.QUEUED, held_until__lte=now)
        .values_list("pk", "channel", "notification__priority", "held_until")[:limit]
    )
    released = 0
    for pk, channel, priority, held_until in rows:
        # Clearing the hold first makes the release happen once even with two sweeps running.
        if Delivery.objects.filter(pk=pk, held_until=held_until).update(held_until=None, available_at=now):
            publish_delivery(pk, channel, priority)
            released += 1
    return released
