"""Frequency caps and the deduplication window, decided atomically in Redis.

A notification is admitted, a duplicate, or capped. Admission records both the dedup key and
one entry in the person's per-category sorted set of admitted notifications (scored by time),
which serves the hourly and the daily sliding windows alike.
"""

import uuid
from datetime import datetime
from functools import cache

from core import redis_client

HOUR_MS = 3_600_000
DAY_MS = 86_400_000

ADMITTED = "admitted"
DUPLICATE = "duplicate"
CAPPED = "frequency_capped"

# The `limits` library's moving window checks one limit per call with its own clock; we need
# "not a duplicate AND under the hourly AND the daily cap, then record all three" as one step,
# so it is one script. KEYS[1] dedup key, KEYS[2] the person's admitted set for the category.
# Windows are measured on the caller's `now` (Redis TTLs only clean up), so tests can pin the clock.
# ARGV[2] names the notification: asking again for one already admitted (a routing task that
# ran twice) admits it again without counting it twice or calling it its own duplicate.
ADMIT = """
local now = tonumber(ARGV[1])
local member = ARGV[2]
local dedup_ms = tonumber(ARGV[3])
local hourly = tonumber(ARGV[4])
local daily = tonumber(ARGV[5])
if dedup_ms > 0 then
  local held = redis.call('GET', KEYS[1])
  if held then
    local sep = string.find(held, '|', 1, true)
    local until_ms = tonumber(string.sub(held, 1, sep - 1))
    if until_ms > now and string.sub(held, sep + 1) ~= member then
      return 'duplicate'
    end
  end
end
if redis.call('ZSCORE', KEYS[2], member) then
  return 'admitted'
end
if hourly >= 0 or daily >= 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - 86400000)
  if hourly >= 0 and redis.call('ZCOUNT', KEYS[2], '(' .. (now - 3600000), '+inf') >= hourly then
    return 'frequency_capped'
  end
  if daily >= 0 and redis.call('ZCARD', KEYS[2]) >= daily then
    return 'frequency_capped'
  end
  redis.call('ZADD', KEYS[2], now, ARGV[2])
  redis.call('PEXPIRE', KEYS[2], 86400000)
end
if dedup_ms > 0 then
  redis.call('SET', KEYS[1], (now + dedup_ms) .. '|' .. member, 'PX', dedup_ms)
end
return 'admitted'
"""


def _client():
    return redis_client.shared()


@cache
def _admit_script():
    return _client().register_script(ADMIT)


def _keys(recipient_id: int, category: str, dedup_key: str) -> list[str]:
    # The braces keep both keys in one Redis Cluster slot, as a multi-key script requires.
    return [f"herald:dedup:{{r{recipient_id}}}:{dedup_key}", f"herald:sent:{{r{recipient_id}}}:{category}"]


def admit(
    recipient_id: int,
    category: str,
    dedup_key: str,
    now: datetime,
    *,
    hourly_cap: int | None,
    daily_cap: int | None,
    dedup_window_seconds: int,
    admission_id: str = "",
) -> str:
    """ADMITTED, DUPLICATE or CAPPED; admission counts against the caps and starts the dedup window.

    `admission_id` (the notification id) makes a repeated call for the same notification answer
    the same way without counting it again.
    """
    dedup_ms = dedup_window_seconds * 1000 if dedup_key else 0
    result = _admit_script()(
        keys=_keys(recipient_id, category, dedup_key),
        args=[
            int(now.timestamp() * 1000), admission_id or uuid.uuid4().hex, dedup_ms,
            -1 if hourly_cap is None else hourly_cap, -1 if daily_cap is None else daily_cap,
        ],
    )
    return result.decode()


def forget(recipient_id: int, categories: list[str]) -> None:
    """Delete a person's cap counters (their dedup keys expire on their own within the window)."""
    _client().delete(*(_keys(recipient_id, category, "")[1] for category in categories))
