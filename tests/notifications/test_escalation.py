"""Escalation steps in-process: planned with the first send, fired when due, canceled by a read,
and the race rules of notifications/escalation.py."""

from datetime import timedelta

import pytest
from django.utils import timezone

from delivery import receipts
from delivery.claims import claim, start_attempt
from delivery.models import Delivery
from notifications import escalation, routing
from notifications.models import Notification, WorkflowStep
from preferences.models import CategorySetting
from tests.factories import make_recipient, make_templates, notification_body

pytestmark = pytest.mark.django_db

STEPS = [{"channels": ["sms"], "wait_seconds": 300, "if": "not_read"}, {"channels": ["email"], "wait_seconds": 1800}]


@pytest.fixture
def ada(db):
    make_templates()
    return make_recipient("ada")


def accept_and_route(api, channels=("push", "in_app"), **body) -> Notification:
    body = {**body, **({"channels": list(channels)} if channels else {})}
    response = api.post("/api/v1/notifications", notification_body(user_id="ada", type="security", **body), format="json")
    assert response.status_code == 202, response.content
    routing.route(response.json()["id"])
    return Notification.objects.get(pk=response.json()["id"])


def steps(notification) -> list[tuple]:
    return list(WorkflowStep.objects.filter(notification=notification).values_list("position", "channels", "state", "reason"))


def read(notification, channel: str = "push") -> None:
    delivery = Delivery.objects.get(notification=notification, channel=channel)
    Delivery.objects.filter(pk=delivery.pk).update(status="sent", sent_at=timezone.now())
    receipts.record_event(source="app", event="opened", event_key=f"{delivery.pk}:opened", delivery=delivery,
                          provider_message_id="", occurred_at=None, payload={}, effect=receipts.engagement_effect("opened"))


def later(seconds: float):
    return timezone.now() + timedelta(seconds=seconds)


def test_the_first_send_plans_the_steps_the_next_one_waiting(api, ada):
    notification = accept_and_route(api, escalation=STEPS)

    assert steps(notification) == [(0, ["push", "in_app"], "done", ""), (1, ["sms"], "waiting", ""), (2, ["email"], "planned", "")]
    waiting = WorkflowStep.objects.get(notification=notification, position=1)
    assert abs((waiting.due_at - timezone.now()).total_seconds() - 300) < 5


def test_a_due_step_whose_condition_holds_sends_its_channel_and_starts_the_next_wait(api, ada):
    notification = accept_and_route(api, escalation=STEPS)

    assert escalation.escalate_due(10, now=later(299)) == 0
    assert escalation.escalate_due(10, now=later(301)) == 1

    sms = Delivery.objects.get(notification=notification, channel="sms")
    assert (sms.status, sms.escalation_step) == ("queued", 1)
    assert steps(notification)[1:] == [(1, ["sms"], "done", ""), (2, ["email"], "waiting", "")]
    assert WorkflowStep.objects.get(notification=notification, position=2).due_at > later(1800)


def test_a_read_before_the_wait_ends_cancels_every_step_waiting_for_it(api, ada):
    notification = accept_and_route(api, escalation=STEPS)

    read(notification)
    assert escalation.escalate_due(10, now=later(10_000)) == 0

    assert steps(notification)[1:] == [(1, ["sms"], "canceled", "read"), (2, ["email"], "canceled", "read")]
    assert not Delivery.objects.filter(notification=notification, channel__in=["sms", "email"]).exists()
    assert Notification.objects.get(pk=notification.pk).status == "read"


def test_a_read_after_the_step_fired_but_before_its_provider_call_cancels_the_delivery(api, ada):
    notification = accept_and_route(api, escalation=STEPS)
    escalation.escalate_due(10, now=later(301))

    read(notification)

    sms = Delivery.objects.get(notification=notification, channel="sms")
    assert (sms.status, sms.status_history[-1]["reason"]) == ("canceled", "read_before_sent")
    assert steps(notification)[2] == (2, ["email"], "canceled", "read")


