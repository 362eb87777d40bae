import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone
from redis.exceptions import RedisError

from core.queues import CHANNELS, PRIORITIES
from delivery import chunks
from delivery.publishing import wake_deliveries
from delivery.sending import apply_abandoned_journals, attempt_delivery

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


@shared_task(
    autoretry_for=(DatabaseError, RedisError), retry_backoff=1, retry_backoff_max=30, retry_jitter=True, max_retries=20,
)
def deliver_lane(queue: str) -> int:
    """Attempt a lane's due deliveries in chunks (woken by routing, retries, releases and the sweep)."""
    return chunks.deliver_lane(queue)


# The (channel, priority) pairs with work: deliveries due (new, retries, a wake-up lost with the
# broker) and deliveries whose worker died. One index probe per pair, so the sweep costs the same
# with a backlog of a million rows as with none (a DISTINCT over the due rows read them all, every
# second).
LANES_WITH_WORK_SQL = """
SELECT lane.channel, lane.priority FROM unnest(%(channels)s::text[], %(priorities)s::text[]) AS lane(channel, priority)
WHERE EXISTS (SELECT 1 FROM delivery_delivery AS d
              WHERE d.status = 'queued' AND d.held_until IS NULL AND d.channel = lane.channel
                AND d.priority = lane.priority AND d.available_at <= %(now)s)
   OR EXISTS (SELECT 1 FROM delivery_delivery AS d
              WHERE d.status = 'sending' AND d.channel = lane.channel AND d.priority = lane.priority
                AND (d.claimed_at < %(lease_over)s OR d.claimed_by = ANY(%(dead)s)))
"""
LANES = [(channel, priority) for channel in CHANNELS for priority in PRIORITIES]


@shared_task
def dispatch_deliveries() -> int:
    """Wake every lane that has deliveries to attempt now; apply journaled outcomes.

    Retry timing lives in the database (available_at), never in a Celery countdown that dies
    with its worker, so retries resume within a sweep interval, and the rows of a worker that
    died within its claimer key's time to live (core/claimers.py).
    """
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(LANES_WITH_WORK_SQL, {
            "now": now, "lease_over": now - timedelta(seconds=settings.HERALD_DELIVERY_LEASE_SECONDS),
            "dead": chunks.dead_claimers(cursor), "channels": [c for c, _ in LANES], "priorities": [p for _, p in LANES],
        })
        lanes = cursor.fetchall()
    for channel, priority in lanes:
        wake_deliveries(channel, priority)
    apply_abandoned_journals()
    return len(lanes)


@shared_task
def release_held_deliveries(limit: int = 5000) -> int:
    """Release deliveries held for quiet hours whose window has ended, and wake their lanes."""
    now = timezone.now()
    # Clearing the hold in one conditional statement makes each release happen once, whoever runs it.
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE delivery_delivery SET held_until = NULL, available_at = %(now)s WHERE id IN ("
            " SELECT id FROM delivery_delivery WHERE status = 'queued' AND held_until <= %(now)s"
            " LIMIT %(limit)s FOR UPDATE SKIP LOCKED) RETURNING channel, priority",
            {"now": now, "limit": limit},
        )
        released = cursor.fetchall()
    for channel, priority in set(released):
        wake_deliveries(channel, priority)
    return len(released)
