"""Signed provider receipts and app engagement events move deliveries; forged ones change nothing."""

import base64
import json
import time
from urllib.parse import urlencode

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient
from twilio.request_validator import RequestValidator

from core.states import Status
from delivery.models import DeadLetter, Delivery, DeliveryEvent, Suppression
from notifications.models import Notification
from tests.factories import make_recipient, make_templates

PRIVATE_KEY = ec.generate_private_key(ec.SECP256R1())
PUBLIC_KEY = base64.b64encode(
    PRIVATE_KEY.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
).decode()
TWILIO_TOKEN = "twilio-test-auth-token"
BASE = "http://herald.test"
FORM = "application/x-www-form-urlencoded"

pytestmark = pytest.mark.usefixtures("receipt_settings")


@pytest.fixture
def receipt_settings():
    with override_settings(SENDGRID_WEBHOOK_PUBLIC_KEY=PUBLIC_KEY, TWILIO_AUTH_TOKEN=TWILIO_TOKEN, PUBLIC_BASE_URL=BASE):
        yield


def sent_delivery(channel="email", provider="sendgrid", message_id="msg-1", notification_type="transaction") -> Delivery:
    make_templates()
    recipient = make_recipient("rc1")
    notification = Notification.objects.create(
        recipient=recipient, type=notification_type, priority="high", template_name="welcome", status=Status.SENT,
    )
    return Delivery.objects.create(
        notification=notification, channel=channel, status=Status.SENT, provider=provider,
        provider_message_id=message_id, sent_at=timezone.now(), content={"body": "hi"},
    )


def signed_sendgrid(events, timestamp=None, key=PRIVATE_KEY):
    body = json.dumps(events) + "\r\n"
    timestamp = str(int(timestamp or time.time()))
    signature = key.sign((timestamp + body).encode(), ec.ECDSA(hashes.SHA256()))
    headers = {
        "HTTP_X_TWILIO_EMAIL_EVENT_WEBHOOK_SIGNATURE": base64.b64encode(signature).decode(),
        "HTTP_X_TWILIO_EMAIL_EVENT_WEBHOOK_TIMESTAMP": timestamp,
    }
    return body, headers


def post_sendgrid(events, **kwargs):
    body, headers = signed_sendgrid(events, **kwargs)
    return APIClient().post("/api/v1/webhooks/sendgrid", body, content_type="application/json", **headers)


def sg_event(delivery, event, event_id, **extra):
    return {"event": event, "sg_event_id": event_id, "sg_message_id": f"{delivery.provider_message_id}.filter0001",
            "timestamp": int(time.time()), "herald_delivery_id": str(delivery.pk), "email": "rc1@example.com", **extra}


def post_twilio(params, path="/api/v1/webhooks/twilio", token=TWILIO_TOKEN):
    signature = RequestValidator(token).compute_signature(BASE + path, params)
    return APIClient().post(path, urlencode(params), content_type=FORM, HTTP_X_TWILIO_SIGNATURE=signature)


def status_of(delivery) -> str:
    delivery.refresh_from_db()
    return delivery.status


@pytest.mark.django_db
def test_a_signed_delivered_event_moves_the_delivery_and_the_notification():
    delivery = sent_delivery()

    response = post_sendgrid([sg_event(delivery, "delivered", "e1")])

    assert response.status_code == 200
    assert status_of(delivery) == "delivered"
    assert delivery.delivered_at is not None
    assert Notification.objects.get(pk=delivery.notification_id).status == "delivered"


@pytest.mark.django_db
def test_open_and_click_events_mark_the_delivery_read_and_a_late_delivered_changes_nothing():
    delivery = sent_delivery()

    post_sendgrid([sg_event(delivery, "open", "e1"), sg_event(delivery, "click", "e2")])
    post_sendgrid([sg_event(delivery, "delivered", "e3")])

    assert status_of(delivery) == "read"
    assert delivery.clicked_at is not None
    assert delivery.delivered_at is None
    assert DeliveryEvent.objects.filter(delivery=delivery).count() == 3


