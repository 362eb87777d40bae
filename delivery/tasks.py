import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone
from redis.exceptions import RedisError

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


# The lanes with work: deliveries due (new, retries, a wake-up lost with the broker) and
# deliveries whose worker died (claim older than the lease). One row per lane, from the
# claimable index and the few rows in flight.
LANES_WITH_WORK_SQL = """
SELECT DISTINCT channel, priority FROM (
    SELECT channel, priority FROM delivery_delivery
    WHERE status = 'queued' AND held_until IS NULL AND available_at <= %(now)s
    UNION ALL
    SELECT channel, priority FROM delivery_delivery
    WHERE status = 'sending' AND (claimed_at < %(lease_over)s OR claimed_by = ANY(%(dead)s))
) AS due
"""


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
            "dead": chunks.dead_claimers(cursor),
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
