"""Campaigns and topics over the REST API, with the fan-out run in this process (no worker)."""

import threading

import pytest
from django.db import connection

from campaigns import fanout
from campaigns.models import Campaign, Topic, TopicSubscription
from notifications.models import Notification
from preferences.models import Recipient
from tests.factories import make_recipient, make_templates


@pytest.fixture
def people(transactional_db, broker):
    make_templates()
    for n in range(5):
        make_recipient(f"p{n}")
    make_recipient("gone", is_active=False)


def campaign_body(**overrides) -> dict:
    body = {"name": "launch", "type": "marketing", "template": "welcome", "variables": {"name": "all"},
            "channels": ["email"], "audience": {"user_ids": ["p0", "p1"]}}
    body.update(overrides)
    return body


def create(api, **overrides):
    return api.post("/api/v1/campaigns", campaign_body(**overrides), format="json")


def test_a_campaign_to_user_ids_sends_each_known_active_person_once_and_counts_the_rest(api, people):
    # given user ids with a repeat, an unknown id and a deactivated person
    ids = ["p0", "p1", "p0", "nobody", "gone", "p2"]

    # when the campaign is created and fanned out
    response = create(api, audience={"user_ids": ids})
    assert response.status_code == 202
    campaign_id = response.json()["id"]
    assert response.json()["targeted"] == 5  # the repeat is dropped at once
    fanout.fan_out(campaign_id)

    # then one notification each for p0, p1, p2, and the others are counted by reason
    detail = api.get(f"/api/v1/campaigns/{campaign_id}").json()
    assert (detail["accepted"], detail["skipped"]) == (3, {"unknown_user": 1, "user_inactive": 1})
    assert detail["audience"] == {"user_ids": 5}
    assert detail["notifications"]["waiting"] == 3
    assert detail["status"] == "sending"
    sent_to = Notification.objects.filter(campaign_id=campaign_id).values_list("recipient__external_id", flat=True)
    assert sorted(sent_to) == ["p0", "p1", "p2"]
    assert all(n.priority == "low" and n.template_name == "welcome" for n in Notification.objects.filter(campaign_id=campaign_id))


def test_fanning_out_in_small_chunks_twice_at_once_still_makes_one_notification_per_person(api, people, settings):
    settings.HERALD_FAN_OUT_CHUNK = 2
    for n in range(5, 40):
        make_recipient(f"p{n}")
    campaign_id = create(api, audience={"filter": {"has_email": True}}).json()["id"]

    def run():
        try:
            fanout.fan_out(campaign_id)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    campaign = Campaign.objects.get(pk=campaign_id)
    assert campaign.status == "fanned_out"
    active = Recipient.objects.filter(is_active=True).exclude(email="").count()
    assert Notification.objects.filter(campaign_id=campaign_id).count() == active == campaign.accepted
    assert campaign.targeted == active + 1 and campaign.skipped == {"user_inactive": 1}


def test_a_topic_campaign_reaches_its_subscribers_only(api, people):
    assert api.put("/api/v1/topics/releases", {"name": "Release notes"}, format="json").status_code == 201
    subscribed = api.post("/api/v1/topics/releases/subscribers", {"user_ids": ["p1", "p3", "p3", "ghost"]}, format="json").json()
    assert subscribed == {"subscribed": 2, "already": 0, "unknown_user_ids": ["ghost"]}

    campaign_id = create(api, audience={"topic": "releases"}).json()["id"]
    fanout.fan_out(campaign_id)

    sent_to = Notification.objects.filter(campaign_id=campaign_id).values_list("recipient__external_id", flat=True)
    assert sorted(sent_to) == ["p1", "p3"]
    assert api.get(f"/api/v1/campaigns/{campaign_id}").json()["audience"] == {"topic": "releases"}


