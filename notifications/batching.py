"""Batching and digests: notifications with the same person and batch key within a window, or of a
category the person reads as a digest, go out as one message.

An item is a stored row (`BatchItem`), never Redis-only state. Whether a batch takes an item or
closes is decided by PostgreSQL alone:
- collecting is one `INSERT … ON CONFLICT (person, key) WHERE state = 'open' DO UPDATE`: the
  open batch takes the item, or a new batch opens. A batch reaching its item limit turns `full`
  in the same statement, so the next item opens the next batch;
- closing (`close_due`, from beat and when a batch fills) locks due batches with `FOR UPDATE
  SKIP LOCKED` and, in the same transaction, creates each one's message (one per part when the
  items' variables pass HERALD_BATCH_MESSAGE_MAX_BYTES; `(batch, part)` is unique) and marks it
  closed. Two sweepers take different batches; a sweep killed or failing mid-way rolls back
  whole and the next one redoes it; an item arriving meanwhile waits for the lock, finds the
  batch no longer open, and starts the next batch.

The message renders `<template>_batch` when that template exists (else the item's template), with
the last item's variables and `batch`: its key, count, every item's variables, the first and
last ten, and the distinct actors ("Ada and 19 others"). Routing then treats it like any other
notification: preferences, quiet hours and caps apply to it as one message.
"""

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection, transaction

from core.publishing import publish
from core.states import Status, move_all
from notifications.models import Batch, BatchItem, Notification, Outbox
from notifications.states import NOTIFICATION_TRANSITIONS
from preferences import digests
from preferences import store as preference_store
from preferences.snapshot import digest_schedule

log = logging.getLogger(__name__)

MAX_WINDOW_SECONDS = 7 * 24 * 3600
CLOSE_BATCHES_TASK = "notifications.tasks.close_batches"


@dataclass(frozen=True)
class BatchRule:
    key: str
    window_seconds: int
    max_window_seconds: int | None  # set: a sliding window, never past this after the first item
    max_items: int | None
    first_at_once: bool
    closes_at: datetime | None = None  # a digest: due at its schedule's next moment, whatever the window


DIGEST_PREFIX = "digest:"


def rule_for(notification: Notification, now: datetime) -> BatchRule | None:
    """How `notification` is held: in the person's digest for its category, else batched by its own
    `batch_policy` or its category's; None if it is sent as it comes."""
    if notification.batch_id is not None:
        return None  # a batch's (or digest's) own message
    choices, policy = preference_store.load(notification.recipient_id, notification.type)
    if policy.required:
        return None
    schedule = digest_schedule(choices, policy)
    if schedule is not None:
        due = digests.next_due(now, digests.DigestSchedule.from_dict(schedule), notification.recipient.timezone)
        return BatchRule(key=f"{DIGEST_PREFIX}{notification.type}", window_seconds=max(1, int((due - now).total_seconds())),
                         max_window_seconds=None, max_items=None, first_at_once=False, closes_at=due)
    own = notification.batch_policy or {}
    window = own.get("window_seconds", policy.batch_window_seconds)
    if not window:
        return None
    return BatchRule(
        key=f"{notification.type}:{notification.template_name}:{notification.batch_key}",
        window_seconds=window,
        max_window_seconds=own.get("max_window_seconds", policy.batch_max_window_seconds if "window_seconds" not in own else None),
        max_items=own.get("max_items", policy.batch_max_items if "window_seconds" not in own else None),
        first_at_once=own.get("first_at_once", policy.batch_first_at_once if "window_seconds" not in own else False),
    )


COLLECT_SQL = """
INSERT INTO notifications_batch AS b (recipient_id, key, type, priority, template_name, requested_channels, state,
    opened_at, closes_at, latest_close_at, window_seconds, sliding, max_items, count)
VALUES (%(recipient)s, %(key)s, %(type)s, %(priority)s, %(template)s, %(channels)s::jsonb,
    CASE WHEN %(max_items)s::integer <= 1 THEN 'full' ELSE 'open' END,
    %(now)s, %(closes_at)s, %(latest)s, %(window)s, %(sliding)s, %(max_items)s, 1)
ON CONFLICT (recipient_id, key) WHERE state = 'open' DO UPDATE SET
    count = b.count + 1,
    closes_at = CASE WHEN b.sliding THEN LEAST(%(now)s + make_interval(secs => b.window_seconds), b.latest_close_at)
                ELSE b.closes_at END,
    state = CASE WHEN b.max_items IS NOT NULL AND b.count + 1 >= b.max_items THEN 'full' ELSE 'open' END
RETURNING b.id, b.count, b.state, (xmax = 0) AS opened
"""


