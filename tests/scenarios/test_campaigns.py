"""Campaigns end to end: fan-out and delivery by real workers, SMS through Twilio's SDK to the simulator."""

import time
from collections import Counter

import pytest

from campaigns.models import Campaign
from core.states import Status
from delivery.models import Delivery, DeliveryAttempt
from notifications.models import Notification
from preferences.models import Device, Recipient
from tests.factories import make_templates
from tests.services import wait_for

PEOPLE = 5000


@pytest.fixture
def sms_campaign_worker(workers, providers, provider_env):
    """The provider stack's worker without its Twilio rate limit, with room for calls in flight."""
    return workers.use("campaign-sms", {**provider_env, "HERALD_RATE_LIMITS": "", "HERALD_WORKER_CONCURRENCY": "8",
                                        "HERALD_FAN_OUT_CHUNK": "100"})


def make_people(count: int, prefix: str = "c") -> list[str]:
    make_templates()
    people = Recipient.objects.bulk_create([
        Recipient(external_id=f"{prefix}{n}", phone=f"+1415{n:07d}", email="") for n in range(count)
    ])
    Device.objects.filter(recipient__in=people).delete()
    return [p.external_id for p in people]


def start_campaign(api, user_ids: list[str], **overrides) -> str:
    body = {"type": "transaction", "template": "welcome", "variables": {"name": "all"}, "channels": ["sms"],
            "audience": {"user_ids": user_ids}, **overrides}
    response = api.post("/api/v1/campaigns", body, format="json")
    assert response.status_code == 202, response.content
    return response.json()["id"]


def progress(api, campaign_id) -> dict:
    return api.get(f"/api/v1/campaigns/{campaign_id}").json()


@pytest.mark.timeout(600)
def test_a_campaign_survives_workers_killed_during_fan_out_and_delivery_sending_each_person_at_most_once(
        api, providers, sms_campaign_worker):
    # given 5,000 people with a phone
    user_ids = make_people(PEOPLE)
    started = time.monotonic()

    # when the campaign starts, and its worker is SIGKILLed twice during fan-out...
    campaign_id = start_campaign(api, user_ids)
    for fanned in (1000, 3000):
        wait_for(lambda fanned=fanned: Campaign.objects.get(pk=campaign_id).accepted >= fanned, 60, 0.01,
                 message=f"{fanned} notifications fanned out")
        sms_campaign_worker.kill()
        sms_campaign_worker.start()
    # ...and once during delivery
    wait_for(lambda: Delivery.objects.filter(notification__campaign_id=campaign_id, status="sent").count() >= 1500, 120,
             message="deliveries under way")
    sms_campaign_worker.kill()
    sms_campaign_worker.start()

    # then every person ends with exactly one notification, and it is sent
    print(f"killed three times; {time.monotonic() - started:.0f}s")
    wait_for(lambda: progress(api, campaign_id)["status"] == "completed", 500, 0.5, message="the campaign to complete")
    detail = progress(api, campaign_id)
    assert (detail["targeted"], detail["accepted"], detail["skipped"]) == (PEOPLE, PEOPLE, {})
    per_person = Counter(Notification.objects.filter(campaign_id=campaign_id).values_list("recipient_id", flat=True))
    assert len(per_person) == PEOPLE and set(per_person.values()) == {1}
    # and Twilio was asked at most once per person; anyone it never heard from has a recorded unknown outcome
    calls = Counter(request["body"]["To"] for request in providers.requests("twilio") if request["method"] == "POST")
    twice = [to for to, n in calls.items() if n > 1]
    assert not twice, [(d.status_history, list(d.attempt_log.values("number", "provider", "outcome", "error_code")))
                       for d in Delivery.objects.filter(notification__recipient__phone__in=twice[:3])]
    deliveries = Delivery.objects.filter(notification__campaign_id=campaign_id).select_related("notification__recipient")
    for delivery in deliveries:
        if calls[delivery.notification.recipient.phone] == 0:
            assert DeliveryAttempt.objects.filter(delivery=delivery, outcome="unknown").exists(), delivery.pk
    assert detail["notifications"]["sent"] + detail["notifications"]["failed"] == PEOPLE
    print(f"5,000-person campaign with three worker kills: {time.monotonic() - started:.0f}s")


def test_canceling_mid_campaign_stops_what_was_not_yet_sent(api, providers, sms_campaign_worker):
    # given a campaign whose sends are slowed down by the provider
    providers.add_fault("twilio", latency_ms=300)
    user_ids = make_people(300, prefix="x")
    campaign_id = start_campaign(api, user_ids)
    wait_for(lambda: Delivery.objects.filter(notification__campaign_id=campaign_id, status="sent").count() >= 10, 60,
             message="the first sends")

    # when it is canceled
    response = api.post(f"/api/v1/campaigns/{campaign_id}/cancel")
    assert response.status_code == 200
    sends_at_cancel = len(providers.requests("twilio"))

    # then only what was already with the provider completes; the rest is canceled and never sent
    wait_for(lambda: not Delivery.objects.filter(notification__campaign_id=campaign_id, status__in=["queued", "sending"]).exists(),
             30, message="in-flight sends to finish")
    time.sleep(1)  # a window for any wrongly queued send to show up in the simulator's log
    sent = Delivery.objects.filter(notification__campaign_id=campaign_id, status="sent").count()
    assert len(providers.requests("twilio")) <= sends_at_cancel + 16  # at most the calls in flight at the cancel
    detail = progress(api, campaign_id)
    assert detail["status"] == "canceled"
    assert detail["notifications"]["canceled"] >= 300 - sent - 16
    assert Notification.objects.filter(campaign_id=campaign_id, status=Status.CANCELED).count() == detail["notifications"]["canceled"]


def test_a_topic_campaign_is_delivered_to_its_subscribers(api, providers, sms_campaign_worker):
    user_ids = make_people(20, prefix="t")
    api.put("/api/v1/topics/launch", {"name": "Launch"}, format="json")
    api.post("/api/v1/topics/launch/subscribers", {"user_ids": user_ids[:12]}, format="json")

    campaign_id = start_campaign(api, [], audience={"topic": "launch"})

    wait_for(lambda: progress(api, campaign_id)["status"] == "completed", 60, 0.2, message="the topic campaign")
    assert progress(api, campaign_id)["notifications"]["sent"] == 12
    to = sorted(request["body"]["To"] for request in providers.requests("twilio"))
    assert to == sorted(f"+1415{n:07d}" for n in range(12))
