"""One Redis client per process, with timeouts: no caller may wait on Redis without a bound."""

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
