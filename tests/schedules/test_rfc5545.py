"""RRULEs against RFC 5545 §3.8.5.3's own examples, and COUNT and UNTIL as the RFC reads them.

Every example there starts at DTSTART;TZID=America/New_York: here the schedule's timezone, with
its start read as the wall-clock DTSTART. Each row lists the occurrences the RFC lists (the first
ones, for a rule that goes on forever), so a reader can check them against the RFC by eye.
"""

from datetime import datetime, timedelta

import pytest

from schedules import recurrence
from schedules.recurrence import InvalidRecurrence, parse

NEW_YORK = "America/New_York"


def day_list(year: int, month: int, days) -> list[datetime]:
    return [datetime(year, month, day, 9) for day in days]


RFC_EXAMPLES = [
    ("daily for 10 occurrences", "19970902T0900", "FREQ=DAILY;COUNT=10", day_list(1997, 9, range(2, 12)), True),
    ("daily until December 24, 1997 (UNTIL in UTC: 23 December 19:00 in New York)", "19970902T0900",
     "FREQ=DAILY;UNTIL=19971224T000000Z",
     day_list(1997, 9, range(2, 31)) + day_list(1997, 10, range(1, 32)) + day_list(1997, 11, range(1, 31))
     + day_list(1997, 12, range(1, 24)), True),
    ("every other day, forever", "19970902T0900", "FREQ=DAILY;INTERVAL=2",
     day_list(1997, 9, range(2, 31, 2)) + day_list(1997, 10, range(2, 31, 2)) + day_list(1997, 11, range(1, 30, 2)), False),
    ("every 10 days, 5 occurrences", "19970902T0900", "FREQ=DAILY;INTERVAL=10;COUNT=5",
     day_list(1997, 9, (2, 12, 22)) + day_list(1997, 10, (2, 12)), True),
    ("every day in January, for 3 years (yearly form; UNTIL is the last occurrence exactly)", "19980101T0900",
     "FREQ=YEARLY;UNTIL=20000131T140000Z;BYMONTH=1;BYDAY=SU,MO,TU,WE,TH,FR,SA",
     [*day_list(1998, 1, range(1, 32)), *day_list(1999, 1, range(1, 32)), *day_list(2000, 1, range(1, 32))], True),
    ("every day in January, for 3 years (daily form)", "19980101T0900", "FREQ=DAILY;UNTIL=20000131T140000Z;BYMONTH=1",
     [*day_list(1998, 1, range(1, 32)), *day_list(1999, 1, range(1, 32)), *day_list(2000, 1, range(1, 32))], True),
    ("weekly for 10 occurrences", "19970902T0900", "FREQ=WEEKLY;COUNT=10",
     day_list(1997, 9, (2, 9, 16, 23, 30)) + day_list(1997, 10, (7, 14, 21, 28)) + day_list(1997, 11, (4,)), True),
    ("weekly until December 24, 1997", "19970902T0900", "FREQ=WEEKLY;UNTIL=19971224T000000Z",
     day_list(1997, 9, (2, 9, 16, 23, 30)) + day_list(1997, 10, (7, 14, 21, 28)) + day_list(1997, 11, (4, 11, 18, 25))
     + day_list(1997, 12, (2, 9, 16, 23)), True),
    ("every other week, forever", "19970902T0900", "FREQ=WEEKLY;INTERVAL=2;WKST=SU",
     day_list(1997, 9, (2, 16, 30)) + day_list(1997, 10, (14, 28)) + day_list(1997, 11, (11, 25)) + day_list(1997, 12, (9, 23))
     + day_list(1998, 1, (6, 20)) + day_list(1998, 2, (3, 17)), False),
    ("weekly on Tuesday and Thursday for five weeks (UNTIL form)", "19970902T0900",
     "FREQ=WEEKLY;UNTIL=19971007T000000Z;WKST=SU;BYDAY=TU,TH",
     day_list(1997, 9, (2, 4, 9, 11, 16, 18, 23, 25, 30)) + day_list(1997, 10, (2,)), True),
    ("weekly on Tuesday and Thursday for five weeks (COUNT form)", "19970902T0900", "FREQ=WEEKLY;COUNT=10;WKST=SU;BYDAY=TU,TH",
     day_list(1997, 9, (2, 4, 9, 11, 16, 18, 23, 25, 30)) + day_list(1997, 10, (2,)), True),
    ("every other week on Monday, Wednesday and Friday until December 24, 1997", "19970901T0900",
     "FREQ=WEEKLY;INTERVAL=2;UNTIL=19971224T000000Z;WKST=SU;BYDAY=MO,WE,FR",
     day_list(1997, 9, (1, 3, 5, 15, 17, 19, 29)) + day_list(1997, 10, (1, 3, 13, 15, 17, 27, 29, 31))
     + day_list(1997, 11, (10, 12, 14, 24, 26, 28)) + day_list(1997, 12, (8, 10, 12, 22)), True),
    ("every other week on Tuesday and Thursday, for 8 occurrences", "19970902T0900",
     "FREQ=WEEKLY;INTERVAL=2;COUNT=8;WKST=SU;BYDAY=TU,TH",
     day_list(1997, 9, (2, 4, 16, 18, 30)) + day_list(1997, 10, (2, 14, 16)), True),
    ("monthly on the first Friday for 10 occurrences", "19970905T0900", "FREQ=MONTHLY;COUNT=10;BYDAY=1FR",
     [datetime(1997, 9, 5, 9), datetime(1997, 10, 3, 9), datetime(1997, 11, 7, 9), datetime(1997, 12, 5, 9),
      datetime(1998, 1, 2, 9), datetime(1998, 2, 6, 9), datetime(1998, 3, 6, 9), datetime(1998, 4, 3, 9),
      datetime(1998, 5, 1, 9), datetime(1998, 6, 5, 9)], True),
    ("monthly on the first Friday until December 24, 1997", "19970905T0900", "FREQ=MONTHLY;UNTIL=19971224T000000Z;BYDAY=1FR",
     [datetime(1997, 9, 5, 9), datetime(1997, 10, 3, 9), datetime(1997, 11, 7, 9), datetime(1997, 12, 5, 9)], True),
    ("every other month on the first and last Sunday for 10 occurrences", "19970907T0900",
     "FREQ=MONTHLY;INTERVAL=2;COUNT=10;BYDAY=1SU,-1SU",
     day_list(1997, 9, (7, 28)) + day_list(1997, 11, (2, 30)) + day_list(1998, 1, (4, 25)) + day_list(1998, 3, (1, 29))
     + day_list(1998, 5, (3, 31)), True),
    ("monthly on the second-to-last Monday for 6 months", "19970922T0900", "FREQ=MONTHLY;COUNT=6;BYDAY=-2MO",
     [datetime(1997, 9, 22, 9), datetime(1997, 10, 20, 9), datetime(1997, 11, 17, 9), datetime(1997, 12, 22, 9),
      datetime(1998, 1, 19, 9), datetime(1998, 2, 16, 9)], True),
    ("monthly on the third-to-the-last day, forever", "19970928T0900", "FREQ=MONTHLY;BYMONTHDAY=-3",
     [datetime(1997, 9, 28, 9), datetime(1997, 10, 29, 9), datetime(1997, 11, 28, 9), datetime(1997, 12, 29, 9),
      datetime(1998, 1, 29, 9), datetime(1998, 2, 26, 9)], False),
    ("monthly on the 2nd and 15th for 10 occurrences", "19970902T0900", "FREQ=MONTHLY;COUNT=10;BYMONTHDAY=2,15",
     [datetime(1997, month, day, 9) for month in (9, 10, 11, 12) for day in (2, 15)] + day_list(1998, 1, (2, 15)), True),
    ("monthly on the first and last day for 10 occurrences", "19970930T0900", "FREQ=MONTHLY;COUNT=10;BYMONTHDAY=1,-1",
     [datetime(1997, 9, 30, 9), datetime(1997, 10, 1, 9), datetime(1997, 10, 31, 9), datetime(1997, 11, 1, 9),
      datetime(1997, 11, 30, 9), datetime(1997, 12, 1, 9), datetime(1997, 12, 31, 9), datetime(1998, 1, 1, 9),
      datetime(1998, 1, 31, 9), datetime(1998, 2, 1, 9)], True),
    ("every 18 months on the 10th to the 15th for 10 occurrences", "19970910T0900",
     "FREQ=MONTHLY;INTERVAL=18;COUNT=10;BYMONTHDAY=10,11,12,13,14,15",
     day_list(1997, 9, range(10, 16)) + day_list(1999, 3, range(10, 14)), True),
    ("every Tuesday, every other month", "19970902T0900", "FREQ=MONTHLY;INTERVAL=2;BYDAY=TU",
     day_list(1997, 9, (2, 9, 16, 23, 30)) + day_list(1997, 11, (4, 11, 18, 25)) + day_list(1998, 1, (6, 13, 20, 27))
     + day_list(1998, 3, (3, 10, 17, 24, 31)), False),
    ("yearly in June and July for 10 occurrences", "19970610T0900", "FREQ=YEARLY;COUNT=10;BYMONTH=6,7",
     [datetime(year, month, 10, 9) for year in range(1997, 2002) for month in (6, 7)], True),
    ("every other year on January, February and March for 10 occurrences", "19970310T0900",
     "FREQ=YEARLY;INTERVAL=2;COUNT=10;BYMONTH=1,2,3",
     [datetime(1997, 3, 10, 9)] + [datetime(year, month, 10, 9) for year in (1999, 2001, 2003) for month in (1, 2, 3)], True),
    ("every third year on the 1st, 100th and 200th day for 10 occurrences", "19970101T0900",
     "FREQ=YEARLY;INTERVAL=3;COUNT=10;BYYEARDAY=1,100,200",
     [datetime(1997, 1, 1, 9), datetime(1997, 4, 10, 9), datetime(1997, 7, 19, 9), datetime(2000, 1, 1, 9),
      datetime(2000, 4, 9, 9), datetime(2000, 7, 18, 9), datetime(2003, 1, 1, 9), datetime(2003, 4, 10, 9),
      datetime(2003, 7, 19, 9), datetime(2006, 1, 1, 9)], True),
    ("every 20th Monday of the year, forever", "19970519T0900", "FREQ=YEARLY;BYDAY=20MO",
     [datetime(1997, 5, 19, 9), datetime(1998, 5, 18, 9), datetime(1999, 5, 17, 9)], False),
    ("Monday of week number 20, forever", "19970512T0900", "FREQ=YEARLY;BYWEEKNO=20;BYDAY=MO",
     [datetime(1997, 5, 12, 9), datetime(1998, 5, 11, 9), datetime(1999, 5, 17, 9)], False),
    ("every Thursday in March, forever", "19970313T0900", "FREQ=YEARLY;BYMONTH=3;BYDAY=TH",
     day_list(1997, 3, (13, 20, 27)) + day_list(1998, 3, (5, 12, 19, 26)) + day_list(1999, 3, (4, 11, 18, 25)), False),
    ("every Thursday, but only during June, July and August, forever", "19970605T0900", "FREQ=YEARLY;BYDAY=TH;BYMONTH=6,7,8",
     day_list(1997, 6, (5, 12, 19, 26)) + day_list(1997, 7, (3, 10, 17, 24, 31)) + day_list(1997, 8, (7, 14, 21, 28))
     + day_list(1998, 6, (4, 11, 18, 25)), False),
    ("every Friday the 13th, forever (a start the rule does not give is no occurrence)", "19970902T0900",
     "FREQ=MONTHLY;BYDAY=FR;BYMONTHDAY=13",
     [datetime(1998, 2, 13, 9), datetime(1998, 3, 13, 9), datetime(1998, 11, 13, 9), datetime(1999, 8, 13, 9),
      datetime(2000, 10, 13, 9)], False),
    ("the first Saturday that follows the first Sunday of the month, forever", "19970913T0900",
     "FREQ=MONTHLY;BYDAY=SA;BYMONTHDAY=7,8,9,10,11,12,13",
     [datetime(1997, 9, 13, 9), datetime(1997, 10, 11, 9), datetime(1997, 11, 8, 9), datetime(1997, 12, 13, 9),
      datetime(1998, 1, 10, 9), datetime(1998, 2, 7, 9), datetime(1998, 3, 7, 9), datetime(1998, 4, 11, 9),
      datetime(1998, 5, 9, 9), datetime(1998, 6, 13, 9)], False),
    ("every 4 years, the first Tuesday after a Monday in November, forever", "19961105T0900",
     "FREQ=YEARLY;INTERVAL=4;BYMONTH=11;BYDAY=TU;BYMONTHDAY=2,3,4,5,6,7,8",
     [datetime(1996, 11, 5, 9), datetime(2000, 11, 7, 9), datetime(2004, 11, 2, 9)], False),
    ("the third instance of Tuesday, Wednesday or Thursday, for the next 3 months", "19970904T0900",
     "FREQ=MONTHLY;COUNT=3;BYDAY=TU,WE,TH;BYSETPOS=3",
     [datetime(1997, 9, 4, 9), datetime(1997, 10, 7, 9), datetime(1997, 11, 6, 9)], True),
    ("the second-to-last weekday of the month", "19970929T0900", "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-2",
     [datetime(1997, 9, 29, 9), datetime(1997, 10, 30, 9), datetime(1997, 11, 27, 9), datetime(1997, 12, 30, 9),
      datetime(1998, 1, 29, 9), datetime(1998, 2, 26, 9), datetime(1998, 3, 30, 9)], False),
    # The RFC lists 15:00 too, which needs UNTIL=19970902T210000Z (17:00 EDT): 17:00 UTC is 13:00 in New York.
    ("every 3 hours from 9:00 until 17:00 UTC on one day", "19970902T0900", "FREQ=HOURLY;INTERVAL=3;UNTIL=19970902T170000Z",
     [datetime(1997, 9, 2, 9), datetime(1997, 9, 2, 12)], True),
    ("every 15 minutes for 6 occurrences", "19970902T0900", "FREQ=MINUTELY;INTERVAL=15;COUNT=6",
     [datetime(1997, 9, 2, 9) + timedelta(minutes=15 * n) for n in range(6)], True),
    ("every hour and a half for 4 occurrences", "19970902T0900", "FREQ=MINUTELY;INTERVAL=90;COUNT=4",
     [datetime(1997, 9, 2, 9) + timedelta(minutes=90 * n) for n in range(4)], True),
    ("every 20 minutes from 9:00 to 16:40 every day (daily form)", "19970902T0900",
     "FREQ=DAILY;BYHOUR=9,10,11,12,13,14,15,16;BYMINUTE=0,20,40",
     [datetime(1997, 9, day, hour, minute) for day in (2, 3) for hour in range(9, 17) for minute in (0, 20, 40)], False),
    ("every 20 minutes from 9:00 to 16:40 every day (minutely form)", "19970902T0900",
     "FREQ=MINUTELY;INTERVAL=20;BYHOUR=9,10,11,12,13,14,15,16",
     [datetime(1997, 9, day, hour, minute) for day in (2, 3) for hour in range(9, 17) for minute in (0, 20, 40)], False),
    ("the days WKST=MO gives", "19970805T0900", "FREQ=WEEKLY;INTERVAL=2;COUNT=4;BYDAY=TU,SU;WKST=MO",
     day_list(1997, 8, (5, 10, 19, 24)), True),
    ("the days WKST=SU gives", "19970805T0900", "FREQ=WEEKLY;INTERVAL=2;COUNT=4;BYDAY=TU,SU;WKST=SU",
     day_list(1997, 8, (5, 17, 19, 31)), True),
    ("an invalid date (30 February) is ignored", "20070115T0900", "FREQ=MONTHLY;BYMONTHDAY=15,30;COUNT=5",
     [datetime(2007, 1, 15, 9), datetime(2007, 1, 30, 9), datetime(2007, 2, 15, 9), datetime(2007, 3, 15, 9),
      datetime(2007, 3, 30, 9)], True),
]


