import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import Q
from django.utils import timezone
from redis.exceptions import RedisError

from core.states import Status, transition
from notifications import routing
from notifications.accept import publish_for_routing
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


@shared_task
def relay_outbox(limit: int = 500) -> int:
    """Publish outbox rows that are due: scheduled ones whose time has come, and any whose
    after-commit publish never happened or whose message was lost."""
    now = timezone.now()
    stalled_since = now - timedelta(seconds=settings.HERALD_STALL_SECONDS)
    relayed = 0
    with transaction.atomic():
        rows = (
            Outbox.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("notification")
            .filter(available_at__lte=now)
            .filter(
                Q(notification__status__in=[Status.PENDING, Status.SCHEDULED])
                | Q(notification__status__in=[Status.QUEUED, Status.ROUTING], notification__status_changed_at__lt=stalled_since)
            )
            .order_by("available_at")[:limit]
        )
        for row in rows:
            if row.relay_count >= settings.HERALD_MAX_RELAYS:
                # Routed again and again without success: stop, and say so, rather than loop forever.
                transition(Notification, NOTIFICATION_TRANSITIONS, row.notification_id, Status.FAILED,
                           sources={Status.QUEUED, Status.ROUTING}, reason="routing_kept_failing")
                row.delete()
                log.error("notification %s failed: routing did not succeed after %d relays", row.notification_id, row.relay_count)
                continue
            if not publish_for_routing(row.notification):
                break  # the broker is down; the next run tries again
            relayed += 1
            row.relay_count += 1
            row.available_at = now + timedelta(seconds=settings.HERALD_STALL_SECONDS)
            row.save(update_fields=["relay_count", "available_at"])
    if relayed:
        log.info("relayed %d notifications from the outbox", relayed)
    return relayed


# Notifications still `sending` although none of their deliveries is: left behind by a process
# that died between the two writes before they were made in one transaction, or by a repair.
LAGGING_NOTIFICATIONS_SQL = """
SELECT n.id FROM notifications_notification AS n
WHERE n.status = 'sending' AND n.status_changed_at < %(settled)s
  AND NOT EXISTS (SELECT 1 FROM delivery_delivery AS d WHERE d.notification_id = n.id AND d.status IN ('queued', 'sending'))
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
