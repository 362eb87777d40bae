import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone
from redis.exceptions import RedisError

from core.states import Status
from delivery import journal
from delivery.models import Delivery
from delivery.publishing import publish_delivery
from delivery.sending import apply_journal, attempt_delivery

log = logging.getLogger(__name__)


@shared_task(
    bind=True,
    # Infrastructure hiccups (database restarting) retry the whole task with backoff + jitter;
    # the outcome journal keeps what a provider already answered meanwhile (delivery/journal.py).
    autoretry_for=(DatabaseError, RedisError),
    retry_backoff=1,
    retry_backoff_max=30,
    retry_jitter=True,
    max_retries=20,
)
def deliver(self, delivery_id: str) -> None:
    attempt_delivery(delivery_id)


# Retries and failed publishes (published_at null, due), dead workers' rows (lease over, not
# published since), and messages lost in the broker (published long ago, never consumed).
# Each row is marked published in the same statement that selects it, so two sweeps cannot
# both publish it, and a retry scheduled meanwhile (available_at moves on) is not touched.
DISPATCH_SQL = """
UPDATE delivery_delivery AS d SET published_at = %(now)s
FROM notifications_notification AS n
WHERE d.notification_id = n.id AND d.id IN (
    SELECT id FROM delivery_delivery
    WHERE (status = 'queued' AND published_at IS NULL AND held_until IS NULL AND available_at <= %(now)s)
       OR (status = 'sending' AND claimed_at < %(lease_over)s AND (published_at IS NULL OR published_at < %(lease_over)s))
       OR (status = 'queued' AND held_until IS NULL AND published_at < %(stalled)s AND available_at <= %(stalled)s)
    ORDER BY (published_at IS NULL) DESC, available_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
RETURNING d.id, d.channel, n.priority
"""


@shared_task
def dispatch_deliveries(limit: int = 2000) -> int:
    """Publish every delivery that needs a queue message now; apply journaled outcomes.

    Retry timing lives in the database (available_at), never in a Celery countdown that
    dies with its worker, so retries and orphans resume within a sweep interval.
    """
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(DISPATCH_SQL, {
            "now": now, "limit": limit,
            "lease_over": now - timedelta(seconds=settings.HERALD_DELIVERY_LEASE_SECONDS),
            "stalled": now - timedelta(seconds=settings.HERALD_STALL_SECONDS),
        })
        rows = cursor.fetchall()
    published = sum(publish_delivery(pk, channel, priority) for pk, channel, priority in rows)
    for delivery_id in journal.pending():
        apply_journal(delivery_id, only_abandoned=True)
    if published:
        log.info("dispatched %d deliveries", published)
    return published


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
        if Delivery.objects.filter(pk=pk, held_until=held_until).update(held_until=None, available_at=now, published_at=now):
            publish_delivery(pk, channel, priority)
            released += 1
    return released