def occurrences(rule: recurrence.Recurrence, limit: int) -> list[datetime]:
    found, at = [], rule.after(rule.start - timedelta(seconds=1))
    while at is not None and len(found) < limit:
        found.append(at)
        at = rule.after(at)
    return found


@pytest.mark.parametrize(("title", "dtstart", "rrule", "listed", "ends"), RFC_EXAMPLES, ids=[row[0] for row in RFC_EXAMPLES])
def test_each_rfc_5545_example_gives_the_occurrences_the_rfc_lists(title, dtstart, rrule, listed, ends):
    rule = parse(rrule, "", datetime.strptime(dtstart, "%Y%m%dT%H%M"), None, NEW_YORK)

    found = occurrences(rule, len(listed) + 1)

    assert found[:len(listed)] == listed
    if ends:  # a rule with COUNT or UNTIL gives exactly what the RFC lists, and no more
        assert len(found) == len(listed)


def test_count_counts_the_start_as_the_first_occurrence_when_the_rule_gives_it():
    rule = parse("FREQ=DAILY;COUNT=3", "", datetime(2026, 3, 1, 10, 16), None, "Europe/Berlin")

    assert occurrences(rule, 5) == [datetime(2026, 3, d, 10, 16) for d in (1, 2, 3)]


def test_count_does_not_count_a_start_the_rule_does_not_give():
    rule = parse("FREQ=WEEKLY;BYDAY=MO;COUNT=2", "", datetime(2026, 3, 4, 9), None, "Europe/Berlin")  # a Wednesday

    assert occurrences(rule, 5) == [datetime(2026, 3, 9, 9), datetime(2026, 3, 16, 9)]


