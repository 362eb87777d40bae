"""An RRULE held to RFC 5545 §3.3.10 (RECUR) before dateutil sees it.

dateutil's parser is lenient: it takes its own BYEASTER, parts given twice and numbers out of
range, and then raises IndexError or searches to the year 9999 on rules the RFC forbids
(`FREQ=DAILY;BYDAY=+99MO`, `FREQ=DAILY;BYSETPOS=2`). So each part is checked against the RFC's
grammar and its MUST NOTs here, and what dateutil computes from a rule that passes is bounded in
time by whoever evaluates it (schedules/recurrence_jobs.py). Imports nothing from Django.
"""

import re
from dataclasses import dataclass
from datetime import date, datetime, time

FREQUENCIES = ("SECONDLY", "MINUTELY", "HOURLY", "DAILY", "WEEKLY", "MONTHLY", "YEARLY")
WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
# name: (smallest, largest, whether a sign may come first: -1 is the last)
NUMBER_LISTS = {
    "BYSECOND": (0, 60, False), "BYMINUTE": (0, 59, False), "BYHOUR": (0, 23, False), "BYMONTHDAY": (1, 31, True),
    "BYYEARDAY": (1, 366, True), "BYWEEKNO": (1, 53, True), "BYMONTH": (1, 12, False), "BYSETPOS": (1, 366, True),
}
BY_PARTS = (*NUMBER_LISTS, "BYDAY")
PARTS = ("FREQ", "UNTIL", "COUNT", "INTERVAL", "WKST", *BY_PARTS)
# Enough for any rule a person means; more only makes the values dateutil works with bigger.
MAX_DIGITS = 9

NUMBER = re.compile(r"([+-]?)(\d{1,3})")
WEEKDAY_NUMBER = re.compile(r"(?:([+-]?)(\d{1,2}))?(MO|TU|WE|TH|FR|SA|SU)")
UNTIL_VALUE = re.compile(r"(\d{4})(\d{2})(\d{2})(?:T(\d{2})(\d{2})(\d{2})(Z?))?")


class GrammarError(ValueError):
    """The rule is not an RFC 5545 RECUR value (or breaks one of its MUST NOTs)."""


@dataclass(frozen=True)
class Until:
    """UNTIL as written: `kind` is "utc" (…Z, the RFC's form when the start has a timezone),
    "floating" (a local date-time) or "date" (a whole day)."""

    kind: str
    value: datetime


@dataclass(frozen=True)
class Rule:
    parts: dict[str, str]  # upper-cased, in the order given

    @property
    def text(self) -> str:
        return ";".join(f"{name}={value}" for name, value in self.parts.items())

    @property
    def without_bounds(self) -> str:
        """The rule without COUNT and UNTIL, which the caller turns into an end of its own."""
        return ";".join(f"{name}={value}" for name, value in self.parts.items() if name not in ("COUNT", "UNTIL"))

    @property
    def freq(self) -> str:
        return self.parts["FREQ"]

    @property
    def interval(self) -> int:
        return int(self.parts.get("INTERVAL", "1"))

    @property
    def count(self) -> int | None:
        return int(self.parts["COUNT"]) if "COUNT" in self.parts else None

    @property
    def until(self) -> Until | None:
        return parse_until(self.parts["UNTIL"]) if "UNTIL" in self.parts else None


def parse(text: str) -> Rule:
    """The rule's parts, checked against RFC 5545's grammar; GrammarError saying what is wrong."""
    text = text.strip()
    if text.upper().startswith("RRULE:"):
        text = text[len("RRULE:"):]
    parts: dict[str, str] = {}
    for part in text.upper().split(";"):
        name, equals, value = part.partition("=")
        if not equals or not name or not value:
            raise GrammarError(f"{part!r} is not NAME=VALUE.")
        if name not in PARTS:
            raise GrammarError(f"{name} is not an RFC 5545 rule part (those are {', '.join(PARTS)}).")
        if name in parts:
            raise GrammarError(f"{name} is given twice.")
        parts[name] = value
    if "FREQ" not in parts:
        raise GrammarError("FREQ is required.")
    for name, value in parts.items():
        check_part(name, value)
    check_combination(parts)
    return Rule(parts)


