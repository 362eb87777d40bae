"""First attempts of a claimed chunk, made together.

Most rows of a lane's chunk are first attempts that the provider takes. For those, the writes
around the provider calls are made once for the chunk: one statement starts every call (only
for rows still ours), one Redis round trip journals every answer, one statement records the
answers on the attempt rows, and one transaction moves every sent row and its notification.
The calls go out together: many in flight at once, or one request per batch where the
provider's API takes batches (SendGrid's personalizations).

A row that needs more (a retry, the channel's next provider, an unknown outcome to settle, a
failure to record) is handed back and finished by the one-row path, delivery/sending.py,
from where the chunk left it: every guarantee of that path holds per row.
"""

import json
import logging
import time
from collections import defaultdict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from redis.exceptions import RedisError

from core import tracing
from core.states import Status
from core.vocabulary import Channel, ErrorCode
from delivery import accounting, journal, receipts, signals
from delivery.composing import addresses, build_message, render_content
from delivery.models import Delivery, DeliveryAttempt
from delivery.outcomes import expires_at
from delivery.providers import Outcome, OutgoingMessage, SendResult, get_provider, provider_names
from delivery.sending import SKIPPED_CODES, call_provider_with, in_flight
from preferences import store as preference_store
from templates_app.rendering import RenderError

log = logging.getLogger(__name__)


@dataclass
class Answered:
    """A row whose first call was made with its chunk, and what the provider said."""

    delivery: Delivery
    result: SendResult
    provider: str  # "" when no call was made (the provider had no free slot)
    attempt_id: int | None = None


def load(delivery_ids: list, claimed_at: datetime) -> list[Delivery]:
    """The chunk's rows still held under this claim, with their notifications and recipients."""
    return list(Delivery.objects.select_related("notification__recipient").filter(
        pk__in=delivery_ids, status=Status.SENDING, claimed_at=claimed_at))


def prepare(deliveries: list[Delivery]) -> tuple[list[tuple[Delivery, OutgoingMessage]], list[Delivery]]:
    """Split the chunk: first attempts ready to send together, and rows for the one-row path.

    Retries (an earlier attempt may need settling), expired rows, push (one call per device
    platform) and rows that fail to render or have no address take the one-row path.
    """
    with preference_store.read_ahead():  # the category settings, read once for the chunk
        return _prepare(deliveries)


def _prepare(deliveries: list[Delivery]) -> tuple[list[tuple[Delivery, OutgoingMessage]], list[Delivery]]:
    together, one_by_one = [], []
    templates: dict = {}
    now = timezone.now()
    for delivery in deliveries:
        if delivery.attempts > 1 or delivery.channel == Channel.PUSH or now >= expires_at(delivery.notification):
            one_by_one.append(delivery)
            continue
        try:
            delivery.content = delivery.content or render_content(delivery, templates)
        except RenderError:
            one_by_one.append(delivery)
            continue
        to = addresses(delivery)
        if not to:
            one_by_one.append(delivery)
            continue
        together.append((delivery, build_message(delivery, to)))
    return together, one_by_one


def calls_for(rows: list[tuple[Delivery, OutgoingMessage]]) -> list[tuple[str, list[tuple[Delivery, OutgoingMessage]]]]:
    """The provider calls that send `rows`: (provider, rows) each, batched where the provider takes batches."""
    by_provider: dict[str, list] = defaultdict(list)
    for delivery, message in rows:
        by_provider[provider_names(delivery.channel)[0]].append((delivery, message))
    calls = []
    for name, group in by_provider.items():
        provider = get_provider(name)
        if not hasattr(provider, "send_batch"):
            calls += [(name, [row]) for row in group]
            continue
        batches: dict[str, list] = defaultdict(list)
        for delivery, message in group:
            batches[provider.batch_key(message)].append((delivery, message))
        for batch in batches.values():
            calls += [(name, batch[n:n + provider.max_batch]) for n in range(0, len(batch), provider.max_batch)]
    return calls