@pytest.mark.django_db
def test_a_resent_event_is_applied_once():
    delivery = sent_delivery()

    post_sendgrid([sg_event(delivery, "delivered", "same")])
    second = post_sendgrid([sg_event(delivery, "delivered", "same")], timestamp=time.time() + 1)  # resent later

    assert second.json() == {"received": 1, "new": 0}
    assert [h["status"] for h in Delivery.objects.get(pk=delivery.pk).status_history] == ["delivered"]


@pytest.mark.django_db(transaction=True)
def test_a_hard_bounce_bounces_suppresses_the_address_and_falls_back_to_the_next_channel(broker):
    delivery = sent_delivery()

    post_sendgrid([sg_event(delivery, "bounce", "b1", type="bounce", reason="550 5.1.1 no such user")])

    assert status_of(delivery) == "bounced"
    assert Suppression.objects.get(channel="email", address="rc1@example.com").reason == "hard_bounce"
    fallback = Delivery.objects.get(fallback_from=delivery)
    assert fallback.channel == "sms"  # transaction falls back push → email → sms
    assert fallback.status_history[0]["reason"] == "fallback_from_email:hard_bounce"


@pytest.mark.django_db
def test_forged_unsigned_stale_and_replayed_sendgrid_events_are_refused_without_change():
    delivery = sent_delivery()
    events = [sg_event(delivery, "delivered", "e1")]
    other_key = ec.generate_private_key(ec.SECP256R1())

    forged = post_sendgrid(events, key=other_key)
    unsigned = APIClient().post("/api/v1/webhooks/sendgrid", json.dumps(events), content_type="application/json")
    stale = post_sendgrid(events, timestamp=time.time() - 3600)
    body, headers = signed_sendgrid([sg_event(delivery, "open", "e9")])
    garbage = APIClient().post("/api/v1/webhooks/sendgrid", body, content_type="application/json",
                               **{**headers, "HTTP_X_TWILIO_EMAIL_EVENT_WEBHOOK_SIGNATURE": "not base64!!"})

    assert (forged.status_code, unsigned.status_code, stale.status_code, garbage.status_code) == (403, 401, 403, 403)
    assert status_of(delivery) == "sent"
    assert not DeliveryEvent.objects.exists()

    first = APIClient().post("/api/v1/webhooks/sendgrid", body, content_type="application/json", **headers)
    replay = APIClient().post("/api/v1/webhooks/sendgrid", body, content_type="application/json", **headers)
    assert (first.status_code, replay.status_code) == (200, 403)
    assert replay.json()["error"]["code"] == "replayed"


@pytest.mark.django_db
def test_an_event_for_an_unknown_message_is_accepted_and_ignored():
    response = post_sendgrid([{"event": "delivered", "sg_event_id": "x", "sg_message_id": "nope.filter", "timestamp": 1,
                               "herald_delivery_id": "not-a-uuid"}])

    assert response.status_code == 200
    assert response.json()["new"] == 0
    assert not DeliveryEvent.objects.exists()


@pytest.mark.django_db
def test_a_receipt_that_beats_the_workers_sent_update_is_applied_after_it():
    from delivery.receipts import apply_pending

    delivery = sent_delivery()
    Delivery.objects.filter(pk=delivery.pk).update(status=Status.SENDING)

    post_sendgrid([sg_event(delivery, "delivered", "early")])
    assert status_of(delivery) == "sending"
    Delivery.objects.filter(pk=delivery.pk).update(status=Status.SENT)
    apply_pending(Delivery.objects.get(pk=delivery.pk))

    assert status_of(delivery) == "delivered"


