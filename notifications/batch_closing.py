"""Closing batches and digests (see notifications/batching.py): each due or full one becomes one message, once."""

from datetime import datetime

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

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
    """Close the batches whose window has ended or that are full: each becomes one message, once."""
    now = timezone.now()
    messages, lanes = [], set()
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
                    messages.append(message_for(batch, items[batch.pk], templates, now))
                    lanes.add(batch.priority)
        insert_many_with_outbox(messages)
        sent = {m.batch_id for m in messages}
        Batch.objects.filter(pk__in=sent).update(state=Batch.State.CLOSED, closed_at=now)
        Batch.objects.filter(pk__in=dropped).update(state=Batch.State.DROPPED, closed_at=now)
        Batch.objects.filter(pk__in=[b.pk for b in batches if b.pk not in sent | dropped]).update(
            state=Batch.State.EMPTY, closed_at=now)
        transaction.on_commit(lambda: [wake_routing(priority) for priority in lanes])
    return len(batches)


def still_wanted(batch: Batch) -> bool:
    choices, policy = preference_store.load(batch.recipient_id, batch.type)
    return choices.enabled and category_enabled(choices, policy)


def message_for(batch: Batch, items: list[BatchItem], templates: set, now: datetime) -> Notification:
    """The one notification a batch or digest becomes: its own template if there is one
    (`<type>_digest`, `<template>_batch`), else the last item's, seeing every item."""
    variables = [item.notification.variables for item in items]
    actors = []
    for values in variables:
        actor = values.get("actor") if isinstance(values, dict) else None
        if isinstance(actor, str) and actor not in actors:
            actors.append(actor)
    digest = batch.key.startswith(batching.DIGEST_PREFIX)
    own = f"{batch.type}_digest" if digest else f"{batch.template_name}_batch"
    last = items[-1].notification
    summary = {
        "key": "" if digest else batch.key.split(":", 2)[2], "count": len(items),
        "items": [{**(values if isinstance(values, dict) else {}), "template": item.notification.template_name,
                   "at": item.added_at.isoformat()} for values, item in zip(variables, items, strict=True)],
        "actors": actors, "others": max(0, len(actors) - 1),
        **({"period": {"from": batch.opened_at.isoformat(), "to": batch.closes_at.isoformat()}} if digest else {}),
    }
    summary["first"], summary["last"] = summary["items"][:SHOWN], summary["items"][-SHOWN:]
    return Notification(
        recipient_id=batch.recipient_id, type=batch.type, priority=batch.priority,
        template_name=own if own in templates else last.template_name,
        variables={**(last.variables if isinstance(last.variables, dict) else {}), ("digest" if digest else "batch"): summary},
        requested_channels=batch.requested_channels, batch=batch, metadata={"batch": batch.pk},
        created_at=now, status=Status.PENDING, status_changed_at=now, status_history=initial_history(Status.PENDING, now),
    )
