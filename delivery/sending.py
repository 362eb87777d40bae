"""One delivery attempt: claim the row, render, call the provider, record what happened.

The decision "retry, give up, or stop bothering this address" is made here and only here,
from the provider's SendResult. Every step is a conditional update fenced by the claim
timestamp, so a worker that lost its lease (it stalled and another took over) cannot
overwrite the newer attempt's outcome.
"""

import logging
import random
import threading
import time
from datetime import datetime, timedelta
from html import escape

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from redis.exceptions import RedisError

from core.states import Status, transition
from core.vocabulary import Channel
from delivery import journal, rate_limit, receipts, signals, unknown_outcomes
from delivery.breaker import call_through_breaker
from delivery.models import DeadLetter, Delivery, DeliveryAttempt, Suppression
from delivery.providers import Outcome, OutgoingMessage, SendResult, get_provider, provider_names
from delivery.providers.base import merge_push_results
from delivery.states import DELIVERY_TRANSITIONS
from preferences import unsubscribe
from preferences.models import Device
from templates_app.models import Template
from templates_app.rendering import RenderError, render, select_variant

log = logging.getLogger(__name__)

LOCALLY_THROTTLED = "rate_limited_locally"
CIRCUIT_OPEN = "circuit_open"
PROVIDER_BUSY = "provider_busy"
# Waiting is not failing: our own rate limit, the provider's 429 and an open breaker say
# "not now", so they use up no attempt; the delivery gives up by age (`expired`) instead.
WAITING = {LOCALLY_THROTTLED, CIRCUIT_OPEN, PROVIDER_BUSY, "rate_limited", "endpoint_rate_limited"}


def expires_at(notification) -> datetime:
    """When the notification stops being worth sending: its category's time to live after it was due."""
    ttl = settings.HERALD_TTL_SECONDS.get(notification.type, settings.HERALD_DEFAULT_TTL_SECONDS)
    return (notification.scheduled_at or notification.created_at) + timedelta(seconds=ttl)


