"""Every real provider SDK, driven by a real worker against the local provider simulator.

The worker here is configured with credentials for SendGrid, SMTP, Twilio, FCM, APNs and
outgoing webhooks, all pointed at local servers (the simulator, an SMTP server, a webhook
receiver); receipts come back signed to a live Herald server.
"""

import uuid

import requests
from standardwebhooks.webhooks import Webhook

from delivery import breaker
from delivery.models import DeadLetter, Delivery, DeliveryAttempt, Suppression
from preferences.models import Device
from tests.factories import delivery_of, delivery_status, notification_body, status_of
from tests.providers_stack import SG_PRIVATE_KEY, SG_PUBLIC_KEY, TWILIO_SID, TWILIO_TOKEN, WEBHOOK_SECRET  # noqa: E402,F401
from tests.services import wait_for


def send(api, **body) -> str:
    response = api.post("/api/v1/notifications", notification_body(user_id="p1", **body), format="json")
    assert response.status_code == 202, response.content
    return response.json()["id"]


def sent_via(notification_id, channel, provider, timeout=20):
    wait_for(lambda: (d := delivery_of(notification_id, channel)) and d.status in ("sent", "delivered", "read"),
             timeout, message=f"{channel} to be sent via {provider}")
    delivery = delivery_of(notification_id, channel)
    assert delivery.provider == provider
    return delivery


def test_email_goes_out_through_sendgrid_with_the_delivery_id_for_receipts(api, person, providers):
    notification_id = send(api, channels=["email"])

    delivery = sent_via(notification_id, "email", "sendgrid")
    [request] = providers.requests("sendgrid")
    body = request["body"]
    assert body["personalizations"][0]["to"] == [{"email": "p1@example.com"}]
    assert body["subject"] == "Hi Ada"
    assert {c["type"] for c in body["content"]} == {"text/plain", "text/html"}
    assert body["custom_args"]["herald_delivery_id"] == str(delivery.pk)
    assert body["categories"] == ["transaction"]
    assert delivery.provider_message_id == request["message_id"]


def test_sms_goes_out_through_twilio_with_a_status_callback(api, person, providers, live_server):
    notification_id = send(api, channels=["sms"])

    delivery = sent_via(notification_id, "sms", "twilio")
    [request] = providers.requests("twilio")
    assert request["body"]["To"] == "+14155550101"
    assert request["body"]["Body"] == "Hello Ada via sms"
    assert request["body"]["StatusCallback"] == f"{live_server.url}/api/v1/webhooks/twilio?delivery={delivery.pk}"
    assert delivery.provider_message_id.startswith("SM")


def test_android_push_goes_out_through_fcm_after_the_oauth_exchange(api, person, providers):
    Device.objects.create(recipient=person, platform="android", token="android-token-1")

    notification_id = send(api, channels=["push"])

    sent_via(notification_id, "push", "fcm")
    [message] = providers.requests("fcm")
    assert message["body"]["message"]["token"] == "android-token-1"
    assert message["body"]["message"]["notification"] == {"title": "Hello", "body": "Hello Ada via push"}
    assert message["body"]["message"]["android"]["priority"] == "high"
    assert len(providers.requests("fcm_oauth")) >= 1


def test_ios_push_goes_out_through_apns_with_critical_priority_and_collapse_id(api, person, providers):
    Device.objects.create(recipient=person, platform="ios", token="a1" * 32)

    notification_id = send(api, channels=["push"], type="security", metadata={"collapse_key": "login-alert"})

    sent_via(notification_id, "push", "apns")
    [request] = providers.requests("apns")
    assert request["headers"]["apns-priority"] == "10"
    assert request["headers"]["apns-collapse-id"] == "login-alert"
    assert request["headers"]["apns-topic"] == "com.example.herald"
    assert request["body"]["aps"]["alert"]["body"] == "Hello Ada via push"


