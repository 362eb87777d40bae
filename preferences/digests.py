"""Digest schedules: daily, weekly on a weekday, or monthly on a day, at a local time in the
person's timezone; and the next moment one is due.

Local times are turned into instants with the timezone's rules of that day (zoneinfo):
- a time the spring change skips (02:30 in Berlin on the last Sunday of March) is due once,
  shifted forward by the change (03:30 CEST), as PEP 495 maps a time in the gap;
- a time the autumn change repeats is due once, at its first occurrence;
- a monthly day past the month's end (the 31st in April) is the month's last day.
"""

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

FREQUENCIES = ("daily", "weekly", "monthly")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
HHMM = re.compile(r"\A([01]\d|2[0-3]):([0-5]\d)\Z")


@dataclass(frozen=True)
class DigestSchedule:
    frequency: str
    at: time
    weekday: int | None = None  # 0 = Monday, for weekly
    day: int | None = None  # 1–31, for monthly

    @classmethod
    def from_dict(cls, raw: dict) -> "DigestSchedule":
        hours, minutes = raw["time"].split(":")
        weekday = WEEKDAYS.index(raw["weekday"]) if raw.get("weekday") else None
        return cls(raw["frequency"], time(int(hours), int(minutes)), weekday, raw.get("day"))

    def falls_on(self, day: date) -> bool:
        if self.frequency == "weekly":
            return day.weekday() == self.weekday
        if self.frequency == "monthly":
            return day.day == min(self.day, calendar.monthrange(day.year, day.month)[1])
        return True


def problems(raw) -> list[tuple[str, str]]:
    """(field, message) for a digest choice that is not a schedule; [] if it is one (or "off")."""
    if not isinstance(raw, dict):
        return [("", "Expected an object: frequency, time, and weekday or day.")]
    frequency = raw.get("frequency")
    if frequency == "off":
        return [("", "No other field goes with \"off\".")] if set(raw) - {"frequency"} else []
    found = []
    if frequency not in FREQUENCIES:
        found.append(("frequency", f"Expected one of: off, {', '.join(FREQUENCIES)}."))
    if not isinstance(raw.get("time"), str) or not HHMM.match(raw["time"]):
        found.append(("time", "Expected a local time as HH:MM (24-hour)."))
    if frequency == "weekly" and raw.get("weekday") not in WEEKDAYS:
        found.append(("weekday", f"Expected one of: {', '.join(WEEKDAYS)}."))
    if frequency != "weekly" and raw.get("weekday") is not None:
        found.append(("weekday", "Only a weekly digest has a weekday."))
    day = raw.get("day")
    if frequency == "monthly" and (isinstance(day, bool) or not isinstance(day, int) or not 1 <= day <= 31):
        found.append(("day", "Expected a day of the month, 1–31 (past the month's end means its last day)."))
    if frequency != "monthly" and day is not None:
        found.append(("day", "Only a monthly digest has a day."))
    unknown = sorted(set(raw) - {"frequency", "time", "weekday", "day"})
    if unknown:
        found.append((unknown[0], "Unknown field."))
    return found


def next_due(after: datetime, schedule: DigestSchedule, timezone: str) -> datetime:
    """The first moment after `after` at which the schedule is due, in UTC."""
    zone = ZoneInfo(timezone)
    day = after.astimezone(zone).date()
    for offset in range(0, 370):
        candidate = day + timedelta(days=offset)
        if not schedule.falls_on(candidate):
            continue
        due = datetime.combine(candidate, schedule.at, tzinfo=zone).astimezone(UTC)
        if due > after:
            return due
    raise ValueError(f"{schedule} is never due")  # unreachable: every schedule falls on some day of a year
