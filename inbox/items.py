"""The inbox store: every read and change of inbox items goes through here.

Each change runs in a transaction that first bumps the recipient's InboxState version
(taking its row lock), so changes to one inbox are serialised and numbered. After commit
the change is broadcast to the recipient's sockets as a frame carrying that version and
the new unread count.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import CharField, Count, F, Max, Q, Subquery, Value
from django.db.models.functions import Cast, Coalesce, Concat, NullIf
from django.utils import timezone

from inbox.live import broadcast_on_commit
from inbox.models import InboxItem, InboxState

STATES = {
    "inbox": Q(archived_at__isnull=True),
    "unread": Q(archived_at__isnull=True, read_at__isnull=True),
    "read": Q(archived_at__isnull=True, read_at__isnull=False),
    "unseen": Q(archived_at__isnull=True, seen_at__isnull=True),
    "seen": Q(archived_at__isnull=True, seen_at__isnull=False),
    "archived": Q(archived_at__isnull=False),
    "all": Q(),
}
UNREAD = STATES["unread"]
GROUP_BY = ("group_key", "category")


class ItemNotFound(Exception):
    """No such item in this recipient's inbox (whether or not it exists in another's)."""


@dataclass(frozen=True)
class Page:
    items: list[InboxItem]
    has_more: bool


def item_data(item: InboxItem) -> dict:
    """The JSON shape of an item, the same over REST and the socket."""
    return {
        "id": item.pk,
        "title": item.title,
        "body": item.body,
        "icon": item.icon or None,
        "image": item.image or None,
        "action_url": item.action_url or None,
        "category": item.category,
        "group_key": item.group_key or None,
        "notification_id": str(item.notification_id) if item.notification_id else None,
        "created_at": iso(item.created_at),
        "seen_at": iso(item.seen_at),
        "read_at": iso(item.read_at),
        "archived_at": iso(item.archived_at),
        "version": item.version,
    }


def iso(value: datetime | None) -> str | None:
    """An aware datetime as ISO 8601 in UTC with a Z, or None."""
    return value.isoformat().replace("+00:00", "Z") if value else None


def bump_version(recipient_id: int) -> int:
    """Lock the recipient's inbox for this transaction and return its next version."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {InboxState._meta.db_table} (recipient_id, version) VALUES (%s, 1)
            ON CONFLICT (recipient_id) DO UPDATE SET version = {InboxState._meta.db_table}.version + 1
            RETURNING version
            """,
            [recipient_id],
        )
        return cursor.fetchone()[0]


def current_version(recipient_id: int) -> int:
    """The recipient's inbox version (0 before the first change)."""
    return InboxState.objects.filter(recipient_id=recipient_id).values_list("version", flat=True).first() or 0


def unread_count(recipient_id: int) -> int:
    """Unread items that are not archived: the number on the bell."""
    return InboxItem.objects.filter(UNREAD, recipient_id=recipient_id).count()


def counts(recipient_id: int) -> dict:
    """Unread and unseen counts, and the version they were read at."""
    version = current_version(recipient_id)
    totals = InboxItem.objects.filter(recipient_id=recipient_id, archived_at__isnull=True).aggregate(
        unread=Count("id", filter=Q(read_at__isnull=True)), unseen=Count("id", filter=Q(seen_at__isnull=True))
    )
    return {"version": version, "unread_count": totals["unread"], "unseen_count": totals["unseen"]}


# --- adding -------------------------------------------------------------------------------


def add_item(recipient_id: int, *, delivery_id: str, notification_id: str | None, fields: dict) -> tuple[InboxItem, bool]:
    """Create the item for an in-app delivery, once per delivery; return it and whether it is new.

    Also trims the inbox to its retention limits, and broadcasts the new item after commit.
    """
    existing = InboxItem.objects.filter(delivery_id=delivery_id).first()
    if existing:
        return existing, False
    now = timezone.now()
    with transaction.atomic():
        version = bump_version(recipient_id)
        # Two runs of one delivery serialise on the lock above; the second finds the first's item.
        existing = InboxItem.objects.filter(delivery_id=delivery_id).first()
        if existing:
            return existing, False
        item = InboxItem.objects.create(
            recipient_id=recipient_id, delivery_id=delivery_id, notification_id=notification_id or None,
            created_at=now, version=version, **fields,
        )
        trim(recipient_id, now)
        unread = unread_count(recipient_id)
        broadcast_on_commit(recipient_id, {"type": "item", "version": version, "unread_count": unread, "item": item_data(item)})
    return item, True


