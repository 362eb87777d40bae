"""Per-provider circuit breakers shared by every worker, kept in Redis.

Written here rather than taken from pybreaker: pybreaker holds a process-wide lock for the
whole guarded call, so in a threaded worker one slow provider call made every other call to
that provider wait behind it (seen as SMS stalling behind a hanging email provider). Here
the provider is called outside any lock; only the bookkeeping is atomic, in Lua.

Closed: calls go through; HERALD_BREAKER_FAILURES provider faults in a row open it. Open: no
calls for HERALD_BREAKER_RESET_SECONDS. Then one caller gets a probe (half-open): success
closes the breaker, failure opens it for another period.
"""

import time

from django.conf import settings
from redis.exceptions import RedisError

from core import redis_client
from delivery.providers.base import SendResult

# KEYS[1] the breaker's hash. ARGV[1] reset seconds. Returns 1 if a call may be made.
ALLOW = """
local opened = tonumber(redis.call('HGET', KEYS[1], 'opened_at'))
if not opened then return 1 end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
if now - opened < tonumber(ARGV[1]) then return 0 end
-- half-open: exactly one probe per period
if redis.call('HSETNX', KEYS[1], 'probe_at', now) == 1 then return 1 end
if now - tonumber(redis.call('HGET', KEYS[1], 'probe_at')) >= tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'probe_at', now)
  return 1
end
return 0
"""
# ARGV[1] 'ok' or 'fault', ARGV[2] failures that open it. Returns the state after.
RECORD = """
if ARGV[1] == 'ok' then
  redis.call('DEL', KEYS[1])
  return 'closed'
end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local opened = redis.call('HGET', KEYS[1], 'opened_at')
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
if opened or failures >= tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 'opened_at', now)
  redis.call('HDEL', KEYS[1], 'probe_at')
  redis.call('EXPIRE', KEYS[1], 86400)
  return 'open'
end
redis.call('EXPIRE', KEYS[1], 86400)
return 'closed'
"""


def _key(provider: str) -> str:
    return f"herald:breaker:{provider}"


def _scripts():
    client = redis_client.shared()
    return client.register_script(ALLOW), client.register_script(RECORD)


def state_of(provider: str) -> str:
    """closed, open or half-open, as the next caller would find it."""
    opened_at = redis_client.shared().hget(_key(provider), "opened_at")
    if opened_at is None:
        return "closed"
    return "open" if time.time() - float(opened_at) < settings.HERALD_BREAKER_RESET_SECONDS else "half-open"


def call_through_breaker(provider_name: str, send) -> SendResult | None:
    """Run `send()` under the provider's breaker; None when the breaker is open and it was not called.

    With Redis unreachable the call goes ahead: a breaker only saves the provider from us.
    """
    allow, record = _scripts()
    try:
        if not allow(keys=[_key(provider_name)], args=[settings.HERALD_BREAKER_RESET_SECONDS]):
            return None
    except RedisError:
        pass
    result = send()
    try:
        record(keys=[_key(provider_name)], args=["fault" if result.provider_fault else "ok", settings.HERALD_BREAKER_FAILURES])
    except RedisError:
        pass
    return result
