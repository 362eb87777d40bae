"""When a digest is due: frozen clocks across both daylight-saving changes, three timezones, weeks and months."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from preferences.digests import DigestSchedule, next_due, problems


def schedule(**raw) -> DigestSchedule:
    return DigestSchedule.from_dict({"frequency": "daily", "time": "09:00", **raw})


def dues(start: datetime, rule: DigestSchedule, zone: str, count: int) -> list[datetime]:
    found, at = [], start
    for _ in range(count):
        at = next_due(at, rule, zone)
        found.append(at)
    return found


@pytest.mark.parametrize(("zone", "spring", "autumn"), [
    ("Europe/Berlin", datetime(2026, 3, 27, tzinfo=UTC), datetime(2026, 10, 23, tzinfo=UTC)),
    ("America/New_York", datetime(2026, 3, 6, tzinfo=UTC), datetime(2026, 10, 30, tzinfo=UTC)),
    ("Asia/Kolkata", datetime(2026, 3, 27, tzinfo=UTC), datetime(2026, 10, 23, tzinfo=UTC)),
])
def test_a_daily_digest_at_nine_is_due_at_nine_local_every_day_across_both_changes(zone, spring, autumn):
    for start in (spring, autumn):
        found = dues(start, schedule(), zone, 6)
        local = [moment.astimezone(ZoneInfo(zone)) for moment in found]
        assert [(m.hour, m.minute) for m in local] == [(9, 0)] * 6
        assert len({m.date() for m in local}) == 6  # once a day, no day skipped or repeated
        assert [(b - a).total_seconds() / 3600 for a, b in zip(found, found[1:])] in (
            [24.0] * 5, *[[24.0] * i + [23.0 if start == spring else 25.0] + [24.0] * (4 - i) for i in range(5)])


def test_a_local_time_the_spring_change_skips_is_due_once_shifted_forward():
    found = dues(datetime(2026, 3, 28, 12, tzinfo=UTC), schedule(time="02:30"), "Europe/Berlin", 3)

    berlin = [moment.astimezone(ZoneInfo("Europe/Berlin")) for moment in found]
    assert [m.strftime("%m-%d %H:%M") for m in berlin] == ["03-29 03:30", "03-30 02:30", "03-31 02:30"]


def test_a_local_time_the_autumn_change_repeats_is_due_once():
    found = dues(datetime(2026, 10, 24, 12, tzinfo=UTC), schedule(time="02:30"), "Europe/Berlin", 3)

    assert [m.strftime("%m-%d %H:%M") for m in found] == ["10-25 00:30", "10-26 01:30", "10-27 01:30"]  # UTC
    assert found[0].astimezone(ZoneInfo("Europe/Berlin")).utcoffset().total_seconds() == 7200  # the first 02:30


def test_weekly_and_monthly_digests_including_the_31st_in_a_30_day_month():
    weekly = dues(datetime(2026, 11, 27, tzinfo=UTC), schedule(frequency="weekly", weekday="monday", time="08:00"),
                  "America/New_York", 2)
    assert [m.astimezone(ZoneInfo("America/New_York")).strftime("%a %m-%d %H:%M") for m in weekly] == [
        "Mon 11-30 08:00", "Mon 12-07 08:00"]

    monthly = dues(datetime(2026, 3, 31, 12, tzinfo=UTC), schedule(frequency="monthly", day=31), "Asia/Kolkata", 4)
    assert [m.astimezone(ZoneInfo("Asia/Kolkata")).strftime("%m-%d %H:%M") for m in monthly] == [
        "04-30 09:00", "05-31 09:00", "06-30 09:00", "07-31 09:00"]
    february = next_due(datetime(2027, 2, 1, tzinfo=UTC), schedule(frequency="monthly", day=30), "Europe/Berlin")
    assert february.astimezone(ZoneInfo("Europe/Berlin")).strftime("%m-%d") == "02-28"


@pytest.mark.parametrize(("raw", "field"), [
    ({"frequency": "daily", "time": "9am"}, "time"),
    ({"frequency": "daily", "time": "24:00"}, "time"),
    ({"frequency": "weekly", "time": "09:00", "weekday": "funday"}, "weekday"),
    ({"frequency": "monthly", "time": "09:00", "day": 32}, "day"),
    ({"frequency": "hourly", "time": "09:00"}, "frequency"),
    ({"frequency": "daily", "time": "09:00", "weekday": "monday"}, "weekday"),
])
def test_schedules_that_are_not_schedules_name_the_field(raw, field):
    assert problems(raw)[0][0] == field
