"""One Redis client per process, with timeouts: no caller may wait on Redis without a bound."""

import time
from functools import cache

import redis
from django.conf import settings


@cache
def shared() -> redis.Redis:
    """The process's client for REDIS_URL (redis-py's pool is thread-safe and resets after fork)."""
    return redis.Redis.from_url(
        settings.REDIS_URL,
        socket_timeout=settings.HERALD_REDIS_TIMEOUT_SECONDS,
        socket_connect_timeout=settings.HERALD_REDIS_TIMEOUT_SECONDS,
        health_check_interval=30,
    )


# After a call times out or is refused, optional uses of Redis on a request path (the auth
# throttle, the wake-up flag) skip it for this long instead of each waiting out the timeout.
_skip_until = 0.0


def skipping() -> bool:
    return time.monotonic() < _skip_until


def failed() -> None:
    global _skip_until
    _skip_until = time.monotonic() + max(1.0, settings.HERALD_REDIS_TIMEOUT_SECONDS * 2)
