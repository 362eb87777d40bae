"""Recurrences: which wall-clock times an RRULE (dateutil) or a cron line (croniter) gives, the
instant each is in a timezone, and where a schedule stands at a moment.

Imports nothing from Django: a rule's cost to expand is its author's choice, so this runs only in
bounded processes (schedules/recurrence_jobs.py), and in unit tests.

Occurrences are computed as naive wall-clock times, then placed in the timezone with that
day's rules (zoneinfo), so a daily 09:00 stays 09:00 across daylight-saving changes:
- a time the spring change skips (02:30 on the last Sunday of March in Berlin) fires once,
  shifted forward by the change (03:30 CEST), as PEP 495 maps a time in the gap;
- a time the autumn change repeats fires once, at its first occurrence.
A schedule "in each recipient's own timezone" to an audience fires when the occurrence comes in
the earliest timezone (UTC+14), and each person's notification waits for it in theirs.

RFC 5545 in these terms: DTSTART is the start (starts_at read in the timezone, a whole minute)
and the first occurrence when the rule gives it; COUNT counts occurrences from there, sent or
not; UNTIL in UTC (`…Z`, the RFC's form when DTSTART has a timezone) is an instant, read in the
timezone the occurrences are read in; a floating UNTIL (no `Z`) is a wall-clock time there, like
DTSTART; a date UNTIL takes in that whole day. Both become the recurrence's end, with ends_at.
"""

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from zoneinfo import ZoneInfo

from croniter import CroniterBadCronError, CroniterBadDateError, CroniterError, croniter
from dateutil import rrule as dateutil_rrule

from schedules import rrule_grammar as grammar

# The first place each day reaches a wall-clock time.
EARLIEST_ZONE = "Etc/GMT-14"
MIN_GAP = timedelta(minutes=1)
# How many occurrences from the next one a schedule shows.
UPCOMING = 5
# Missed occurrences counted per firing (after downtime or a pause): counting is walking, and a
# cheap rule must stay cheap however long Herald was down.
MISSED_COUNT_LIMIT = 10_000
OCCURRENCE_FORMAT = "%Y-%m-%dT%H:%M"