def trim(recipient_id: int, now: datetime) -> int:
    """Delete the recipient's items beyond the newest HERALD_INBOX_MAX_ITEMS or past retention."""
    cutoff = now - timedelta(days=settings.HERALD_INBOX_RETENTION_DAYS)
    keep = settings.HERALD_INBOX_MAX_ITEMS
    oldest_dropped = (
        InboxItem.objects.filter(recipient_id=recipient_id).order_by("-id").values("id")[keep:keep + 1]
    )
    deleted, _ = InboxItem.objects.filter(recipient_id=recipient_id).filter(
        Q(created_at__lt=cutoff) | Q(id__lte=Subquery(oldest_dropped))
    ).delete()
    return deleted


def purge_expired(now: datetime | None = None, batch: int = 5000) -> int:
    """Delete items past retention in every inbox, in batches; return how many went."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.HERALD_INBOX_RETENTION_DAYS)
    total = 0
    while True:
        ids = InboxItem.objects.filter(created_at__lt=cutoff).order_by("created_at").values("id")[:batch]
        deleted, _ = InboxItem.objects.filter(id__in=Subquery(ids)).delete()
        total += deleted
        if deleted < batch:
            return total


# --- reading ------------------------------------------------------------------------------


def items_query(recipient_id: int, *, state: str = "inbox", category: str | None = None, group_key: str | None = None):
    """The recipient's items in `state`, optionally of one category or group (unordered)."""
    rows = InboxItem.objects.filter(STATES[state], recipient_id=recipient_id)
    if category:
        rows = rows.filter(category=category)
    if group_key:
        rows = rows.filter(group_key=group_key)
    return rows


def newest(recipient_id: int, limit: int) -> Page:
    """The newest inbox (not archived) items, newest first."""
    items = list(items_query(recipient_id).order_by("-id")[: limit + 1])
    return Page(items[:limit], len(items) > limit)


def after(recipient_id: int, last_id: int, limit: int = 200) -> Page:
    """Items created after item `last_id`, oldest first: what a reconnecting client missed."""
    items = list(InboxItem.objects.filter(recipient_id=recipient_id, id__gt=last_id).order_by("id")[: limit + 1])
    return Page(items[:limit], len(items) > limit)


def groups_query(recipient_id: int, *, by: str = "group_key", state: str = "inbox", category: str | None = None):
    """One row per group: `group`, `count`, `unread_count`, `latest_id` (its newest item).

    By group key, items without one stand alone (as group "item:<id>"); by category, every
    item has one.
    """
    if by == "group_key":
        key = Coalesce(NullIf(F("group_key"), Value("")), Concat(Value("item:"), Cast("id", CharField())))
    else:
        key = F("category")
    return (
        items_query(recipient_id, state=state, category=category)
        .annotate(group=key).values("group")
        .annotate(count=Count("id"), unread_count=Count("id", filter=Q(read_at__isnull=True)), latest_id=Max("id"))
    )


def get_item(recipient_id: int, item_id: int) -> InboxItem:
    """The recipient's item, or ItemNotFound."""
    item = InboxItem.objects.filter(recipient_id=recipient_id, pk=item_id).first()
    if item is None:
        raise ItemNotFound(item_id)
    return item


# --- changing -----------------------------------------------------------------------------


def _change(recipient_id: int, item_id: int, **updates) -> InboxItem:
    with transaction.atomic():
        version = bump_version(recipient_id)
        if not InboxItem.objects.filter(recipient_id=recipient_id, pk=item_id).update(version=version, **updates):
            raise ItemNotFound(item_id)  # rolls the version bump back too
        item = InboxItem.objects.get(pk=item_id)
        frame = {"type": "changed", "version": version, "unread_count": unread_count(recipient_id), "items": [item_data(item)]}
        broadcast_on_commit(recipient_id, frame)
    return item


