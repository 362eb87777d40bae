"""Escalation with a real worker, its beat and the provider simulator: push not read → SMS; a read
before the wait ends → no SMS; a read while the SMS is with Twilio → the SMS goes, the email step does not."""

from datetime import timedelta

import pytest
from django.utils import timezone

from delivery.models import DeliveryAttempt
from notifications.models import WorkflowStep
from preferences.models import Device
from tests.factories import delivery_of, notification_body, status_of
from tests.services import wait_for

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def phone_user(person):
    Device.objects.create(recipient=person, platform="android", token="android-escalation")
    return person


def send(api, escalation: list, channels=("push",), name: str = "Ada") -> str:
    response = api.post("/api/v1/notifications", notification_body(
        user_id="p1", type="security", channels=list(channels), escalation=escalation, variables={"name": name}), format="json")
    assert response.status_code == 202, response.content
    return response.json()["id"]


def step(notification_id, position: int) -> WorkflowStep | None:
    return WorkflowStep.objects.filter(notification_id=notification_id, position=position).first()


def sent(notification_id, channel: str) -> bool:
    delivery = delivery_of(notification_id, channel)
    return delivery is not None and delivery.status in ("sent", "delivered", "read")


def opened(api, notification_id, channel: str = "push") -> None:
    response = api.post(f"/api/v1/notifications/{notification_id}/events", {"event": "opened", "channel": channel}, format="json")
    assert response.status_code == 202, response.content


def wait_until_the_sweep_has_passed(api, moment) -> None:
    """A sentinel step due just after `moment` has fired: the sweep, which takes due steps oldest
    first, has looked at everything due before it."""
    wait = max(0, int((moment - timezone.now()).total_seconds()) + 1)
    sentinel = send(api, [{"channels": ["webhook"], "wait_seconds": wait}], channels=("in_app",), name="sentinel")
    wait_for(lambda: (found := step(sentinel, 1)) is not None and found.state == "done", 30, 0.1,
             message="the sentinel step to fire")


def test_a_push_not_read_within_the_wait_escalates_to_sms(api, phone_user, providers):
    notification_id = send(api, [{"channels": ["sms"], "wait_seconds": 2, "if": "not_read"}])

    wait_for(lambda: sent(notification_id, "sms"), 30, 0.1, message="the escalation SMS to go out")

    assert len(providers.requests("fcm")) == 1
    [sms] = providers.requests("twilio")
    assert sms["body"]["To"] == "+14155550101"
    push_sent, sms_delivery = delivery_of(notification_id, "push").sent_at, delivery_of(notification_id, "sms")
    assert sms_delivery.escalation_step == 1
    assert (sms_delivery.created_at - push_sent).total_seconds() >= 1.5
    workflow = api.get(f"/api/v1/notifications/{notification_id}").json()["workflow"]
    assert [(s["channels"], s["state"]) for s in workflow] == [(["push"], "done"), (["sms"], "done")]


def test_a_read_before_the_wait_ends_sends_no_sms(api, phone_user, providers):
    notification_id = send(api, [{"channels": ["sms"], "wait_seconds": 4, "if": "not_read"}])
    wait_for(lambda: sent(notification_id, "push"), 20, 0.05, message="the push to go out")
    due = step(notification_id, 1).due_at

    opened(api, notification_id)

    assert (step(notification_id, 1).state, step(notification_id, 1).reason) == ("canceled", "read")
    wait_until_the_sweep_has_passed(api, due + timedelta(seconds=1))
    assert delivery_of(notification_id, "sms") is None
    assert providers.requests("twilio") == []
    assert status_of(notification_id) == "read"


def test_a_read_while_the_sms_is_with_twilio_lets_it_finish_and_stops_the_email_step(api, phone_user, providers):
    providers.add_fault("twilio", latency_ms=2500, count=1)
    notification_id = send(api, [{"channels": ["sms"], "wait_seconds": 1, "if": "not_read"},
                                 {"channels": ["email"], "wait_seconds": 2, "if": "not_read"}])
    wait_for(lambda: (sms := delivery_of(notification_id, "sms")) is not None
             and DeliveryAttempt.objects.filter(delivery=sms).exists(), 20, 0.02, message="the SMS attempt to start")

    opened(api, notification_id)

    wait_for(lambda: sent(notification_id, "sms"), 20, 0.1, message="the SMS already with Twilio to finish")
    assert len(providers.requests("twilio")) == 1
    email_step = step(notification_id, 2)
    assert (email_step.state, email_step.reason) == ("canceled", "read")
    wait_until_the_sweep_has_passed(api, delivery_of(notification_id, "sms").created_at + timedelta(seconds=3))
    assert delivery_of(notification_id, "email") is None
    assert providers.requests("sendgrid") == []
    workflow = api.get(f"/api/v1/notifications/{notification_id}").json()["workflow"]
    assert [(s["channels"], s["state"], s["reason"]) for s in workflow] == [
        (["push"], "done", ""), (["sms"], "done", ""), (["email"], "canceled", "read")]