def test_a_count_rule_evaluated_long_after_its_start_gives_what_counting_from_the_start_gives():
    rule = parse("FREQ=MINUTELY;BYHOUR=9;COUNT=1000", "", datetime(2026, 1, 1), None)

    assert rule.count_last == datetime(2026, 1, 17, 9, 39)  # 16 days of sixty, then forty
    assert rule.after(datetime(2026, 1, 17, 9, 38)) == datetime(2026, 1, 17, 9, 39)
    assert rule.after(datetime(2026, 1, 17, 9, 39)) is None
    assert rule.latest(datetime(2026, 2, 1)) == datetime(2026, 1, 17, 9, 39)


@pytest.mark.parametrize(("until", "zone", "last"), [
    ("20261104T080000Z", "Europe/Berlin", datetime(2026, 11, 4, 9)),  # 09:00 CET is 08:00 UTC: included
    ("20261104T075959Z", "Europe/Berlin", datetime(2026, 11, 3, 9)),
    ("20261104T033000Z", "Asia/Kolkata", datetime(2026, 11, 4, 9)),
    ("20261104T032959Z", "Asia/Kolkata", datetime(2026, 11, 3, 9)),
    ("20261103T190000Z", recurrence.EARLIEST_ZONE, datetime(2026, 11, 4, 9)),  # an audience's: when it first comes (UTC+14)
    ("20261104T090000", "Asia/Kolkata", datetime(2026, 11, 4, 9)),  # floating: a wall-clock time in the zone
    ("20261104T085959", "Asia/Kolkata", datetime(2026, 11, 3, 9)),
    ("20261104", "America/New_York", datetime(2026, 11, 4, 9)),  # a date: that whole day
])
def test_until_in_utc_is_read_in_the_schedules_timezone_and_a_floating_one_as_a_wall_clock_time(until, zone, last):
    rule = parse(f"FREQ=DAILY;BYHOUR=9;BYMINUTE=0;UNTIL={until}", "", datetime(2026, 11, 1), None, zone)

    assert occurrences(rule, 10)[-1] == last


