"""One delivery attempt: claim the row, settle what an earlier attempt left unknown, render,
call the providers (journaling each answer first), and hand the result to outcomes.record_result.
"""

import logging
import threading
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from core import metrics, tracing
from core.states import Status
from core.vocabulary import Channel, ErrorCode
from delivery import journal, rate_limit, unknown_outcomes
from delivery.breaker import Refused, call_through_breaker
from delivery.claims import claim, start_attempt
from delivery.composing import addresses, build_message, missing_address, push_targets, render_content
from delivery.models import Delivery, DeliveryAttempt
from delivery.outcomes import expires_at, record_result
from delivery.providers import Outcome, OutgoingMessage, SendResult, get_provider, provider_names
from delivery.providers.base import merge_push_results
from delivery.publishing import wake_deliveries
from templates_app.rendering import RenderError

log = logging.getLogger(__name__)


def attempt_delivery(delivery_id) -> None:
    """Make one attempt at `delivery_id` if it is due and nobody else holds it (a one-row message)."""
    apply_journal(delivery_id)
    now = timezone.now()
    if claim(delivery_id, now):
        attempt_claimed(delivery_id, now)


def attempt_claimed(delivery_id, now: datetime) -> None:
    """Make the attempt at a delivery this worker claimed at `now` (alone, or in a lane's chunk)."""
    delivery = Delivery.objects.select_related("notification__recipient").filter(
        pk=delivery_id, status=Status.SENDING, claimed_at=now).first()
    if delivery is None:
        return  # canceled, or taken over after our lease ran out: the row is someone else's now
    if delivery.takeovers >= settings.HERALD_POISON_TAKEOVERS:
        park(delivery, now)
        return
    result, provider_name = None, ""
    if delivery.attempts > 1:
        # What an earlier claim's worker journaled but did not write (it died, or the database
        # was away) is recorded first, so that settling below sees every answer there was.
        apply_journal(delivery.pk)
        result, provider_name = settle_interrupted_attempts(delivery, now)
    if result is None and now >= expires_at(delivery.notification):
        result = SendResult.failed(ErrorCode.EXPIRED, f"Not sent within the {delivery.notification.type} time to live.")
    if result is None:
        result, provider_name = make_attempt(delivery, now)
    if not provider_name:  # no provider was asked (expired, render error): nothing to journal
        record_result(delivery, result, provider_name, claim_at=now)
        return
    journal.record_final(delivery.pk, now, result, provider_name)
    record_result(delivery, result, provider_name, claim_at=now)
    journal.forget(delivery.pk)


def park(delivery: Delivery, claim_at: datetime) -> None:
    """Stop attempting a delivery whose workers keep dying while they hold it (whatever kills them
    is most likely in it): failed and dead-lettered for ops to look at and requeue, unless a
    provider's answer "sent" was journaled before one of those deaths."""
    apply_journal(delivery.pk)
    answered = DeliveryAttempt.objects.filter(delivery=delivery, outcome=Outcome.SENT).order_by("pk").first()
    if answered is not None:
        record_result(delivery, SendResult.sent(answered.provider_message_id), answered.provider, claim_at=claim_at)
        return
    DeliveryAttempt.objects.filter(delivery=delivery, finished_at__isnull=True).update(
        finished_at=timezone.now(), outcome=DeliveryAttempt.Outcome.UNKNOWN, error_code=ErrorCode.WORKER_LOST,
        error_message="The worker making this attempt stopped before the provider's answer was recorded.",
    )
    log.error("delivery parked after %d takeovers in a row from workers that died holding it", delivery.takeovers,
              extra={"event": "delivery_parked", "delivery_id": str(delivery.pk), "notification_id": str(delivery.notification_id)})
    metrics.parked_rows("delivery")
    record_result(delivery, SendResult.failed(
        ErrorCode.KILLED_ITS_WORKER, f"The workers holding this delivery died {delivery.takeovers + 1} times in a row; "
        "it was parked so that it cannot take more of them down. Requeue it once the cause is fixed."), "", claim_at=claim_at)


