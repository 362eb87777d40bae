"""Closing batches (see notifications/batching.py): each due or full batch becomes one message, once."""

from datetime import datetime

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from core.states import Status, initial_history
from notifications.accept import insert_many_with_outbox
from notifications.models import Batch, BatchItem, Notification
from notifications.routing import wake_routing
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
        for item in BatchItem.objects.filter(batch__in=batches).select_related("notification").order_by("batch", "position"):
            items[item.batch_id].append(item)
        with_batch_template = set(Template.objects.filter(
            name__in={f"{b.template_name}_batch" for b in batches}).values_list("name", flat=True))
        for batch in batches:
            if items[batch.pk]:
                messages.append(message_for(batch, items[batch.pk], with_batch_template, now))
                lanes.add(batch.priority)
        insert_many_with_outbox(messages)
        sent = {m.batch_id for m in messages}
        Batch.objects.filter(pk__in=sent).update(state=Batch.State.CLOSED, closed_at=now)
        Batch.objects.filter(pk__in=[b.pk for b in batches if b.pk not in sent]).update(state=Batch.State.EMPTY, closed_at=now)
        transaction.on_commit(lambda: [wake_routing(priority) for priority in lanes])
    return len(batches)


def message_for(batch: Batch, items: list[BatchItem], with_batch_template: set, now: datetime) -> Notification:
    variables = [item.notification.variables for item in items]
    actors = []
    for values in variables:
        actor = values.get("actor") if isinstance(values, dict) else None
        if isinstance(actor, str) and actor not in actors:
            actors.append(actor)
    template = f"{batch.template_name}_batch" if f"{batch.template_name}_batch" in with_batch_template else batch.template_name
    return Notification(
        recipient_id=batch.recipient_id, type=batch.type, priority=batch.priority, template_name=template,
        variables={**(variables[-1] if isinstance(variables[-1], dict) else {}), "batch": {
            "key": batch.key.split(":", 2)[2], "count": len(items), "items": variables,
            "first": variables[:SHOWN], "last": variables[-SHOWN:], "actors": actors,
            "others": max(0, len(actors) - 1),
        }},
        requested_channels=batch.requested_channels, batch=batch, metadata={"batch": batch.pk},
        created_at=now, status=Status.PENDING, status_changed_at=now, status_history=initial_history(Status.PENDING, now),
    )


