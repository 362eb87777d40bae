"""End to end on real PostgreSQL, Redis and a Celery worker process, through the sandbox provider."""

import pytest

from delivery.models import Delivery, SandboxMessage
from tests.factories import delivery_of, make_recipient, make_templates, notification_body, status_of
from tests.services import wait_for


@pytest.fixture
def recipient(live):
    make_templates()
    return make_recipient("u1")


@pytest.mark.parametrize("channel", ["email", "sms", "push", "webhook"])
def test_a_notification_reaches_sent_on_each_channel(api, recipient, channel):
    # when
    response = api.post("/api/v1/notifications", notification_body(channels=[channel]), format="json")

    # then
    assert response.status_code == 202, response.content
    notification_id = response.json()["id"]
    wait_for(lambda: status_of(notification_id) == "sent", message=f"{channel} notification to be sent")
    delivery = delivery_of(notification_id, channel)
    assert delivery.provider == "sandbox"
    assert delivery.provider_message_id.startswith("sandbox-")
    assert delivery.attempts == 1
    recorded = SandboxMessage.objects.get(delivery=delivery)
    assert recorded.content["body"] == f"Hello Ada via {channel}"
    expected_to = {
        "email": ["u1@example.com"], "sms": ["+14155550100"], "push": ["token-u1"], "webhook": ["https://example.com/hook"],
    }[channel]
    assert recorded.to == expected_to

    detail = api.get(f"/api/v1/notifications/{notification_id}").json()
    assert detail["status"] == "sent"
    assert [s["status"] for s in detail["status_history"]] == ["pending", "routing", "sending", "sent"]
    [entry] = detail["deliveries"]
    assert entry["channel"] == channel
    assert entry["status"] == "sent"
    assert entry["sent_at"] is not None
    assert entry["last_error"] is None


def test_an_in_app_notification_lands_in_the_inbox(api, recipient):
    response = api.post("/api/v1/notifications", notification_body(channels=["in_app"]), format="json")

    notification_id = response.json()["id"]
    wait_for(lambda: status_of(notification_id) == "sent", message="in-app notification")
    delivery = delivery_of(notification_id, "in_app")
    assert delivery.provider == "inbox"
    assert delivery.provider_message_id

    # reading the item in the inbox closes the loop: the delivery and the notification are read
    from inbox.items import mark_read
    from inbox.models import InboxItem

    item = InboxItem.objects.get(delivery=delivery)
    mark_read(item.recipient_id, item.pk)
    delivery.refresh_from_db()
    assert delivery.status == "read" and delivery.read_at is not None
    assert status_of(notification_id) == "read"


def test_default_channels_follow_the_type_and_skip_what_the_user_cannot_receive(api, live):
    # given a user with an email address but no phone and no device
    make_templates()
    make_recipient("u2", phone="")
    from preferences.models import Device

    Device.objects.filter(recipient__external_id="u2").delete()

    # when a security notification (push + sms + email by default) is sent
    response = api.post("/api/v1/notifications", notification_body(user_id="u2", type="security"), format="json")

    # then only email goes out, and the skipped channels say why
    notification_id = response.json()["id"]
    wait_for(lambda: status_of(notification_id) == "sent", message="security email")
    detail = api.get(f"/api/v1/notifications/{notification_id}").json()
    assert detail["priority"] == "critical"
    assert [d["channel"] for d in detail["deliveries"]] == ["email"]
    assert detail["skipped_channels"] == [
        {"channel": "push", "reason": "no_device"},
        {"channel": "sms", "reason": "no_phone"},
    ]


def test_a_notification_nobody_can_receive_fails_with_a_reason(api, live):
    make_templates(channels=("sms",))
    make_recipient("u3", phone="")

    response = api.post("/api/v1/notifications", notification_body(user_id="u3", channels=["sms"]), format="json")

    notification_id = response.json()["id"]
    wait_for(lambda: status_of(notification_id) == "failed", message="routing to fail")
    detail = api.get(f"/api/v1/notifications/{notification_id}").json()
    assert detail["deliveries"] == []
    assert detail["skipped_channels"] == [{"channel": "sms", "reason": "no_phone"}]
    assert detail["status_history"][-1]["reason"] == "no_channel_to_send"