def make_attempt(delivery: Delivery, claim_at: datetime) -> tuple[SendResult, str]:
    deadline = time.monotonic() + settings.HERALD_ATTEMPT_BUDGET_SECONDS
    try:
        if not delivery.content:  # stored with the attempt's outcome, so retries send the same text
            delivery.content = render_content(delivery)
        result, provider_name = send(delivery, deadline, claim_at)
    except RenderError as exc:
        # A template that breaks a bound, or kills the process rendering it, fails at once; a render
        # process that could not start is ours to retry.
        if exc.ours:
            result = SendResult.retry(ErrorCode.RENDERER_CRASHED, str(exc))
        else:
            result = SendResult.failed(ErrorCode.RENDER_ERROR, str(exc))
        provider_name = ""
        record_unsent_attempt(delivery, claim_at, result)
    except Exception as exc:  # a bug here must end in a retry and, at worst, a dead letter; never a stuck row
        log.exception("delivery %s: attempt crashed", delivery.pk)
        result, provider_name = journaled_sent(delivery.pk, claim_at) or (
            SendResult.retry(ErrorCode.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}"), "")
        if result.outcome != Outcome.SENT:
            record_unsent_attempt(delivery, claim_at, result)
    return settle_if_unknown(delivery, result, claim_at), provider_name


def settle_if_unknown(delivery: Delivery, result: SendResult, claim_at: datetime) -> SendResult:
    """The result to act on: `result`, unless its outcome is unknown and the policy settles it."""
    if result.outcome != Outcome.UNKNOWN:
        return result
    unknown = DeliveryAttempt.objects.filter(
        delivery=delivery, number=delivery.attempts, outcome=DeliveryAttempt.Outcome.UNKNOWN, finished_at__isnull=True,
    ).order_by("-pk").first()
    if unknown is None:
        return settle_unknown(delivery, result, "", claim_at)
    result = settle_unknown(delivery, result, unknown.provider, unknown.started_at)
    DeliveryAttempt.objects.filter(pk=unknown.pk).update(finished_at=timezone.now())
    return result


def finish_attempt(delivery: Delivery, claim_at: datetime, result: SendResult, provider_name: str, deadline: float) -> None:
    """Carry on an attempt whose first call was made with its chunk (delivery/bulk_sending.py) and did
    not send: the channel's next providers, settling an unknown outcome, and recording the result."""
    names = provider_names(delivery.channel)
    if (provider_name in names[:-1] and result.provider_fault
            and result.outcome not in (Outcome.SENT, Outcome.INVALID_RECIPIENT, Outcome.UNKNOWN)
            and deadline - time.monotonic() >= settings.HERALD_PROVIDER_TIMEOUT):
        log.warning("delivery %s: %s failed (%s), trying the next provider", delivery.pk, provider_name, result.error_code)
        message = build_message(delivery, addresses(delivery))
        next_result, used = send_with_failover(delivery, message, names[names.index(provider_name) + 1:], deadline, claim_at)
        if used:
            result, provider_name = next_result, used
    result = settle_if_unknown(delivery, result, claim_at)
    if provider_name:
        journal.record_final(delivery.pk, claim_at, result, provider_name)
    record_result(delivery, result, provider_name, claim_at=claim_at)
    journal.forget(delivery.pk)


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
    # A provider said "sent" under an earlier claim (its journal entry was applied after the row
    # was taken over): that is the outcome, whatever else happened since.
    answered = DeliveryAttempt.objects.filter(delivery=delivery, outcome=Outcome.SENT).order_by("pk").first()
    if answered is not None:
        return SendResult.sent(answered.provider_message_id), answered.provider
    # Unfinished: never answered (the worker died in the call), or answered "unknown" and not
    # settled yet (the worker died while settling it).
    unfinished = list(DeliveryAttempt.objects.filter(delivery=delivery, finished_at__isnull=True).order_by("pk"))
    if not unfinished:
        return None, ""
    DeliveryAttempt.objects.filter(pk__in=[a.pk for a in unfinished], outcome="").update(
        outcome=DeliveryAttempt.Outcome.UNKNOWN, error_code=ErrorCode.WORKER_LOST,
        error_message="The worker making this attempt stopped before the provider's answer was recorded.",
    )
    last = unfinished[-1]
    settles_at = last.started_at + timedelta(seconds=settings.HERALD_PROVIDER_TIMEOUT)
    if now < settles_at and unknown_outcomes.can_ask(last.provider):
        # A request its dead worker sent may still be on its way to the provider (or in its queue):
        # asking now could miss it and send it twice. Asked once the call would have timed out.
        return SendResult.retry(ErrorCode.OUTCOME_PENDING, f"Asking {last.provider} whether it took the message once "
                                "the dead worker's call would have timed out.", after=(settles_at - now).total_seconds()), last.provider
    lost = SendResult.unknown(ErrorCode.WORKER_LOST, "The worker stopped before the provider's answer was recorded.")
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
    metrics.unknown_outcome(delivery.channel, provider_name, action)
    log.warning("delivery %s: outcome at %s unknown (%s); %s", delivery.pk, provider_name, unknown.error_code, action)
    if found is not None:
        return found
    # Sending again: a provider-side failure, so it waits for the provider like one.
    return SendResult.retry(unknown.error_code, f"{unknown.error_message} Sending again ({action}).", provider_fault=True)


def apply_abandoned_journals() -> None:
    """Record the journaled answers of attempts whose worker's lease ran out."""
    for delivery_id in journal.pending():
        apply_journal(delivery_id, only_abandoned=True)


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


# Results of a call that was never made: the attempt row says "skipped", nothing is journaled.
SKIPPED_CODES = frozenset({ErrorCode.CIRCUIT_OPEN, ErrorCode.RATE_LIMITED_LOCALLY, ErrorCode.PROVIDER_BUSY})


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
            busy = f"{name} already has {settings.HERALD_PROVIDER_MAX_IN_FLIGHT} calls in flight here"
            result = SendResult.retry(ErrorCode.PROVIDER_BUSY, busy, after=0.5)
            break  # no call, so no attempt row: the delivery waits a moment and comes back
        try:
            attempt = start_attempt(delivery.pk, claim_at, name)
            if attempt is None:  # canceled, or taken over, since the claim: no call
                return SendResult.failed(ErrorCode.CLAIM_LOST, "The delivery was canceled or taken over before its call."), ""
            with tracing.in_trace("herald.provider_call", delivery.notification.traceparent, provider=name, delivery_id=delivery.pk):
                result = call_provider(name, message, deadline)
        finally:
            slot.release()
        skipped = result.error_code in SKIPPED_CODES
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


RELEASE_WAITING_SQL = """
UPDATE delivery_delivery SET available_at = %(now)s
WHERE status = 'queued' AND held_until IS NULL AND provider = %(provider)s AND error_code = %(code)s AND available_at > %(now)s
RETURNING channel, priority
"""


def release_waiting_for(provider_name: str) -> None:
    """Deliveries waiting for `provider_name`'s breaker, due now: it has just closed."""
    with connection.cursor() as cursor:
        cursor.execute(RELEASE_WAITING_SQL, {"now": timezone.now(), "provider": provider_name, "code": ErrorCode.CIRCUIT_OPEN})
        lanes = set(cursor.fetchall())
    for channel, priority in lanes:
        wake_deliveries(channel, priority)
    log.info("%s recovered: released the deliveries waiting for its breaker on %d lanes", provider_name, len(lanes))


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
    return call_provider_with(name, [message], deadline)[0]


def call_provider_with(name: str, messages: list[OutgoingMessage], deadline: float) -> list[SendResult]:
    """Call `name` once for `messages` (one message, or a batch its API takes in one request): a result each."""
    count = len(messages)
    if not rate_limit.acquire(name, max_wait=max(0.0, deadline - time.monotonic() - settings.HERALD_PROVIDER_TIMEOUT)):
        return [SendResult.retry(ErrorCode.RATE_LIMITED_LOCALLY, f"{name} is at its configured send rate")] * count
    provider = get_provider(name)
    answers: list[SendResult] = []

    def send_one(message: OutgoingMessage) -> SendResult:
        try:
            result = provider.send(message)
        except (ValueError, TypeError) as exc:
            # The SDK refused what we handed it (a caller's value of the wrong type): this
            # message's problem, so it must not count against the provider's breaker.
            log.warning("provider %s refused the message: %s", name, exc)
            return SendResult.failed(ErrorCode.INVALID_MESSAGE, f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # a bug of ours or an SDK surprise must not lose the delivery (nor trip the breaker)
            log.exception("provider %s crashed", name)
            return SendResult.retry(ErrorCode.PROVIDER_ERROR, f"{type(exc).__name__}: {exc}")
        if not isinstance(result, SendResult):
            return SendResult.retry(ErrorCode.MALFORMED_PROVIDER_RESULT, f"{name} returned {result!r}", provider_fault=True)
        return result

    def send_once() -> SendResult:
        if count == 1:
            answers[:] = [send_one(messages[0])]
        else:
            try:
                answers[:] = provider.send_batch(messages)
            except (ValueError, TypeError) as exc:  # one message the SDK refused: the others still go
                log.warning("provider %s refused a batch (%s); sending its messages one by one", name, exc)
                answers[:] = [send_one(message) for message in messages]
            except Exception as exc:
                log.exception("provider %s crashed on a batch", name)
                answers[:] = [SendResult.retry(ErrorCode.PROVIDER_ERROR, f"{type(exc).__name__}: {exc}")] * count
            if len(answers) != count or not all(isinstance(answer, SendResult) for answer in answers):
                malformed = SendResult.retry(ErrorCode.MALFORMED_PROVIDER_RESULT, f"{name} answered a batch of {count} "
                                             f"with {answers!r:.200}", provider_fault=True)
                answers[:] = [malformed] * count
        # The breaker counts the call, not its messages: a fault if the provider failed at all.
        return next((answer for answer in answers if answer.provider_fault), answers[0])

    call = call_through_breaker(name, send_once, getattr(provider, "probe", None), provider.watch_stalls,
                                on_recovery=lambda: release_waiting_for(name))
    if isinstance(call, Refused):
        return [SendResult.retry(ErrorCode.CIRCUIT_OPEN, call.reason, after=call.wait, provider_fault=True)] * count
    for answer in {answer.error_code: answer for answer in answers}.values():
        rate_limit.observe(name, answer)
    return answers
