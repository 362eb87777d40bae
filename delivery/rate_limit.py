"""Per-provider send rate shared by every worker: a token bucket kept in Redis.

No maintained Python library offers a Redis token bucket that answers "how long until the
next token" (limits and pyrate-limiter count windows, which let a full window's burst through
at once), so this is a small Lua script: it refills, takes a token or says how long to wait,
atomically, using Redis' own clock so workers on different machines agree.
"""

import time
from functools import cache

import redis
from django.conf import settings

TOKEN_BUCKET = """
local key = KEYS[1]
local rate = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local state = redis.call('HMGET', key, 'tokens', 'at')
local tokens = tonumber(state[1]) or capacity
local at = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', key, 'tokens', tokens, 'at', now)
redis.call('EXPIRE', key, math.ceil(capacity / rate) + 10)
return tostring(wait)
"""


@cache
def _script():
    client = redis.Redis.from_url(settings.REDIS_URL)
    return client.register_script(TOKEN_BUCKET)


def rate_for(provider: str) -> float | None:
    """Sends per second allowed for `provider`, from HERALD_RATE_LIMITS; None for unlimited."""
    return settings.HERALD_RATE_LIMITS.get(provider)


def acquire(provider: str, max_wait: float = 30.0) -> bool:
    """Block until `provider` may be called once more; False if that would take over `max_wait`."""
    rate = rate_for(provider)
    if not rate:
        return True
    # A small bucket paces requests evenly instead of releasing a second's worth at once.
    capacity = max(1.0, rate / 10)
    deadline = time.monotonic() + max_wait
    while True:
        wait = float(_script()(keys=[f"herald:ratelimit:{provider}"], args=[rate, capacity]))
        if wait <= 0:
            return True
        if time.monotonic() + wait > deadline:
            return False
        time.sleep(wait)