@pytest.mark.parametrize(("overrides", "status", "field"), [
    ({"variables": {}}, 400, "variables.name"),
    ({"template": "missing"}, 400, "template"),
    ({"audience": {}}, 400, "audience"),
    ({"audience": {"user_ids": ["p0"], "topic": "x"}}, 400, "audience"),
    ({"audience": {"topic": "nope"}}, 400, "audience.topic"),
    ({"audience": {"filter": {"shoe_size": 42}}}, 400, "audience.filter.shoe_size"),
    ({"audience": {"filter": {"has_email": "yes"}}}, 400, "audience.filter.has_email"),
    ({"audience": {"filter": {}}}, 400, "audience.filter"),
    ({"audience": {"everyone": False}}, 400, "audience.everyone"),
    ({"audience": {"everyone": True, "filter": {"locale": "en"}}}, 400, "audience"),
    ({"audience": {"user_ids": ["x" * 256]}}, 400, "audience.user_ids.0"),
    ({"channels": ["fax"]}, 400, "channels.0"),
    ({"channels": ["email", "email"]}, 400, "channels"),
    ({"metadata": {"ttl_seconds": "soon"}}, 400, "metadata.ttl_seconds"),
])
def test_a_bad_campaign_is_refused_at_once_naming_the_field(api, people, overrides, status, field):
    response = create(api, **overrides)

    assert response.status_code == status, response.json()
    assert response.json()["error"]["field"] == field or response.json()["error"]["field"].startswith(field)
    assert not Campaign.objects.exists()


def test_more_than_100000_user_ids_is_413_naming_the_limit(api, people):
    response = create(api, audience={"user_ids": [f"u{n}" for n in range(100_001)]})

    assert response.status_code == 413
    assert "100000" in response.json()["error"]["message"]
    assert response.json()["error"]["field"] == "audience.user_ids"


def test_canceling_stops_what_was_not_sent_and_twice_is_409(api, people):
    campaign_id = create(api, audience={"user_ids": ["p0", "p1", "p2"]}).json()["id"]
    fanout.fan_out(campaign_id)

    response = api.post(f"/api/v1/campaigns/{campaign_id}/cancel")

    assert response.status_code == 200
    assert response.json()["status"] == "canceled"
    assert response.json()["notifications"]["canceled"] == 3
    assert not Notification.objects.filter(campaign_id=campaign_id).exclude(status="canceled").exists()
    assert api.post(f"/api/v1/campaigns/{campaign_id}/cancel").status_code == 409


def test_a_campaign_canceled_right_after_it_was_created_sends_nothing(api, people):
    campaign_id = create(api).json()["id"]
    api.post(f"/api/v1/campaigns/{campaign_id}/cancel")

    fanout.fan_out(campaign_id)

    # (a worker of an earlier test may have fanned some out before the cancel: those are canceled)
    assert not Notification.objects.filter(campaign_id=campaign_id).exclude(status="canceled").exists()
    assert Campaign.objects.get(pk=campaign_id).status == "canceled"


def test_topics_subscribe_unsubscribe_and_list_page_by_page(api, people):
    api.put("/api/v1/topics/alerts", {}, format="json")
    assert api.put("/api/v1/topics/alerts/subscribers/p0").status_code == 201
    assert api.put("/api/v1/topics/alerts/subscribers/p0").status_code == 204
    api.post("/api/v1/topics/alerts/subscribers", {"user_ids": ["p1", "p2", "p3"]}, format="json")

    first = api.get("/api/v1/topics/alerts/subscribers?limit=3").json()
    second = api.get(first["next"]).json()
    assert [s["user_id"] for s in first["results"] + second["results"]] == ["p0", "p1", "p2", "p3"]
    assert api.get("/api/v1/topics/alerts").json()["subscribers"] == 4

    assert api.delete("/api/v1/topics/alerts/subscribers", {"user_ids": ["p1", "p2"]}, format="json").json() == {"unsubscribed": 2}
    assert api.delete("/api/v1/topics/alerts/subscribers/p0").status_code == 204
    assert api.delete("/api/v1/topics/alerts/subscribers/p0").status_code == 404
    assert list(TopicSubscription.objects.values_list("recipient__external_id", flat=True)) == ["p3"]


