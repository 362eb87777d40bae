"""What follows from an attempt's result: sent, waiting, retry later, or failed.

The decision "retry, wait, give up, or stop bothering this address" is made here and only
here, from the provider's SendResult (record_result), fenced by the claim (delivery/claims.py).
"""

import logging
import random
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from redis.exceptions import RedisError

from core.logs import fields
from core.states import Status
from core.vocabulary import WAITING_CODES, Channel, ErrorCode
from delivery import accounting, receipts, signals
from delivery.claims import move
from delivery.composing import addresses, rendered_fields
from delivery.models import DeadLetter, Delivery, DeliveryAttempt, Suppression
from delivery.providers import Outcome, SendResult
from preferences.models import Device

log = logging.getLogger(__name__)




def expires_at(notification) -> datetime:
    """When the notification stops being worth sending: its category's time to live after it was due."""
    ttl = settings.HERALD_TTL_SECONDS.get(notification.type, settings.HERALD_DEFAULT_TTL_SECONDS)
    return (notification.scheduled_at or notification.created_at) + timedelta(seconds=ttl)


def retry_delay(attempt: int) -> float:
    """Exponential backoff with "equal jitter": half the delay fixed, half random."""
    ceiling = min(settings.HERALD_RETRY_MAX_SECONDS, settings.HERALD_RETRY_BASE_SECONDS * 2 ** (attempt - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def record_result(delivery: Delivery, result: SendResult, provider_name: str, *, claim_at: datetime) -> None:
    """Apply an attempt's result: sent, retry later, or failed (dead-lettered or falling back)."""
    now = timezone.now()
    if result.invalid_addresses:
        forget_dead_addresses(delivery, result)
    if result.outcome == Outcome.SENT:
        # The delivery and its notification move together: a worker killed in between would
        # otherwise leave the notification behind its delivery for good.
        with transaction.atomic():
            sent = move(
                delivery.pk, Status.SENT, claim=claim_at, sources={Status.SENDING},
                provider=provider_name, provider_message_id=result.provider_message_id[:255],
                sent_at=now, error_code="", error_message="", **rendered_fields(delivery),
            )
            if sent:
                signals.delivery_moved.send(sender=Delivery, notification_id=delivery.notification_id, status=Status.SENT)
                accounting.sent([delivery], {delivery.pk: provider_name}, now)
        if sent:
            delivery.provider_message_id = result.provider_message_id[:255]
            replay_early_receipts(delivery)
        return
    if result.outcome == Outcome.RETRY and not gives_up(delivery, result, now):
        waiting = result.error_code in WAITING_CODES
        delay = next_try_delay(delivery.attempts, result)
        latest = DeliveryAttempt.objects.filter(delivery=delivery, number=delivery.attempts).order_by("-pk").first()
        if latest:
            DeliveryAttempt.objects.filter(pk=latest.pk).update(retry_in_seconds=delay)
        later = {"available_at": now + timedelta(seconds=delay), "published_at": None}
        if waiting:
            move(delivery.pk, Status.QUEUED, claim=claim_at, sources={Status.SENDING}, reason=f"waiting:{result.error_code}",
                 provider=provider_name, error_code=result.error_code, error_message=result.error_message[:2000],
                 **rendered_fields(delivery), attempts=F("attempts") - 1, **later)
        else:
            with transaction.atomic():
                if fail(delivery, result, provider_name, claim_at, now, reason="retrying"):
                    move(delivery.pk, Status.QUEUED, sources={Status.FAILED}, reason="retry", **later)
        accounting.put_back(delivery, provider_name, waiting, result.error_code, delay)
    else:
        if result.outcome == Outcome.RETRY:  # gave up: past its time to live or out of attempts
            reason = give_up_reason(result)
            if reason == "expired":
                last = f"{result.error_code}: {result.error_message}"
                result = SendResult.failed(ErrorCode.EXPIRED, f"Gave up when its time to live ran out; last error: {last}"[:2000])
        # The outcome and what follows from it (suppression, fallback, dead letter) commit
        # together, so a crash in between cannot leave a failure nobody can requeue.
        with transaction.atomic():
            if fail(delivery, result, provider_name, claim_at, now):
                accounting.failed(delivery, provider_name, result.error_code,
                                  None if result.outcome == Outcome.INVALID_RECIPIENT else give_up_reason(result), now)
                if result.outcome == Outcome.INVALID_RECIPIENT:
                    if delivery.channel != Channel.PUSH:
                        suppress_address(delivery, result)
                    signals.delivery_cannot_reach.send(sender=Delivery, delivery=delivery, reason=result.error_code)
                else:
                    dead_letter(delivery, give_up_reason(result), result)
                signals.delivery_moved.send(sender=Delivery, notification_id=delivery.notification_id, status=None)


def gives_up(delivery: Delivery, result: SendResult, now: datetime) -> bool:
    """Whether a retryable result ends the delivery: past its time to live, or out of attempts.

    Only failures of this message's own count toward HERALD_MAX_ATTEMPTS; waiting and the
    provider's own trouble (an outage) end only with the time to live.
    """
    if now + timedelta(seconds=next_try_delay(delivery.attempts, result, jitter=False)) >= expires_at(delivery.notification):
        return True
    return result.error_code not in WAITING_CODES and not result.provider_fault and delivery.attempts >= settings.HERALD_MAX_ATTEMPTS


def give_up_reason(result: SendResult) -> str:
    if result.error_code in (ErrorCode.EXPIRED, ErrorCode.KILLED_ITS_WORKER):
        return result.error_code
    if result.outcome != Outcome.RETRY:
        return "permanent_failure"
    return "max_attempts_exceeded" if not (result.error_code in WAITING_CODES or result.provider_fault) else "expired"


def next_try_delay(attempt: int, result: SendResult, jitter: bool = True) -> float:
    """Seconds until the next try: the provider's Retry-After first; outages are probed every breaker period."""
    if result.error_code in WAITING_CODES:
        delay = result.retry_after or 1.0
    else:
        delay = retry_delay(attempt) if jitter else min(
            settings.HERALD_RETRY_MAX_SECONDS, settings.HERALD_RETRY_BASE_SECONDS * 2 ** (attempt - 1))
        if result.provider_fault:
            # The provider is down: try about as often as its breaker lets a probe through, so
            # messages resume within a breaker period of the outage ending.
            delay = min(delay, settings.HERALD_BREAKER_RESET_SECONDS)
        delay = max(delay, result.retry_after or 0)
    # Long Celery countdowns are gone, but a cap keeps a wild Retry-After from parking a message.
    return min(delay, settings.HERALD_RETRY_MAX_SECONDS)


def replay_early_receipts(delivery: Delivery) -> None:
    try:
        early = receipts.has_early_events(delivery.pk)
    except RedisError:
        early = True  # cannot tell, so look in the database
    if early:
        receipts.apply_pending(delivery)


def forget_dead_addresses(delivery: Delivery, result: SendResult) -> None:
    """Deactivate push tokens the provider says are gone, so nobody sends to them again."""
    Device.objects.filter(token__in=result.invalid_addresses, is_active=True).update(
        is_active=False, invalidated_reason=result.error_code or "unregistered", invalidated_at=timezone.now(),
    )


def suppress_address(delivery: Delivery, result: SendResult) -> None:
    for address in addresses(delivery):
        Suppression.objects.get_or_create(
            channel=delivery.channel, address=address,
            defaults={"reason": result.error_code, "detail": result.error_message[:2000]},
        )


def fail(delivery: Delivery, result: SendResult, provider_name: str, claim_at: datetime, now: datetime, reason: str = "") -> bool:
    return move(
        delivery.pk, Status.FAILED, claim=claim_at, sources={Status.SENDING},
        reason=reason or result.error_code, provider=provider_name, failed_at=now,
        error_code=result.error_code, error_message=result.error_message[:2000], **rendered_fields(delivery),
    )


def dead_letter(delivery: Delivery, reason: str, result: SendResult) -> None:
    notification = delivery.notification
    DeadLetter.objects.create(
        delivery=delivery, reason=reason, error_code=result.error_code,
        error_message=result.error_message[:2000],
        payload={
            "notification_id": str(notification.pk), "channel": delivery.channel,
            "type": notification.type, "priority": notification.priority,
            "template": notification.template_name, "variables": notification.variables,
            "attempts": delivery.attempts,
        },
    )
    log.warning("delivery dead-lettered", extra=fields(event="dead_lettered", delivery_id=delivery.pk,
                                                      notification_id=delivery.notification_id, reason=reason,
                                                      error_code=result.error_code))


def requeue_dead_letter(dead_letter_id: int) -> bool:
    """Give a dead-lettered delivery a fresh set of attempts; False if it was already requeued."""
    from delivery.publishing import wake_deliveries

    with transaction.atomic():
        letter = DeadLetter.objects.select_for_update().select_related("delivery__notification").get(pk=dead_letter_id)
        if letter.requeued_at:
            return False
        delivery = letter.delivery
        if not move(delivery.pk, Status.QUEUED, sources={Status.FAILED}, reason="requeued", attempts=0, available_at=timezone.now()):
            return False
        letter.requeued_at = timezone.now()
        letter.save(update_fields=["requeued_at"])
        signals.delivery_moved.send(sender=Delivery, notification_id=delivery.notification_id, status=None)
        transaction.on_commit(lambda: wake_deliveries(delivery.channel, delivery.priority))
    return True
