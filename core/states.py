"""The status vocabulary and the transition engine; each app keeps its own table of moves.

pending → routing → sending → sent → delivered → read, with failed, bounced and canceled
(and deduplicated: a repeat held back by the dedup window); a retry moves a delivery failed → queued. A transition is one conditional UPDATE: the row
moves only if it is still in a state the move is allowed from, so two workers racing for
the same row cannot both win, and every move is appended to the row's timestamped history.
"""

from datetime import datetime

from django.db import models
from django.db.models import F, Func, Q, Value
from django.utils import timezone


class Status(models.TextChoices):
    SCHEDULED = "scheduled"
    BATCHED = "batched"  # held as an item of a batch (notifications/batching.py); the batch's message is sent
    PENDING = "pending"
    QUEUED = "queued"
    ROUTING = "routing"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"
    BOUNCED = "bounced"
    CANCELED = "canceled"
    # Routing held the whole notification back as a repeat of one sent within the dedup window: nothing broke.
    DEDUPLICATED = "deduplicated"


class IllegalTransition(Exception):
    pass


class JSONBAppend(Func):
    template = "%(expressions)s"
    arg_joiner = " || "
    output_field = models.JSONField()


def allowed_sources(table: dict[str, set[str]], target: str) -> set[str]:
    return {source for source, targets in table.items() if target in targets}


def transition(
    model: type[models.Model],
    table: dict[str, set[str]],
    pk,
    target: str,
    *,
    sources: set[str] | None = None,
    condition: Q | None = None,
    reason: str = "",
    at: datetime | None = None,
    **fields,
) -> bool:
    """Move row `pk` to `target` if it is in one of `sources`; return whether it moved.

    `sources` defaults to every state the table allows `target` from. Asking for a move the
    table forbids is a programming error and raises IllegalTransition.
    """
    legal = allowed_sources(table, target)
    if sources is None:
        sources = legal
    elif not sources <= legal:
        raise IllegalTransition(f"{sorted(sources - legal)} → {target} is not allowed")
    at = at or timezone.now()
    entry = {"status": str(target), "at": at.isoformat()}
    if reason:
        entry["reason"] = reason
    rows = model.objects.filter(pk=pk, status__in=sources)
    if condition is not None:
        rows = rows.filter(condition)
    updated = rows.update(
        status=target,
        status_changed_at=at,
        status_history=JSONBAppend(F("status_history"), Value([entry], output_field=models.JSONField())),
        **fields,
    )
    return updated == 1


def move_all(
    rows: models.QuerySet, table: dict[str, set[str]], target: str, *, sources: set[str], reason: str = "",
    at: datetime | None = None, **fields,
) -> int:
    """`transition` for many rows at once: move those of `rows` still in one of `sources` to `target`.

    The same checks and history as a single move; returns how many rows moved.
    """
    legal = allowed_sources(table, target)
    if not sources <= legal:
        raise IllegalTransition(f"{sorted(sources - legal)} → {target} is not allowed")
    at = at or timezone.now()
    entry = {"status": str(target), "at": at.isoformat(), **({"reason": reason} if reason else {})}
    return rows.filter(status__in=sources).update(
        status=target, status_changed_at=at,
        status_history=JSONBAppend(F("status_history"), Value([entry], output_field=models.JSONField())),
        **fields,
    )


def initial_history(status: str, at: datetime) -> list[dict]:
    return [{"status": str(status), "at": at.isoformat()}]
