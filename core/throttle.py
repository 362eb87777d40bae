"""Limits on failed logins and failed API keys, counted in Redis per subject.

A subject is whatever a failure is charged to: a client address for API keys, a username at
an address (or one signed-in browser) for the admin login. Callers check the credential
first and consult the limit only for a failed one, so a stranger's guesses can slow down
other guesses but never lock out a valid credential.

Written here rather than taken from django-axes: axes covers only the login form and keeps
its counts in the database, and the same limit must guard API keys; Redis is already shared
by every process.
"""

import hashlib

from django.conf import settings
from redis.exceptions import RedisError

from core import redis_client


def client_address(request) -> str:
    if settings.HERALD_CLIENT_IP_HEADER:
        forwarded = request.META.get(settings.HERALD_CLIENT_IP_HEADER, "")
        if forwarded:
            # The last hop is the one our proxy added; the ones before it are the client's to invent.
            return forwarded.split(",")[-1].strip()
    return request.META.get("REMOTE_ADDR", "") or "unknown"


def _key(scope: str, subject: str) -> str:
    # Hashed: a subject may hold a username of any length a stranger typed.
    return f"herald:auth-failures:{scope}:{hashlib.sha256(subject.encode('utf-8', 'surrogatepass')).hexdigest()[:32]}"


def seconds_blocked(scope: str, subject: str) -> int:
    """How long `subject` must wait before its next failure is looked at; 0 when it may try now.

    Fails open: with Redis unreachable nobody is locked out (the request path has other guards).
    """
    if redis_client.skipping():
        return 0
    try:
        pipe = redis_client.shared().pipeline()
        pipe.get(_key(scope, subject))
        pipe.ttl(_key(scope, subject))
        count, ttl = pipe.execute()
    except RedisError:
        redis_client.failed()
        return 0
    if count is not None and int(count) >= settings.HERALD_AUTH_FAILURE_LIMIT:
        return max(int(ttl), 1)
    return 0


def record_failure(scope: str, subject: str) -> None:
    if redis_client.skipping():
        return
    try:
        pipe = redis_client.shared().pipeline()
        # The window starts at the first failure (SET NX rather than EXPIRE NX, which needs Redis 7).
        pipe.set(_key(scope, subject), 0, ex=settings.HERALD_AUTH_FAILURE_WINDOW_SECONDS, nx=True)
        pipe.incr(_key(scope, subject))
        pipe.execute()
    except RedisError:
        redis_client.failed()


def forget_failures(scope: str, subject: str) -> None:
    """A success clears the subject's count: its owner's own typos do not pile up across logins."""
    if redis_client.skipping():
        return
    try:
        redis_client.shared().delete(_key(scope, subject))
    except RedisError:
        redis_client.failed()
