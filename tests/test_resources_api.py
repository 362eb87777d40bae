"""Users, devices, templates, notification listing, health and the API schema."""

import io

import pytest
from django.core.management import call_command

from notifications.models import ApiKey, Notification
from preferences.models import Device, Recipient
from tests.factories import make_recipient


@pytest.mark.django_db
def test_put_creates_then_updates_a_user_keeping_fields_left_out(api):
    created = api.put("/api/v1/users/alice", {"email": "a@example.com", "timezone": "Europe/Berlin"}, format="json")
    updated = api.put("/api/v1/users/alice", {"phone": "+4915112345678", "locale": "de"}, format="json")

    assert created.status_code == 201
    assert updated.status_code == 200
    body = api.get("/api/v1/users/alice").json()
    assert body["email"] == "a@example.com"
    assert body["phone"] == "+4915112345678"
    assert body["timezone"] == "Europe/Berlin"
    assert body["locale"] == "de"
    assert body["active"] is True


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"phone": "0151 1234"}, "phone"),
        ({"email": "not-an-email"}, "email"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"locale": "english please"}, "locale"),
        ({"active": "maybe"}, "active"),
        ({"nickname": "al"}, "nickname"),
    ],
)
def test_bad_user_fields_are_400_naming_the_field(api, body, field):
    response = api.put("/api/v1/users/alice", body, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["field"] == field
    assert not Recipient.objects.exists()


@pytest.mark.django_db
def test_an_unknown_user_is_404_as_json(api):
    response = api.get("/api/v1/users/nobody")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.django_db
def test_devices_register_move_between_users_and_delete(api):
    make_recipient("a")
    make_recipient("b")

    first = api.post("/api/v1/users/a/devices", {"platform": "ios", "token": "abc"}, format="json")
    again = api.post("/api/v1/users/a/devices", {"platform": "ios", "token": "abc"}, format="json")
    moved = api.post("/api/v1/users/b/devices", {"platform": "ios", "token": "abc"}, format="json")

    assert (first.status_code, again.status_code, moved.status_code) == (201, 200, 200)
    assert Device.objects.get(token="abc").recipient.external_id == "b"
    assert api.delete("/api/v1/users/a/devices/abc").status_code == 404
    assert api.delete("/api/v1/users/b/devices/abc").status_code == 204
    assert not Device.objects.filter(token="abc").exists()


@pytest.mark.django_db
def test_a_device_with_an_unknown_platform_is_400(api):
    make_recipient("a")

    response = api.post("/api/v1/users/a/devices", {"platform": "palm", "token": "x"}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["field"] == "platform"


@pytest.mark.django_db
def test_templates_are_created_listed_and_fetched_by_name(api):
    body = {"name": "receipt", "channel": "email", "subject": "Order {{ id }}", "body": "Thanks for order {{ id }}",
            "variables_schema": {"type": "object", "required": ["id"]}}

    created = api.post("/api/v1/templates", body, format="json")
    duplicate = api.post("/api/v1/templates", body, format="json")
    api.post("/api/v1/templates", {**body, "channel": "sms", "subject": ""}, format="json")

    assert created.status_code == 201
    assert duplicate.status_code == 409
    assert duplicate.json()["error"]["code"] == "template_exists"
    assert len(api.get("/api/v1/templates").json()["results"]) == 2
    assert len(api.get("/api/v1/templates?channel=sms").json()["results"]) == 1
    detail = api.get("/api/v1/templates/receipt").json()
    assert [v["channel"] for v in detail["variants"]] == ["email", "sms"]
    assert api.get("/api/v1/templates/missing").status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"body": "Hi {{ name"}, "body"),
        ({"html_body": "{% if %}"}, "html_body"),
        ({"subject": ""}, "subject"),
        ({"variables_schema": {"type": 12}}, "variables_schema"),
        ({"channel": "pager"}, "channel"),
    ],
)
def test_bad_templates_are_400_naming_the_field(api, override, field):
    body = {"name": "t", "channel": "email", "subject": "s", "body": "b", **override}

    response = api.post("/api/v1/templates", body, format="json")

    assert response.status_code == 400, response.content
    assert response.json()["error"]["field"] == field


@pytest.mark.django_db
def test_a_users_notifications_are_listed_newest_first_with_pagination_and_status_filter(api):
    recipient = make_recipient("a")
    for i in range(5):
        Notification.objects.create(recipient=recipient, type="social", priority="medium", template_name=f"t{i}",
                                    status="sent" if i % 2 else "failed")

    page = api.get("/api/v1/users/a/notifications?limit=2").json()
    rest = api.get(page["next"]).json()
    failed = api.get("/api/v1/users/a/notifications?status=failed").json()

    assert [n["template"] for n in page["results"]] == ["t4", "t3"]
    assert [n["template"] for n in rest["results"]] == ["t2", "t1"]
    assert {n["status"] for n in failed["results"]} == {"failed"}
    assert len(failed["results"]) == 3
    assert api.get("/api/v1/users/a/notifications?status=nope").status_code == 400


@pytest.mark.django_db
def test_an_unknown_notification_id_is_404(api):
    assert api.get("/api/v1/notifications/6f1c1c1e-0000-0000-0000-000000000000").status_code == 404
    assert api.get("/api/v1/notifications/not-a-uuid").status_code == 404


def test_liveness_and_readiness_report_every_dependency_and_queue(client, broker, db):
    assert client.get("/health").json() == {"status": "ok"}

    ready = client.get("/health/ready")

    assert ready.status_code == 200
    checks = ready.json()["checks"]
    assert checks["database"]["ok"] and checks["redis"]["ok"] and checks["broker"]["ok"]
    assert {"critical", "high", "medium", "low", "email.urgent", "sms.bulk"} <= set(checks["broker"]["queues"])


def test_readiness_is_503_when_the_broker_is_down(client, broker, db):
    broker.stop()
    try:
        response = client.get("/health/ready")
    finally:
        broker.start()

    assert response.status_code == 503
    assert response.json()["checks"]["broker"]["ok"] is False


@pytest.mark.django_db
def test_the_openapi_schema_and_docs_are_served(client):
    schema = client.get("/api/schema/")
    docs = client.get("/api/docs/")

    assert schema.status_code == 200
    assert b"/api/v1/notifications" in schema.content
    assert docs.status_code == 200


@pytest.mark.django_db
def test_create_api_key_prints_a_working_key_as_its_last_line(client):
    out = io.StringIO()

    call_command("create_api_key", "--name", "ci", "--scopes", "users:read", stdout=out, stderr=io.StringIO())

    raw_key = out.getvalue().strip().splitlines()[-1]
    assert ApiKey.objects.get(name="ci").scopes == ["users:read"]
    make_recipient("a")
    response = client.get("/api/v1/users/a", HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    assert response.status_code == 200
    assert client.get("/api/v1/templates", HTTP_AUTHORIZATION=f"Bearer {raw_key}").status_code == 403