def test_bad_topic_requests_are_4xx_naming_the_field(api, people):
    assert api.put("/api/v1/topics/Bad Key!", {}, format="json").json()["error"]["field"] == "key"
    assert api.get("/api/v1/topics/none").status_code == 404
    Topic.objects.create(key="t")
    too_many = api.post("/api/v1/topics/t/subscribers", {"user_ids": [f"u{n}" for n in range(10_001)]}, format="json")
    assert too_many.status_code == 413
    assert api.post("/api/v1/topics/t/subscribers", {"user_ids": []}, format="json").json()["error"]["field"] == "user_ids"


def test_a_persons_topics_are_exported_and_erased_with_them(api, people):
    api.put("/api/v1/topics/news", {}, format="json")
    api.put("/api/v1/topics/news/subscribers/p4")

    exported = api.get("/api/v1/users/p4/export").json()
    assert [t["topic"] for t in exported["topics"]] == ["news"]
    api.delete("/api/v1/users/p4")
    assert not TopicSubscription.objects.exists()


def test_a_campaign_goes_out_on_the_bulk_lanes_unless_it_names_a_priority(api, people):
    quiet = create(api, type="transaction").json()
    loud = create(api, type="transaction", priority="high").json()

    assert (quiet["priority"], loud["priority"]) == ("low", "high")


@pytest.mark.django_db
def test_a_campaign_at_nine_local_reaches_each_person_at_nine_in_their_timezone(api, db):
    from datetime import UTC, datetime

    import time_machine

    make_templates()
    for name, zone in (("ber", "Europe/Berlin"), ("nyc", "America/New_York"), ("kol", "Asia/Kolkata")):
        make_recipient(name, timezone=zone)
    with time_machine.travel(datetime(2026, 11, 2, 12, tzinfo=UTC), tick=False):
        response = api.post("/api/v1/campaigns", {"type": "reminder", "template": "welcome", "variables": {"name": "you"},
                                                  "channels": ["email"], "send_at": "09:00",
                                                  "audience": {"user_ids": ["ber", "nyc", "kol"]}}, format="json")
        assert response.status_code == 202, response.content
        assert response.json()["send_at"] == {"local_time": "09:00"}
        fanout.fan_out(response.json()["id"])

    rows = Notification.objects.filter(campaign_id=response.json()["id"]).values_list("recipient__external_id", "status", "scheduled_at")
    assert {name: (status, at) for name, status, at in rows} == {
        "ber": ("scheduled", datetime(2026, 11, 3, 8, tzinfo=UTC)), "nyc": ("scheduled", datetime(2026, 11, 2, 14, tzinfo=UTC)),
        "kol": ("scheduled", datetime(2026, 11, 3, 3, 30, tzinfo=UTC))}


def test_a_broadcast_names_everyone_and_reaches_every_active_person(api, people):
    response = create(api, audience={"everyone": True})
    assert response.status_code == 202, response.content
    fanout.fan_out(response.json()["id"])

    detail = api.get(f"/api/v1/campaigns/{response.json()['id']}").json()
    assert detail["audience"] == {"everyone": True}
    assert (detail["targeted"], detail["accepted"], detail["skipped"]) == (6, 5, {"user_inactive": 1})


@pytest.mark.parametrize("audience", [{"filter": {"locale": "xx-nobody"}}, {"topic": "empty"}])
def test_a_campaign_whose_audience_is_empty_completes_having_targeted_nobody(api, people, audience):
    Topic.objects.create(key="empty")
    response = create(api, audience=audience)
    fanout.fan_out(response.json()["id"])

    detail = api.get(f"/api/v1/campaigns/{response.json()['id']}").json()
    assert (detail["status"], detail["targeted"], detail["accepted"]) == ("completed", 0, 0)


def test_a_campaigns_progress_counts_repeats_held_back_as_deduplicated_and_it_completes(api, people):
    campaign_id = create(api).json()["id"]
    fanout.fan_out(campaign_id)

    Notification.objects.filter(campaign_id=campaign_id, recipient__external_id="p0").update(status="deduplicated")
    Notification.objects.filter(campaign_id=campaign_id, recipient__external_id="p1").update(status="sent")

    detail = api.get(f"/api/v1/campaigns/{campaign_id}").json()
    assert detail["notifications"] == {"waiting": 0, "sending": 0, "sent": 1, "failed": 0, "canceled": 0, "deduplicated": 1}
    assert detail["status"] == "completed"
