"""The in-app channel's provider: delivering means putting the item in the recipient's inbox.

Callers shape an item through the notification's `metadata`:
  icon, image  – absolute http(s) URLs
  action_url   – where a click goes: an absolute http(s) URL or a path on the embedding site ("/orders/42")
  group_key    – items sharing it are shown as one group ("comments:post-7")
The template's rendered `title` and `body` are the text; the notification type is the category.
A value that is not of that form is left out of the item (and logged) rather than failing
the delivery: the message itself still reaches the user.
"""

import logging
from urllib.parse import urlsplit

from core.vocabulary import ErrorCode
from delivery.providers.base import OutgoingMessage, SendResult
from inbox.items import add_item
from preferences.models import Recipient

log = logging.getLogger(__name__)

MAX_URL = 2000
MAX_GROUP_KEY = 255


def absolute_url(value) -> str:
    if not isinstance(value, str) or len(value) > MAX_URL:
        return ""
    parts = urlsplit(value)
    return value if parts.scheme in ("http", "https") and parts.netloc else ""


def action_url(value) -> str:
    # A path on the embedding site is allowed; "//host" and javascript:/data: URLs are not.
    # Browsers read "/\\host" as "//host" and drop tabs and newlines, so those are refused too.
    if (isinstance(value, str) and value.startswith("/") and not value.startswith("//") and len(value) <= MAX_URL
            and "\\" not in value and not any(ord(ch) < 32 for ch in value)):
        return value
    return absolute_url(value)


def item_fields(message: OutgoingMessage) -> dict:
    """The item's content from the rendered template and the caller's metadata."""
    metadata = message.metadata if isinstance(message.metadata, dict) else {}
    content = message.content or {}
    fields = {
        "title": content.get("title") or content.get("subject") or "",
        "body": content.get("body") or "",
        "category": message.notification_type[:50],
        "icon": absolute_url(metadata.get("icon")),
        "image": absolute_url(metadata.get("image")),
        "action_url": action_url(metadata.get("action_url")),
        "group_key": metadata.get("group_key") if isinstance(metadata.get("group_key"), str) else "",
    }
    fields["group_key"] = fields["group_key"][:MAX_GROUP_KEY]
    for name in ("icon", "image", "action_url", "group_key"):
        if metadata.get(name) and not fields[name]:
            log.warning("delivery %s: metadata.%s %r is not usable; left out of the inbox item",
                        message.delivery_id, name, metadata.get(name))
    return fields


class InboxProvider:
    name = "inbox"
    watch_stalls = False

    def send(self, message: OutgoingMessage) -> SendResult:
        user_id = message.to[0] if message.to else ""
        recipient_id = Recipient.objects.filter(external_id=user_id).values_list("pk", flat=True).first()
        if recipient_id is None:
            return SendResult.invalid_recipient(ErrorCode.UNKNOWN_USER, f"No user {user_id!r} to hold an inbox item.")
        item, _ = add_item(
            recipient_id, delivery_id=message.delivery_id, notification_id=message.notification_id or None,
            fields=item_fields(message),
        )
        return SendResult.sent(str(item.pk))