def send_together(rows: list[tuple[Delivery, OutgoingMessage]], claimed_at: datetime, pool: ThreadPoolExecutor,
                  deadline: float) -> list[Answered]:
    """Make the first call for each row; record what was sent; return the rows the one-row path must finish."""
    answered: list[Answered] = []
    started: list[tuple[Future, list[tuple[Delivery, int]], str]] = []
    wave: list[tuple[str, list]] = []
    for name, call_rows in calls_for(rows):
        slot = in_flight.slot(f"{name}:{call_rows[0][0].channel}")
        # A brief wait first: slots come back in bursts (calls started together end together),
        # and one wave for the burst is one statement instead of one per call.
        if not slot.acquire(timeout=0.005):
            started += start_wave(wave, claimed_at, pool, deadline)  # what holds slots goes out before we wait
            wave = []
            if not slot.acquire(timeout=max(0.0, min(settings.HERALD_PROVIDER_TIMEOUT, deadline - time.monotonic()))):
                busy = SendResult.retry(ErrorCode.PROVIDER_BUSY, f"{name} already has "
                                        f"{settings.HERALD_PROVIDER_MAX_IN_FLIGHT} calls in flight here", after=0.5)
                answered += [Answered(delivery, busy, "") for delivery, _ in call_rows]
                continue
        wave.append((name, call_rows))
    started += start_wave(wave, claimed_at, pool, deadline)
    for future, attempts, name in started:
        results = future.result()
        answered += [Answered(delivery, result, name, attempt_id)
                     for (delivery, attempt_id), result in zip(attempts, results, strict=True)]
    return record_answers([a for a in answered if a.attempt_id is not None], claimed_at) + [
        a for a in answered if a.attempt_id is None]


def start_wave(wave: list[tuple[str, list]], claimed_at: datetime, pool: ThreadPoolExecutor, deadline: float) -> list:
    """Start the calls of `wave` (their provider slots are held): attempt rows first, for the rows still ours."""
    if not wave:
        return []
    try:
        attempt_ids = start_attempts([(delivery.pk, name) for name, call_rows in wave for delivery, _ in call_rows], claimed_at)
    except BaseException:
        for name, call_rows in wave:
            in_flight.slot(f"{name}:{call_rows[0][0].channel}").release()
        raise
    started = []
    for name, call_rows in wave:
        ours = [(delivery, message) for delivery, message in call_rows if delivery.pk in attempt_ids]
        slot = in_flight.slot(f"{name}:{call_rows[0][0].channel}")
        if not ours:  # canceled or taken over since the claim: no call
            slot.release()
            continue
        future = pool.submit(tracing.in_traces([d.notification.traceparent for d, _ in ours], call_holding_slot, provider=name),
                             slot, name, [message for _, message in ours], deadline)
        started.append((future, [(delivery, attempt_ids[delivery.pk]) for delivery, _ in ours], name))
    return started


def call_holding_slot(slot, name: str, messages: list[OutgoingMessage], deadline: float) -> list[SendResult]:
    try:
        return call_provider_with(name, messages, deadline)
    finally:
        slot.release()
        connection.close()  # a provider that writes (in-app, sandbox) hands its connection back to the pool


# Like delivery.claims.START_ATTEMPT_SQL for many rows: the rows are locked, so a cancel
# (claims.cancel_unsent) either sees the attempt row or finds the row already canceled.
START_ATTEMPTS_SQL = """
WITH ours AS (
    SELECT d.id, d.attempts, v.provider
    FROM delivery_delivery AS d
    JOIN unnest(%(ids)s::uuid[], %(providers)s::text[]) AS v(id, provider) ON v.id = d.id
    WHERE d.status = 'sending' AND d.claimed_at = %(claim)s
    FOR UPDATE OF d
)
INSERT INTO delivery_deliveryattempt (delivery_id, number, provider, started_at, outcome, provider_message_id, error_code, error_message)
SELECT id, attempts, provider, %(now)s, '', '', '', '' FROM ours
RETURNING delivery_id, id
"""


def start_attempts(calls: list[tuple], claimed_at: datetime) -> dict:
    """Record that calls are about to start, (delivery_id, provider) each: {delivery_id: attempt_id} for rows still ours."""
    with connection.cursor() as cursor:
        cursor.execute(START_ATTEMPTS_SQL, {
            "ids": [delivery_id for delivery_id, _ in calls], "providers": [name for _, name in calls],
            "claim": claimed_at, "now": timezone.now(),
        })
        return dict(cursor.fetchall())


