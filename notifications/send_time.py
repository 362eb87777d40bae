"""When a notification asked to go out "at 09:00 local" or "at the best time" is sent, and why.

Both resolve to an instant stored as the notification's `scheduled_at`, with the reason beside it
(`send_time`); from there it waits like any scheduled notification, and the person's quiet hours
still apply when it is routed.

Local times use the timezone's rules of that day (zoneinfo): a time the spring change skips is
sent shifted forward by the change (02:30 → 03:30), a time the autumn change repeats at its
first occurrence, as digests do (preferences/digests.py).
"""

import re
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.db import connection

OPTIMAL = "optimal"
HHMM = re.compile(r"\A([01]\d|2[0-3]):([0-5]\d)\Z")
HISTORY_DAYS = 90
# The events that say the person looked: SendGrid's open and click, the app's, Herald's tracked
# links and pixel, and an inbox read.
ENGAGEMENT_EVENTS = ["open", "click", "opened", "clicked", "read"]


def problem(send_at: str) -> str | None:
    """Why `send_at` is not a send time; None if it is one."""
    if send_at == OPTIMAL or HHMM.match(send_at):
        return None
    return 'Expected "optimal" or a local time as HH:MM (24-hour), e.g. "09:00".'


def at_local_time(local: str, zone_name: str, now: datetime) -> tuple[datetime, dict]:
    """The next moment it is `local` (HH:MM) in `zone_name` after `now`: (that instant, the reason)."""
    hours, minutes = (int(part) for part in local.split(":"))
    at = next_wall_time(time(hours, minutes), ZoneInfo(zone_name), now)
    return at, {"rule": "local_time", "local_time": local, "timezone": zone_name}


def next_wall_time(wall: time, zone: ZoneInfo, after: datetime) -> datetime:
    day = after.astimezone(zone).date()
    for offset in (0, 1, 2):
        at = datetime.combine(day + timedelta(days=offset), wall, tzinfo=zone).astimezone(UTC)
        if at > after:
            return at
    raise AssertionError("a wall time recurs within two days")


def at_local_datetime(local: datetime, zone_name: str, now: datetime) -> tuple[datetime | None, dict]:
    """`local` (a naive wall time, as a schedule's occurrence in each person's own timezone) in `zone_name`:
    (that instant, or None if it has passed, the reason)."""
    at = local.replace(tzinfo=ZoneInfo(zone_name)).astimezone(UTC)
    reason = {"rule": "local_time", "local_time": local.isoformat(timespec="minutes"), "timezone": zone_name}
    return (at if at > now else None), reason


ENGAGEMENT_HOURS_SQL = """
SELECT n.recipient_id, extract(hour FROM coalesce(e.occurred_at, e.received_at) AT TIME ZONE r.timezone)::int, count(*)
FROM delivery_deliveryevent AS e
JOIN delivery_delivery AS d ON d.id = e.delivery_id
JOIN notifications_notification AS n ON n.id = d.notification_id
JOIN preferences_recipient AS r ON r.id = n.recipient_id
WHERE n.recipient_id = ANY(%s) AND e.event = ANY(%s) AND coalesce(e.occurred_at, e.received_at) >= %s
GROUP BY 1, 2
"""


def engagement_hours(recipient_ids: list[int], now: datetime) -> dict[int, dict[int, int]]:
    """{person: {local hour: opens and clicks in it}} over the last 90 days, in one query."""
    found: dict[int, dict[int, int]] = {}
    with connection.cursor() as cursor:
        cursor.execute(ENGAGEMENT_HOURS_SQL, [list(recipient_ids), ENGAGEMENT_EVENTS, now - timedelta(days=HISTORY_DAYS)])
        for recipient_id, hour, count in cursor.fetchall():
            found.setdefault(recipient_id, {})[hour] = count
    return found


def optimal(hours: dict[int, int], zone_name: str, window_hours: int, default_hour: int, now: datetime) -> tuple[datetime, dict]:
    """The best moment within `window_hours` of `now` for a person whose opens and clicks fell in
    `hours` (local hour → count): the start of the local hour with most of them (now, if that is
    the current hour), the earliest on a tie; with none in the window, the category's default hour
    if the window holds it, else now. (that instant, the reason)."""
    zone = ZoneInfo(zone_name)
    candidates = hour_starts(now, zone, window_hours)
    reason = {"rule": OPTIMAL, "window_hours": window_hours, "timezone": zone_name}
    best = max(candidates, key=lambda at: (hours.get(at.astimezone(zone).hour, 0), -at.timestamp()))
    engagements = hours.get(best.astimezone(zone).hour, 0)
    if engagements:
        return best, {**reason, "basis": "engagement", "hour": best.astimezone(zone).hour, "engagements": engagements,
                      "history_days": HISTORY_DAYS}
    for at in candidates:
        if at.astimezone(zone).hour == default_hour:
            return at, {**reason, "basis": "category_default", "hour": default_hour}
    return now, {**reason, "basis": "category_default_outside_window", "hour": default_hour}


def hour_starts(now: datetime, zone: ZoneInfo, window_hours: int) -> list[datetime]:
    """Now, then the start of each following local hour before now + window_hours (in UTC)."""
    end = now + timedelta(hours=window_hours)
    found = [now]
    # Whole hours in UTC are whole local hours except in half-hour zones, and a half-hour clock
    # change (Lord Howe) can floor back onto the hour already found: then step on in UTC.
    for _ in range(window_hours + 2):
        probe = found[-1] + timedelta(hours=1)
        at = probe.astimezone(zone).replace(minute=0, second=0, microsecond=0).astimezone(UTC)
        if at <= found[-1]:
            at = probe
        if at >= end:
            break
        found.append(at)
    return found
