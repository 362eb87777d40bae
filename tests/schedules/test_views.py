"""The schedules API: what it shows, and bad input refused with a 400 naming the field."""

import pytest

from tests.factories import make_recipient, make_templates

pytestmark = pytest.mark.django_db

NOTIFICATION = {"user_id": "ada", "type": "reminder", "template": "welcome", "variables": {"name": "Ada"}, "channels": ["email"]}


@pytest.fixture
def ada(db):
    make_templates()
    return make_recipient("ada", timezone="Europe/Berlin")


def post(api, **body):
    payload = {"cron": "0 9 * * *", "timezone": "Europe/Berlin", "notification": NOTIFICATION, **body}
    return api.post("/api/v1/schedules", {key: value for key, value in payload.items() if value is not None}, format="json")


def test_a_schedule_shows_its_next_occurrences_in_its_timezone(api, ada):
    response = post(api, cron=None, rrule="FREQ=WEEKLY;BYDAY=MO;BYHOUR=8;BYMINUTE=30", starts_at="2027-01-01T00:00:00Z")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["state"] == "active"
    assert [o["occurrence"] for o in body["next_occurrences"]] == [
        "2027-01-04T08:30", "2027-01-11T08:30", "2027-01-18T08:30", "2027-01-25T08:30", "2027-02-01T08:30"]
    assert body["next_run_at"] == "2027-01-04T07:30:00Z"
    assert api.get(f"/api/v1/schedules/{body['id']}").json()["id"] == body["id"]
    assert [s["id"] for s in api.get("/api/v1/schedules?state=active").json()] == [body["id"]]


@pytest.mark.parametrize(("body", "field"), [
    ({"cron": "0 9 * *"}, "cron"),
    ({"cron": "0 9 31 2 *"}, "cron"),
    ({"cron": None, "rrule": "FREQ=NEVER"}, "rrule"),
    ({"cron": None, "rrule": "FREQ=MINUTELY;BYSECOND=0,15"}, "rrule"),
    ({"cron": None, "rrule": "FREQ=DAILY;COUNT=0"}, "rrule"),
    ({"rrule": "FREQ=DAILY"}, "rrule"),
    ({"cron": None}, "rrule"),
    ({"timezone": "Mars/Olympus"}, "timezone"),
    ({"starts_at": "2027-02-01T00:00:00Z", "ends_at": "2027-01-01T00:00:00Z"}, "ends_at"),
    ({"ends_at": "2020-01-01T00:00:00Z"}, "ends_at"),
    ({"missed_occurrences": "sometimes"}, "missed_occurrences"),
    ({"ends_at": "9999-12-31T23:59:59Z"}, "ends_at"),
    ({"starts_at": "0001-01-01T00:00:00Z", "timezone": "America/New_York"}, "starts_at"),
    ({"cron": None, "rrule": "FREQ=DAILY;INTERVAL=0"}, "rrule"),
    ({"notification": {**NOTIFICATION, "user_id": "nobody"}}, "notification.user_id"),
    ({"notification": {**NOTIFICATION, "template": "missing"}}, "notification.template"),
    ({"notification": {**NOTIFICATION, "scheduled_at": "2030-01-01T00:00:00Z"}}, "notification.scheduled_at"),
    ({"notification": {**NOTIFICATION, "escalation": [{"channels": ["sms"], "wait_seconds": 8 * 86400}]}},
     "notification.escalation.0.wait_seconds"),
    ({"notification": None}, "notification"),
    ({"campaign": {"type": "reminder", "template": "welcome", "audience": {"topic": "nope"}}}, "notification"),
    ({"notification": None, "campaign": {"type": "reminder", "template": "welcome", "audience": {"topic": "nope"}}},
     "campaign.audience.topic"),
])
def test_bad_input_is_a_400_naming_the_field(api, ada, body, field):
    response = post(api, **body)

    assert response.status_code == 400, response.content
    assert response.json()["error"]["field"] == field, response.json()


def test_an_unknown_schedule_is_a_404_and_a_canceled_one_cannot_resume(api, ada):
    assert api.get("/api/v1/schedules/00000000-0000-0000-0000-000000000000").status_code == 404
    schedule = post(api).json()
    api.post(f"/api/v1/schedules/{schedule['id']}/cancel")

    response = api.post(f"/api/v1/schedules/{schedule['id']}/resume")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "invalid_state"


def test_a_persons_schedules_are_exported_and_erasure_cancels_them_and_drops_what_they_say(api, ada):
    schedule = post(api).json()

    exported = api.get("/api/v1/users/ada/export").json()
    assert [s["id"] for s in exported["schedules"]] == [schedule["id"]]
    assert api.delete("/api/v1/users/ada").status_code in (200, 204)

    erased = api.get(f"/api/v1/schedules/{schedule['id']}").json()
    assert (erased["state"], erased["next_run_at"], erased["notification"]) == ("canceled", None, {"user_id": "", "erased": True})


def test_admin_lists_schedules_and_shows_their_runs(api, ada, admin_client):
    schedule = post(api).json()

    assert admin_client.get("/admin/schedules/schedule/").status_code == 200
    page = admin_client.get(f"/admin/schedules/schedule/{schedule['id']}/change/")
    assert page.status_code == 200 and "0 9 * * *" in page.content.decode()
