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
        return self._rule().before(wall, inc=True)

    def count_between(self, first: datetime, last: datetime, limit: int = 100_000) -> int:
        """How many occurrences lie in [first, last) (up to `limit`): the ones a downtime missed."""
        count, at = 0, first - timedelta(seconds=1)
        while count < limit:
            at = self.after(at)
            if at is None or at >= last:
                return count
            count += 1
        return count

    def _next(self, wall: datetime) -> datetime | None:
        if self.cron:
            try:
                return croniter(self.cron, wall).get_next(datetime)
            except CroniterBadDateError:
                return None
        return self._rule().after(wall, inc=False)

    def _rule(self):
        text = self.rrule.removeprefix("RRULE:")
        return dateutil_rrule.rrulestr(text, dtstart=self.start.replace(second=0, microsecond=0))


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
        rrule = text
    recurrence = Recurrence(rrule, cron, start.replace(second=0, microsecond=0), end)
    try:
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
