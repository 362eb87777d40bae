"""Per-provider circuit breakers shared by every worker, kept in Redis.

Written here rather than taken from pybreaker: pybreaker holds a process-wide lock for the
whole guarded call, so in a threaded worker one slow provider call made every other call to
that provider wait behind it (seen as SMS stalling behind a hanging email provider). Here
the provider is called outside any lock; only the bookkeeping is atomic, in Lua.

Closed: calls go through. It opens when
- HERALD_BREAKER_FAILURES calls in a row fail by the provider's fault (5xx, unreadable answers,
  no answer at all);
- a call that overran what the provider usually takes (HERALD_BREAKER_STALL_FACTOR times its
  recent average, at least HERALD_BREAKER_STALL_MIN_SECONDS) ends in a failure. While such a call
  is still in flight no new call starts: a hanging provider is noticed while its first calls
  hang, not once they time out, so only the calls already in flight go into a hang (a slow call
  that then succeeds only paused the others for a moment);
- connections keep failing before any request is sent for HERALD_BREAKER_UNSENT_SECONDS with no
  success in between: a burst of resets (a local network blip) is not the provider's fault, a
  provider refusing every connection is down.
Errors of our own side (a bug, a message the SDK refused) count neither way.
Open: no calls for HERALD_BREAKER_RESET_SECONDS. Then one caller gets a probe (half-open): that
caller's message; success closes the breaker, failure opens it for another period. A provider with
a health check of its own (`probe()`, which sends no message) is probed with it instead, every
HERALD_BREAKER_PROBE_SECONDS. Deliveries waiting for an open breaker are released when it closes.
"""

import time
import uuid
from typing import NamedTuple

from django.conf import settings
from redis.exceptions import RedisError

from core import metrics, redis_client
from core.vocabulary import ErrorCode
from delivery.providers.base import SendResult

# KEYS: the breaker's hash, the calls in flight (zset: call id → when it counts as stalled), the
# average latency. ARGV: reset seconds, call id, stall factor, stall minimum, provider timeout, and
# 1 to watch for stalls. Returns 0 (open: no call), -1 (a call is stalled: no call yet), 1 (call)
# or 2 (call, as the probe).
ALLOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
-- a call of a worker that died is forgotten once it could no longer be running
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - 2 * tonumber(ARGV[5]))
local opened = tonumber(redis.call('HGET', KEYS[1], 'opened_at'))
if opened and now - opened < tonumber(ARGV[1]) then return 0 end
local watched = ARGV[6] == '1'
if watched and redis.call('ZCOUNT', KEYS[2], '-inf', now) > 0 then return -1 end
local verdict = 1
if opened then
  -- half-open: exactly one probe per period
  local probe = tonumber(redis.call('HGET', KEYS[1], 'probe_at'))
  if probe and now - probe < tonumber(ARGV[1]) then return 0 end
  redis.call('HSET', KEYS[1], 'probe_at', now)
  verdict = 2
end
if watched then
  local usual = tonumber(redis.call('GET', KEYS[3]) or '0.25')
  local allowed = math.min(math.max(usual * tonumber(ARGV[3]), tonumber(ARGV[4])), tonumber(ARGV[5]))
  redis.call('ZADD', KEYS[2], now + allowed, ARGV[2])
  redis.call('EXPIRE', KEYS[2], 86400)
end
return verdict
"""
# ARGV: 'ok', 'fault', 'unsent' or 'ours'; failures that open it; call id; the call's seconds;
# unsent seconds that open it. A call that stalled and then failed opens it at once: the stall
# was the provider hanging. Returns the state after ('recovered': it was open and is closed now).
RECORD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local stalled_at = tonumber(redis.call('ZSCORE', KEYS[2], ARGV[3]))
redis.call('ZREM', KEYS[2], ARGV[3])
if ARGV[1] == 'ours' then return 'unchanged' end
if ARGV[1] == 'ok' then
  local was_open = redis.call('HEXISTS', KEYS[1], 'opened_at') == 1
  redis.call('DEL', KEYS[1])
  local seconds = tonumber(ARGV[4])
  local usual = tonumber(redis.call('GET', KEYS[3]) or seconds)
  redis.call('SET', KEYS[3], usual * 0.8 + seconds * 0.2, 'EX', 86400)
  if was_open then return 'recovered' end
  return 'closed'
end
local open_now = redis.call('HEXISTS', KEYS[1], 'opened_at') == 1
if ARGV[1] == 'unsent' then
  redis.call('HSETNX', KEYS[1], 'unsent_since', now)
  open_now = open_now or now - tonumber(redis.call('HGET', KEYS[1], 'unsent_since')) >= tonumber(ARGV[5])
else
  local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
  open_now = open_now or failures >= tonumber(ARGV[2]) or (stalled_at ~= nil and stalled_at < now)
end
redis.call('EXPIRE', KEYS[1], 86400)
if open_now then
  redis.call('HSET', KEYS[1], 'opened_at', now, 'reason', ARGV[1])
  redis.call('HDEL', KEYS[1], 'probe_at')
  return 'open'
end
return 'closed'
"""
# Results that say nothing about the provider's health: our own failures before or around the call.
OURS = frozenset({ErrorCode.PROVIDER_ERROR, ErrorCode.INVALID_MESSAGE, ErrorCode.RATE_LIMITED_LOCALLY, ErrorCode.PROVIDER_BUSY})


