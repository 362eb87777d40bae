"""Inbox tokens: short-lived, signed, and good for one recipient's inbox only.

A backend service mints one for its signed-in user; the browser presents it to the inbox
REST API and the WebSocket. Signing is Django's (HMAC with SECRET_KEY and a salt of our
own), so an inbox token cannot be replayed as any other signed value, nor vice versa.
"""

import time
from dataclasses import dataclass

from django.conf import settings
from django.core import signing

SALT = "herald.inbox.token"


class TokenError(Exception):
    """The token is unusable; `code` says why (`invalid_token` or `token_expired`)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class InboxToken:
    recipient_id: int
    user_id: str
    expires_at: float  # epoch seconds

    def seconds_left(self, now: float | None = None) -> float:
        return self.expires_at - (now if now is not None else time.time())


def issue_token(recipient_id: int, user_id: str, ttl_seconds: int | None = None, now: float | None = None) -> tuple[str, InboxToken]:
    """Sign a token for one recipient's inbox that expires `ttl_seconds` from now."""
    ttl = ttl_seconds or settings.HERALD_INBOX_TOKEN_TTL_SECONDS
    expires_at = int((now if now is not None else time.time()) + ttl)
    token = InboxToken(recipient_id=recipient_id, user_id=user_id, expires_at=expires_at)
    raw = signing.dumps({"r": recipient_id, "u": user_id, "exp": expires_at}, salt=SALT, compress=True)
    return raw, token


def read_token(raw: str, now: float | None = None) -> InboxToken:
    """The token's claims if its signature holds and it has not expired; TokenError otherwise."""
    if not raw or len(raw) > 1024:
        raise TokenError("invalid_token", "Missing or malformed inbox token.")
    try:
        # max_age is a backstop for the longest TTL anyone can ask for; `exp` is the real limit.
        claims = signing.loads(raw, salt=SALT, max_age=settings.HERALD_INBOX_TOKEN_MAX_TTL_SECONDS + 60)
    except signing.SignatureExpired:
        raise TokenError("token_expired", "The inbox token has expired; ask your backend for a new one.") from None
    except signing.BadSignature:
        raise TokenError("invalid_token", "The inbox token is not valid.") from None
    try:
        token = InboxToken(recipient_id=int(claims["r"]), user_id=str(claims["u"]), expires_at=float(claims["exp"]))
    except (KeyError, TypeError, ValueError):
        raise TokenError("invalid_token", "The inbox token is not valid.") from None
    if token.seconds_left(now) <= 0:
        raise TokenError("token_expired", "The inbox token has expired; ask your backend for a new one.")
    return token
