"""What the inbox holds about a person, for erasure and export (registered in InboxConfig.ready)."""

from inbox.models import InboxItem
from preferences.privacy import fields_of

INBOX_FIELDS = ["title", "body", "icon", "image", "action_url", "category", "created_at", "seen_at", "read_at", "archived_at"]


def export(recipient) -> list[dict]:
    return [fields_of(item, INBOX_FIELDS) for item in InboxItem.objects.filter(recipient=recipient).order_by("id")]


def erase(recipient) -> None:
    InboxItem.objects.filter(recipient=recipient).delete()
