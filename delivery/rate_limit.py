"""Per-provider send rate shared by every worker: a token bucket kept in Redis.

No maintained Python library offers a Redis token bucket that answers "how long until the
next token" (limits and pyrate-limiter count windows, which let a full window's burst through
at once), so this is a small Lua script: it refills, takes a token or says how long to wait,
atomically, using Redis' own clock so workers on different machines agree.
"""

import time
from functools import cache

from django.conf import settings
from redis.exceptions import RedisError

from core import metrics, redis_client
from core.vocabulary import ErrorCode
from delivery.providers.base import Outcome

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


# A 429 cuts the shared rate (at most once a second, whatever the number of workers that saw
# it) and pauses every worker for the provider's Retry-After; each success then adds back about
# one request per second per second, until the configured rate (or none) is reached again.
SLOW_DOWN = """
local key = KEYS[1]
local observed = tonumber(ARGV[1])
local pause = tonumber(ARGV[2])
local floor = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', key, 'rate', 'cut_at', 'paused_until')
local rate = tonumber(state[1])
if not rate or now - (tonumber(state[2]) or 0) >= 1 then
  rate = math.max(floor, (rate and math.min(rate, observed) or observed) * 0.7)
  redis.call('HSET', key, 'rate', rate, 'cut_at', now)
end
if pause <= 0 then pause = 1 / rate end
redis.call('HSET', key, 'paused_until', math.max(tonumber(state[3]) or 0, now + pause))
redis.call('EXPIRE', key, 3600)
return tostring(rate)
"""
SPEED_UP = """
local rate = tonumber(redis.call('HGET', KEYS[1], 'rate'))
if not rate then return '0' end
rate = rate + math.max(0.05, 1 / rate)
if rate >= tonumber(ARGV[1]) then
  redis.call('DEL', KEYS[1])
  return '0'
end
redis.call('HSET', KEYS[1], 'rate', rate)
return tostring(rate)
"""
FLOOR_PER_SECOND = 0.5
# Without a configured rate, the adaptive one is dropped once it climbs back past this.
UNCONFIGURED_CEILING = 1000.0
_adapting: set[str] = set()  # providers this process last saw with an adaptive rate


@cache
def _scripts():
    client = redis_client.shared()
    return client.register_script(TOKEN_BUCKET), client.register_script(SLOW_DOWN), client.register_script(SPEED_UP)


def rate_for(provider: str) -> float | None:
    """Sends per second allowed for `provider`, from HERALD_RATE_LIMITS; None for unlimited."""
    return settings.HERALD_RATE_LIMITS.get(provider)


def _state(provider: str) -> tuple[float | None, float]:
    """(adaptive rate or None, seconds paused), counting this call toward the observed send rate."""
    second = int(time.time())
    pipe = redis_client.shared().pipeline(transaction=False)
    pipe.hmget(f"herald:adaptive:{provider}", "rate", "paused_until")
    pipe.incr(f"herald:sends:{provider}:{second}")
    pipe.expire(f"herald:sends:{provider}:{second}", 5)
    (rate, paused_until), _, _ = pipe.execute()
    if rate is not None:
        _adapting.add(provider)
    else:
        _adapting.discard(provider)
    return (float(rate) if rate else None), max(0.0, float(paused_until or 0) - time.time())


def acquire(provider: str, max_wait: float = 30.0) -> bool:
    """Block until `provider` may be called once more; False if that would take over `max_wait`.

    With Redis unreachable the call goes ahead: the provider's own 429s still pace us.
    """
    try:
        return _acquire(provider, max_wait)
    except RedisError:
        return True


def _acquire(provider: str, max_wait: float) -> bool:
    adaptive, paused = _state(provider)
    if paused > max_wait:
        metrics.rate_limit_refused(provider)
        return False
    if paused:
        time.sleep(paused)
        metrics.rate_limit_waited(provider, paused)
    rates = [rate for rate in (rate_for(provider), adaptive) if rate]
    if not rates:
        return True
    rate = min(rates)
    # A small bucket paces requests evenly instead of releasing a second's worth at once.
    capacity = max(1.0, rate / 10)
    deadline = time.monotonic() + max_wait - paused
    while True:
        wait = float(_scripts()[0](keys=[f"herald:ratelimit:{provider}"], args=[rate, capacity]))
        if wait <= 0:
            return True
        if time.monotonic() + wait > deadline:
            metrics.rate_limit_refused(provider)
            return False
        time.sleep(wait)
        metrics.rate_limit_waited(provider, wait)


def observe(provider: str, result) -> None:
    """Adapt `provider`'s shared rate to what it answered: slow down on 429, recover on success."""
    try:
        if result.error_code == ErrorCode.RATE_LIMITED:
            second = int(time.time())
            counts = redis_client.shared().mget(f"herald:sends:{provider}:{second - 1}", f"herald:sends:{provider}:{second}")
            observed = max([int(c) for c in counts if c] + [1])
            _scripts()[1](keys=[f"herald:adaptive:{provider}"], args=[observed, result.retry_after or 0, FLOOR_PER_SECOND])
            _adapting.add(provider)
        elif result.outcome == Outcome.SENT and provider in _adapting:
            ceiling = rate_for(provider) or UNCONFIGURED_CEILING
            _scripts()[2](keys=[f"herald:adaptive:{provider}"], args=[ceiling])
    except RedisError:
        pass  # adapting is an optimisation; the provider's 429s still make messages wait
