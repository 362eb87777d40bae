"""Claiming a delivery and moving it: conditional updates fenced by the claim's timestamp.

A worker that lost its lease (it stalled and another took over) cannot overwrite the newer
attempt's outcome: every later write names the claim it was made under.
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from core import claimers
from core.states import Status, move_all, transition
from delivery.models import Delivery, DeliveryAttempt
from delivery.states import DELIVERY_TRANSITIONS


def move(delivery_id, target: str, *, claim: datetime | None = None, sources=None, reason: str = "", **fields) -> bool:
    condition = Q(claimed_at=claim) if claim else None
    return transition(
        Delivery, DELIVERY_TRANSITIONS, delivery_id, target,
        sources=sources, condition=condition, reason=reason, **fields,
    )


def claim(delivery_id, now: datetime) -> bool:
    """Take a due delivery, or one whose previous worker's lease has run out."""
    lease_expired = now - timedelta(seconds=settings.HERALD_DELIVERY_LEASE_SECONDS)
    return transition(
        Delivery, DELIVERY_TRANSITIONS, delivery_id, Status.SENDING,
        sources={Status.QUEUED, Status.SENDING},
        condition=Q(status=Status.QUEUED, available_at__lte=now) | Q(status=Status.SENDING, claimed_at__lt=lease_expired),
        at=now, claimed_at=now, claimed_by=claimers.this_process(), attempts=F("attempts") + 1,
    )


def cancel_unsent(notification_ids) -> int:
    """Cancel the deliveries of `notification_ids` (ids or a subquery) whose provider call has not started."""
    return cancel_unstarted(Delivery.objects.filter(notification_id__in=notification_ids))


def cancel_unstarted(deliveries, reason: str = "canceled") -> int:
    """Cancel those of `deliveries` (a queryset) whose provider call has not started; how many.

    Queued rows, and rows claimed in a chunk whose attempt has not begun. The claimed rows are
    locked first: an attempt begins by locking its row (start_attempt), so each either sees the
    other's work or waits for it, and a call never starts for a row canceled here.
    """
    with transaction.atomic():
        canceled = move_all(deliveries, DELIVERY_TRANSITIONS, Status.CANCELED, sources={Status.QUEUED}, reason=reason)
        claimed = list(deliveries.select_for_update().filter(status=Status.SENDING).values_list("pk", flat=True))
        started = DeliveryAttempt.objects.filter(delivery_id__in=claimed, delivery__attempts=F("number")).values("delivery_id")
        canceled += move_all(Delivery.objects.filter(pk__in=claimed).exclude(pk__in=started), DELIVERY_TRANSITIONS,
                             Status.CANCELED, sources={Status.SENDING}, reason=reason)
    return canceled


START_ATTEMPT_SQL = """
WITH ours AS (
    SELECT id, attempts FROM delivery_delivery WHERE id = %(delivery)s AND status = 'sending' AND claimed_at = %(claim)s
    FOR UPDATE
)
INSERT INTO delivery_deliveryattempt (delivery_id, number, provider, started_at, outcome, provider_message_id, error_code, error_message)
SELECT id, attempts, %(provider)s, %(now)s, '', '', '', '' FROM ours
RETURNING id
"""


def start_attempt(delivery_id, claim_at: datetime, provider: str) -> DeliveryAttempt | None:
    """Record that a provider call is about to start; None if the row is no longer ours (canceled, taken over)."""
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(START_ATTEMPT_SQL, {"delivery": delivery_id, "claim": claim_at, "provider": provider, "now": now})
        row = cursor.fetchone()
    return DeliveryAttempt(pk=row[0], delivery_id=delivery_id, provider=provider, started_at=now) if row else None
