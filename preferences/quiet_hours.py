"""Quiet hours: a daily window of local wall-clock time, in the person's own IANA timezone.

The window is [start, end) on the wall clock, so 22:00-07:00 crosses midnight. Around DST
changes the wall clock is what counts: in the repeated fall-back hour a time inside the window
is quiet both times round, and an end time that the spring-forward jump skips ends the window
at the jump itself (the first instant whose wall clock reads at or past the end).
"""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class InvalidQuietHours(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def check_window(start: time, end: time) -> None:
    """Raise InvalidQuietHours unless [start, end) is a usable window."""
    if start == end:
        raise InvalidQuietHours("end", "Quiet hours need different start and end times.")


def zone(name: str) -> ZoneInfo:
    """The IANA zone called `name`; InvalidQuietHours if there is none."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidQuietHours("timezone", f"{name!r} is not an IANA timezone such as Europe/Berlin.") from exc


def is_quiet(start: time, end: time, wall: time) -> bool:
    """Whether the wall-clock time `wall` falls inside [start, end), which may cross midnight."""
    check_window(start, end)
    if start < end:
        return start <= wall < end
    return wall >= start or wall < end


def quiet_until(start: time, end: time, tz: ZoneInfo, now: datetime) -> datetime | None:
    """When the quiet window around `now` ends (aware UTC), or None if `now` is not quiet."""
    local = now.astimezone(tz)
    wall = local.time().replace(tzinfo=None)
    if not is_quiet(start, end, wall):
        return None
    end_date = local.date() if wall < end else local.date() + timedelta(days=1)
    return first_instant_at_or_after(end_date, end, tz, after=now)


def first_instant_at_or_after(day: date, wall: time, tz: ZoneInfo, after: datetime) -> datetime:
    """The first instant later than `after` whose wall clock on `day` reads `wall` or later (UTC)."""
    naive = datetime.combine(day, wall)
    earlier, later = (naive.replace(tzinfo=tz, fold=fold).astimezone(UTC) for fold in (0, 1))
    if earlier > later:
        # A spring-forward gap: `wall` never shows; the window ends when the clock jumps past it.
        return _transition_between(later, earlier, naive, tz)
    # An ordinary time (earlier == later) or the repeated fall-back hour (two candidates).
    return earlier if earlier > after else later


def _transition_between(lo: datetime, hi: datetime, naive: datetime, tz: ZoneInfo) -> datetime:
    # zoneinfo exposes no transition table, so find the jump by bisection on whole seconds
    # (offsets change on whole seconds): before it the wall clock reads less than `naive`.
    lo_s, hi_s = int(lo.timestamp()), int(hi.timestamp())
    while hi_s - lo_s > 1:
        mid = (lo_s + hi_s) // 2
        if datetime.fromtimestamp(mid, tz).replace(tzinfo=None) >= naive:
            hi_s = mid
        else:
            lo_s = mid
    return datetime.fromtimestamp(hi_s, UTC)