def retry_delay(attempt: int) -> float:
    """Exponential backoff with "equal jitter": half the delay fixed, half random."""
    ceiling = min(settings.HERALD_RETRY_MAX_SECONDS, settings.HERALD_RETRY_BASE_SECONDS * 2 ** (attempt - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


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


def attempt_delivery(delivery_id) -> None:
    """Make one attempt at `delivery_id` if it is due and nobody else holds it."""
    apply_journal(delivery_id)
    now = timezone.now()
    if not claim(delivery_id, now):
        return  # early, done, or held by a live worker: the dispatch sweep publishes it again when due
    delivery = Delivery.objects.select_related("notification__recipient").get(pk=delivery_id)
    result, provider_name = None, ""
    if delivery.attempts > 1:
        result, provider_name = settle_interrupted_attempts(delivery, now)
    if result is None and now >= expires_at(delivery.notification):
        result = SendResult.failed("expired", f"Not sent within the {delivery.notification.type} time to live.")
    if result is None:
        result, provider_name = make_attempt(delivery, now)
    journal.record_final(delivery.pk, now, result, provider_name)
    record_result(delivery, result, provider_name, claim_at=now)
    journal.forget(delivery.pk)


def make_attempt(delivery: Delivery, claim_at: datetime) -> tuple[SendResult, str]:
    deadline = time.monotonic() + settings.HERALD_ATTEMPT_BUDGET_SECONDS
    try:
        if not delivery.content:  # stored with the attempt's outcome, so retries send the same text
            delivery.content = render_content(delivery)
        result, provider_name = send(delivery, deadline, claim_at)
    except RenderError as exc:
        # A template that breaks a bound fails at once; a render process that died is ours to retry.
        result = SendResult.retry("renderer_crashed", str(exc)) if exc.bound == "crash" else SendResult.failed("render_error", str(exc))
        provider_name = ""
        record_unsent_attempt(delivery, claim_at, result)
    except Exception as exc:  # a bug here must end in a retry and, at worst, a dead letter; never a stuck row
        log.exception("delivery %s: attempt crashed", delivery.pk)
        result, provider_name = journaled_sent(delivery.pk, claim_at) or (
            SendResult.retry("internal_error", f"{type(exc).__name__}: {exc}"), "")
        if result.outcome != Outcome.SENT:
            record_unsent_attempt(delivery, claim_at, result)
    if result.outcome == Outcome.UNKNOWN:
        unknown = DeliveryAttempt.objects.filter(
            delivery=delivery, number=delivery.attempts, outcome=DeliveryAttempt.Outcome.UNKNOWN, finished_at__isnull=True,
        ).order_by("-pk").first()
        if unknown is not None:
            result = settle_unknown(delivery, result, unknown.provider, unknown.started_at)
            DeliveryAttempt.objects.filter(pk=unknown.pk).update(finished_at=timezone.now())
        else:
            result = settle_unknown(delivery, result, "", claim_at)
    return result, provider_name


def journaled_sent(delivery_id, claim_at: datetime) -> tuple[SendResult, str] | None:
    """A provider's "sent" journaled under this claim, if any: what a crash after the answer must not lose."""
    entry = journal.entries(delivery_id) or {"attempts": {}}
    for attempt_id, data in entry["attempts"].items():
        if data["outcome"] == Outcome.SENT and data["claim"] == claim_at.isoformat():
            provider = DeliveryAttempt.objects.filter(pk=attempt_id).values_list("provider", flat=True).first() or ""
            return journal.decode_result(data), provider
    return None


def settle_interrupted_attempts(delivery: Delivery, now: datetime) -> tuple[SendResult | None, str]:
    """A previous worker died mid-attempt: its provider calls have unknown outcomes. Settle them.

    Returns the result to record instead of sending, or (None, "") when sending again is right.
    """
    # Unfinished: never answered (the worker died in the call), or answered "unknown" and not
    # settled yet (the worker died while settling it).
    unfinished = list(DeliveryAttempt.objects.filter(delivery=delivery, finished_at__isnull=True).order_by("pk"))
    if not unfinished:
        return None, ""
    DeliveryAttempt.objects.filter(pk__in=[a.pk for a in unfinished], outcome="").update(
        outcome=DeliveryAttempt.Outcome.UNKNOWN, error_code="worker_lost",
        error_message="The worker making this attempt stopped before the provider's answer was recorded.",
    )
    last = unfinished[-1]
    lost = SendResult.unknown("worker_lost", "The worker stopped before the provider's answer was recorded.")
    result = settle_unknown(delivery, lost, last.provider, last.started_at)
    DeliveryAttempt.objects.filter(pk__in=[a.pk for a in unfinished]).update(finished_at=now)
    return (None, "") if result.outcome == Outcome.RETRY else (result, last.provider)


def settle_unknown(delivery: Delivery, unknown: SendResult, provider_name: str, started_at: datetime) -> SendResult:
    """The result to act on for an attempt whose outcome is unknown (see delivery/unknown_outcomes.py)."""
    if not delivery.content:
        try:
            delivery.content = render_content(delivery)
        except RenderError:
            pass
    message = build_message(delivery, addresses(delivery) if delivery.channel != Channel.PUSH else [])
    try:
        found, action = unknown_outcomes.decide(message, provider_name, started_at, delivery.notification.type)
    except Exception:  # the policy must settle the attempt even when asking the provider blows up
        log.exception("delivery %s: could not settle an unknown outcome at %s", delivery.pk, provider_name)
        found, action = unknown_outcomes.decide(message, "", started_at, delivery.notification.type)
    Delivery.objects.filter(pk=delivery.pk).update(unknown_outcome_action=action)
    log.warning("delivery %s: outcome at %s unknown (%s); %s", delivery.pk, provider_name, unknown.error_code, action)
    if found is not None:
        return found
    # Sending again: a provider-side failure, so it waits for the provider like one.
    return SendResult.retry(unknown.error_code, f"{unknown.error_message} Sending again ({action}).", provider_fault=True)


def apply_journal(delivery_id, only_abandoned: bool = False) -> bool:
    """Record what the journal holds for `delivery_id` that the database may not; True if it held anything.

    Every write is fenced by the claim the entry was made under. With `only_abandoned` (the
    sweep), entries whose claim's lease is still running are left to their worker.
    """
    entry = journal.entries(delivery_id)
    if entry is None:
        return False
    now = timezone.now()
    if only_abandoned:
        claims = [datetime.fromisoformat(d["claim"]) for d in [*entry["attempts"].values(), entry["final"] or {}] if d]
        if any(now - claim < timedelta(seconds=settings.HERALD_DELIVERY_LEASE_SECONDS) for claim in claims):
            return False
    for attempt_id, data in entry["attempts"].items():
        result = journal.decode_result(data)
        DeliveryAttempt.objects.filter(pk=attempt_id, finished_at__isnull=True).update(
            finished_at=None if result.outcome == Outcome.UNKNOWN else now, outcome=result.outcome,
            provider_message_id=result.provider_message_id[:255],
            error_code=result.error_code, error_message=result.error_message[:2000],
        )
    final = entry["final"]
    if final is None:
        sent = [(pk, d) for pk, d in entry["attempts"].items() if d["outcome"] == Outcome.SENT]
        if sent:
            provider = DeliveryAttempt.objects.filter(pk=sent[0][0]).values_list("provider", flat=True).first() or ""
            final = {**sent[0][1], "provider": provider}
    if final is not None:
        claim_at = datetime.fromisoformat(final["claim"])
        delivery = Delivery.objects.select_related("notification__recipient").filter(
            pk=delivery_id, status=Status.SENDING, claimed_at=claim_at,
        ).first()
        if delivery is not None:
            log.warning("delivery %s: applying the outcome journaled under claim %s", delivery_id, claim_at)
            record_result(delivery, journal.decode_result(final), final["provider"], claim_at=claim_at)
    journal.forget(delivery_id)
    return True


def record_unsent_attempt(delivery: Delivery, started_at: datetime, result: SendResult) -> None:
    DeliveryAttempt.objects.create(
        delivery=delivery, number=delivery.attempts, started_at=started_at, finished_at=timezone.now(),
        outcome=result.outcome, error_code=result.error_code, error_message=result.error_message[:2000],
    )


def send(delivery: Delivery, deadline: float, claim_at: datetime) -> tuple[SendResult, str]:
    """Send through the channel's providers; push goes to each device platform's provider."""
    if delivery.channel != Channel.PUSH:
        message = build_message(delivery, addresses(delivery))
        if not message.to:
            return SendResult.invalid_recipient(*missing_address(delivery.channel)), ""
        return send_with_failover(delivery, message, provider_names(delivery.channel), deadline, claim_at)
    targets = push_targets(delivery)
    if not targets:
        return SendResult.invalid_recipient(*missing_address(delivery.channel)), ""
    outcomes = [
        send_with_failover(delivery, build_message(delivery, tokens), provider_names(Channel.PUSH, platform), deadline, claim_at)
        for platform, tokens in sorted(targets.items())
    ]
    return merge_push_results([r for r, _ in outcomes]), ",".join(sorted({name for _, name in outcomes if name}))


def send_with_failover(
    delivery: Delivery, message: OutgoingMessage, names: list[str], deadline: float, claim_at: datetime,
) -> tuple[SendResult, str]:
    """Try each provider in order until one takes the message or the failure is the message's own.

    The whole attempt stays within its budget (well inside the delivery's lease), so a slow
    provider cannot outlive the claim and have a second worker send the same message.
    """
    result, used = None, ""
    for name in names:
        if used and deadline - time.monotonic() < settings.HERALD_PROVIDER_TIMEOUT:
            break  # no time left for another provider within this attempt
        slot = in_flight.slot(f"{name}:{delivery.channel}")  # the sandbox stands in for every channel's provider
        if not slot.acquire(timeout=0.05):
            result = SendResult.retry(PROVIDER_BUSY, f"{name} already has {settings.HERALD_PROVIDER_MAX_IN_FLIGHT} calls in flight here", after=0.5)
            break  # no call, so no attempt row: the delivery waits a moment and comes back
        try:
            attempt = DeliveryAttempt.objects.create(delivery=delivery, number=delivery.attempts, provider=name)
            result = call_provider(name, message, deadline)
        finally:
            slot.release()
        skipped = result.error_code in (CIRCUIT_OPEN, LOCALLY_THROTTLED, PROVIDER_BUSY)
        if not skipped:  # the provider answered (or not): journal it before anything else
            journal.record_attempt(delivery.pk, claim_at, attempt.pk, result)
        DeliveryAttempt.objects.filter(pk=attempt.pk).update(
            # An unknown outcome stays unfinished until it is settled (make_attempt), so a worker
            # dying before that leaves it for the takeover to settle, never to resend blindly.
            finished_at=None if result.outcome == Outcome.UNKNOWN else timezone.now(),
            outcome=DeliveryAttempt.Outcome.SKIPPED if skipped else result.outcome,
            provider_message_id=result.provider_message_id[:255],
            error_code=result.error_code, error_message=result.error_message[:2000],
        )
        used = name
        if result.outcome in (Outcome.SENT, Outcome.INVALID_RECIPIENT, Outcome.UNKNOWN) or not result.provider_fault:
            break  # an unknown outcome may have been sent: another provider would make it twice
        log.warning("delivery %s: %s failed (%s), trying the next provider", delivery.pk, name, result.error_code)
    return result, used


class InFlightLimits:
    """At most HERALD_PROVIDER_MAX_IN_FLIGHT calls to one provider at a time in this process.

    A worker runs several threads; without this a slow or hanging provider would occupy all
    of them and stop every other channel. A call that finds its provider's slots taken does
    not wait: the delivery is put back for a moment, which is waiting, not a failed attempt.
    """

    def __init__(self):
        self.lock = threading.Lock()
        self.slots: dict[str, threading.BoundedSemaphore] = {}

    def slot(self, provider: str) -> threading.BoundedSemaphore:
        with self.lock:
            if provider not in self.slots:
                self.slots[provider] = threading.BoundedSemaphore(settings.HERALD_PROVIDER_MAX_IN_FLIGHT)
            return self.slots[provider]


in_flight = InFlightLimits()


def call_provider(name: str, message: OutgoingMessage, deadline: float) -> SendResult:
    if not rate_limit.acquire(name, max_wait=max(0.0, deadline - time.monotonic() - settings.HERALD_PROVIDER_TIMEOUT)):
        return SendResult.retry(LOCALLY_THROTTLED, f"{name} is at its configured send rate")

    def send_once() -> SendResult:
        try:
            result = get_provider(name).send(message)
        except (ValueError, TypeError) as exc:
            # The SDK refused what we handed it (a caller's value of the wrong type): this
            # message's problem, so it must not count against the provider's breaker.
            log.warning("provider %s refused the message: %s", name, exc)
            return SendResult.failed("invalid_message", f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # a provider bug or an SDK surprise must not lose the delivery
            log.exception("provider %s crashed", name)
            return SendResult.retry("provider_error", f"{type(exc).__name__}: {exc}", provider_fault=True)
        if not isinstance(result, SendResult):
            return SendResult.retry("malformed_provider_result", f"{name} returned {result!r}", provider_fault=True)
        return result

    result = call_through_breaker(name, send_once)
    if result is None:
        return SendResult.retry(
            CIRCUIT_OPEN, f"{name}'s circuit breaker is open after repeated failures",
            after=settings.HERALD_BREAKER_RESET_SECONDS, provider_fault=True,
        )
    rate_limit.observe(name, result)
    return result


def render_content(delivery: Delivery) -> dict:
    notification = delivery.notification
    variants = list(Template.objects.filter(name=notification.template_name, channel=delivery.channel))
    template = select_variant(variants, delivery.channel, notification.recipient.locale)
    if template is None:
        raise RenderError(f"template {notification.template_name!r} has no {delivery.channel} variant")
    content = render(template, notification.variables)
    if unsubscribe.list_unsubscribe_headers(notification.recipient, notification.type) and delivery.channel == Channel.EMAIL:
        content = with_unsubscribe_footer(content, unsubscribe.unsubscribe_url(notification.recipient, notification.type), notification.type)
    return content


def email_headers(delivery: Delivery) -> dict[str, str]:
    """Email headers: a stable Message-ID, and RFC 8058 one-click unsubscribe for the categories that carry them."""
    if delivery.channel != Channel.EMAIL:
        return {}
    # One Message-ID per delivery, the same on every try: mail systems show a resend after a
    # lost answer as the message they already have (see delivery/unknown_outcomes.py).
    return {
        "Message-ID": f"<herald-{delivery.pk}@{settings.HERALD_EMAIL_DOMAIN}>",
        **unsubscribe.list_unsubscribe_headers(delivery.notification.recipient, delivery.notification.type),
    }


def with_unsubscribe_footer(content: dict, url: str, category: str) -> dict:
    content = dict(content)
    content["body"] = f"{content.get('body', '')}\n\n--\nTo stop receiving {category} emails: {url}"
    if content.get("html_body"):
        link = f'<a href="{escape(url)}">unsubscribe</a>'
        content["html_body"] += f'<p style="font-size:12px;color:#666">You can {link} from {escape(category)} emails.</p>'
    return content


def build_message(delivery: Delivery, to: list[str]) -> OutgoingMessage:
    notification = delivery.notification
    return OutgoingMessage(
        delivery_id=str(delivery.pk),
        channel=delivery.channel,
        to=to,
        content=delivery.content,
        priority=notification.priority,
        attempt=delivery.attempts,
        notification_id=str(notification.pk),
        notification_type=notification.type,
        metadata=notification.metadata,
        headers=email_headers(delivery),
    )


def addresses(delivery: Delivery) -> list[str]:
    """Where the delivery goes: the contact address for its channel, or the person's id (in-app)."""
    recipient = delivery.notification.recipient
    contact = recipient.contact_addresses()
    if delivery.channel in contact:
        return [contact[delivery.channel]] if contact[delivery.channel] else []
    return [recipient.external_id]


def push_targets(delivery: Delivery) -> dict[str, list[str]]:
    """The recipient's active device tokens, by platform."""
    targets: dict[str, list[str]] = {}
    for platform, token in delivery.notification.recipient.devices.filter(is_active=True).values_list("platform", "token"):
        targets.setdefault(platform, []).append(token)
    return targets


def missing_address(channel: str) -> tuple[str, str]:
    reason = {
        Channel.EMAIL: "no_email", Channel.SMS: "no_phone",
        Channel.PUSH: "no_device", Channel.WEBHOOK: "no_webhook_url",
    }.get(channel, "no_address")
    return reason, f"The recipient has no {channel} address any more."


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
                sent_at=now, error_code="", error_message="", content=delivery.content,
            )
            if sent:
                signals.delivery_moved.send(sender=Delivery, notification_id=delivery.notification_id, status=Status.SENT)
        if sent:
            delivery.provider_message_id = result.provider_message_id[:255]
            replay_early_receipts(delivery)
        return
    if result.outcome == Outcome.RETRY and not gives_up(delivery, result, now):
        waiting = result.error_code in WAITING
        delay = next_try_delay(delivery.attempts, result)
        latest = DeliveryAttempt.objects.filter(delivery=delivery, number=delivery.attempts).order_by("-pk").first()
        if latest:
            DeliveryAttempt.objects.filter(pk=latest.pk).update(retry_in_seconds=delay)
        later = {"available_at": now + timedelta(seconds=delay), "published_at": None}
        if waiting:
            move(delivery.pk, Status.QUEUED, claim=claim_at, sources={Status.SENDING}, reason=f"waiting:{result.error_code}",
                 provider=provider_name, error_code=result.error_code, error_message=result.error_message[:2000],
                 content=delivery.content, attempts=F("attempts") - 1, **later)
        else:
            with transaction.atomic():
                if fail(delivery, result, provider_name, claim_at, now, reason="retrying"):
                    move(delivery.pk, Status.QUEUED, sources={Status.FAILED}, reason="retry", **later)
    else:
        if result.outcome == Outcome.RETRY:  # gave up: past its time to live or out of attempts
            reason = give_up_reason(result)
            if reason == "expired":
                last = f"{result.error_code}: {result.error_message}"
                result = SendResult.failed("expired", f"Gave up when its time to live ran out; last error: {last}"[:2000])
        # The outcome and what follows from it (suppression, fallback, dead letter) commit
        # together, so a crash in between cannot leave a failure nobody can requeue.
        with transaction.atomic():
            if fail(delivery, result, provider_name, claim_at, now):
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
    return result.error_code not in WAITING and not result.provider_fault and delivery.attempts >= settings.HERALD_MAX_ATTEMPTS


def give_up_reason(result: SendResult) -> str:
    if result.outcome != Outcome.RETRY:
        return "expired" if result.error_code == "expired" else "permanent_failure"
    return "max_attempts_exceeded" if not (result.error_code in WAITING or result.provider_fault) else "expired"


def next_try_delay(attempt: int, result: SendResult, jitter: bool = True) -> float:
    """Seconds until the next try: the provider's Retry-After first; outages are probed every breaker period."""
    if result.error_code in WAITING:
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
        error_code=result.error_code, error_message=result.error_message[:2000], content=delivery.content,
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
    log.warning("delivery %s dead-lettered: %s (%s)", delivery.pk, reason, result.error_code)


def requeue_dead_letter(dead_letter_id: int) -> bool:
    """Give a dead-lettered delivery a fresh set of attempts; False if it was already requeued."""
    from delivery.publishing import publish_delivery

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
        priority = delivery.notification.priority
        transaction.on_commit(lambda: publish_delivery(delivery.pk, delivery.channel, priority))
    return True
