import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone
from redis.exceptions import RedisError

from core import sweeps
from core.states import Status, transition
from notifications import batch_closing, batching, escalation, routing
from notifications.lifecycle import refresh_notification_status
from notifications.models import Notification, Outbox
from notifications.states import NOTIFICATION_TRANSITIONS

log = logging.getLogger(__name__)


@shared_task(
    # The database or Redis (preferences, caps) restarting: retry with backoff and jitter.
    autoretry_for=(DatabaseError, RedisError), retry_backoff=2, retry_backoff_max=120, retry_jitter=True, max_retries=20,
)
def route_notification(notification_id: str) -> None:
    routing.route(notification_id)


@shared_task(
    autoretry_for=(DatabaseError, RedisError), retry_backoff=2, retry_backoff_max=60, retry_jitter=True, max_retries=20,
)
def route_lane(priority: str) -> int:
    """Route the waiting notifications of one priority, in chunks (woken by accept, campaigns and the relay)."""
    return routing.route_lane(priority)


@shared_task
def relay_outbox(limit: int = 2000) -> int:
    """Wake the routing lanes of outbox rows that are due: scheduled ones whose time has come, and
    any whose wake-up never happened, was lost, or whose routing stalled."""
    now = timezone.now()
    stalled_since = now - timedelta(seconds=settings.HERALD_STALL_SECONDS)
    with transaction.atomic():
        rows = list(
            Outbox.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(available_at__lte=now)
            .filter(
                Q(notification__status__in=[Status.PENDING, Status.SCHEDULED])
                | Q(notification__status__in=[Status.QUEUED, Status.ROUTING], notification__status_changed_at__lt=stalled_since)
            )
            .order_by("available_at")
            .values_list("notification_id", "notification__priority", "relay_count")[:limit]
        )
        given_up = [pk for pk, _, relays in rows if relays >= settings.HERALD_MAX_RELAYS]
        for notification_id in given_up:
            # Relayed again and again without being routed: stop, and say so, rather than loop forever.
            transition(Notification, NOTIFICATION_TRANSITIONS, notification_id, Status.FAILED,
                       sources={Status.PENDING, Status.SCHEDULED, Status.QUEUED, Status.ROUTING},
                       reason="routing_kept_failing")
            log.error("notification %s failed: routing did not succeed after %d relays", notification_id, settings.HERALD_MAX_RELAYS)
        Outbox.objects.filter(notification_id__in=given_up).delete()
        priorities = {priority for pk, priority, relays in rows if relays < settings.HERALD_MAX_RELAYS}
        woken = {priority for priority in priorities if routing.wake_routing(priority)}
        relayed = [pk for pk, priority, relays in rows if priority in woken and relays < settings.HERALD_MAX_RELAYS]
        Outbox.objects.filter(notification_id__in=relayed).update(
            relay_count=F("relay_count") + 1, available_at=now + timedelta(seconds=settings.HERALD_STALL_SECONDS),
        )
    if relayed:
        log.info("relayed %d notifications from the outbox", len(relayed))
    routing.wake_abandoned()  # a dead worker's claims are taken over now, not when their lease runs out
    return len(relayed)


# Notifications still `sending` although none of their deliveries is: left behind by a process
# that died between the two writes before they were made in one transaction, or by a repair.
LAGGING_NOTIFICATIONS_SQL = """
SELECT n.id FROM notifications_notification AS n
WHERE n.status = 'sending' AND n.status_changed_at < %(settled)s
  AND NOT EXISTS (SELECT 1 FROM delivery_delivery AS d WHERE d.notification_id = n.id AND d.status IN ('queued', 'sending'))
  AND NOT EXISTS (SELECT 1 FROM notifications_workflowstep AS w WHERE w.notification_id = n.id AND w.state IN ('waiting', 'planned'))
LIMIT 200
"""


@shared_task
def repair_lagging_notifications() -> int:
    """Roll up notifications whose deliveries have all finished while they still say `sending`."""
    with connection.cursor() as cursor:
        cursor.execute(LAGGING_NOTIFICATIONS_SQL, {"settled": timezone.now() - timedelta(seconds=30)})
        lagging = [row[0] for row in cursor.fetchall()]
    for notification_id in lagging:
        refresh_notification_status(notification_id)
    return len(lagging)


@shared_task(autoretry_for=(DatabaseError,), retry_backoff=1, retry_backoff_max=30, retry_jitter=True, max_retries=5)
def close_batches() -> int:
    """Close every batch whose window has ended or that is full (each into one message, once).

    A backlog (a digest due for many people at the same minute) is worked through a chunk at a
    time, and each full chunk wakes another closer first, so the worker's threads share it
    (SKIP LOCKED keeps them on different batches).
    """
    total = 0
    while True:
        closed = batch_closing.close_due(settings.HERALD_BATCH_CLOSE_CHUNK)
        total += closed
        if closed < settings.HERALD_BATCH_CLOSE_CHUNK:
            return total
        batching.wake_closer()


@shared_task(autoretry_for=(DatabaseError, RedisError), retry_backoff=1, retry_backoff_max=30, retry_jitter=True, max_retries=10)
def escalate() -> int:
    """Fire every escalation step that is due (each once), a chunk at a time."""
    return sweeps.drain(escalation.escalate_due, settings.HERALD_ESCALATION_CHUNK)
