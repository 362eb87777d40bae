"""Schedules' rules evaluated in bounded processes (core/bounded.py, the jobs in recurrence_jobs.py).

Nothing in the web server or a worker expands an RRULE or a cron line: a rule's cost is its
author's choice. A new or resumed schedule's rule is checked and its first occurrences found in
one bounded call, each rule within HERALD_RRULE_TIME_LIMIT_SECONDS; the sweep asks about a whole
chunk of due schedules in as few calls as their time allows, and a rule that breaks a bound is
asked about again alone (with the process's whole limit) before it counts as failed, so one
costly rule never holds up the others.
"""

import logging
from datetime import datetime

from django.conf import settings

from core import bounded
from schedules.models import Schedule
from schedules.recurrence import InvalidRecurrence

log = logging.getLogger(__name__)

JOBS = "schedules.recurrence_jobs"
TOO_COSTLY = "This rule is too costly to evaluate"


def described(schedule: Schedule, zone: str) -> dict:
    """The schedule as the jobs take it (see recurrence_jobs)."""
    return {"rrule": schedule.rrule, "cron": schedule.cron, "starts_at": schedule.starts_at.isoformat(),
            "ends_at": schedule.ends_at.isoformat() if schedule.ends_at else None, "zone": zone, "count": schedule.count_end}


def check(schedule: Schedule, zone: str, after: datetime, since: str = "") -> dict:
    """The rule checked and its occurrences from the first at or after `after` found, in one bounded
    call: {"rrule": as stored, "count", "next": [[occurrence, instant]…], "skipped": how many came
    since the occurrence `since`}. InvalidRecurrence naming rrule or cron if it is refused or too
    costly; BoundBroken if no bounded process could start (Herald's fault, not the rule's)."""
    field = "rrule" if schedule.rrule else "cron"
    payload = {**described(schedule, zone), "after": after.isoformat(), "since": since,
               "seconds": settings.HERALD_RRULE_TIME_LIMIT_SECONDS}
    try:
        return bounded.run(f"{JOBS}:check", payload, field=field)
    except bounded.BoundBroken as exc:
        if exc.ours or isinstance(exc, bounded.Busy):
            raise
        message = f"{TOO_COSTLY}: {exc}." if exc.bound else str(exc)
        raise InvalidRecurrence(exc.field or field, message) from None


def place(schedules: list[Schedule], zones: dict, now: datetime) -> list[dict]:
    """Where each schedule stands at `now`, in order: {"ok": …} (recurrence_jobs.fire, or start_at
    for one without a next occurrence) or {"error", "bound"} if its rule could not be evaluated.

    One bounded call for as many as its time allows; a schedule whose rule overran its share is
    asked again alone; if a call crashes or overruns, its schedules are asked one by one, so the
    culprit fails alone. BoundBroken only if no bounded process could start."""
    items = [{**described(s, zones[s.pk]), "due": s.next_occurrence, "after": now.isoformat()} for s in schedules]
    answers: list[dict] = []
    pending = items
    while pending:
        try:
            found = bounded.run(f"{JOBS}:place_each", {"schedules": pending, "now": now.isoformat(),
                                                       "seconds_each": settings.HERALD_RRULE_TIME_LIMIT_SECONDS})
        except bounded.BoundBroken as exc:
            if exc.ours:
                raise
            log.warning("schedules: placing %d at once stopped (%s); asking one by one", len(pending), exc)
            answers.extend(alone(item, now) for item in pending)
            break
        found = found or [alone(pending[0], now)]  # a job always answers one at least; never loop on none
        answers.extend(alone(item, now) if answer.get("bound") == "time" else answer for item, answer in zip(pending, found))
        pending = pending[len(found):]
    return answers


def alone(item: dict, now: datetime) -> dict:
    """One schedule placed in a call of its own, with the bounded process's whole time limit."""
    try:
        [answer] = bounded.run(f"{JOBS}:place_each", {"schedules": [item], "now": now.isoformat(), "seconds_each": None})
    except bounded.BoundBroken as exc:
        if exc.ours:
            raise
        return {"error": f"{TOO_COSTLY}: {exc}.", "bound": exc.bound or "crash"}
    if answer.get("bound"):
        answer["error"] = f"{TOO_COSTLY}: {answer['error']}."
    return answer
