"""What a delivery's move counts: Prometheus metrics (core/metrics.py), the hourly rollups
(analytics/rollups.py) and one log line. Called once at each place an outcome is decided
(outcomes.record_result, bulk_sending.move_sent, receipts.apply), inside its transaction: the
rollups commit with the move, the metrics count after the commit.
"""

import logging
from datetime import datetime

from django.db import transaction

from analytics import rollups
from core import metrics
from core.logs import fields
from core.states import Status

log = logging.getLogger("herald.deliveries")

HELD = "quiet_hours_held_until"


def latency(delivery, at: datetime) -> float | None:
    """Accept → sent for `delivery` sent at `at`: from its notification's accept (or scheduled time);
    for a delivery an escalation step or a fallback created later, from its creation. None for one
    held for the person's quiet hours: it waited by their choice, not Herald's."""
    history = delivery.status_history or []
    if history and history[0].get("reason") == HELD:
        return None
    if delivery.escalation_step or delivery.fallback_from_id:
        start = delivery.created_at
    else:
        notification = delivery.notification
        start = notification.scheduled_at or notification.created_at
    return (at - start).total_seconds()


def sent(deliveries: list, providers: dict, at: datetime) -> None:
    """`deliveries` (notifications loaded) were sent at `at`, each by `providers[delivery.pk]`."""
    facts, observed = [], []
    for delivery in deliveries:
        provider = providers.get(delivery.pk, delivery.provider)
        seconds = latency(delivery, at)
        facts.append((rollups.group_of(delivery, provider), "sent", seconds))
        observed.append((delivery, provider, seconds))
    rollups.count(facts, at)

    def after_commit() -> None:
        for delivery, provider, seconds in observed:
            metrics.delivery_sent(delivery.channel, provider, delivery.priority, seconds)
            log.info("delivery sent", extra=fields(
                event="delivery_sent", delivery_id=delivery.pk, notification_id=delivery.notification_id,
                channel=delivery.channel, provider=provider, priority=delivery.priority, lane=metrics.lane_of(delivery.channel, delivery.priority),
                latency_seconds=None if seconds is None else round(seconds, 3)))

    transaction.on_commit(after_commit)


def failed(delivery, provider: str, error_code: str, dead_letter_reason: str | None, at: datetime) -> None:
    """`delivery` failed for good (dead-lettered, or its address cannot be reached)."""
    rollups.count([(rollups.group_of(delivery, provider), "failed", None)], at)

    def after_commit() -> None:
        metrics.delivery_finished(delivery.channel, provider, "failed", error_code)
        if dead_letter_reason:
            metrics.dead_lettered(delivery.channel, dead_letter_reason)
        log.warning("delivery failed", extra=fields(
            event="delivery_failed", delivery_id=delivery.pk, notification_id=delivery.notification_id,
            channel=delivery.channel, provider=provider, lane=metrics.lane_of(delivery.channel, delivery.priority),
            error_code=error_code, dead_letter=dead_letter_reason))

    transaction.on_commit(after_commit)


def put_back(delivery, provider: str, waiting: bool, error_code: str, delay: float) -> None:
    """`delivery` did not send and waits (`waiting`: no attempt used) or retries after `delay` seconds."""
    metrics.delivery_put_back(delivery.channel, provider, waiting, error_code)
    log.info("delivery waiting" if waiting else "delivery retrying", extra=fields(
        event="delivery_waiting" if waiting else "delivery_retrying", delivery_id=delivery.pk,
        notification_id=delivery.notification_id, channel=delivery.channel, provider=provider,
        lane=metrics.lane_of(delivery.channel, delivery.priority), error_code=error_code, delay_seconds=round(delay, 3),
        attempt=delivery.attempts))


# A receipt's move and what it counts as.
RECEIPT_EVENTS = {Status.DELIVERED: "delivered", Status.BOUNCED: "bounced", Status.FAILED: "failed"}
TIMESTAMP_EVENTS = {"read_at": "opened", "clicked_at": "clicked"}


def receipt(delivery, status: str | None, timestamps: list[str], source: str, at: datetime, error_code: str = "") -> None:
    """A receipt moved `delivery` to `status` (None: it did not move) and set `timestamps` for the first time."""
    events = [RECEIPT_EVENTS[status]] if status in RECEIPT_EVENTS else []
    events += [TIMESTAMP_EVENTS[name] for name in timestamps if name in TIMESTAMP_EVENTS]
    if not events:
        return
    group = rollups.group_of(delivery)
    rollups.count([(group, event, None) for event in events], at)
    if status is not None:
        if status in (Status.BOUNCED, Status.FAILED):
            transaction.on_commit(lambda: metrics.delivery_finished(delivery.channel, delivery.provider, str(status), error_code))
        log.info("delivery moved by a receipt", extra=fields(
            event="delivery_receipt", delivery_id=delivery.pk, notification_id=delivery.notification_id,
            channel=delivery.channel, provider=delivery.provider, status=str(status), source=source))


def converted(delivery, at: datetime) -> None:
    """The caller reported that `delivery`'s notification converted (counted once per notification)."""
    rollups.count([(rollups.group_of(delivery), "converted", None)], at)