@pytest.mark.django_db
def test_twilio_status_callbacks_move_sms_deliveries():
    delivery = sent_delivery(channel="sms", provider="twilio", message_id="SM1")
    path = f"/api/v1/webhooks/twilio?delivery={delivery.pk}"

    sent = post_twilio({"MessageSid": "SM1", "MessageStatus": "sent", "AccountSid": "AC1"}, path)
    delivered = post_twilio({"MessageSid": "SM1", "MessageStatus": "delivered", "AccountSid": "AC1"}, path)

    assert (sent.status_code, delivered.status_code) == (200, 200)
    assert status_of(delivery) == "delivered"


@pytest.mark.django_db(transaction=True)
def test_an_undeliverable_landline_fails_marks_the_number_and_falls_back(broker):
    delivery = sent_delivery(channel="sms", provider="twilio", message_id="SM2", notification_type="security")

    post_twilio({"MessageSid": "SM2", "MessageStatus": "undelivered", "ErrorCode": "30006"})

    assert status_of(delivery) == "failed"
    assert delivery.error_code == "twilio_30006"
    assert Suppression.objects.get(channel="sms", address="+14155550100").reason == "twilio_30006"
    assert Delivery.objects.get(fallback_from=delivery).channel == "email"


@pytest.mark.django_db
def test_forged_and_replayed_twilio_callbacks_are_refused():
    delivery = sent_delivery(channel="sms", provider="twilio", message_id="SM3")
    params = {"MessageSid": "SM3", "MessageStatus": "delivered"}

    forged = post_twilio(params, token="wrong-token")
    unsigned = APIClient().post("/api/v1/webhooks/twilio", urlencode(params), content_type=FORM)
    first = post_twilio(params)
    replay = post_twilio(params)

    assert (forged.status_code, unsigned.status_code, first.status_code, replay.status_code) == (403, 401, 200, 403)
    assert status_of(delivery) == "delivered"


@pytest.mark.django_db
def test_apps_report_opens_and_clicks(api):
    delivery = sent_delivery(channel="push", provider="fcm", message_id="p1")
    url = f"/api/v1/notifications/{delivery.notification_id}/events"

    opened = api.post(url, {"event": "opened", "channel": "push"}, format="json")
    bad = api.post(url, {"event": "liked"}, format="json")
    missing = api.post(url, {"event": "opened", "channel": "sms"}, format="json")

    assert opened.status_code == 202 and opened.json()["status"] == "read"
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "event"
    assert missing.status_code == 404


@pytest.mark.django_db(transaction=True)
def test_dead_letters_are_listed_and_requeued_through_the_api(api, broker):
    delivery = sent_delivery()
    Delivery.objects.filter(pk=delivery.pk).update(status=Status.FAILED, attempts=6)
    letter = DeadLetter.objects.create(delivery=delivery, reason="max_attempts_exceeded", error_code="http_503")

    listed = api.get("/api/v1/dead-letters?requeued=false").json()["results"]
    requeued = api.post(f"/api/v1/dead-letters/{letter.pk}/requeue")
    again = api.post(f"/api/v1/dead-letters/{letter.pk}/requeue")

    assert [row["id"] for row in listed] == [letter.pk]
    assert requeued.status_code == 200 and requeued.json()["requeued_at"]
    assert again.status_code == 409
    status_of(delivery)  # refresh; a running worker may already be sending it again
    assert any(h["status"] == "queued" and h.get("reason") == "requeued" for h in delivery.status_history)
    assert api.get("/api/v1/dead-letters?requeued=maybe").status_code == 400


@pytest.mark.django_db
def test_a_large_batch_of_sendgrid_events_is_accepted_beyond_the_api_body_limit():
    delivery = sent_delivery()
    events = [sg_event(delivery, "processed", f"p{i}", padding="x" * 200) for i in range(400)]
    events.append(sg_event(delivery, "delivered", "last"))

    body, _ = signed_sendgrid(events)
    assert len(body) > 64 * 1024
    response = post_sendgrid(events)

    assert response.status_code == 200
    assert status_of(delivery) == "delivered"