def _keys(provider: str) -> list[str]:
    return [f"herald:breaker:{provider}", f"herald:inflight:{provider}", f"herald:latency:{provider}"]


def _scripts():
    client = redis_client.shared()
    return client.register_script(ALLOW), client.register_script(RECORD)


def state_of(provider: str) -> str:
    """closed, open or half-open, as the next caller would find it."""
    opened_at = redis_client.shared().hget(_keys(provider)[0], "opened_at")
    if opened_at is None:
        return "closed"
    return "open" if time.time() - float(opened_at) < settings.HERALD_BREAKER_RESET_SECONDS else "half-open"


def verdict(result: SendResult) -> str:
    """What a call's result says about the provider: ok, fault, unsent (no request went out) or ours."""
    if result.error_code in OURS:
        return "ours"
    if result.error_code == ErrorCode.CONNECTION_ERROR:
        return "unsent"
    return "fault" if result.provider_fault else "ok"


class Refused(NamedTuple):
    """No call was made: the breaker is open (or a call to the provider hangs); try again after `wait`."""

    wait: float
    reason: str


def call_through_breaker(provider_name: str, send, probe=None, watch_stalls: bool = True,
                         on_recovery=None) -> SendResult | Refused:
    """Run `send()` under the provider's breaker and return its result, or Refused when it was not called.

    In half-open, `probe()` (the provider's health check, if it has one) goes first: only if the
    provider answers it is `send()` made, and such a provider is probed every
    HERALD_BREAKER_PROBE_SECONDS instead of every reset period, since a probe risks no message.
    Stalls are watched only where one slow call says the provider is slow (not for webhooks, whose
    endpoints are each their own). `on_recovery()` runs when this call closed an open breaker.
    With Redis unreachable the call goes ahead: a breaker only saves the provider from us.
    """
    allow, record = _scripts()
    keys = _keys(provider_name)
    period = settings.HERALD_BREAKER_PROBE_SECONDS if probe is not None else settings.HERALD_BREAKER_RESET_SECONDS
    allowed, call = _allow(allow, keys, period, watch_stalls)
    if allowed == 0:
        metrics.breaker_refused(provider_name, "open")
        return Refused(settings.HERALD_BREAKER_RESET_SECONDS, f"{provider_name}'s circuit breaker is open after failures")
    if allowed == -1:
        metrics.breaker_refused(provider_name, "stalled_call")
        return Refused(settings.HERALD_BREAKER_STALL_MIN_SECONDS, f"a call to {provider_name} is taking far longer than usual")
    started = time.monotonic()
    if allowed == 2 and probe is not None:
        healthy = probe()
        if _record(record, keys, call, healthy, started) == "recovered" and on_recovery is not None:
            on_recovery()
        if verdict(healthy) != "ok":
            return Refused(settings.HERALD_BREAKER_RESET_SECONDS, f"{provider_name} failed its health check")
        allowed, call = _allow(allow, keys, period, watch_stalls)  # the message's own call, on the closed breaker
        if allowed <= 0:
            return Refused(settings.HERALD_BREAKER_STALL_MIN_SECONDS, f"{provider_name} is busy with a slow call")
        started = time.monotonic()
    result = send()
    metrics.provider_called(provider_name, result.outcome, time.monotonic() - started)
    if _record(record, keys, call, result, started) == "recovered" and on_recovery is not None:
        on_recovery()
    return result


def _allow(allow, keys: list[str], period: float, watch_stalls: bool) -> tuple[int, str]:
    call = uuid.uuid4().hex
    try:
        return int(allow(keys=keys, args=[period, call, settings.HERALD_BREAKER_STALL_FACTOR,
                                          settings.HERALD_BREAKER_STALL_MIN_SECONDS, settings.HERALD_PROVIDER_TIMEOUT,
                                          int(watch_stalls)])), call
    except RedisError:
        return 1, call


def _record(record, keys: list[str], call: str, result: SendResult, started: float) -> str:
    try:
        state = record(keys=keys, args=[verdict(result), settings.HERALD_BREAKER_FAILURES, call, time.monotonic() - started,
                                        settings.HERALD_BREAKER_UNSENT_SECONDS])
    except RedisError:
        return "unknown"
    return state.decode() if isinstance(state, bytes) else state