def test_a_read_after_the_provider_call_started_lets_the_call_finish_and_stops_later_steps(api, ada):
    notification = accept_and_route(api, escalation=STEPS)
    escalation.escalate_due(10, now=later(301))
    sms = Delivery.objects.get(notification=notification, channel="sms")
    now = later(302)
    assert claim(sms.pk, now) and start_attempt(sms.pk, now, "twilio") is not None

    read(notification)

    assert Delivery.objects.get(pk=sms.pk).status == "sending"  # the call is under way: it goes on
    assert steps(notification)[2] == (2, ["email"], "canceled", "read")


def test_not_delivered_is_ended_by_a_delivery_receipt_and_the_next_step_waiting_for_a_read_starts(api, ada):
    notification = accept_and_route(api, escalation=[{"channels": ["sms"], "wait_seconds": 60, "if": "not_delivered"},
                                                     {"channels": ["email"], "wait_seconds": 60, "if": "not_read"}])
    push = Delivery.objects.get(notification=notification, channel="push")
    Delivery.objects.filter(pk=push.pk).update(status="sent", sent_at=timezone.now())
    receipts.record_event(source="fcm", event="delivered", event_key="d1", delivery=push, provider_message_id="",
                          occurred_at=None, payload={}, effect=receipts.ReceiptEffect("delivered", ("delivered_at",)))

    # the email step still waits for a read, from now on
    assert steps(notification)[1:] == [(1, ["sms"], "canceled", "delivered"), (2, ["email"], "waiting", "")]
    assert abs((WorkflowStep.objects.get(notification=notification, position=2).due_at - later(60)).total_seconds()) < 5


def test_the_categorys_steps_apply_unless_the_request_gives_its_own(api, ada):
    CategorySetting.objects.update_or_create(category="security", defaults={"escalation": STEPS[:1], "channels": ["push"],
                                                                            "required": True, "respects_quiet_hours": False})
    from preferences import store
    store.forget_category_policies()

    by_category = accept_and_route(api)
    none = accept_and_route(api, escalation=[], variables={"name": "Bo"})

    assert [s[1] for s in steps(by_category)] == [["push", "in_app"], ["sms"]]
    assert steps(none) == []


def test_a_first_send_that_reaches_nobody_escalates_at_once_and_the_notification_does_not_fail(api, ada):
    ada.devices.all().delete()
    response = api.post("/api/v1/notifications", notification_body(user_id="ada", type="security", channels=["push"],
                                                                    escalation=STEPS), format="json")
    routing.route(response.json()["id"])
    notification = Notification.objects.get(pk=response.json()["id"])

    assert notification.status == "sending"
    assert steps(notification)[:2] == [(0, [], "skipped", "no_channel_to_send"), (1, ["sms"], "waiting", "")]
    assert escalation.escalate_due(10) == 1
    assert Delivery.objects.filter(notification=notification, channel="sms").exists()


def test_a_step_on_a_channel_already_used_or_unreachable_is_skipped_with_reasons_and_the_last_one_fails_the_notification(api, ada):
    ada.phone = ""
    ada.save()
    notification = accept_and_route(api, escalation=[{"channels": ["push", "sms"], "wait_seconds": 0}])
    Delivery.objects.filter(notification=notification).update(status="failed")

    escalation.escalate_due(10, now=later(1))

    step = WorkflowStep.objects.get(notification=notification, position=1)
    assert (step.state, step.detail) == ("skipped", [{"channel": "push", "reason": "already_sent"},
                                                     {"channel": "sms", "reason": "no_phone"}])
    assert Notification.objects.get(pk=notification.pk).status == "failed"


def test_a_channel_that_cannot_reach_the_person_brings_the_next_step_forward(api, ada):
    notification = accept_and_route(api, escalation=STEPS)
    push = Delivery.objects.get(notification=notification, channel="push")

    routing.fall_back(push, "unregistered")

    assert WorkflowStep.objects.get(notification=notification, position=1).due_at <= timezone.now()
    assert not Delivery.objects.filter(notification=notification, fallback_from=push).exists()