def test_a_webhook_is_signed_per_standard_webhooks(api, person, providers, webhook_receiver):
    notification_id = send(api, channels=["webhook"])

    sent_via(notification_id, "webhook", "webhook")
    [received] = webhook_receiver.received
    payload = Webhook(WEBHOOK_SECRET).verify(received["body"], {k.lower(): v for k, v in received["headers"].items()})
    assert payload["notification_id"] == notification_id
    assert payload["content"]["body"] == "Hello Ada via webhook"


def test_a_gone_webhook_endpoint_is_not_called_again(api, person, providers, webhook_receiver):
    webhook_receiver.status = 410

    notification_id = send(api, channels=["webhook"])

    wait_for(lambda: status_of(notification_id) == "failed", message="webhook 410")
    assert Suppression.objects.get(channel="webhook").reason == "endpoint_gone"
    assert len(webhook_receiver.received) == 1


def test_a_rate_limited_sms_is_retried_after_the_providers_retry_after_then_sent(api, person, providers):
    providers.add_fault("twilio", status=429, error=20429, retry_after=1, count=1)

    notification_id = send(api, channels=["sms"])

    delivery = sent_via(notification_id, "sms", "twilio")
    attempts = list(DeliveryAttempt.objects.filter(delivery=delivery).order_by("pk"))
    assert [a.outcome for a in attempts] == ["retry", "sent"]
    assert attempts[0].error_code == "rate_limited"
    assert attempts[0].retry_in_seconds >= 1
    assert (attempts[1].started_at - attempts[0].finished_at).total_seconds() >= 1


def test_an_unreadable_provider_answer_is_retried_not_a_crash(api, person, providers):
    providers.add_fault("twilio", malformed=True, count=1)

    notification_id = send(api, channels=["sms"])

    delivery = sent_via(notification_id, "sms", "twilio")
    outcomes = list(DeliveryAttempt.objects.filter(delivery=delivery).order_by("pk").values_list("outcome", flat=True))
    assert outcomes == ["retry", "sent"]


def test_an_unregistered_fcm_token_deactivates_the_device_and_falls_back_to_email(api, person, providers):
    Device.objects.create(recipient=person, platform="android", token="invalid-old-phone")

    notification_id = send(api, channels=["push"])

    wait_for(lambda: delivery_of(notification_id, "email") is not None, message="fallback email")
    push = delivery_of(notification_id, "push")
    assert push.status == "failed"
    assert push.attempts == 1  # not retried
    device = Device.objects.get(token="invalid-old-phone")
    assert (device.is_active, device.invalidated_reason) == (False, "unregistered")
    email = sent_via(notification_id, "email", "sendgrid")
    assert email.fallback_from_id == push.pk
    detail = api.get(f"/api/v1/notifications/{notification_id}").json()
    assert detail["status"] == "sent"


def test_a_dead_apns_token_is_deactivated_while_a_live_one_still_gets_the_push(api, person, providers):
    Device.objects.create(recipient=person, platform="ios", token="gone" + "0" * 60)
    Device.objects.create(recipient=person, platform="ios", token="b2" * 32)

    notification_id = send(api, channels=["push"])

    sent_via(notification_id, "push", "apns")
    assert Device.objects.get(token="gone" + "0" * 60).is_active is False
    assert Device.objects.get(token="b2" * 32).is_active is True


def test_an_invalid_number_is_suppressed_and_the_notification_falls_back_to_email(api, person, providers):
    person.phone = "+15005550001"
    person.save()

    notification_id = send(api, channels=["sms"], type="security")

    email = sent_via(notification_id, "email", "sendgrid")
    sms = delivery_of(notification_id, "sms")
    assert (sms.status, sms.error_code, sms.attempts) == ("failed", "invalid_number", 1)
    assert Suppression.objects.get(channel="sms", address="+15005550001").reason == "invalid_number"
    assert email.fallback_from_id == sms.pk
    # the next security alert skips SMS at routing, saying why
    second = send(api, channels=["sms", "email"], type="security", variables={"name": "Grace"})
    sent_via(second, "email", "sendgrid")
    assert api.get(f"/api/v1/notifications/{second}").json()["skipped_channels"] == [
        {"channel": "sms", "reason": "invalid_number"},
    ]


