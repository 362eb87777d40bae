"""send_at: "09:00" in the person's timezone, and "optimal" from their opens and clicks, under a frozen clock."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from delivery.models import Delivery, DeliveryEvent
from notifications import send_time
from notifications.models import Notification
from preferences.models import CategorySetting
from tests.factories import make_recipient, make_templates, notification_body

NOON = datetime(2026, 11, 2, 12, tzinfo=UTC)


def test_the_next_local_time_is_today_if_still_ahead_else_tomorrow():
    assert send_time.at_local_time("13:30", "Europe/Berlin", NOON)[0] == datetime(2026, 11, 2, 12, 30, tzinfo=UTC)
    assert send_time.at_local_time("09:00", "Europe/Berlin", NOON)[0] == datetime(2026, 11, 3, 8, tzinfo=UTC)


def test_nine_local_on_the_day_of_each_change_is_nine_local():
    spring = send_time.at_local_time("09:00", "Europe/Berlin", datetime(2026, 3, 29, 0, tzinfo=UTC))[0]
    autumn = send_time.at_local_time("09:00", "Europe/Berlin", datetime(2026, 10, 25, 0, tzinfo=UTC))[0]

    assert (spring, autumn) == (datetime(2026, 3, 29, 7, tzinfo=UTC), datetime(2026, 10, 25, 8, tzinfo=UTC))


def test_optimal_is_the_start_of_the_hour_with_most_engagement_within_the_window():
    at, reason = send_time.optimal({19: 5, 8: 2}, "Europe/Berlin", 24, 10, NOON)  # 13:00 in Berlin now

    assert at == datetime(2026, 11, 2, 18, tzinfo=UTC)  # 19:00 CET
    assert reason == {"rule": "optimal", "basis": "engagement", "hour": 19, "engagements": 5, "history_days": 90,
                      "window_hours": 24, "timezone": "Europe/Berlin"}


def test_optimal_within_a_short_window_takes_the_best_hour_inside_it():
    at, reason = send_time.optimal({19: 5, 14: 1}, "Europe/Berlin", 3, 10, NOON)

    assert (at, reason["hour"]) == (datetime(2026, 11, 2, 13, tzinfo=UTC), 14)


def test_optimal_is_now_when_the_current_hour_is_the_best():
    assert send_time.optimal({13: 3}, "Europe/Berlin", 24, 10, NOON)[0] == NOON


def test_with_no_history_optimal_is_the_categorys_default_hour_or_now_if_outside_the_window():
    at, reason = send_time.optimal({}, "Europe/Berlin", 24, 10, NOON)
    assert (at, reason["basis"]) == (datetime(2026, 11, 3, 9, tzinfo=UTC), "category_default")

    at, reason = send_time.optimal({}, "Europe/Berlin", 2, 10, NOON)
    assert (at, reason["basis"]) == (NOON, "category_default_outside_window")


def test_half_hour_zones_get_whole_local_hours():
    at, _ = send_time.optimal({20: 1}, "Asia/Kolkata", 24, 10, NOON)  # 17:30 IST now

    assert at == datetime(2026, 11, 2, 14, 30, tzinfo=UTC)  # 20:00 IST


@pytest.fixture
def people(db):
    make_templates()
    return {zone: make_recipient(name, timezone=zone) for name, zone in
            (("ber", "Europe/Berlin"), ("nyc", "America/New_York"), ("kol", "Asia/Kolkata"))}


@pytest.mark.django_db
def test_nine_local_for_people_in_three_timezones(api, people):
    with time_machine.travel(NOON, tick=False):
        answers = {zone: api.post("/api/v1/notifications", notification_body(user_id=person.external_id, send_at="09:00"),
                                  format="json") for zone, person in people.items()}

    assert {zone: r.json()["scheduled_at"] for zone, r in answers.items()} == {
        "Europe/Berlin": "2026-11-03T08:00:00Z", "America/New_York": "2026-11-02T14:00:00Z", "Asia/Kolkata": "2026-11-03T03:30:00Z"}
    detail = api.get(f"/api/v1/notifications/{answers['Asia/Kolkata'].json()['id']}").json()
    assert detail["status"] == "scheduled"
    assert detail["send_time"] == {"rule": "local_time", "local_time": "09:00", "timezone": "Asia/Kolkata"}


def record_opens(person, hour_utc: int, days: int, event: str = "open") -> None:
    notification = Notification.objects.create(recipient=person, type="reminder", priority="medium", template_name="welcome",
                                               status="read")
    delivery = Delivery.objects.create(notification=notification, channel="email", status="read")
    for day in range(days):
        DeliveryEvent.objects.create(delivery=delivery, source="sendgrid", event=event, event_key=f"{person.pk}-{hour_utc}-{day}",
                                     occurred_at=NOON.replace(hour=hour_utc) - timedelta(days=day + 1))


@pytest.mark.django_db
def test_optimal_chooses_the_hour_of_a_persons_recorded_opens_and_the_default_without_history(api, people):
    berlin = people["Europe/Berlin"]
    record_opens(berlin, 18, 6)  # 19:00 CET, six days running
    record_opens(berlin, 7, 2, event="click")  # 08:00 CET, twice
    record_opens(berlin, 20, 9)  # but more than 90 days ago below: not counted
    DeliveryEvent.objects.filter(event_key__startswith=f"{berlin.pk}-20-").update(occurred_at=NOON - timedelta(days=100))
    CategorySetting.objects.update_or_create(category="reminder", defaults={"default_send_hour": 11})

    with time_machine.travel(NOON, tick=False):
        learned = api.post("/api/v1/notifications", notification_body(user_id="ber", type="reminder", send_at="optimal"),
                           format="json").json()
        default = api.post("/api/v1/notifications", notification_body(user_id="nyc", type="reminder", send_at="optimal"),
                           format="json").json()

    assert learned["scheduled_at"] == "2026-11-02T18:00:00Z"
    reason = api.get(f"/api/v1/notifications/{learned['id']}").json()["send_time"]
    assert (reason["basis"], reason["hour"], reason["engagements"]) == ("engagement", 19, 6)
    assert default["scheduled_at"] == "2026-11-02T16:00:00Z"  # 11:00 in New York
    assert api.get(f"/api/v1/notifications/{default['id']}").json()["send_time"]["basis"] == "category_default"


@pytest.mark.django_db
@pytest.mark.parametrize(("body", "field"), [
    ({"send_at": "9am"}, "send_at"),
    ({"send_at": "24:00"}, "send_at"),
    ({"send_at": "optimal", "send_window_hours": 25}, "send_window_hours"),
    ({"send_at": "optimal", "send_window_hours": 0}, "send_window_hours"),
    ({"send_at": "09:00", "send_window_hours": 3}, "send_window_hours"),
    ({"send_at": "09:00", "scheduled_at": "2030-01-01T00:00:00Z"}, "send_at"),
    ({"escalation": [{"channels": ["sms"], "wait_seconds": 604801}]}, "escalation.0.wait_seconds"),
    ({"escalation": [{"channels": ["pigeon"], "wait_seconds": 60}]}, "escalation.0.channels"),
    ({"escalation": [{"channels": ["sms"], "wait_seconds": 60, "if": "not_liked"}]}, "escalation.0.if"),
    ({"escalation": [{"channels": ["sms"], "wait_seconds": 60, "after": 3}]}, "escalation.0.after"),
    ({"escalation": {"channels": ["sms"]}}, "escalation"),
])
def test_bad_send_times_and_escalations_are_a_400_naming_the_field(api, people, body, field):
    response = api.post("/api/v1/notifications", notification_body(user_id="ber", **body), format="json")

    assert response.status_code == 400, response.content
    assert response.json()["error"]["field"] == field


@pytest.mark.django_db
def test_an_escalation_step_on_a_channel_the_template_lacks_is_a_400(api, people):
    make_templates("push_only", channels=("push",))

    response = api.post("/api/v1/notifications", notification_body(
        user_id="ber", template="push_only", escalation=[{"channels": ["sms"], "wait_seconds": 300}]), format="json")

    assert response.status_code == 400
    assert response.json()["error"]["field"] == "escalation.0.channels"


def test_a_half_hour_clock_change_does_not_stall_the_search_for_the_best_hour():
    now = datetime(2026, 4, 4, 12, tzinfo=UTC)  # Lord Howe turns its clocks back half an hour that night

    starts = send_time.hour_starts(now, send_time.ZoneInfo("Australia/Lord_Howe"), 24)

    assert len(starts) == 25 and starts == sorted(set(starts))
    assert send_time.optimal({1: 3}, "Australia/Lord_Howe", 24, 10, now)[0] == datetime(2026, 4, 4, 14, tzinfo=UTC)
