"""Rules are evaluated only in bounded processes: a costly one is refused fast or fails alone."""

import time
from datetime import UTC, datetime

import pytest

from core import bounded
from schedules import evaluation
from schedules.models import Schedule
from schedules.recurrence import InvalidRecurrence

NOW = datetime(2026, 11, 1, 12, tzinfo=UTC)


@pytest.fixture(autouse=True)
def limits(settings, tmp_path):
    settings.HERALD_BOUNDED_SLOT_DIR = str(tmp_path / "slots")
    settings.HERALD_RENDER_TIME_LIMIT_SECONDS = 1.0
    settings.HERALD_RRULE_TIME_LIMIT_SECONDS = 0.3


def schedule(rrule: str = "", cron: str = "", **fields) -> Schedule:
    return Schedule(rrule=rrule, cron=cron, timezone="Europe/Berlin", starts_at=NOW, kind="notification", payload={}, **fields)


def berlin(schedules: list[Schedule]) -> dict:
    return {s.pk: "Europe/Berlin" for s in schedules}


def due(rrule: str, occurrence: str = "2026-11-02T09:00") -> Schedule:
    return schedule(rrule, next_occurrence=occurrence)


# Each of these took seconds of CPU in the request, or was a 500, before rules were bounded.
COSTLY = ["FREQ=DAILY;BYHOUR=9;BYSETPOS=2", "FREQ=MINUTELY;COUNT=900000000", "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO;BYHOUR=9,10;BYSETPOS=3"]


@pytest.mark.parametrize("rrule", COSTLY)
def test_a_rule_too_costly_to_evaluate_is_refused_within_its_time_limit_naming_rrule(rrule):
    started = time.monotonic()
    with pytest.raises(InvalidRecurrence) as refused:
        evaluation.check(schedule(rrule), "Europe/Berlin", NOW)

    assert time.monotonic() - started < 1.5  # 0.3 s for the rule, the rest a process's start
    assert refused.value.field == "rrule"
    assert str(refused.value).startswith("This rule is too costly to evaluate")


def test_a_check_gives_the_stored_rule_its_first_occurrences_and_what_count_allows():
    placed = evaluation.check(schedule("rrule:freq=daily;byhour=9;byminute=0;count=3"), "Europe/Berlin", NOW)

    assert placed["rrule"] == "FREQ=DAILY;BYHOUR=9;BYMINUTE=0;COUNT=3"
    assert placed["next"] == [["2026-11-02T09:00", "2026-11-02T08:00:00+00:00"], ["2026-11-03T09:00", "2026-11-03T08:00:00+00:00"],
                              ["2026-11-04T09:00", "2026-11-04T08:00:00+00:00"]]
    assert placed["count"] == {"dtstart": "2026-11-01T13:00", "last": "2026-11-04T09:00"}


def test_a_rule_that_fires_rarely_is_accepted_when_its_occurrences_are_found_cheaply():
    placed = evaluation.check(schedule("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO;BYHOUR=9;BYMINUTE=0"), "Europe/Berlin", NOW)

    assert [wall for wall, _ in placed["next"]] == [f"{year}-02-29T09:00" for year in (2044, 2072, 2112, 2140, 2168)]


def test_a_chunk_of_due_schedules_is_placed_in_one_bounded_call(monkeypatch):
    calls = []
    run = bounded.run
    monkeypatch.setattr(bounded, "run", lambda job, payload, **kw: calls.append(job) or run(job, payload, **kw))
    schedules = [due(f"FREQ=DAILY;BYHOUR=9;BYMINUTE={minute}", f"2026-11-02T09:{minute:02d}") for minute in range(50)]

    answers = evaluation.place(schedules, berlin(schedules), datetime(2026, 11, 2, 8, 0, 1, tzinfo=UTC))

    assert calls == ["schedules.recurrence_jobs:place_each"]
    assert [a["ok"]["send"] for a in answers] == ["2026-11-02T09:00"] + [None] * 49  # the others are not due yet
    assert answers[1]["ok"]["next"][0] == ["2026-11-02T09:01", "2026-11-02T08:01:00+00:00"]


def test_a_costly_rule_in_a_chunk_fails_alone_and_the_others_are_placed():
    schedules = [due("FREQ=DAILY;BYHOUR=9;BYMINUTE=0"), due("FREQ=DAILY;BYHOUR=9;BYSETPOS=2"), due("FREQ=WEEKLY;BYHOUR=9;BYMINUTE=0")]

    answers = evaluation.place(schedules, berlin(schedules), datetime(2026, 11, 2, 8, 0, 1, tzinfo=UTC))

    assert answers[0]["ok"]["send"] == "2026-11-02T09:00" and answers[2]["ok"]["send"] == "2026-11-02T09:00"
    assert answers[1]["bound"] == "time"
    assert answers[1]["error"].startswith("This rule is too costly to evaluate")


def test_when_a_whole_call_overruns_its_schedules_are_asked_one_by_one(settings, monkeypatch):
    settings.HERALD_RRULE_TIME_LIMIT_SECONDS = 5  # longer than the process's own limit: no rule has a share of its own
    calls = []
    run = bounded.run
    monkeypatch.setattr(bounded, "run", lambda job, payload, **kw: calls.append(len(payload["schedules"])) or run(job, payload, **kw))
    schedules = [due("FREQ=DAILY;BYHOUR=9;BYMINUTE=0"), due("FREQ=DAILY;BYHOUR=9;BYSETPOS=2"), due("FREQ=WEEKLY;BYHOUR=9;BYMINUTE=0")]

    answers = evaluation.place(schedules, berlin(schedules), datetime(2026, 11, 2, 8, 0, 1, tzinfo=UTC))

    assert calls == [3, 1, 1, 1]
    assert [("ok" in a) for a in answers] == [True, False, True]
    assert answers[1]["bound"] == "time"


def test_a_rule_stored_before_the_rfc_was_checked_fails_with_what_is_wrong_with_it():
    old = due("FREQ=DAILY;BYEASTER=0")
    [answer] = evaluation.place([old], berlin([old]), datetime(2026, 11, 2, 8, tzinfo=UTC))

    assert answer["bound"] == ""
    assert "BYEASTER is not an RFC 5545 rule part" in answer["error"]


def test_count_is_walked_once_and_taken_from_the_cache_when_counted_from_the_same_start():
    fresh = due("FREQ=MINUTELY;COUNT=20000", "2026-11-01T13:00")
    [answer] = evaluation.place([fresh], berlin([fresh]), datetime(2026, 11, 1, 12, 0, 1, tzinfo=UTC))
    counted = answer["ok"]["count"]
    assert counted == {"dtstart": "2026-11-01T13:00", "last": "2026-11-15T10:19"}  # the 20,000th minute from the start

    # a made-up cached end shows that the walk is not done again for the same start
    cached = due("FREQ=MINUTELY;COUNT=20000", "2026-11-01T13:00")
    cached.count_end = {"dtstart": "2026-11-01T13:00", "last": "2026-11-01T13:02"}
    [answer] = evaluation.place([cached], berlin([cached]), datetime(2026, 11, 1, 12, 0, 1, tzinfo=UTC))
    assert [wall for wall, _ in answer["ok"]["next"]] == ["2026-11-01T13:01", "2026-11-01T13:02"]
