"""One-click unsubscribe links (RFC 8058): signed per person and category, never expiring, no login."""

from django.conf import settings
from django.core import signing
from django.urls import reverse
from django.utils import timezone

from analytics import rollups
from preferences import store
from preferences.models import Preferences, Recipient

SALT = "herald.preferences.unsubscribe"


def make_token(recipient: Recipient, category: str) -> str:
    """A signed token naming the person and the category; no expiry, so old emails keep working."""
    return signing.dumps([recipient.pk, category], salt=SALT, compress=False)


def read_token(token: str) -> tuple[int, str]:
    """The (recipient id, category) a token names; raises signing.BadSignature if it was tampered with."""
    payload = signing.loads(token, salt=SALT)
    if not (isinstance(payload, list) and len(payload) == 2 and isinstance(payload[0], int) and isinstance(payload[1], str)):
        raise signing.BadSignature("unexpected payload")
    return payload[0], payload[1]


def unsubscribe_url(recipient: Recipient, category: str) -> str:
    """The absolute link for the email footer and the List-Unsubscribe header."""
    return settings.PUBLIC_BASE_URL + reverse("preferences-unsubscribe", args=[make_token(recipient, category)])


def list_unsubscribe_headers(recipient: Recipient, category: str) -> dict[str, str]:
    """RFC 8058 one-click headers for categories that carry them (marketing, social); else empty."""
    policy = store.category_policy(category)
    if policy.required or not policy.list_unsubscribe:
        return {}
    return {
        "List-Unsubscribe": f"<{unsubscribe_url(recipient, category)}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def unsubscribe(recipient: Recipient, category: str) -> bool:
    """Turn the category off for the person, marked as unsubscribed; False if it already was."""

    changed = False

    def turn_off(row: Preferences) -> bool:
        nonlocal changed
        current = row.categories.get(category, {})
        if current.get("enabled") is False and current.get("unsubscribed_at"):
            return False
        row.categories = {
            **row.categories,
            category: {**current, "enabled": False, "unsubscribed_at": timezone.now().isoformat()},
        }
        changed = True
        return True

    store.update_choices(recipient, None, turn_off)
    if changed:  # the link names the person and category, not the message: counted for the category's email
        rollups.count([(rollups.Group("email", category=category), "unsubscribed", None)], timezone.now())
    return changed