def collect(notifications: list[Notification], rules: dict, claimed_at: datetime, now: datetime) -> tuple[list, set]:
    """Put each notification (held by this routing claim) into its batch. Returns those to route
    now (the first of a batch that sends its first item at once) and the ids held as items."""
    route_now, items, full = [], [], False
    with transaction.atomic():
        ours = set(Notification.objects.select_for_update().filter(
            pk__in=[n.pk for n in notifications], status=Status.ROUTING, status_changed_at=claimed_at,
        ).values_list("pk", flat=True))
        with connection.cursor() as cursor:
            for notification in sorted(notifications, key=lambda n: n.created_at):  # items in the order they came
                if notification.pk not in ours:
                    continue  # taken over by another router since the claim
                rule = rules[notification.pk]
                cursor.execute(COLLECT_SQL, {
                    "recipient": notification.recipient_id, "key": rule.key[:300], "type": notification.type,
                    "priority": notification.priority, "template": notification.template_name,
                    "channels": json.dumps(notification.requested_channels or []), "now": now,
                    "closes_at": rule.closes_at or now + timedelta(seconds=rule.window_seconds),
                    "latest": rule.closes_at or now + timedelta(seconds=rule.max_window_seconds or rule.window_seconds),
                    "window": rule.window_seconds, "sliding": rule.max_window_seconds is not None,
                    "max_items": rule.max_items,
                })
                batch_id, count, state, opened = cursor.fetchone()
                if opened and rule.first_at_once:
                    # The first goes out now; the batch waits, empty, for what follows in its window.
                    Batch.objects.filter(pk=batch_id).update(count=0, state=Batch.State.OPEN)
                    route_now.append(notification)
                    continue
                # added_at is when the item came in: concurrent routers may number them out of that order
                items.append(BatchItem(batch_id=batch_id, notification_id=notification.pk, position=count,
                                       added_at=notification.created_at))
                full = full or state == Batch.State.FULL
        BatchItem.objects.bulk_create(items)
        held = [item.notification_id for item in items]
        move_all(Notification.objects.filter(pk__in=held), NOTIFICATION_TRANSITIONS, Status.BATCHED,
                 sources={Status.ROUTING}, reason="batched", at=now)
        Outbox.objects.filter(notification_id__in=held).delete()
        if full:
            transaction.on_commit(wake_closer)
    return route_now, set(held)


def wake_closer() -> None:
    """A full batch is closed now rather than at the next sweep (the sweep closes it if this is lost)."""
    try:
        publish(CLOSE_BATCHES_TASK, [], queue="high")
    except Exception as exc:
        log.warning("could not wake the batch closer: %s", exc)


def describe(notification: Notification) -> dict | None:
    """What the notification's API view says about batching: an item's batch (and how the message it
    went out in fared), or a message's items."""
    if notification.batch_id is not None:
        members = [str(pk) for pk in BatchItem.objects.filter(batch_id=notification.batch_id, part=notification.batch_part or 1)
                   .order_by("added_at", "position").values_list("notification_id", flat=True)]
        parts = notification.batch.messages.count()
        return {"role": "message", "batch": notification.batch_id, "key": notification.batch.key,
                "items": len(members), "members": members, "part": notification.batch_part or 1, "parts": parts}
    item = BatchItem.objects.select_related("batch").filter(notification=notification).first()
    if item is None:
        return None
    message = Notification.objects.filter(batch_id=item.batch_id, batch_part=item.part).values("pk", "status").first()
    digest = item.batch.key.startswith(DIGEST_PREFIX)
    reason = (f"held for the person's {item.batch.type} digest, sent at its scheduled time" if digest
              else "held to go out with the others of its batch key in one message")
    return {"role": "item", "batch": item.batch_id, "kind": "digest" if digest else "batch", "state": item.batch.state,
            "position": item.position, "closes_at": item.batch.closes_at.isoformat(),
            "message": str(message["pk"]) if message else None, "message_status": message["status"] if message else None,
            "reason": reason}
