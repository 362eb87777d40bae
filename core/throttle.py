"""Per-client limits on failed logins and failed API keys, counted in Redis.

Written here rather than taken from django-axes: axes covers only the login form and keeps
its counts in the database, and the same limit must guard API keys; Redis is already shared
by every process.
"""

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


def _key(scope: str, request) -> str:
    return f"herald:auth-failures:{scope}:{client_address(request)}"


def seconds_blocked(scope: str, request) -> int:
    """How long this client must wait before trying again; 0 when it may try now.

    Fails open: with Redis unreachable nobody is locked out (the request path has other guards).
    """
    if redis_client.skipping():
        return 0
    try:
        pipe = redis_client.shared().pipeline()
        pipe.get(_key(scope, request))
        pipe.ttl(_key(scope, request))
        count, ttl = pipe.execute()
    except RedisError:
        redis_client.failed()
        return 0
    if count is not None and int(count) >= settings.HERALD_AUTH_FAILURE_LIMIT:
        return max(int(ttl), 1)
    return 0


def record_failure(scope: str, request) -> None:
    if redis_client.skipping():
        return
    try:
        pipe = redis_client.shared().pipeline()
        # The window starts at the first failure (SET NX rather than EXPIRE NX, which needs Redis 7).
        pipe.set(_key(scope, request), 0, ex=settings.HERALD_AUTH_FAILURE_WINDOW_SECONDS, nx=True)
        pipe.incr(_key(scope, request))
        pipe.execute()
    except RedisError:
        redis_client.failed()