def test_a_scheduled_notification_waits_in_the_database_until_due(api, live):
    from datetime import timedelta

    from django.utils import timezone

    make_templates(channels=("email",))
    make_recipient("u4")
    due = timezone.now() + timedelta(seconds=2)

    response = api.post("/api/v1/notifications", notification_body(user_id="u4", scheduled_at=due.isoformat()), format="json")

    assert response.status_code == 202
    assert response.json()["status"] == "scheduled"
    notification_id = response.json()["id"]
    assert status_of(notification_id) == "scheduled"
    wait_for(lambda: status_of(notification_id) == "sent", message="scheduled notification to be released")
    sent_at = delivery_of(notification_id, "email").sent_at
    assert sent_at >= due


def test_cancel_stops_a_scheduled_notification_and_refuses_a_sent_one(api, live):
    from datetime import timedelta

    from django.utils import timezone

    make_templates(channels=("email",))
    make_recipient("u5")
    later = (timezone.now() + timedelta(hours=1)).isoformat()
    scheduled = api.post("/api/v1/notifications", notification_body(user_id="u5", scheduled_at=later), format="json").json()
    immediate = api.post("/api/v1/notifications", notification_body(user_id="u5"), format="json").json()
    wait_for(lambda: status_of(immediate["id"]) == "sent", message="immediate notification")

    canceled = api.post(f"/api/v1/notifications/{scheduled['id']}/cancel")
    too_late = api.post(f"/api/v1/notifications/{immediate['id']}/cancel")

    assert canceled.status_code == 200
    assert canceled.json()["status"] == "canceled"
    assert too_late.status_code == 409
    assert too_late.json()["error"]["code"] == "not_cancelable"
    from notifications.models import Outbox

    assert not Outbox.objects.filter(notification_id=scheduled["id"]).exists()


def test_a_batch_of_notifications_is_routed_and_sent(api, live):
    # given 30 people
    make_templates()
    for n in range(30):
        make_recipient(f"batch-{n}")

    # when one batch names them all
    response = api.post("/api/v1/notifications/batch", {"notifications": [
        {"user_id": f"batch-{n}", "type": "transaction", "template": "welcome", "variables": {"name": "Ada"}, "channels": ["email"]}
        for n in range(30)
    ]}, format="json")

    # then each is sent exactly once
    assert response.json()["accepted"] == 30
    ids = [r["id"] for r in response.json()["results"]]
    wait_for(lambda: Delivery.objects.filter(notification_id__in=ids, status="sent").count() == 30, 30, message="all sent")
    assert Delivery.objects.filter(notification_id__in=ids).count() == 30


def test_likes_in_a_window_go_out_as_one_message_through_the_worker(api, recipient):
    # given a batch template that names the actors
    from templates_app.models import Template

    Template.objects.create(name="liked", channel="in_app", title="Like", body="{{ actor }} liked your post")
    Template.objects.create(name="liked_batch", channel="in_app", title="Likes",
                            body="{{ batch.actors[0] }} and {{ batch.others }} others liked your post")

    # when 30 likes arrive within a 2-second window
    ids = []
    for n in range(30):
        response = api.post("/api/v1/notifications", {
            "user_id": recipient.external_id, "type": "social", "template": "liked", "variables": {"actor": f"user{n}"},
            "channels": ["in_app"], "batch_key": "post-7", "batch": {"window_seconds": 2}}, format="json")
        assert response.status_code == 202, response.content
        ids.append(response.json()["id"])

    # then the worker holds them, beat closes the batch once, and one message is sent
    detail = wait_for(lambda: (d := api.get(f"/api/v1/notifications/{ids[-1]}").json())["batch"]
                      and d["batch"]["message"] and d, 30, message="the batch to close")
    message = wait_for(lambda: (m := api.get(f"/api/v1/notifications/{detail['batch']['message']}").json())["status"] == "sent"
                       and m, 30, message="the batch's message to be sent")
    assert message["batch"]["items"] == 30
    assert {api.get(f"/api/v1/notifications/{i}").json()["status"] for i in ids} == {"batched"}
    from inbox.models import InboxItem

    [item] = InboxItem.objects.filter(recipient=recipient)
    assert item.body == "user0 and 29 others liked your post"
    # and the person pages through all 30 from their inbox
    token = api.post(f"/api/v1/users/{recipient.external_id}/inbox-token", {}, format="json").json()["token"]
    from rest_framework.test import APIClient

    reader = APIClient()
    reader.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    first = reader.get(f"/api/v1/inbox/items/{item.pk}/batch?limit=20").json()
    second = reader.get(first["next"]).json()
    actors = [row["variables"]["actor"] for row in first["results"] + second["results"]]
    assert actors == [f"user{n}" for n in range(30)] and second["next"] is None