def test_ends_at_and_until_together_end_at_the_earlier():
    rule = parse("FREQ=DAILY;BYHOUR=9;UNTIL=20261110T000000Z", "", datetime(2026, 11, 1), datetime(2026, 11, 3, 12), "UTC")

    assert occurrences(rule, 10)[-1] == datetime(2026, 11, 3, 9)


@pytest.mark.parametrize(("rrule", "says"), [
    ("FREQ=DAILY;BYDAY=+99MO", "BYDAY values"),
    ("FREQ=DAILY;BYDAY=+2MO", "numbered BYDAY"),
    ("FREQ=YEARLY;BYWEEKNO=20;BYDAY=1MO", "numbered BYDAY"),
    ("FREQ=DAILY;BYSETPOS=2", "BYSETPOS"),
    ("FREQ=YEARLY;BYEASTER=0", "not an RFC 5545 rule part"),
    ("FREQ=DAILY;COUNT=3;UNTIL=20301231T000000Z", "COUNT and UNTIL"),
    ("FREQ=DAILY;FREQ=WEEKLY", "given twice"),
    ("BYHOUR=9", "FREQ is required"),
    ("FREQ=WEEKLY;BYMONTHDAY=1", "not for a WEEKLY"),
    ("FREQ=MONTHLY;BYYEARDAY=1", "not for a DAILY, WEEKLY or MONTHLY"),
    ("FREQ=MONTHLY;BYWEEKNO=1", "only for a YEARLY"),
    ("FREQ=DAILY;UNTIL=20301331T000000Z", "UNTIL must be"),
    ("FREQ=DAILY;UNTIL=tomorrow", "UNTIL must be"),
    ("FREQ=DAILY;BYMONTHDAY=0", "BYMONTHDAY values"),
    ("FREQ=DAILY;BYHOUR=-1", "BYHOUR values"),
    ("FREQ=YEARLY;BYSETPOS=367;BYMONTH=1", "BYSETPOS values"),
    ("FREQ=DAILY;INTERVAL=1000000000", "at most 9 digits"),
    ("FREQ=DAILY;;", "NAME=VALUE"),
    ("FREQ=MINUTELY;BYSECOND=30", "whole minutes"),
])
def test_a_rule_rfc_5545_does_not_allow_is_refused_saying_why(rrule, says):
    with pytest.raises(InvalidRecurrence) as refused:
        parse(rrule, "", datetime(2026, 1, 1), None)

    assert refused.value.field == "rrule"
    assert says in str(refused.value)


