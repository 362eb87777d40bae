"""Herald's own engagement tracking for email: signed link redirects and an optional open pixel.

A link in an email becomes `{PUBLIC_BASE_URL}/l/{delivery token}/{link token}`. Both tokens are
signed (Django's signing, keyed by SECRET_KEY), so nobody can make Herald redirect to a URL
it did not send: a token that does not verify is a 404 with no redirect. A link works only with
the delivery it was sent in (the pair must appear in that delivery's sent content), so a
click cannot be counted for, or a redirect borrowed from, another one. Every http(s) link of the
rendered email is tracked, those built from a caller's variables too (most real links are:
`https://shop.example/orders/{{ id }}`); to keep a signed redirect from serving as an open
redirect forever, it redirects for HERALD_TRACKED_LINK_DAYS only, after which it shows the
destination as text for the person to follow or not, and counts nothing.

The link token depends only on the URL and the delivery token is the same in every link of one
message, so a rendered body is tracked once and each person's copy differs only by the
delivery token (`DELIVERY_TAG` until then): a provider taking batches substitutes it per person.
"""

import html
import re

from django.conf import settings
from django.core import signing

DELIVERY_TAG = "-herald_delivery-"
LINK_SALT = "herald.tracking.link"
DELIVERY_SALT = "herald.tracking.delivery"
HREF = re.compile(r"""(href\s*=\s*)(["'])(https?://[^"'<>\s]+)\2""", re.IGNORECASE)
TEXT_URL = re.compile(r"""https?://[^\s<>"']+""", re.IGNORECASE)
PIXEL = '<img src="{url}" width="1" height="1" alt="" style="display:block;border:0;width:1px;height:1px">'


def enabled() -> bool:
    return settings.HERALD_TRACK_LINKS and bool(settings.PUBLIC_BASE_URL)


def link_url(url: str) -> str:
    token = signing.dumps(url, salt=LINK_SALT, compress=True)
    return f"{settings.PUBLIC_BASE_URL}/l/{DELIVERY_TAG}/{token}"


def tracked(content: dict) -> dict:
    """`content` (an email's rendered parts) with its links made trackable, and the open pixel if on."""
    content = dict(content)
    if content.get("html_body"):
        content["html_body"] = HREF.sub(
            lambda m: f'{m.group(1)}{m.group(2)}{html.escape(link_url(html.unescape(m.group(3))))}{m.group(2)}',
            content["html_body"])
        if settings.HERALD_OPEN_PIXEL:
            pixel = PIXEL.format(url=f"{settings.PUBLIC_BASE_URL}/o/{DELIVERY_TAG}.gif")
            body = content["html_body"]
            at = body.lower().rfind("</body>")
            content["html_body"] = body[:at] + pixel + body[at:] if at >= 0 else body + pixel
    if content.get("body"):
        content["body"] = TEXT_URL.sub(_tracked_text_url, content["body"])
    return content


def _tracked_text_url(match: re.Match) -> str:
    url = match.group(0).rstrip(".,;:!?)")  # the sentence's punctuation, not the link's
    return link_url(url) + match.group(0)[len(url):]


def delivery_token(delivery_id) -> str:
    return signing.Signer(salt=DELIVERY_SALT).sign(str(delivery_id)).replace(":", ".")


def for_delivery(content: dict, delivery_id) -> dict:
    token = delivery_token(delivery_id)
    return {part: text.replace(DELIVERY_TAG, token) if isinstance(text, str) else text for part, text in content.items()}


def read_delivery(token: str) -> str | None:
    try:
        return signing.Signer(salt=DELIVERY_SALT).unsign(token.replace(".", ":"))
    except signing.BadSignature:
        return None


def read_link(token: str, max_age_days: float | None = None) -> str | None:
    """The URL a link token stands for; None if it does not verify (or is older than `max_age_days`)."""
    try:
        url = signing.loads(token, salt=LINK_SALT, max_age=None if max_age_days is None else max_age_days * 86400)
    except (signing.BadSignature, ValueError):
        return None
    return url if isinstance(url, str) and url.lower().startswith(("http://", "https://")) else None


def was_sent_in(content: dict, delivery_token: str, link_token: str) -> bool:
    """Whether this pair of tokens is a link of the sent `content` (a delivery's rendered parts)."""
    pair = f"/l/{delivery_token}/{link_token}"
    return any(isinstance(text, str) and pair in html.unescape(text) for text in (content or {}).values())