def test_a_sendgrid_auth_failure_fails_over_to_smtp(api, person, providers, smtp):
    providers.add_fault("sendgrid", status=401, error="The provided authorization grant is invalid")

    notification_id = send(api, channels=["email"])

    sent_via(notification_id, "email", "smtp")
    [message] = smtp.messages
    assert message["to"] == ["p1@example.com"]
    assert "Subject: Hi Ada" in message["data"]
    attempts = list(DeliveryAttempt.objects.filter(delivery__notification_id=notification_id).order_by("pk"))
    assert [(a.provider, a.outcome) for a in attempts] == [("sendgrid", "failed"), ("smtp", "sent")]


def test_an_sms_provider_outage_does_not_use_up_the_message_it_expires_only_with_its_time_to_live(api, person, providers):
    # given Twilio failing with 503 for longer than HERALD_MAX_ATTEMPTS (4 here) tries
    providers.add_fault("twilio", status=503)

    # when a reminder (time to live: 12 s in the test settings) is sent
    notification_id = send(api, channels=["sms"], type="reminder")

    # then it is tried past the attempt limit without failing, and gives up only when its time is up
    wait_for(lambda: (d := delivery_of(notification_id, "sms")) is not None and d.attempts > 4, 30, message="more tries than max attempts")
    assert status_of(notification_id) != "failed"
    wait_for(lambda: status_of(notification_id) == "failed", 30, message="the reminder to expire")
    delivery = delivery_of(notification_id, "sms")
    assert delivery.error_code == "expired"
    assert DeadLetter.objects.get(delivery=delivery).reason == "expired"


def test_an_email_provider_outage_opens_the_breaker_fails_over_and_recovers(api, person, providers, smtp):
    # given SendGrid is down (a compressed ten-minute outage)
    outage = providers.add_fault("sendgrid", status=503)

    # when emails keep coming
    during = [send(api, channels=["email"], variables={"name": f"n{i}"}) for i in range(6)]

    # then every one goes out through SMTP, and after three failures SendGrid is not even called
    for notification_id in during:
        sent_via(notification_id, "email", "smtp")
    assert breaker.state_of("sendgrid") == "open"
    called = len(providers.requests("sendgrid"))
    skipped = DeliveryAttempt.objects.filter(provider="sendgrid", outcome="skipped").count()
    # three failures open it; the calls already in flight when it opened (a chunk's calls go out
    # together) still reach SendGrid, and each email is either a call or a skipped attempt
    assert 3 <= called <= 6
    assert called + skipped == 6

    # while it is open, the next emails skip SendGrid for SMTP (one half-open probe at most, if
    # its reset time passes meanwhile)
    for notification_id in [send(api, channels=["email"], variables={"name": f"open-{i}"}) for i in range(3)]:
        sent_via(notification_id, "email", "smtp")
    probes = len(providers.requests("sendgrid")) - called
    assert probes <= 1
    assert DeliveryAttempt.objects.filter(provider="sendgrid", outcome="skipped").count() == skipped + 3 - probes

    # when SendGrid recovers and the breaker's reset time passes
    providers.remove_fault(outage)
    after = send(api, channels=["email"], variables={"name": "after"})
    wait_for(lambda: delivery_status(after, "email") == "sent", message="post-outage email")

    # then the half-open probe succeeds, the breaker closes, and SendGrid is used again
    later = wait_for(lambda: _sent_through_sendgrid_eventually(api), 20, message="SendGrid to be used again")
    assert later
    assert breaker.state_of("sendgrid") == "closed"