def mark_read(recipient_id: int, item_id: int) -> InboxItem:
    """Mark an item read (and seen, if it was not yet); its delivery and notification become read too."""
    now = timezone.now()
    item = _change(recipient_id, item_id, read_at=Coalesce(F("read_at"), Value(now)), seen_at=Coalesce(F("seen_at"), Value(now)))
    report_read([(item.pk, item.delivery_id)], now)
    return item


def report_read(items: list[tuple[int, object]], at: datetime) -> None:
    """Tell delivery tracking that these items' deliveries were read (once each, however often marked)."""
    from delivery import receipts
    from delivery.models import Delivery

    deliveries = Delivery.objects.in_bulk([delivery_id for _, delivery_id in items if delivery_id])
    for item_id, delivery_id in items:
        if delivery_id in deliveries:
            receipts.record_event(
                source="inbox", event="read", event_key=f"inbox-item-{item_id}-read", delivery=deliveries[delivery_id],
                provider_message_id="", occurred_at=at, payload={"item": item_id},
                effect=receipts.engagement_effect("opened"),
            )


def mark_unread(recipient_id: int, item_id: int) -> InboxItem:
    """Mark an item unread again."""
    return _change(recipient_id, item_id, read_at=None)


def mark_seen(recipient_id: int, item_id: int) -> InboxItem:
    """Mark an item seen (shown to the user) without reading it."""
    return _change(recipient_id, item_id, seen_at=Coalesce(F("seen_at"), Value(timezone.now())))


def archive(recipient_id: int, item_id: int) -> InboxItem:
    """Move an item out of the inbox into the archive; it no longer counts as unread."""
    return _change(recipient_id, item_id, archived_at=Coalesce(F("archived_at"), Value(timezone.now())))


def unarchive(recipient_id: int, item_id: int) -> InboxItem:
    """Bring an archived item back into the inbox."""
    return _change(recipient_id, item_id, archived_at=None)


def delete(recipient_id: int, item_id: int) -> None:
    """Delete an item for good."""
    with transaction.atomic():
        version = bump_version(recipient_id)
        deleted, _ = InboxItem.objects.filter(recipient_id=recipient_id, pk=item_id).delete()
        if not deleted:
            raise ItemNotFound(item_id)
        frame = {"type": "deleted", "version": version, "unread_count": unread_count(recipient_id), "ids": [item_id]}
        broadcast_on_commit(recipient_id, frame)


def mark_all_read(recipient_id: int, category: str | None = None) -> int:
    """Mark every unread inbox item (of one category, if given) read; return how many changed."""
    now = timezone.now()
    with transaction.atomic():
        version = bump_version(recipient_id)
        rows = InboxItem.objects.filter(UNREAD, recipient_id=recipient_id)
        if category:
            rows = rows.filter(category=category)
        read_now = list(rows.values_list("pk", "delivery_id"))
        changed = rows.update(read_at=now, seen_at=Coalesce(F("seen_at"), Value(now)), version=version)
        transaction.on_commit(lambda: report_read(read_now, now))
        frame = {
            "type": "all_read", "version": version, "unread_count": unread_count(recipient_id),
            "read_at": iso(now), "category": category or None,
        }
        broadcast_on_commit(recipient_id, frame)
    return changed


def mark_all_seen(recipient_id: int) -> int:
    """Mark every unseen inbox item seen (the user opened the list); return how many changed."""
    now = timezone.now()
    with transaction.atomic():
        version = bump_version(recipient_id)
        changed = InboxItem.objects.filter(STATES["unseen"], recipient_id=recipient_id).update(seen_at=now, version=version)
        frame = {"type": "all_seen", "version": version, "unread_count": unread_count(recipient_id), "seen_at": iso(now)}
        broadcast_on_commit(recipient_id, frame)
    return changed
