"""Schedules fired by the sweep under a frozen clock: DST changes, downtime, pause and resume, exactly once."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from campaigns import fanout
from campaigns.models import Campaign, Topic, TopicSubscription
from notifications.models import Notification
from preferences.models import Recipient
from schedules import firing
from schedules.models import Schedule, ScheduleRun
from tests.factories import make_recipient, make_templates

pytestmark = pytest.mark.django_db


@pytest.fixture
def ada(db):
    make_templates()
    return make_recipient("ada", timezone="Europe/Berlin")


def create(api, **body) -> dict:
    payload = {"cron": "0 9 * * *", "timezone": "Europe/Berlin",
               "notification": {"user_id": "ada", "type": "reminder", "template": "welcome", "variables": {"name": "Ada"},
                                "channels": ["email"]}, **body}
    payload = {key: value for key, value in payload.items() if value is not None}
    response = api.post("/api/v1/schedules", payload, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def sweep_at(moment: datetime) -> int:
    with time_machine.travel(moment, tick=False):
        return firing.fire_due(50)


def test_a_daily_nine_oclock_in_berlin_fires_at_nine_local_every_day_over_both_changes(api, ada):
    for start, days, expected_hours in (
        (datetime(2026, 3, 26, 12, tzinfo=UTC), range(27, 32), [8, 8, 7, 7, 7]),  # CET → CEST on the 29th
        (datetime(2026, 10, 22, 12, tzinfo=UTC), range(23, 28), [7, 7, 8, 8, 8]),  # CEST → CET on the 25th
    ):
        with time_machine.travel(start, tick=False):
            schedule = create(api)
        month = start.month
        for day, hour in zip(days, expected_hours):
            due = datetime(2026, month, day, hour, tzinfo=UTC)
            assert sweep_at(due - timedelta(seconds=1)) == 0  # not a second early
            assert sweep_at(due + timedelta(seconds=1)) == 1
            assert sweep_at(due + timedelta(seconds=2)) == 0  # and once

        runs = ScheduleRun.objects.filter(schedule_id=schedule["id"]).order_by("due_at")
        assert [r.due_at for r in runs] == [datetime(2026, month, d, h, tzinfo=UTC) for d, h in zip(days, expected_hours)]
        assert [r.occurrence[-5:] for r in runs] == ["09:00"] * 5
        notifications = Notification.objects.filter(schedule_id=schedule["id"])
        assert notifications.count() == 5
        assert {n.idempotency_key for n in notifications} == {f"schedule:{schedule['id']}:{r.occurrence}" for r in runs}
        assert api.post(f"/api/v1/schedules/{schedule['id']}/cancel").status_code == 200


def test_after_three_days_of_downtime_a_daily_schedule_fires_once_with_the_latest_occurrence(api, ada):
    with time_machine.travel(datetime(2026, 11, 1, 12, tzinfo=UTC), tick=False):
        schedule = create(api)

    # Herald is down from before 2 November 09:00 until 4 November 11:00 (Berlin)
    assert sweep_at(datetime(2026, 11, 4, 10, tzinfo=UTC)) == 1
    assert sweep_at(datetime(2026, 11, 4, 10, 0, 1, tzinfo=UTC)) == 0

    [run] = ScheduleRun.objects.filter(schedule_id=schedule["id"])
    assert (run.occurrence, run.skipped_before) == ("2026-11-04T09:00", 2)
    assert Notification.objects.filter(schedule_id=schedule["id"]).count() == 1
    detail = api.get(f"/api/v1/schedules/{schedule['id']}").json()
    assert (detail["fired"], detail["skipped"], detail["next_occurrence"]) == (1, 2, "2026-11-05T09:00")
    assert detail["next_run_at"] == "2026-11-05T08:00:00Z"


def test_with_the_skip_policy_occurrences_missed_by_more_than_the_grace_are_not_sent(api, ada, settings):
    settings.HERALD_SCHEDULE_GRACE_SECONDS = 300
    with time_machine.travel(datetime(2026, 11, 1, 12, tzinfo=UTC), tick=False):
        schedule = create(api, missed_occurrences="skip")

    assert sweep_at(datetime(2026, 11, 4, 10, tzinfo=UTC)) == 1  # taken, but two hours late: skipped
    assert not ScheduleRun.objects.filter(schedule_id=schedule["id"]).exists()
    assert sweep_at(datetime(2026, 11, 5, 8, 4, tzinfo=UTC)) == 1  # four minutes late: within the grace

    [run] = ScheduleRun.objects.filter(schedule_id=schedule["id"])
    assert run.occurrence == "2026-11-05T09:00"
    assert Schedule.objects.get(pk=schedule["id"]).skipped == 3


def test_two_sweeps_at_once_fire_each_occurrence_once(api, ada, transactional_db, no_worker):
    # (no worker: its own beat would fire these committed schedules too)
    import threading

    with time_machine.travel(datetime(2026, 11, 1, 12, tzinfo=UTC), tick=False):
        ids = [create(api, cron=f"{minute} 9 * * *")["id"] for minute in range(20)]
    barrier = threading.Barrier(2)
    taken = []

    def sweep():
        from django.db import connection

        barrier.wait()
        try:
            while (n := firing.fire_due(3, now=datetime(2026, 11, 2, 9, tzinfo=UTC))):
                taken.append(n)
        finally:
            connection.close()

    threads = [threading.Thread(target=sweep) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(taken) == 20
    assert ScheduleRun.objects.filter(schedule_id__in=ids).count() == 20
    assert Notification.objects.filter(schedule_id__in=ids).count() == 20


def test_paused_occurrences_are_skipped_and_resume_goes_on_from_the_next(api, ada):
    with time_machine.travel(datetime(2026, 11, 1, 12, tzinfo=UTC), tick=False):
        schedule = create(api)
        assert api.post(f"/api/v1/schedules/{schedule['id']}/pause").json()["state"] == "paused"
        assert api.post(f"/api/v1/schedules/{schedule['id']}/pause").status_code == 409

    assert sweep_at(datetime(2026, 11, 2, 9, tzinfo=UTC)) == 0
    with time_machine.travel(datetime(2026, 11, 3, 12, tzinfo=UTC), tick=False):
        resumed = api.post(f"/api/v1/schedules/{schedule['id']}/resume").json()
    assert (resumed["state"], resumed["next_occurrence"], resumed["skipped"]) == ("active", "2026-11-04T09:00", 2)
    assert [o["occurrence"] for o in resumed["next_occurrences"]] == [f"2026-11-0{d}T09:00" for d in range(4, 9)]

    with time_machine.travel(datetime(2026, 11, 3, 12, tzinfo=UTC), tick=False):
        canceled = api.post(f"/api/v1/schedules/{schedule['id']}/cancel").json()
    assert (canceled["state"], canceled["next_run_at"], canceled["next_occurrences"]) == ("canceled", None, [])
    assert sweep_at(datetime(2026, 11, 4, 9, tzinfo=UTC)) == 0


def test_a_schedule_that_reaches_its_end_ends(api, ada):
    with time_machine.travel(datetime(2026, 11, 1, 12, tzinfo=UTC), tick=False):
        schedule = create(api, ends_at="2026-11-02T12:00:00Z")

    assert sweep_at(datetime(2026, 11, 2, 8, 0, 1, tzinfo=UTC)) == 1
    assert Schedule.objects.get(pk=schedule["id"]).state == "ended"


def test_an_occurrence_whose_person_is_gone_is_recorded_failed_and_the_schedule_goes_on(api, ada):
    with time_machine.travel(datetime(2026, 11, 1, 12, tzinfo=UTC), tick=False):
        schedule = create(api)
    ada.is_active = False
    ada.save()

    assert sweep_at(datetime(2026, 11, 2, 8, 0, 1, tzinfo=UTC)) == 1

    [run] = ScheduleRun.objects.filter(schedule_id=schedule["id"])
    assert (run.outcome, run.error["code"]) == ("failed", "user_inactive")
    assert Schedule.objects.get(pk=schedule["id"]).next_occurrence == "2026-11-03T09:00"


def test_in_each_recipients_own_timezone_one_person_gets_nine_oclock_in_theirs(api, ada):
    make_recipient("raj", timezone="Asia/Kolkata")
    with time_machine.travel(datetime(2026, 11, 1, 12, tzinfo=UTC), tick=False):
        schedule = create(api, timezone="recipient", notification={
            "user_id": "raj", "type": "reminder", "template": "welcome", "variables": {"name": "Raj"}, "channels": ["email"]})

    assert schedule["next_run_at"] == "2026-11-02T03:30:00Z"  # 09:00 IST


def test_a_campaign_in_each_recipients_own_timezone_reaches_each_at_nine_in_theirs(api, ada):
    make_recipient("ny", timezone="America/New_York")
    make_recipient("raj", timezone="Asia/Kolkata")
    topic = Topic.objects.create(key="tips")
    TopicSubscription.objects.bulk_create([TopicSubscription(topic=topic, recipient=r) for r in Recipient.objects.all()])
    with time_machine.travel(datetime(2026, 11, 1, 12, tzinfo=UTC), tick=False):
        schedule = create(api, timezone="recipient", notification=None, campaign={
            "type": "reminder", "template": "welcome", "variables": {"name": "you"}, "channels": ["email"],
            "audience": {"topic": "tips"}})
    assert schedule["next_run_at"] == "2026-11-01T19:00:00Z"  # 2 November 09:00 at UTC+14, the first place it comes

    assert sweep_at(datetime(2026, 11, 1, 19, 0, 1, tzinfo=UTC)) == 1
    [campaign] = Campaign.objects.filter(schedule_id=schedule["id"])
    with time_machine.travel(datetime(2026, 11, 1, 19, 0, 2, tzinfo=UTC), tick=False):
        while fanout.fan_out_chunk(campaign.pk):
            pass

    times = dict(Notification.objects.filter(campaign_id=campaign.pk).values_list("recipient__external_id", "scheduled_at"))
    assert times == {"ada": datetime(2026, 11, 2, 8, tzinfo=UTC), "ny": datetime(2026, 11, 2, 14, tzinfo=UTC),
                     "raj": datetime(2026, 11, 2, 3, 30, tzinfo=UTC)}


def test_a_person_who_moved_west_gets_the_occurrence_at_nine_where_they_are_now_not_early(api, ada):
    make_recipient("kai", timezone="Asia/Tokyo")
    with time_machine.travel(datetime(2026, 11, 1, 12, tzinfo=UTC), tick=False):
        schedule = create(api, timezone="recipient", notification={
            "user_id": "kai", "type": "reminder", "template": "welcome", "variables": {"name": "Kai"}, "channels": ["email"]})
    assert schedule["next_run_at"] == "2026-11-02T00:00:00Z"  # 09:00 in Tokyo
    Recipient.objects.filter(external_id="kai").update(timezone="America/New_York")

    assert sweep_at(datetime(2026, 11, 2, 0, 0, 1, tzinfo=UTC)) == 1  # looked at, not sent: 19:00 in New York
    assert not ScheduleRun.objects.filter(schedule_id=schedule["id"]).exists()
    assert sweep_at(datetime(2026, 11, 2, 14, 0, 1, tzinfo=UTC)) == 1  # 09:00 in New York

    [run] = ScheduleRun.objects.filter(schedule_id=schedule["id"])
    assert (run.occurrence, run.due_at) == ("2026-11-02T09:00", datetime(2026, 11, 2, 14, tzinfo=UTC))


def test_an_hourly_half_past_fires_once_per_instant_across_the_spring_gap(api, ada):
    with time_machine.travel(datetime(2026, 3, 28, 23, tzinfo=UTC), tick=False):
        schedule = create(api, cron="30 * * * *")

    for minute in range(0, 4 * 60, 5):
        sweep_at(datetime(2026, 3, 29, 0, tzinfo=UTC) + timedelta(minutes=minute, seconds=1))

    runs = list(ScheduleRun.objects.filter(schedule_id=schedule["id"]).order_by("due_at").values_list("occurrence", "due_at"))
    assert [at for _, at in runs] == [datetime(2026, 3, 28, 23, 30, tzinfo=UTC)] + [
        datetime(2026, 3, 29, h, 30, tzinfo=UTC) for h in range(0, 4)]  # one an hour, none twice
    # 02:30 does not exist that night: it is the same instant as 03:30 CEST, which fires once
    assert [o[-5:] for o, _ in runs] == ["00:30", "01:30", "03:30", "04:30", "05:30"]
    assert Schedule.objects.get(pk=schedule["id"]).skipped == 0


def test_count_ends_the_schedule_after_count_occurrences_counting_those_skipped_in_a_pause(api, ada):
    with time_machine.travel(datetime(2026, 11, 1, 12, tzinfo=UTC), tick=False):
        schedule = create(api, cron=None, rrule="FREQ=DAILY;BYHOUR=9;BYMINUTE=0;COUNT=4")
        api.post(f"/api/v1/schedules/{schedule['id']}/pause")
    with time_machine.travel(datetime(2026, 11, 3, 12, tzinfo=UTC), tick=False):
        resumed = api.post(f"/api/v1/schedules/{schedule['id']}/resume").json()
    assert [o["occurrence"] for o in resumed["next_occurrences"]] == ["2026-11-04T09:00", "2026-11-05T09:00"]

    assert sweep_at(datetime(2026, 11, 4, 8, 0, 1, tzinfo=UTC)) == 1
    assert sweep_at(datetime(2026, 11, 5, 8, 0, 1, tzinfo=UTC)) == 1

    ended = Schedule.objects.get(pk=schedule["id"])
    assert (ended.state, ended.fired, ended.skipped) == ("ended", 2, 2)


def test_each_firing_stores_the_next_five_occurrences_it_shows(api, ada):
    with time_machine.travel(datetime(2026, 11, 1, 12, tzinfo=UTC), tick=False):
        schedule = create(api, cron=None, rrule="FREQ=WEEKLY;BYDAY=MO,TH;BYHOUR=9;BYMINUTE=0")

    assert sweep_at(datetime(2026, 11, 2, 8, 0, 1, tzinfo=UTC)) == 1

    shown = api.get(f"/api/v1/schedules/{schedule['id']}").json()["next_occurrences"]
    assert shown == [{"occurrence": o, "at": at} for o, at in [
        ("2026-11-05T09:00", "2026-11-05T08:00:00Z"), ("2026-11-09T09:00", "2026-11-09T08:00:00Z"),
        ("2026-11-12T09:00", "2026-11-12T08:00:00Z"), ("2026-11-16T09:00", "2026-11-16T08:00:00Z"),
        ("2026-11-19T09:00", "2026-11-19T08:00:00Z")]]


def test_a_schedule_whose_rule_cannot_be_evaluated_when_due_is_parked_saying_why_and_the_others_fire(
        api, ada, settings, admin_client):
    settings.HERALD_RRULE_TIME_LIMIT_SECONDS = 0.3
    with time_machine.travel(datetime(2026, 11, 1, 12, tzinfo=UTC), tick=False):
        fine = [create(api, cron=f"{minute} 9 * * *")["id"] for minute in (0, 1)]
        costly = create(api)["id"]
    # a rule that takes the sweep longer than the bounds allow (as one accepted before they existed could)
    Schedule.objects.filter(pk=costly).update(rrule="FREQ=DAILY;BYHOUR=9;BYSETPOS=2", cron="")

    assert sweep_at(datetime(2026, 11, 2, 8, 2, tzinfo=UTC)) == 3

    parked = api.get(f"/api/v1/schedules/{costly}").json()
    assert (parked["state"], parked["next_run_at"], parked["next_occurrences"]) == ("parked", None, [])
    assert parked["parked_reason"].startswith("Its rule could not be evaluated when it came due: This rule is too costly")
    assert ScheduleRun.objects.filter(schedule_id__in=fine).count() == 2
    assert not ScheduleRun.objects.filter(schedule_id=costly).exists()
    assert "too costly" in admin_client.get(f"/admin/schedules/schedule/{costly}/change/").content.decode()
    assert sweep_at(datetime(2026, 11, 3, 8, 2, tzinfo=UTC)) == 2  # a parked schedule is no longer taken

    with time_machine.travel(datetime(2026, 11, 3, 12, tzinfo=UTC), tick=False):
        again = api.post(f"/api/v1/schedules/{costly}/resume")
    assert (again.status_code, again.json()["error"]["field"]) == (400, "rrule")
    assert Schedule.objects.get(pk=costly).state == "parked"

    Schedule.objects.filter(pk=costly).update(rrule="FREQ=DAILY;BYHOUR=9;BYMINUTE=0")  # as if fixed by hand
    with time_machine.travel(datetime(2026, 11, 3, 12, tzinfo=UTC), tick=False):
        resumed = api.post(f"/api/v1/schedules/{costly}/resume").json()
    assert (resumed["state"], resumed["parked_reason"], resumed["next_occurrence"]) == ("active", "", "2026-11-04T09:00")
    assert resumed["skipped"] == 2  # 2 and 3 November, not sent while parked


def test_the_sweep_asks_one_bounded_process_about_a_whole_chunk(api, ada, monkeypatch):
    from core import bounded

    with time_machine.travel(datetime(2026, 11, 1, 12, tzinfo=UTC), tick=False):
        for minute in range(12):
            create(api, cron=None, rrule=f"FREQ=DAILY;BYHOUR=9;BYMINUTE={minute}")
    calls = []
    run = bounded.run
    monkeypatch.setattr(bounded, "run", lambda job, payload, **kw: calls.append(job) or run(job, payload, **kw))

    assert sweep_at(datetime(2026, 11, 2, 8, 15, tzinfo=UTC)) == 12

    assert calls == ["schedules.recurrence_jobs:place_each"]
    assert ScheduleRun.objects.count() == 12