def record_answers(answered: list[Answered], claimed_at: datetime) -> list[Answered]:
    """Journal and record the answers; move the sent rows. Returns the rows that were not sent."""
    journal.record_attempts([(a.delivery.pk, claimed_at, a.attempt_id, a.result)
                             for a in answered if a.result.error_code not in SKIPPED_CODES])
    finish_attempt_rows(answered)
    sent = [a for a in answered if a.result.outcome == Outcome.SENT]
    moved = move_sent(sent, claimed_at)
    replay_early_receipts([a.delivery for a in sent if a.delivery.pk in moved])
    journal.forget_all(list(moved))
    return [a for a in answered if a.result.outcome != Outcome.SENT]


def finish_attempt_rows(answered: list[Answered]) -> None:
    """Each call's answer on its attempt row, in one statement (see sending.send_with_failover)."""
    if not answered:
        return
    columns = list(zip(*[
        (a.attempt_id, a.result.outcome != Outcome.UNKNOWN,  # an unknown outcome stays unfinished until settled
         DeliveryAttempt.Outcome.SKIPPED if a.result.error_code in SKIPPED_CODES else a.result.outcome,
         a.result.provider_message_id[:255], a.result.error_code, a.result.error_message[:2000])
        for a in answered
    ], strict=True))
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE delivery_deliveryattempt AS a SET finished_at = CASE WHEN v.finished THEN %s END, "
            "outcome = v.outcome, provider_message_id = v.message_id, error_code = v.code, error_message = v.message "
            "FROM unnest(%s::bigint[], %s::boolean[], %s::text[], %s::text[], %s::text[], %s::text[]) "
            "AS v(id, finished, outcome, message_id, code, message) "
            "WHERE a.id = v.id AND a.finished_at IS NULL",
            [timezone.now(), *[list(column) for column in columns]],
        )


def move_sent(sent: list[Answered], claimed_at: datetime) -> set:
    """Move the sent rows (still under this claim) and their notifications, together; the ids moved."""
    if not sent:
        return set()
    now = timezone.now()
    entry = json.dumps([{"status": Status.SENT.value, "at": now.isoformat()}])
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE delivery_delivery AS d SET status = 'sent', status_changed_at = %s, sent_at = %s, "
                "provider = v.provider, provider_message_id = v.message_id, content = v.content::jsonb, error_code = '', "
                "error_message = '', template_locale = v.locale, locale_fallback = v.fallback, "
                "status_history = d.status_history || %s::jsonb "
                "FROM unnest(%s::uuid[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[]) "
                "AS v(id, provider, message_id, content, locale, fallback) "
                "WHERE d.id = v.id AND d.status = 'sending' AND d.claimed_at = %s RETURNING d.id, d.notification_id",
                [now, now, entry, [a.delivery.pk for a in sent], [a.provider for a in sent],
                 [a.result.provider_message_id[:255] for a in sent], [json.dumps(a.delivery.content) for a in sent],
                 [a.delivery.template_locale for a in sent], [a.delivery.locale_fallback for a in sent], claimed_at],
            )
            moved = dict(cursor.fetchall())
        accounting.sent([a.delivery for a in sent if a.delivery.pk in moved], {a.delivery.pk: a.provider for a in sent}, now)
        if moved:
            signals.deliveries_sent.send(sender=Delivery, notification_ids=list(set(moved.values())))
    for a in sent:
        a.delivery.provider_message_id = a.result.provider_message_id[:255]
    return set(moved)


def replay_early_receipts(deliveries: list[Delivery]) -> None:
    """Apply receipts that arrived before the send was recorded."""
    try:
        early = receipts.with_early_events([delivery.pk for delivery in deliveries])
    except RedisError:
        early = {delivery.pk for delivery in deliveries}  # cannot tell, so look in the database
    for delivery in deliveries:
        if delivery.pk in early:
            receipts.apply_pending(delivery)