def _sent_through_sendgrid_eventually(api) -> bool:
    # distinct variables each time, or deduplication would rightly suppress the repeats
    notification_id = send(api, channels=["email"], variables={"name": f"probe-{uuid.uuid4()}"})
    wait_for(lambda: status_of(notification_id) == "sent", message="probe email")
    return delivery_of(notification_id, "email").provider == "sendgrid"


def test_the_shared_rate_limit_keeps_a_burst_of_sms_under_the_providers_cap(api, person, providers):
    # given Twilio allows 40/s (and Herald is configured for 40/s)
    providers.set_rate_limit("twilio", 40)

    # when 120 SMS are sent at once
    ids = [send(api, channels=["sms"], variables={"name": f"n{i}"}) for i in range(120)]

    # then all arrive, paced, with not a single 429
    wait_for(lambda: Delivery.objects.filter(notification_id__in=ids, status="sent").count() == 120, 60,
             message="120 SMS to be sent")
    requests = providers.requests("twilio")
    assert len(requests) == 120
    assert not [r for r in requests if r["status"] == 429]
    times = sorted(r["time"] for r in requests)
    assert times[-1] - times[0] >= (120 - 40 / 10) / 40 * 0.9


def test_signed_receipts_from_the_providers_move_deliveries_to_delivered_and_bounced(api, person, providers, live_server):
    providers.configure_receipts(
        sendgrid_webhook_url=f"{live_server.url}/api/v1/webhooks/sendgrid",
        sendgrid_private_key_pem=SG_PRIVATE_KEY, twilio_auth_token=TWILIO_TOKEN,
    )

    email = send(api, channels=["email"])
    sms = send(api, channels=["sms"], variables={"name": "Grace"})

    wait_for(lambda: delivery_status(email, "email") == "delivered", message="email receipt")
    wait_for(lambda: delivery_status(sms, "sms") == "delivered", message="sms receipt")
    assert delivery_of(email, "email").delivered_at is not None

    person.email = "gone@bounce.test"
    person.save()
    bounced = send(api, channels=["email"], variables={"name": "Bounce"})
    wait_for(lambda: delivery_status(bounced, "email") == "bounced", message="bounce receipt")
    assert Suppression.objects.get(channel="email", address="gone@bounce.test").reason == "hard_bounce"
    fallback = sent_via(bounced, "sms", "twilio")  # a transaction falls back push → email → sms
    assert fallback.fallback_from_id == delivery_of(bounced, "email").pk


def test_one_click_unsubscribe_from_a_marketing_email_suppresses_the_next_one(api, person, providers, live_server):
    # given a person who opted in to marketing gets an offer by email
    etag = api.get("/api/v1/users/p1/preferences")["ETag"]
    api.patch("/api/v1/users/p1/preferences", {"categories": {"marketing": {"enabled": True}}}, format="json", HTTP_IF_MATCH=etag)
    offer = send(api, type="marketing", channels=["email"], variables={"name": "offer 1"})
    sent_via(offer, "email", "sendgrid")
    [request] = providers.requests("sendgrid")
    headers = request["body"]["headers"]
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = headers["List-Unsubscribe"].strip("<>")
    assert url.startswith(live_server.url)
    assert url in next(c["value"] for c in request["body"]["content"] if c["type"] == "text/plain")

    # when the mail client does the RFC 8058 one-click POST
    response = requests.post(url, data="List-Unsubscribe=One-Click",
                             headers={"Content-Type": "application/x-www-form-urlencoded"}, timeout=5)

    # then marketing is off in the preferences API and the next offer is suppressed as unsubscribed
    assert response.status_code == 200
    assert api.get("/api/v1/users/p1/preferences").json()["categories"]["marketing"]["enabled"] is False
    second = send(api, type="marketing", channels=["email"], variables={"name": "offer 2"})
    wait_for(lambda: status_of(second) == "failed", message="suppressed offer")
    assert api.get(f"/api/v1/notifications/{second}").json()["skipped_channels"] == [
        {"channel": "email", "reason": "unsubscribed"},
    ]
    assert len(providers.requests("sendgrid")) == 1
