"""Closing batches and digests (see notifications/batching.py): each due or full one becomes one message, once."""

import json
from datetime import datetime

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from core import metrics
from core.states import Status, initial_history
from notifications import batching
from notifications.accept import insert_many_with_outbox
from notifications.models import Batch, BatchItem, Notification
from notifications.routing import wake_routing
from preferences import store as preference_store
from preferences.snapshot import category_enabled
from templates_app.models import Template

SHOWN = 10  # the first and last items a template sees besides all of them


def close_due(limit: int = 100) -> int:
    """Close the batches whose window has ended or that are full: each becomes one message (or one
    per part, when its items are too large for one), once."""
    now = timezone.now()
    messages, lanes, parts = [], set(), []
    with transaction.atomic():
        batches = list(Batch.objects.select_for_update(skip_locked=True).filter(
            Q(state=Batch.State.OPEN, closes_at__lte=now) | Q(state=Batch.State.FULL),
        ).order_by("closes_at")[:limit])
        if not batches:
            return 0
        items: dict[int, list[BatchItem]] = {batch.pk: [] for batch in batches}
        for item in BatchItem.objects.filter(batch__in=batches).select_related("notification").order_by("batch", "added_at", "position"):
            items[item.batch_id].append(item)
        templates = set(Template.objects.filter(
            name__in={f"{b.template_name}_batch" for b in batches} | {f"{b.type}_digest" for b in batches},
        ).values_list("name", flat=True))
        dropped = set()
        with preference_store.read_ahead(b.recipient_id for b in batches if b.key.startswith(batching.DIGEST_PREFIX)):
            for batch in batches:
                if batch.key.startswith(batching.DIGEST_PREFIX) and not still_wanted(batch):
                    dropped.add(batch.pk)  # unsubscribed during the period: its items go nowhere
                elif items[batch.pk]:
                    split = parts_of(items[batch.pk])
                    messages += [message_for(batch, part, number, split, templates, now)
                                 for number, part in enumerate(split, start=1)]
                    parts += [(item.pk, number) for number, part in enumerate(split, start=1) if number > 1 for item in part]
                    lanes.add(batch.priority)
        insert_many_with_outbox(messages)
        mark_parts(parts)
        sent = {m.batch_id for m in messages}
        Batch.objects.filter(pk__in=sent).update(state=Batch.State.CLOSED, closed_at=now)
        Batch.objects.filter(pk__in=dropped).update(state=Batch.State.DROPPED, closed_at=now)
        Batch.objects.filter(pk__in=[b.pk for b in batches if b.pk not in sent | dropped]).update(
            state=Batch.State.EMPTY, closed_at=now)
        transaction.on_commit(lambda: [wake_routing(priority) for priority in lanes])
        transaction.on_commit(lambda: count_closed(batches, sent, dropped))
    return len(batches)


def count_closed(batches: list[Batch], sent: set, dropped: set) -> None:
    for batch in batches:
        kind = "digest" if batch.key.startswith(batching.DIGEST_PREFIX) else "batch"
        metrics.batch_closed(kind, "closed" if batch.pk in sent else "dropped" if batch.pk in dropped else "empty")


def parts_of(items: list[BatchItem]) -> list[list[BatchItem]]:
    """The batch's items in as few consecutive parts as keep each message's item variables within
    HERALD_BATCH_MESSAGE_MAX_BYTES, so every message can be rendered within its bounds."""
    parts: list[list[BatchItem]] = [[]]
    size = 0
    for item in items:
        item_size = len(json.dumps(item.notification.variables))
        if parts[-1] and size + item_size > settings.HERALD_BATCH_MESSAGE_MAX_BYTES:
            parts.append([])
            size = 0
        parts[-1].append(item)
        size += item_size
    return parts


def mark_parts(parts: list[tuple[int, int]]) -> None:
    """Record which message each item of a split batch went out in (part 1 is the default)."""
    if parts:
        with connection.cursor() as cursor:
            cursor.execute("UPDATE notifications_batchitem AS i SET part = v.part FROM unnest(%s::bigint[], %s::int[]) "
                           "AS v(id, part) WHERE i.id = v.id", [[pk for pk, _ in parts], [part for _, part in parts]])


def still_wanted(batch: Batch) -> bool:
    choices, policy = preference_store.load(batch.recipient_id, batch.type)
    return choices.enabled and category_enabled(choices, policy)


# Distinct actors a message names at most ("Ada, Grace and 9,998 others"): each is a caller's string.
SHOWN_ACTORS = 50


def message_for(batch: Batch, items: list[BatchItem], number: int, parts: list[list[BatchItem]], templates: set,
                now: datetime) -> Notification:
    """The notification part `number` of a batch or digest becomes: its own template if there is one
    (`<type>_digest`, `<template>_batch`), else the last item's, seeing every item of the part and
    the whole batch's count and distinct actors."""
    variables = [item.notification.variables for item in items]
    actors: dict[str, None] = {}
    for part in parts:
        for item in part:
            actor = item.notification.variables.get("actor") if isinstance(item.notification.variables, dict) else None
            if isinstance(actor, str):
                actors.setdefault(actor)
    digest = batch.key.startswith(batching.DIGEST_PREFIX)
    own = f"{batch.type}_digest" if digest else f"{batch.template_name}_batch"
    last = items[-1].notification
    summary = {
        "key": "" if digest else batch.key.split(":", 2)[2], "count": sum(len(part) for part in parts),
        "items": [{**(values if isinstance(values, dict) else {}), "template": item.notification.template_name,
                   "at": item.added_at.isoformat()} for values, item in zip(variables, items, strict=True)],
        "actors": list(actors)[:SHOWN_ACTORS], "others": max(0, len(actors) - 1),
        "part": {"number": number, "of": len(parts), "count": len(items)},
        **({"period": {"from": batch.opened_at.isoformat(), "to": batch.closes_at.isoformat()}} if digest else {}),
    }
    summary["first"], summary["last"] = summary["items"][:SHOWN], summary["items"][-SHOWN:]
    return Notification(
        recipient_id=batch.recipient_id, type=batch.type, priority=batch.priority,
        template_name=own if own in templates else last.template_name,
        variables={**(last.variables if isinstance(last.variables, dict) else {}), ("digest" if digest else "batch"): summary},
        requested_channels=batch.requested_channels, batch=batch, batch_part=number, metadata={"batch": batch.pk},
        created_at=now, status=Status.PENDING, status_changed_at=now, status_history=initial_history(Status.PENDING, now),
    )
