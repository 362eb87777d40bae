"""Recurrences: which wall-clock times an RRULE (dateutil) or a cron line (croniter) gives, and
the instant each is in a timezone.

Occurrences are computed as naive wall-clock times, then placed in the timezone with that
day's rules (zoneinfo), so a daily 09:00 stays 09:00 across daylight-saving changes:
- a time the spring change skips (02:30 on the last Sunday of March in Berlin) fires once,
  shifted forward by the change (03:30 CEST), as PEP 495 maps a time in the gap;
- a time the autumn change repeats fires once, at its first occurrence.
A schedule "in each recipient's own timezone" to an audience fires when the occurrence comes in
the earliest timezone (UTC+14), and each person's notification waits for it in theirs.
"""

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import CroniterBadCronError, CroniterBadDateError, CroniterError, croniter
from dateutil import rrule as dateutil_rrule

# The first place each day reaches a wall-clock time.
EARLIEST_ZONE = "Etc/GMT-14"
MIN_GAP = timedelta(minutes=1)
# How many occurrences are looked at to find two less than a minute apart.
GAP_SAMPLE = 50
OCCURRENCE_FORMAT = "%Y-%m-%dT%H:%M"


class InvalidRecurrence(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Recurrence:
    rrule: str
    cron: str
    start: datetime  # naive wall-clock time of the first possible occurrence
    end: datetime | None = None  # naive; no occurrence after it

    def after(self, wall: datetime) -> datetime | None:
        """The first occurrence strictly after `wall` (naive), or None if none is left."""
        found = self._next(max(wall, self.start - timedelta(seconds=1)))
        return found if found is not None and (self.end is None or found <= self.end) else None

    def latest(self, wall: datetime) -> datetime | None:
        """The last occurrence at or before `wall` (naive), or None if none came yet."""
        if wall < self.start:
            return None
        if self.end is not None and wall > self.end:
            wall = self.end
        if self.cron:
            found = croniter(self.cron, wall + timedelta(minutes=1)).get_prev(datetime)
            while found > wall:
                found = croniter(self.cron, found).get_prev(datetime)
            return found if found >= self.start else None
        # Look back from a start moved near `wall`, further each time nothing is found (a rule moved
        # to start after its last occurrence would miss it).
        for back in (timedelta(hours=2), timedelta(days=2), timedelta(days=40), timedelta(days=400)):
            found = self._rule(near=wall - back).before(wall, inc=True)
            if found is not None:
                return found
        return self._rule().before(wall, inc=True)

    def count_between(self, first: datetime, last: datetime, limit: int = 100_000) -> int:
        """How many occurrences lie in [first, last) (up to `limit`): the ones a downtime missed."""
        if self.cron:
            count, at = 0, first - timedelta(seconds=1)
            while count < limit:
                at = self.after(at)
                if at is None or at >= last:
                    return count
                count += 1
            return count
        occurrences = self._rule(near=first).xafter(first, inc=True)
        return sum(1 for _ in itertools.takewhile(lambda at: at < last, itertools.islice(occurrences, limit)))

    def _next(self, wall: datetime) -> datetime | None:
        if self.cron:
            try:
                return croniter(self.cron, wall).get_next(datetime)
            except CroniterBadDateError:
                return None
        return self._rule(near=wall).after(wall, inc=False)

    def _rule(self, near: datetime | None = None):
        """The RRULE from the start, or, where that cannot change what it gives, from a whole number
        of its periods before `near`: dateutil walks from the start, and a minutely rule a month old
        would walk 40,000 occurrences to find the next one."""
        start = self.start.replace(second=0, microsecond=0)
        parts = rule_parts(self.rrule)
        period = PERIODS.get(parts.get("FREQ", ""))
        if near is not None and period and "COUNT" not in parts and near - start > 2 * period:
            step = period * int(parts.get("INTERVAL", "1"))
            start += step * ((near - start) // step - 1)
        return dateutil_rrule.rrulestr(self.rrule.removeprefix("RRULE:"), dtstart=start)


# A rule of these frequencies gives the same occurrences from a start moved by whole periods
# (times of day, weekdays and week starts stay where they were); months and years vary in length.
PERIODS = {"MINUTELY": timedelta(minutes=1), "HOURLY": timedelta(hours=1), "DAILY": timedelta(days=1),
           "WEEKLY": timedelta(weeks=1)}
FREQUENCIES = ("MINUTELY", "HOURLY", "DAILY", "WEEKLY", "MONTHLY", "YEARLY")


def rule_parts(text: str) -> dict[str, str]:
    parts = {}
    for part in text.removeprefix("RRULE:").split(";"):
        name, _, value = part.partition("=")
        parts[name.strip().upper()] = value.strip()
    return parts


def parse(rrule: str, cron: str, start: datetime, end: datetime | None) -> Recurrence:
    """A recurrence that fires at least once and never twice in a minute; InvalidRecurrence naming the field if not."""
    field = "rrule" if rrule else "cron"
    if bool(rrule) == bool(cron):
        raise InvalidRecurrence("rrule", "Give either rrule (RFC 5545) or cron, not both.")
    if cron:
        if len(cron.split()) != 5:
            raise InvalidRecurrence("cron", "Expected five fields: minute hour day-of-month month day-of-week.")
        if not croniter.is_valid(cron):
            raise InvalidRecurrence("cron", f"{cron!r} is not a cron expression.")
    else:
        text = rrule.strip().removeprefix("RRULE:")
        if any(part in text.upper() for part in ("DTSTART", "\n", "RDATE", "EXDATE", "EXRULE")):
            raise InvalidRecurrence("rrule", "Give one RRULE's parts (FREQ=…;BYHOUR=…); the start is starts_at.")
        parts = rule_parts(text)
        if parts.get("FREQ") == "SECONDLY":
            raise InvalidRecurrence("rrule", "Fires more than once a minute; at most one occurrence per minute.")
        if parts.get("FREQ") not in FREQUENCIES:
            raise InvalidRecurrence("rrule", f"FREQ must be one of: {', '.join(FREQUENCIES)}.")
        if not parts.get("INTERVAL", "1").isdigit() or int(parts.get("INTERVAL", "1")) < 1:
            raise InvalidRecurrence("rrule", "INTERVAL must be a whole number of at least 1.")
        filters = set(parts) - {"FREQ", "INTERVAL", "COUNT", "UNTIL", "WKST"}
        if parts["FREQ"] in ("MINUTELY", "HOURLY") and filters and (int(parts.get("INTERVAL", "1")) > 1 or "BYSETPOS" in filters):
            # dateutil searches such a rule that never matches minute by minute to the year 9999 (40 s, measured)
            raise InvalidRecurrence("rrule", "A MINUTELY or HOURLY rule with BY… parts takes no INTERVAL or BYSETPOS.")
        rrule = text
    recurrence = Recurrence(rrule, cron, start.replace(second=0, microsecond=0), end)
    try:
        if rrule and no_day_matches(rrule, recurrence.start):
            raise InvalidRecurrence("rrule", "Never fires between starts_at and ends_at.")
        first = recurrence.after(recurrence.start - timedelta(seconds=1))
        sample = [first]
        while sample[-1] is not None and len(sample) < GAP_SAMPLE:
            sample.append(recurrence.after(sample[-1]))
    except (ValueError, TypeError, CroniterBadCronError, CroniterError) as exc:
        raise InvalidRecurrence(field, f"Does not parse: {exc}.") from None
    if first is None:
        raise InvalidRecurrence(field, "Never fires between starts_at and ends_at.")
    times = [at for at in sample if at is not None]
    if any(later - earlier < MIN_GAP for earlier, later in zip(times, times[1:])):
        raise InvalidRecurrence(field, "Fires more than once a minute; at most one occurrence per minute.")
    return recurrence


def no_day_matches(rrule: str, start: datetime) -> bool:
    """Whether no day of any year matches the rule's day and time filters (30 February, say).

    dateutil looks for a minutely, hourly or daily rule's first match period by period up to the
    year 9999 (7–40 s for one that never matches, measured); the same filters as a yearly rule are
    checked in well under a second.
    """
    parts = rule_parts(rrule)
    if parts.get("FREQ") in ("MONTHLY", "YEARLY"):
        return False
    yearly = ";".join(["FREQ=YEARLY", *(f"{name}={value}" for name, value in parts.items()
                                        if name not in ("FREQ", "INTERVAL", "COUNT", "BYSETPOS"))])
    return dateutil_rrule.rrulestr(yearly, dtstart=start).after(start, inc=True) is None


def wall_time(instant: datetime, zone_name: str) -> datetime:
    """The naive wall-clock time `instant` is in `zone_name`."""
    return instant.astimezone(ZoneInfo(zone_name)).replace(tzinfo=None)


def instant(wall: datetime, zone_name: str) -> datetime:
    """The UTC instant a naive wall-clock time is in `zone_name` (gap: shifted forward; repeat: the first)."""
    return wall.replace(tzinfo=ZoneInfo(zone_name)).astimezone(UTC)


def occurrence_key(wall: datetime) -> str:
    return wall.strftime(OCCURRENCE_FORMAT)


def from_key(key: str) -> datetime:
    return datetime.strptime(key, OCCURRENCE_FORMAT)
