"""Delivery policy: what a person's choices, quiet hours and limits allow for one notification.

The router asks `decide()` once per notification and records every non-"send" decision, with
its reason, on the notification. Everything read here comes from the cache and Redis, so a
routing worker makes no SQL queries for it once the cache is warm.
"""

import logging
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from core import metrics
from preferences import caps, store
from preferences.models import Recipient
from preferences.quiet_hours import InvalidQuietHours, quiet_until, zone
from preferences.snapshot import CategoryPolicy, Choices, category_channels, opted_out_reason

log = logging.getLogger(__name__)

SEND = "send"
HOLD = "hold"
SUPPRESS = "suppress"

CRITICAL = "critical"


@dataclass(frozen=True)
class ChannelDecision:
    channel: str
    action: str  # "send" | "hold" | "suppress"
    reason: str = ""  # "" for send; e.g. "opted_out", "quiet_hours_held_until", "frequency_capped"
    hold_until: datetime | None = None  # for "hold": when the quiet window ends (aware UTC)


def candidate_channels(recipient: Recipient, category: str) -> list[str]:
    """The channels to try when the caller named none: the user's channel list for the category, else the category default."""
    choices, policy = store.load(recipient.pk, category)
    return list(category_channels(choices, policy))


def decide(
    recipient: Recipient, category: str, channels: list[str], priority: str, dedup_key: str, now: datetime,
    admission_id: str = "",
) -> list[ChannelDecision]:
    """One decision per channel, in order. Consumes the frequency cap and records the dedup key only if at least one channel is sent or held.

    Pass the notification's id as `admission_id` so that deciding twice for it (a retried
    routing task) gives the same answer and counts once.

    Order of checks: the person's choices (ignored for required categories), then quiet hours
    (ignored at critical priority), then — for whatever survived — dedup and the frequency caps,
    which apply to the notification as a whole. Raises redis.RedisError if Redis is unreachable,
    so the caller retries rather than sending unchecked.
    """
    choices, policy = store.load(recipient.pk, category)
    decisions = preference_decisions(choices, policy, channels, priority, recipient.timezone, now)
    if not any(d.action in (SEND, HOLD) for d in decisions):
        return decisions
    if not (policy.capped or (dedup_key and policy.dedup_window_seconds)):
        return decisions
    outcome = caps.admit(
        recipient.pk, category, dedup_key, now,
        hourly_cap=policy.hourly_cap, daily_cap=policy.daily_cap, dedup_window_seconds=policy.dedup_window_seconds,
        admission_id=admission_id,
    )
    if outcome == caps.ADMITTED:
        return decisions
    if outcome == caps.DUPLICATE:
        metrics.notification_offered(priority, "deduplicated")
    return [
        ChannelDecision(d.channel, SUPPRESS, outcome) if d.action in (SEND, HOLD) else d for d in decisions
    ]


def preference_decisions(
    choices: Choices, policy: CategoryPolicy, channels: list[str], priority: str, timezone: str, now: datetime
) -> list[ChannelDecision]:
    """The decisions the person's choices and quiet hours alone lead to (no Redis involved)."""
    hold_until = None
    if choices.has_quiet_hours and policy.respects_quiet_hours and priority != CRITICAL:
        hold_until = quiet_until(choices.quiet_hours_start, choices.quiet_hours_end, _person_zone(timezone), now)
    decisions = []
    for channel in channels:
        reason = opted_out_reason(choices, policy, channel)
        if reason:
            decisions.append(ChannelDecision(channel, SUPPRESS, reason))
        elif hold_until and channel in policy.quiet_hours_held_channels:
            decisions.append(ChannelDecision(channel, HOLD, "quiet_hours_held_until", hold_until))
        else:
            decisions.append(ChannelDecision(channel, SEND))
    return decisions


def _person_zone(name: str) -> ZoneInfo:
    try:
        return zone(name)
    except InvalidQuietHours:
        # Validated on write, but a tzdata update can retire a name; holding forever would be worse.
        log.warning("unknown timezone %r; using UTC for quiet hours", name)
        return ZoneInfo("UTC")
