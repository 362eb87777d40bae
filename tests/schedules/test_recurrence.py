"""Which wall-clock times a cron line or an RRULE gives, and the instants they are across DST changes."""

from datetime import UTC, datetime

import pytest

from schedules import recurrence
from schedules.recurrence import InvalidRecurrence, Recurrence, instant, parse


def walls(rule: Recurrence, after: datetime, count: int) -> list[datetime]:
    found, at = [], after
    for _ in range(count):
        at = rule.after(at)
        found.append(at)
    return found


@pytest.mark.parametrize(("rrule", "cron"), [("FREQ=DAILY;BYHOUR=9;BYMINUTE=0", ""), ("", "0 9 * * *")])
def test_daily_at_nine_in_berlin_is_nine_local_across_both_changes(rrule, cron):
    rule = parse(rrule, cron, datetime(2026, 3, 26), None)

    spring = [instant(w, "Europe/Berlin") for w in walls(rule, datetime(2026, 3, 27), 4)]
    autumn = [instant(w, "Europe/Berlin") for w in walls(rule, datetime(2026, 10, 23), 4)]

    assert spring == [datetime(2026, 3, d, h, tzinfo=UTC) for d, h in ((27, 8), (28, 8), (29, 7), (30, 7))]
    assert autumn == [datetime(2026, 10, d, h, tzinfo=UTC) for d, h in ((23, 7), (24, 7), (25, 8), (26, 8))]


def test_a_time_the_spring_change_skips_fires_once_shifted_forward_and_a_repeated_one_once():
    rule = parse("", "30 2 * * *", datetime(2026, 3, 1), None)

    assert instant(rule.after(datetime(2026, 3, 29)), "Europe/Berlin") == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)  # 03:30 CEST
    assert instant(rule.after(datetime(2026, 10, 25)), "Europe/Berlin") == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # first 02:30


def test_the_latest_occurrence_and_the_ones_a_downtime_missed():
    rule = parse("FREQ=DAILY;BYHOUR=9;BYMINUTE=0", "", datetime(2026, 1, 1), None)

    assert rule.latest(datetime(2026, 1, 4, 11)) == datetime(2026, 1, 4, 9)
    assert rule.latest(datetime(2026, 1, 4, 9)) == datetime(2026, 1, 4, 9)
    assert rule.count_between(datetime(2026, 1, 1, 9), datetime(2026, 1, 4, 9)) == 3


def test_an_end_stops_the_occurrences():
    rule = parse("", "0 9 * * *", datetime(2026, 1, 1), datetime(2026, 1, 2, 12))

    assert walls(rule, datetime(2026, 1, 1), 2) == [datetime(2026, 1, 1, 9), datetime(2026, 1, 2, 9)]
    assert rule.after(datetime(2026, 1, 2, 9)) is None


def test_a_weekly_rrule_with_count():
    rule = parse("RRULE:FREQ=WEEKLY;BYDAY=MO,WE;BYHOUR=8;BYMINUTE=30;COUNT=3", "", datetime(2026, 11, 30), None)

    assert walls(rule, datetime(2026, 11, 29), 4) == [datetime(2026, 11, 30, 8, 30), datetime(2026, 12, 2, 8, 30),
                                                      datetime(2026, 12, 7, 8, 30), None]


@pytest.mark.parametrize(("rrule", "cron", "end", "field", "says"), [
    ("", "every day", None, "cron", "five fields"),
    ("", "61 9 * * *", None, "cron", "not a cron"),
    ("", "0 9 30 2 *", None, "cron", "Never fires"),
    ("FREQ=SOMETIMES", "", None, "rrule", "FREQ must be"),
    ("FREQ=DAILY;INTERVAL=0", "", None, "rrule", "INTERVAL"),
    ("FREQ=MINUTELY;BYMONTH=2;BYMONTHDAY=30", "", None, "rrule", "Never fires"),
    ("FREQ=HOURLY;BYMONTH=2;BYMONTHDAY=30;BYHOUR=1", "", None, "rrule", "Never fires"),
    ("FREQ=MINUTELY;INTERVAL=2;BYMINUTE=1", "", None, "rrule", "Never fires"),
    ("FREQ=DAILY;BYHOUR=25", "", None, "rrule", "Does not parse"),
    ("FREQ=DAILY;COUNT=0", "", None, "rrule", "Never fires"),
    ("FREQ=DAILY;UNTIL=20250101T000000", "", None, "rrule", "Never fires"),
    ("FREQ=SECONDLY", "", None, "rrule", "more than once a minute"),
    ("FREQ=MINUTELY;BYSECOND=0,30", "", None, "rrule", "more than once a minute"),
    ("DTSTART:20260101T000000\nRRULE:FREQ=DAILY", "", None, "rrule", "starts_at"),
    ("", "0 9 * * *", datetime(2026, 1, 1, 8), "cron", "Never fires"),
    ("FREQ=DAILY", "0 9 * * *", None, "rrule", "not both"),
])
def test_a_recurrence_that_cannot_run_is_refused_naming_the_field(rrule, cron, end, field, says):
    with pytest.raises(InvalidRecurrence) as refused:
        parse(rrule, cron, datetime(2026, 1, 1), end)

    assert refused.value.field == field
    assert says in str(refused.value)


def test_once_a_minute_is_allowed():
    rule = parse("", "* * * * *", datetime(2026, 1, 1), None)

    assert walls(rule, datetime(2026, 1, 1), 2) == [datetime(2026, 1, 1, 0, 1), datetime(2026, 1, 1, 0, 2)]
    assert recurrence.occurrence_key(datetime(2026, 1, 1, 0, 1)) == "2026-01-01T00:01"


def test_a_minutely_rule_a_month_old_finds_its_next_occurrence_without_walking_the_month():
    import time

    rule = parse("FREQ=MINUTELY;BYHOUR=9,10", "", datetime(2026, 1, 1), None)
    started = time.perf_counter()

    assert rule.after(datetime(2026, 2, 15, 9, 30)) == datetime(2026, 2, 15, 9, 31)
    assert rule.latest(datetime(2026, 2, 15, 12)) == datetime(2026, 2, 15, 10, 59)
    assert rule.count_between(datetime(2026, 2, 15), datetime(2026, 2, 18)) == 3 * 120
    assert time.perf_counter() - started < 1  # walking from 1 January took seconds


def test_a_weekly_rule_with_an_interval_keeps_its_weeks_when_started_near_the_query():
    rule = parse("FREQ=WEEKLY;INTERVAL=2;BYDAY=MO;BYHOUR=9;BYMINUTE=0", "", datetime(2026, 1, 5), None)

    assert walls(rule, datetime(2026, 6, 1), 2) == [datetime(2026, 6, 8, 9), datetime(2026, 6, 22, 9)]