class InvalidRecurrence(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Recurrence:
    rrule: str  # without COUNT and UNTIL: both are part of `end`
    cron: str
    start: datetime  # naive wall-clock time of the first possible occurrence (DTSTART)
    end: datetime | None = None  # naive; no occurrence after it
    count_last: datetime | None = None  # the last occurrence COUNT allows (part of `end`), if the rule has COUNT

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

    def count_between(self, first: datetime, last: datetime, limit: int = MISSED_COUNT_LIMIT) -> int:
        """How many occurrences lie in [first, last) (up to `limit`): the ones a downtime missed."""
        if self.cron:
            times = croniter(self.cron, max(first, self.start) - timedelta(seconds=1))
            count = 0
            while count < limit:
                at = times.get_next(datetime)
                if at >= last or (self.end is not None and at > self.end):
                    break
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

    def walls_after(self, wall: datetime) -> Iterator[datetime]:
        """The occurrences after `wall`, one after another (one walk, where `after` starts one each time)."""
        if not self.cron:
            yield from self._rule(near=wall).xafter(max(wall, self.start - timedelta(seconds=1)), inc=False)
            return
        times = croniter(self.cron, max(wall, self.start - timedelta(seconds=1)))
        while True:
            try:
                found = times.get_next(datetime)
            except CroniterBadDateError:
                return
            if self.end is not None and found > self.end:
                return
            yield found

    @cached_property
    def _parts(self) -> grammar.Rule:
        return grammar.parse(self.rrule)

    @cached_property
    def _parsed(self) -> dateutil_rrule.rrule:
        rule = dateutil_rrule.rrulestr(self.rrule, dtstart=self.start)
        return rule.replace(until=self.end) if self.end is not None else rule

    def _rule(self, near: datetime | None = None) -> dateutil_rrule.rrule:
        """The RRULE from the start, or, where that cannot change what it gives, from a whole number
        of its periods before `near`: dateutil walks from the start, and a minutely rule a month old
        would walk 40,000 occurrences to find the next one."""
        start = self.start if near is None else moved_start(self.start, self._parts.freq, self._parts.interval, near)
        return self._parsed if start == self.start else self._parsed.replace(dtstart=start)


# A rule of these frequencies gives the same occurrences from a start moved by whole periods
# (times of day, weekdays and week starts stay where they were).
PERIODS = {"MINUTELY": timedelta(minutes=1), "HOURLY": timedelta(hours=1), "DAILY": timedelta(days=1),
           "WEEKLY": timedelta(weeks=1)}


def moved_start(start: datetime, freq: str, interval: int, near: datetime) -> datetime:
    """`start` moved by whole periods of the rule (INTERVAL of them at a time) to about one period
    before `near`; for months and years, to the same day and time of a month that has that day,
    which keeps whatever the rule takes from its start (day of month, month, time of day)."""
    if freq in PERIODS:
        if near - start <= 2 * PERIODS[freq]:
            return start
        step = PERIODS[freq] * interval
        return start + step * max((near - start) // step - 1, 0)
    months = interval * (12 if freq == "YEARLY" else 1)
    steps = ((near.year - start.year) * 12 + near.month - start.month) // months - 1
    while steps > 0:
        moved = start.month - 1 + steps * months
        try:
            return start.replace(year=start.year + moved // 12, month=moved % 12 + 1)
        except ValueError:  # that month has no such day (29–31), or the year is out of range: a period earlier
            steps -= 1
    return start


def recurrence(rrule: str, cron: str, start: datetime, end: datetime | None, zone: str = "UTC",
               count_last: datetime | None = None) -> Recurrence:
    """The recurrence from `start` up to `end` (naive wall-clock times in `zone`), the rule's own
    UNTIL (read in `zone`) and COUNT (its last occurrence, `count_last`, walked to here if not
    given) made part of the end."""
    start = start.replace(second=0, microsecond=0)
    if cron:
        return Recurrence("", cron, start, end)
    rule = grammar.parse(rrule)
    if rule.count is not None and count_last is None:
        count_last = last_counted(rule, start)
    ends = [at for at in (end, until_wall(rule, zone), count_last if rule.count is not None else None) if at is not None]
    return Recurrence(rule.without_bounds, "", start, min(ends, default=None), count_last if rule.count is not None else None)


def until_wall(rule: grammar.Rule, zone: str) -> datetime | None:
    """The rule's UNTIL as a wall-clock time in `zone` (see the module's docstring)."""
    until = rule.until
    if until is None:
        return None
    if until.kind == "utc":
        return wall_time(until.value.replace(tzinfo=UTC), zone)
    if until.kind == "date":
        return until.value + timedelta(days=1) - timedelta(seconds=1)
    return until.value


def last_counted(rule: grammar.Rule, start: datetime) -> datetime:
    """The COUNT-th occurrence from DTSTART `start` (a minute before the start if COUNT is 0).

    Walked once per start: the rule is then evaluated up to it from near any moment, not counted
    from its start each time (which would grow with every occurrence sent)."""
    last = start - MIN_GAP
    for last in dateutil_rrule.rrulestr(rule.without_bounds + f";COUNT={rule.count}", dtstart=start):  # noqa: B007
        pass
    return last


def parse(rrule: str, cron: str, start: datetime, end: datetime | None, zone: str = "UTC") -> Recurrence:
    """A recurrence that fires at least once and never twice in a minute; InvalidRecurrence naming the field if not.

    `start` and `end` are naive wall-clock times in `zone` (which UNTIL in UTC is read in). Five
    cron fields, and a rule without SECONDLY or a second BYSECOND, give whole minutes only, so no
    two occurrences are less than a minute apart and none need be looked at beyond the first."""
    field = "rrule" if rrule else "cron"
    if bool(rrule) == bool(cron):
        raise InvalidRecurrence("rrule", "Give either rrule (RFC 5545) or cron, not both.")
    if cron:
        if len(cron.split()) != 5:
            raise InvalidRecurrence("cron", "Expected five fields: minute hour day-of-month month day-of-week.")
        if not croniter.is_valid(cron):
            raise InvalidRecurrence("cron", f"{cron!r} is not a cron expression.")
    else:
        rule = checked_rule(rrule)
        if never_reached(rule, start.replace(second=0, microsecond=0)):
            raise InvalidRecurrence("rrule", "Never fires: from starts_at, INTERVAL never reaches the minutes or hours it names.")
        rrule = rule.text
    try:
        found = recurrence(rrule, cron, start, end, zone)
        if rrule and no_day_matches(found.rrule, found.start):
            first = None
        else:
            first = found.after(found.start - timedelta(seconds=1))
    except (ValueError, TypeError, IndexError, OverflowError, CroniterBadCronError, CroniterError) as exc:
        raise InvalidRecurrence(field, f"Does not parse: {exc}.") from None
    if first is None:
        raise InvalidRecurrence(field, "Never fires between starts_at and ends_at.")
    return found


def checked_rule(text: str) -> grammar.Rule:
    """The rule's parts if RFC 5545 allows them and Herald can fire them; InvalidRecurrence("rrule") if not."""
    if any(part in text.upper() for part in ("DTSTART", "\n", "RDATE", "EXDATE", "EXRULE")):
        raise InvalidRecurrence("rrule", "Give one RRULE's parts (FREQ=…;BYHOUR=…); the start is starts_at.")
    try:
        rule = grammar.parse(text)
    except grammar.GrammarError as exc:
        raise InvalidRecurrence("rrule", f"Does not parse: {exc}") from None
    if rule.freq == "SECONDLY" or "," in rule.parts.get("BYSECOND", ""):
        raise InvalidRecurrence("rrule", "Fires more than once a minute; at most one occurrence per minute.")
    if rule.parts.get("BYSECOND", "0") != "0":
        raise InvalidRecurrence("rrule", "Occurrences are whole minutes: BYSECOND may only be 0.")
    return rule


def never_reached(rule: grammar.Rule, start: datetime) -> bool:
    """Whether a MINUTELY or HOURLY rule's INTERVAL, counted from `start`, never lands on a time of
    day its BYHOUR and BYMINUTE allow (FREQ=MINUTELY;INTERVAL=2;BYMINUTE=1 from an even minute):
    dateutil would search such a rule minute by minute to the year 9999."""
    if rule.freq not in ("MINUTELY", "HOURLY") or rule.interval == 1:
        return False
    hours = [int(h) for h in rule.parts["BYHOUR"].split(",")] if "BYHOUR" in rule.parts else range(24)
    if rule.freq == "HOURLY":  # the minutes come with every hour it lands on
        step = math.gcd(rule.interval, 24)
        return all((hour - start.hour) % step for hour in hours)
    minutes = [int(m) for m in rule.parts["BYMINUTE"].split(",")] if "BYMINUTE" in rule.parts else range(60)
    step = math.gcd(rule.interval, 24 * 60)
    origin = start.hour * 60 + start.minute
    return all((hour * 60 + minute - origin) % step for hour in hours for minute in minutes)


def no_day_matches(rrule: str, start: datetime) -> bool:
    """Whether no day of any year matches the rule's day and time filters (30 February, say).

    dateutil looks for a minutely, hourly or daily rule's first match period by period up to the
    year 9999 (7–40 s for one that never matches, measured); the same filters as a yearly rule are
    checked in well under a second.
    """
    parts = grammar.parse(rrule).parts
    if parts["FREQ"] in ("MONTHLY", "YEARLY"):
        return False
    yearly = ";".join(["FREQ=YEARLY", *(f"{name}={value}" for name, value in parts.items()
                                        if name not in ("FREQ", "INTERVAL", "COUNT", "UNTIL", "BYSETPOS"))])
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


# --- Where a schedule stands ----------------------------------------------------------------


@dataclass(frozen=True)
class Firing:
    """What a due schedule does now: send the occurrence `send` (a wall-clock time; None: not due
    yet where its person is now), due at `due_at`, with `missed` occurrences before it not sent,
    then wait for `upcoming` (wall-clock time and instant of each, the next first)."""

    send: datetime | None
    due_at: datetime | None
    missed: int
    upcoming: list[tuple[datetime, datetime]] = field(default_factory=list)


def following(rule: Recurrence, wall: datetime, zone: str) -> datetime | None:
    """The occurrence after `wall` whose instant is later too (two wall times in a spring gap are one instant)."""
    at = instant(wall, zone)
    found = rule.after(wall)
    while found is not None and instant(found, zone) <= at:
        found = rule.after(found)
    return found


def first_from(rule: Recurrence, zone: str, moment: datetime) -> datetime | None:
    """The first occurrence whose instant is at or after `moment` (on create and on resume)."""
    wall = rule.after(wall_time(moment, zone) - timedelta(seconds=1))
    while wall is not None and instant(wall, zone) < moment:
        wall = rule.after(wall)
    return wall


def upcoming(rule: Recurrence, wall: datetime | None, zone: str, count: int = UPCOMING) -> list[tuple[datetime, datetime]]:
    """`count` occurrences from `wall` on (it first), each with its instant, none at an instant already given."""
    if wall is None:
        return []
    found = [(wall, instant(wall, zone))]
    for later in rule.walls_after(wall):
        if len(found) == count:
            break
        at = instant(later, zone)
        if at > found[-1][1]:  # two wall times in a spring gap are one instant
            found.append((later, at))
    return found


def fire(rule: Recurrence, zone: str, due: datetime, now: datetime) -> Firing:
    """Where a schedule due at wall-clock time `due` stands at `now`: the latest occurrence come by
    now is the one to send, the ones between are missed, and the schedule goes on after it."""
    if instant(due, zone) > now:
        # The person moved east to west since the due time was set: it comes at that wall time where they are now.
        return Firing(None, None, 0, upcoming(rule, due, zone))
    latest = max(rule.latest(wall_time(now, zone)) or due, due)
    while latest > due and instant(latest, zone) > now:  # a wall time in a spring gap comes later
        latest = max(rule.latest(latest - timedelta(minutes=1)) or due, due)
    missed = rule.count_between(due, latest) if latest > due else 0
    before = rule.latest(latest - timedelta(minutes=1)) if missed else None
    if before is not None and before >= due and instant(before, zone) == instant(latest, zone):
        missed -= 1  # a wall time in the spring gap is the same instant as this one: sent with it, not missed
    return Firing(latest, instant(latest, zone), missed, upcoming(rule, following(rule, latest, zone), zone))