def test_without_a_workflow_a_fallback_is_shown_as_a_step(api, ada):
    notification = accept_and_route(api, channels=("push",))
    push = Delivery.objects.get(notification=notification, channel="push")

    fallback = routing.fall_back(push, "unregistered")

    assert fallback.channel == "sms"
    view = api.get(f"/api/v1/notifications/{notification.pk}").json()["workflow"]
    assert [(s["kind"], s["channels"], s["state"]) for s in view] == [("send", ["push"], "done"),
                                                                     ("fallback", ["sms"], "done")]
    assert view[1]["reason"] == "push:unregistered"


def test_the_notification_shows_its_workflow(api, ada):
    notification = accept_and_route(api, escalation=STEPS)
    read(notification)

    view = api.get(f"/api/v1/notifications/{notification.pk}").json()["workflow"]

    assert [(s["position"], s["kind"], s["state"], s["reason"]) for s in view] == [
        (0, "send", "done", ""), (1, "escalation", "canceled", "read"), (2, "escalation", "canceled", "read")]
    assert view[1]["condition"] == "not_read" and view[1]["wait_seconds"] == 300


def test_admin_shows_a_notifications_workflow(api, ada, admin_client):
    notification = accept_and_route(api, escalation=STEPS)

    page = admin_client.get(f"/admin/notifications/notification/{notification.pk}/change/")

    assert page.status_code == 200
    assert "not_read" in page.content.decode() and "waiting" in page.content.decode()


def test_a_due_step_whose_condition_ended_is_canceled_and_a_later_one_with_another_condition_still_runs(api, ada):
    notification = accept_and_route(api, escalation=[{"channels": ["sms"], "wait_seconds": 0, "if": "not_delivered"},
                                                     {"channels": ["email"], "wait_seconds": 0, "if": "not_read"}])
    # delivered, recorded without a receipt's signal (as an older release or a repair would leave it)
    Delivery.objects.filter(notification=notification, channel="push").update(status="delivered", delivered_at=timezone.now())

    escalation.escalate_due(10, now=later(1))
    escalation.escalate_due(10, now=later(2))

    assert steps(notification)[1:] == [(1, ["sms"], "canceled", "delivered"), (2, ["email"], "done", "")]
    assert Delivery.objects.filter(notification=notification, channel="email").exists()


def test_a_first_send_held_back_as_a_duplicate_does_not_escalate(api, ada):
    accept_and_route(api, escalation=STEPS)

    again = accept_and_route(api, escalation=STEPS, idempotency_key="another")

    assert again.status == "deduplicated"
    assert steps(again) == []


def test_the_first_wait_starts_when_a_send_held_for_quiet_hours_goes_out(api, ada):
    from preferences.models import Preferences

    now = timezone.now()
    Preferences.objects.create(recipient=ada, quiet_hours_enabled=True, quiet_hours_start=(now - timedelta(hours=1)).time(),
                               quiet_hours_end=(now + timedelta(hours=2)).time())
    response = api.post("/api/v1/notifications", notification_body(user_id="ada", type="reminder", channels=["push"],
                                                                    escalation=STEPS), format="json")
    routing.route(response.json()["id"])

    push = Delivery.objects.get(notification_id=response.json()["id"], channel="push")
    step = WorkflowStep.objects.get(notification_id=response.json()["id"], position=1)
    assert push.held_until is not None
    assert step.due_at == push.held_until + timedelta(seconds=300)


def test_a_notification_whose_every_step_reached_nobody_fails(api, ada):
    ada.devices.all().delete()
    ada.phone = ""
    ada.save()
    response = api.post("/api/v1/notifications", notification_body(user_id="ada", type="security", channels=["push"],
                                                                    escalation=[{"channels": ["sms"], "wait_seconds": 0}]),
                        format="json")
    routing.route(response.json()["id"])
    assert Notification.objects.get(pk=response.json()["id"]).status == "sending"

    escalation.escalate_due(10, now=later(1))

    assert Notification.objects.get(pk=response.json()["id"]).status == "failed"
