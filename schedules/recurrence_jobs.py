"""Expanding schedules' rules, run only inside a bounded process (core/bounded_child.py).

What an RRULE costs to expand is its author's choice (dateutil searched `FREQ=DAILY;BYSETPOS=2`
to the year 9999 for seconds), so checking a new rule and placing due schedules happen here,
each rule within `seconds` of its own. Imports nothing from Django.

A schedule travels as JSON: {"rrule", "cron", "starts_at", "ends_at" (ISO instants), "zone",
"count" (what COUNT's walk found: {"dtstart", "last"}, or null)}, plus "due" (the occurrence
key it is due at) for a firing, or "after" (an instant) to start from. Wall-clock times are
occurrence keys ("2026-11-02T09:00"), instants ISO 8601 in UTC.
"""

from contextlib import contextmanager
from datetime import datetime

from core.bounded_child import JobFailed, ShareSpent, seconds_left, time_share
from schedules import recurrence, rrule_grammar
from schedules.recurrence import Recurrence

# A job stops taking schedules when less than one rule's time plus this is left of its own limit.
MARGIN_SECONDS = 0.05


class RuleTooCostly(Exception):
    pass


def check(payload: dict) -> dict:
    """A new (or resumed) schedule's rule checked and started: {"rrule": the rule as stored, "count",
    "next": the first occurrences at or after "after", and with "since" (a key) "skipped": how many
    came from then until the first of them}.

    JobFailed naming rrule or cron if the rule does not parse, never fires, fires more than once a
    minute, or takes more than "seconds" to find out."""
    rule_text = payload.get("rrule", "")
    field = "rrule" if rule_text else "cron"
    try:
        with at_most(payload["seconds"]):
            zone = payload["zone"]
            start, end = walls(payload)
            rule = recurrence.parse(rule_text, payload.get("cron", ""), start, end, zone)
            first = recurrence.first_from(rule, zone, instant_of(payload["after"]))
            answer = {"rrule": rrule_grammar.parse(rule_text).text if rule_text else "", "count": count_cache(rule),
                      "next": listed(recurrence.upcoming(rule, first, zone))}
            if payload.get("since") and first is not None:
                answer["skipped"] = rule.count_between(recurrence.from_key(payload["since"]), first)
    except recurrence.InvalidRecurrence as exc:
        raise JobFailed(str(exc), exc.field) from None
    except RuleTooCostly as exc:
        raise JobFailed(str(exc), field, "time") from None
    return answer


def place_each(payload: dict) -> list[dict]:
    """{"schedules": [...], "now", "seconds_each"} → for each schedule in order, {"ok": where it
    stands} or {"error", "bound"}; only as many as fit in this job's time (the caller asks again for
    the rest). A schedule is due ("due" set) or starts over from "after"; `seconds_each` (null: the
    job's own limit) bounds each rule, so one costly rule does not cost the others their answers."""
    now = instant_of(payload["now"])
    seconds = payload.get("seconds_each")
    if seconds and seconds + MARGIN_SECONDS >= seconds_left():
        seconds = None  # no share smaller than the job's own limit: each rule has what is left of it
    answers: list[dict] = []
    for item in payload["schedules"]:
        left = seconds_left()
        if answers and seconds and left and left < seconds + MARGIN_SECONDS:
            break
        try:
            with at_most(seconds):
                answers.append({"ok": fire(item, now) if item.get("due") else start_at(item, instant_of(item["after"]))})
        except RuleTooCostly as exc:
            answers.append({"error": str(exc), "bound": "time"})
        except MemoryError:
            raise
        except Exception as exc:  # whatever dateutil or croniter raise on this rule is this rule's fault
            answers.append({"error": f"{type(exc).__name__}: {exc}"[:500], "bound": ""})
    return answers


def fire(item: dict, now: datetime) -> dict:
    """Where a due schedule stands at `now` (recurrence.fire): {"send", "due_at", "missed", "next", "count"}."""
    rule = rule_of(item)
    outcome = recurrence.fire(rule, item["zone"], recurrence.from_key(item["due"]), now)
    return {"send": recurrence.occurrence_key(outcome.send) if outcome.send else None,
            "due_at": outcome.due_at.isoformat() if outcome.due_at else None, "missed": outcome.missed,
            "next": listed(outcome.upcoming), "count": count_cache(rule)}


def start_at(item: dict, moment: datetime) -> dict:
    """The schedule's occurrences from the first at or after `moment`: {"next", "count"}."""
    rule = rule_of(item)
    first = recurrence.first_from(rule, item["zone"], moment)
    return {"next": listed(recurrence.upcoming(rule, first, item["zone"])), "count": count_cache(rule)}


def rule_of(item: dict) -> Recurrence:
    """The schedule's recurrence in its zone now; COUNT's last occurrence comes from the cache when it
    was counted from the same start (a person's new timezone moves a start given as an instant)."""
    start, end = walls(item)
    cached = item.get("count") or {}
    last = recurrence.from_key(cached["last"]) if cached.get("dtstart") == recurrence.occurrence_key(start) else None
    return recurrence.recurrence(item.get("rrule", ""), item.get("cron", ""), start, end, item["zone"], count_last=last)


def walls(item: dict) -> tuple[datetime, datetime | None]:
    """The schedule's start (a whole minute) and end as wall-clock times in its zone."""
    zone = item["zone"]
    start = recurrence.wall_time(instant_of(item["starts_at"]), zone).replace(second=0, microsecond=0)
    end = recurrence.wall_time(instant_of(item["ends_at"]), zone) if item.get("ends_at") else None
    return start, end


def count_cache(rule: Recurrence) -> dict | None:
    """What to keep of COUNT's walk: the start it counted from and the last occurrence it allows."""
    if rule.count_last is None:
        return None
    return {"dtstart": recurrence.occurrence_key(rule.start), "last": recurrence.occurrence_key(rule.count_last)}


def listed(occurrences: list[tuple[datetime, datetime]]) -> list[list[str]]:
    return [[recurrence.occurrence_key(wall), at.isoformat()] for wall, at in occurrences]


def instant_of(text: str) -> datetime:
    return datetime.fromisoformat(text)


@contextmanager
def at_most(seconds: float | None):
    """Stop the work inside after `seconds` with RuleTooCostly, unless the job's own limit comes first."""
    try:
        with time_share(seconds):
            yield
    except ShareSpent as exc:
        raise RuleTooCostly(f"finding its occurrences {exc}") from None
