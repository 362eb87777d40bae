"""Claiming a delivery and moving it: conditional updates fenced by the claim's timestamp.

A worker that lost its lease (it stalled and another took over) cannot overwrite the newer
attempt's outcome: every later write names the claim it was made under.
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import F, Q

from core.states import Status, transition
from delivery.models import Delivery
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
        at=now, claimed_at=now, attempts=F("attempts") + 1,
    )
