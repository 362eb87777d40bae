"""What routing's status move says about a notification that sent nothing: held back as a repeat, or failed."""

import pytest

from notifications import routing
from notifications.models import Notification
from tests.factories import make_recipient, make_templates, notification_body

pytestmark = pytest.mark.django_db


@pytest.fixture
def ada(db):
    make_templates()
    return make_recipient("ada")


def accept_and_route(api, **body) -> Notification:
    response = api.post("/api/v1/notifications", notification_body(user_id="ada", **body), format="json")
    assert response.status_code == 202, response.content
    routing.route(response.json()["id"])
    return Notification.objects.get(pk=response.json()["id"])


def test_a_repeat_within_the_dedup_window_is_deduplicated_not_failed(api, ada):
    first = accept_and_route(api, channels=["email", "push"])

    again = accept_and_route(api, channels=["email", "push"], idempotency_key="a-second-request")

    assert first.status == "sending"
    assert again.status == "deduplicated"
    assert again.skipped_channels == [{"channel": "email", "reason": "duplicate"}, {"channel": "push", "reason": "duplicate"}]
    assert again.status_history[-1]["status"] == "deduplicated" and again.status_history[-1]["reason"] == "duplicate"
    assert not again.deliveries.exists()


def test_a_repeat_whose_other_channels_cannot_reach_the_person_is_still_deduplicated(api, ada):
    # The first one skipped SMS for the same reason: what it did send, email, is what this one repeats.
    ada.phone = ""
    ada.save()
    accept_and_route(api, channels=["sms", "email"])

    again = accept_and_route(api, channels=["sms", "email"], idempotency_key="a-second-request")

    assert again.status == "deduplicated"
    assert {(s["channel"], s["reason"]) for s in again.skipped_channels} == {("sms", "no_phone"), ("email", "duplicate")}


def test_a_notification_that_reaches_no_channel_for_other_reasons_fails(api, ada):
    ada.phone = ""
    ada.save()

    nothing = accept_and_route(api, channels=["sms"])

    assert nothing.status == "failed"
    assert nothing.status_history[-1]["reason"] == "no_channel_to_send"