def check_part(name: str, value: str) -> None:
    if name == "FREQ":
        if value not in FREQUENCIES:
            raise GrammarError(f"FREQ must be one of: {', '.join(FREQUENCIES[1:])}.")
    elif name in ("COUNT", "INTERVAL"):
        if not value.isdigit() or len(value) > MAX_DIGITS or (name == "INTERVAL" and int(value) < 1):
            raise GrammarError(f"{name} must be a whole number{' of at least 1' if name == 'INTERVAL' else ''} "
                               f"(at most {MAX_DIGITS} digits).")
    elif name == "UNTIL":
        parse_until(value)
    elif name == "WKST":
        if value not in WEEKDAYS:
            raise GrammarError(f"WKST must be one of: {', '.join(WEEKDAYS)}.")
    elif name == "BYDAY":
        for item in value.split(","):
            match = WEEKDAY_NUMBER.fullmatch(item)
            if not match or (match[2] is not None and not 1 <= int(match[2]) <= 53):
                raise GrammarError(f"BYDAY values are weekdays ({', '.join(WEEKDAYS)}), each optionally after a "
                                   f"number from -53 to -1 or 1 to 53, not {item!r}.")
    else:
        low, high, signed = NUMBER_LISTS[name]
        for item in value.split(","):
            match = NUMBER.fullmatch(item)
            if not match or (match[1] and not signed) or not low <= int(match[2]) <= high:
                allowed = f"-{high} to -{low} or {low} to {high}" if signed else f"{low} to {high}"
                raise GrammarError(f"{name} values are {allowed}, not {item!r}.")


def check_combination(parts: dict[str, str]) -> None:
    """RFC 5545's MUST NOTs between parts."""
    freq = parts["FREQ"]
    if "COUNT" in parts and "UNTIL" in parts:
        raise GrammarError("COUNT and UNTIL must not both be given.")
    numbered = "BYDAY" in parts and any(WEEKDAY_NUMBER.fullmatch(item)[2] for item in parts["BYDAY"].split(","))
    if numbered and (freq not in ("MONTHLY", "YEARLY") or "BYWEEKNO" in parts):
        raise GrammarError("A numbered BYDAY (+1MO, -1FR) is only for a MONTHLY or YEARLY rule without BYWEEKNO.")
    if "BYMONTHDAY" in parts and freq == "WEEKLY":
        raise GrammarError("BYMONTHDAY is not for a WEEKLY rule.")
    if "BYYEARDAY" in parts and freq in ("DAILY", "WEEKLY", "MONTHLY"):
        raise GrammarError("BYYEARDAY is not for a DAILY, WEEKLY or MONTHLY rule.")
    if "BYWEEKNO" in parts and freq != "YEARLY":
        raise GrammarError("BYWEEKNO is only for a YEARLY rule.")
    if "BYSETPOS" in parts and not set(parts) & (set(BY_PARTS) - {"BYSETPOS"}):
        raise GrammarError("BYSETPOS picks among the occurrences other BY… parts give, and there is none.")


def parse_until(value: str) -> Until:
    match = UNTIL_VALUE.fullmatch(value)
    try:
        if match is None:
            raise ValueError
        day = date(int(match[1]), int(match[2]), int(match[3]))
        if match[4] is None:
            return Until("date", datetime.combine(day, time()))
        at = datetime.combine(day, time(int(match[4]), int(match[5]), int(match[6])))
    except ValueError:
        raise GrammarError(f"UNTIL must be a date (20301231) or a date-time, in UTC (20301231T235959Z) or "
                           f"local (20301231T235959), not {value!r}.") from None
    return Until("utc" if match[7] else "floating", at)
