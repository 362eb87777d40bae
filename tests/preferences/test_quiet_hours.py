"""Quiet hours across midnight and daylight-saving changes."""

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from preferences.quiet_hours import InvalidQuietHours, is_quiet, quiet_until, zone

NEW_YORK = ZoneInfo("America/New_York")


BERLIN = ZoneInfo("Europe/Berlin")


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("wall", "quiet"),
    [(time(21, 59), False), (time(22, 0), True), (time(23, 30), True), (time(0, 0), True), (time(6, 59), True), (time(7, 0), False)],
)
def test_a_window_crossing_midnight_covers_both_sides_of_it(wall, quiet):
    assert is_quiet(time(22), time(7), wall) is quiet


@pytest.mark.parametrize(("wall", "quiet"), [(time(12, 59), False), (time(13), True), (time(14, 59), True), (time(15), False)])
def test_a_daytime_window_is_start_inclusive_and_end_exclusive(wall, quiet):
    assert is_quiet(time(13), time(15), wall) is quiet


def test_a_window_whose_start_equals_its_end_is_rejected():
    with pytest.raises(InvalidQuietHours) as error:
        is_quiet(time(8), time(8), time(9))

    assert error.value.field == "end"


def test_an_unknown_timezone_is_rejected_naming_the_field():
    with pytest.raises(InvalidQuietHours) as error:
        zone("Mars/Olympus_Mons")

    assert error.value.field == "timezone"


def test_outside_the_window_nothing_is_held():
    # given 12:00 in Berlin (CET, UTC+1)
    now = utc(2024, 1, 15, 11, 0)

    assert quiet_until(time(22), time(7), BERLIN, now) is None


def test_before_midnight_the_hold_lasts_until_the_end_time_the_next_morning():
    # given 23:30 in Berlin on 15 January (22:30 UTC)
    now = utc(2024, 1, 15, 22, 30)

    # then held until 07:00 Berlin on the 16th = 06:00 UTC
    assert quiet_until(time(22), time(7), BERLIN, now) == utc(2024, 1, 16, 6, 0)


def test_after_midnight_the_hold_lasts_until_the_end_time_the_same_morning():
    # given 03:00 in New York (EST, UTC-5)
    now = utc(2024, 1, 16, 8, 0)

    assert quiet_until(time(22), time(7), NEW_YORK, now) == utc(2024, 1, 16, 12, 0)


def test_the_same_instant_is_quiet_for_one_person_and_not_for_another():
    # given 21:30 UTC: 22:30 in Berlin, 16:30 in New York
    now = utc(2024, 1, 15, 21, 30)

    assert quiet_until(time(22), time(7), BERLIN, now) is not None
    assert quiet_until(time(22), time(7), NEW_YORK, now) is None


def test_a_spring_forward_night_is_an_hour_shorter_in_new_york():
    # given 23:00 EST on 9 March 2024; clocks jump 02:00 EST -> 03:00 EDT that night
    now = utc(2024, 3, 10, 4, 0)

    # then held until 07:00 EDT (UTC-4) = 11:00 UTC: seven real hours, not eight
    assert quiet_until(time(22), time(7), NEW_YORK, now) == utc(2024, 3, 10, 11, 0)


def test_an_end_time_inside_the_spring_forward_gap_ends_the_window_at_the_jump():
    # given quiet 22:00-02:30; 02:30 never shows on 10 March 2024 in New York
    now = utc(2024, 3, 10, 6, 30)  # 01:30 EST

    # then the window ends when the clock jumps from 02:00 EST to 03:00 EDT: 07:00 UTC
    assert quiet_until(time(22), time(2, 30), NEW_YORK, now) == utc(2024, 3, 10, 7, 0)


def test_a_start_time_inside_the_spring_forward_gap_starts_the_window_at_the_jump():
    # given quiet 02:30-06:00 in Berlin; on 31 March 2024 clocks jump 02:00 CET -> 03:00 CEST
    just_before = utc(2024, 3, 31, 0, 59)  # 01:59 CET
    at_the_jump = utc(2024, 3, 31, 1, 0)  # 03:00 CEST

    assert quiet_until(time(2, 30), time(6), BERLIN, just_before) is None
    assert quiet_until(time(2, 30), time(6), BERLIN, at_the_jump) == utc(2024, 3, 31, 4, 0)


def test_a_fall_back_night_is_an_hour_longer_in_berlin():
    # given 23:00 CEST on 26 October 2024; clocks fall back 03:00 CEST -> 02:00 CET that night
    now = utc(2024, 10, 26, 21, 0)

    # then held until 07:00 CET (UTC+1) = 06:00 UTC: nine real hours
    assert quiet_until(time(22), time(7), BERLIN, now) == utc(2024, 10, 27, 6, 0)


def test_in_the_repeated_hour_the_wall_clock_decides_both_times_round():
    # given quiet 22:00-02:30 in Berlin; 02:00-03:00 happens twice on 27 October 2024
    first_time = utc(2024, 10, 27, 0, 15)  # 02:15 CEST
    between = utc(2024, 10, 27, 0, 45)  # 02:45 CEST
    second_time = utc(2024, 10, 27, 1, 15)  # 02:15 CET

    # then each 02:15 is held until the 02:30 that follows it, and 02:45 is not quiet
    assert quiet_until(time(22), time(2, 30), BERLIN, first_time) == utc(2024, 10, 27, 0, 30)
    assert quiet_until(time(22), time(2, 30), BERLIN, between) is None
    assert quiet_until(time(22), time(2, 30), BERLIN, second_time) == utc(2024, 10, 27, 1, 30)


def test_the_hold_always_ends_in_the_future():
    # given every quarter hour across the New York fall-back night, with a window ending at 01:30
    start = utc(2024, 11, 2, 20, 0)
    for quarter in range(60):
        now = start + quarter * timedelta(minutes=15)
        held = quiet_until(time(20), time(1, 30), NEW_YORK, now)
        # then whenever something is held, the hold ends after now and within a day
        if held is not None:
            assert now < held <= now + timedelta(days=1)