def test_a_rule_is_stored_as_the_rfc_writes_it_whatever_its_case_and_prefix():
    rule = parse("rrule:freq=weekly;byday=mo,we;byhour=9", "", datetime(2026, 1, 1), None)

    assert rule.rrule == "FREQ=WEEKLY;BYDAY=MO,WE;BYHOUR=9"


@pytest.mark.parametrize(("start", "rrule", "near"), [
    (datetime(2026, 1, 31, 9), "FREQ=MONTHLY", datetime(2031, 6, 15)),  # only months with a 31st
    (datetime(2024, 2, 29, 9), "FREQ=YEARLY", datetime(2041, 3, 1)),  # only leap years
    (datetime(2026, 1, 5, 9), "FREQ=MONTHLY;INTERVAL=5;BYDAY=MO,FR;BYSETPOS=-1", datetime(2033, 9, 1)),
    (datetime(2026, 1, 1, 9, 30), "FREQ=YEARLY;INTERVAL=3;BYWEEKNO=1,20;BYDAY=TU", datetime(2040, 7, 1)),
])
def test_a_monthly_or_yearly_rule_moved_near_the_moment_asked_gives_what_it_gives_from_its_start(start, rrule, near):
    rule = parse(rrule, "", start, None)
    from_start = recurrence.Recurrence(rule.rrule, "", start)._rule()

    assert rule.after(near) == from_start.after(near)
    assert rule.latest(near) == from_start.before(near, inc=True)
