"""Batching: items stored as rows, each batch closed into exactly one message (real PostgreSQL, in-process)."""

import threading
from datetime import timedelta

import pytest
from django.db import OperationalError, connection, transaction
from django.utils import timezone

from delivery.models import Delivery
from notifications import batch_closing, batching, routing
from notifications.accept import accept_notification
from notifications.models import Batch, BatchItem, Notification
from templates_app.models import Template
from tests.factories import make_recipient

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def person(no_worker):
    Template.objects.create(name="liked", channel="in_app", title="Like", body="{{ actor }} liked your post")
    Template.objects.create(name="liked_batch", channel="in_app", title="Likes",
                            body="{{ batch.actors[0] }} and {{ batch.others }} others liked your post ({{ batch.count }})")
    return make_recipient("b1")


def like(n: int, **batch) -> str:
    body = {"user_id": "b1", "type": "social", "template": "liked", "variables": {"actor": f"user{n}"},
            "channels": ["in_app"], "batch_key": "post-7", "batch": {"window_seconds": 60, **batch}}
    return str(accept_notification(body, raw_payload=body, api_key=None, idempotency_key=None).notification.pk)


def route_all() -> None:
    while routing.route_lane("medium"):
        pass


def close_now() -> int:
    Batch.objects.filter(state="open").update(closes_at=timezone.now() - timedelta(seconds=1))
    return batch_closing.close_due()


def messages() -> list[Notification]:
    return list(Notification.objects.filter(batch__isnull=False).order_by("created_at"))


def test_a_burst_of_1000_likes_becomes_one_message_listing_every_item(person):
    for n in range(1000):
        like(n)
    route_all()

    assert Notification.objects.filter(status="batched").count() == 1000
    assert not Delivery.objects.exists()
    assert close_now() == 1
    route_all()

    [message] = messages()
    batch = message.variables["batch"]
    assert (batch["count"], len(batch["items"]), batch["key"]) == (1000, 1000, "post-7")
    assert [item["actor"] for item in batch["items"]] == [f"user{n}" for n in range(1000)]
    assert (batch["first"][0]["actor"], batch["last"][-1]["actor"], batch["others"]) == ("user0", "user999", 999)
    assert message.template_name == "liked_batch"
    [delivery] = Delivery.objects.filter(notification=message)
    assert delivery.channel == "in_app"
    item = Notification.objects.get(variables={"actor": "user500"})
    assert batching.describe(item)["message"] == str(message.pk)
    described = batching.describe(message)
    assert (described["role"], described["items"], described["key"]) == ("message", 1000, "social:liked:post-7")
    assert described["members"][500] == str(item.pk)


def test_first_at_once_sends_one_now_and_batches_the_other_999(person):
    for n in range(1000):
        like(n, first_at_once=True)
    route_all()

    [first] = Notification.objects.filter(status="sending")
    assert first.variables == {"actor": "user0"}
    close_now()
    [message] = messages()
    assert message.variables["batch"]["count"] == 999
    assert BatchItem.objects.count() == 999


def test_a_batch_closes_at_its_item_limit_and_the_next_item_starts_the_next_batch(person):
    for n in range(25):
        like(n, max_items=10)
    route_all()

    assert sorted(Batch.objects.values_list("state", "count")) == [("full", 10), ("full", 10), ("open", 5)]
    assert batch_closing.close_due() == 2  # full batches close without waiting for their window
    assert sorted(m.variables["batch"]["count"] for m in messages()) == [10, 10]
    close_now()
    assert sorted(m.variables["batch"]["count"] for m in messages()) == [5, 10, 10]
    assert sorted(BatchItem.objects.values_list("notification__variables__actor", flat=True)) == sorted(f"user{n}" for n in range(25))


def test_a_sliding_window_moves_with_each_item_but_not_past_its_maximum(person):
    like(0, max_window_seconds=90)
    route_all()
    batch = Batch.objects.get()
    first_close = batch.closes_at
    like(1, max_window_seconds=90)
    route_all()
    batch.refresh_from_db()

    assert batch.closes_at > first_close
    assert batch.closes_at <= batch.latest_close_at == batch.opened_at + timedelta(seconds=90)


def test_two_sweepers_at_once_close_each_batch_exactly_once(person):
    people = [make_recipient(f"s{n}") for n in range(40)]
    for p in people:
        for n in range(3):
            body = {"user_id": p.external_id, "type": "social", "template": "liked", "variables": {"actor": f"u{n}"},
                    "channels": ["in_app"], "batch_key": "post-1", "batch": {"window_seconds": 60}}
            accept_notification(body, raw_payload=body, api_key=None, idempotency_key=None)
    route_all()
    Batch.objects.update(closes_at=timezone.now() - timedelta(seconds=1))
    start = threading.Barrier(2)

    def sweep():
        start.wait()
        try:
            while batch_closing.close_due(limit=7):
                pass
        finally:
            connection.close()

    sweepers = [threading.Thread(target=sweep) for _ in range(2)]
    [t.start() for t in sweepers]
    [t.join() for t in sweepers]

    assert len(messages()) == 40
    assert sorted(m.variables["batch"]["count"] for m in messages()) == [3] * 40
    assert set(Batch.objects.values_list("state", flat=True)) == {"closed"}


def test_a_sweep_that_fails_mid_way_loses_nothing_and_the_next_one_closes_it_once(person, monkeypatch):
    for n in range(5):
        like(n)
    route_all()
    real_insert = batch_closing.insert_many_with_outbox

    def database_away(rows):
        raise OperationalError("the database went away")

    monkeypatch.setattr(batch_closing, "insert_many_with_outbox", database_away)
    with pytest.raises(OperationalError):
        close_now()
    assert Batch.objects.get().state == "open" and not messages()

    monkeypatch.setattr(batch_closing, "insert_many_with_outbox", real_insert)
    assert close_now() == 1
    assert close_now() == 0
    [message] = messages()
    assert message.variables["batch"]["count"] == 5


def test_an_item_arriving_while_its_batch_closes_goes_to_the_next_batch(person):
    like(0)
    route_all()
    batch = Batch.objects.get()
    locked, release = threading.Event(), threading.Event()

    def closing():  # what close_due does to a batch, held open while the next item arrives
        try:
            with transaction.atomic():
                Batch.objects.select_for_update().get(pk=batch.pk)
                locked.set()
                release.wait(10)
                Batch.objects.filter(pk=batch.pk).update(state="closed", closed_at=timezone.now())
        finally:
            connection.close()

    closer = threading.Thread(target=closing)
    closer.start()
    locked.wait(10)
    arriving = threading.Thread(target=lambda: (like(1), route_all(), connection.close()))
    arriving.start()
    arriving.join(1)  # it waits on the batch's lock
    release.set()
    closer.join()
    arriving.join(10)

    first, second = Batch.objects.order_by("pk")
    assert (first.state, first.count) == ("closed", 1)
    assert (second.state, second.count) == ("open", 1)
    assert BatchItem.objects.get(notification__variables__actor="user1").batch_id == second.pk


@pytest.mark.parametrize(("batch", "field"), [
    ({"window_seconds": 0}, "batch.window_seconds"),
    ({"window_seconds": 7 * 24 * 3600 + 1}, "batch.window_seconds"),
    ({"window_seconds": 60, "max_window_seconds": 30}, "batch.max_window_seconds"),
    ({"window_seconds": 60, "size": 3}, "batch.size"),
])
def test_bad_batching_is_400_naming_the_field(api, person, batch, field):
    response = api.post("/api/v1/notifications", {"user_id": "b1", "type": "social", "template": "liked",
                                                  "variables": {"actor": "a"}, "batch": batch}, format="json")

    assert (response.status_code, response.json()["error"]["field"]) == (400, field)


def test_a_batch_key_over_255_characters_is_400(api, person):
    response = api.post("/api/v1/notifications", {"user_id": "b1", "type": "social", "template": "liked",
                                                  "variables": {"actor": "a"}, "batch_key": "k" * 256}, format="json")

    assert (response.status_code, response.json()["error"]["field"]) == (400, "batch_key")


def test_a_required_category_cannot_be_batched():
    from django.core.exceptions import ValidationError

    from preferences.models import CategorySetting

    with pytest.raises(ValidationError) as refused:
        CategorySetting(category="security", required=True, batch_window_seconds=60).full_clean()
    assert "batch_window_seconds" in refused.value.message_dict


def test_a_required_category_is_never_batched_even_when_the_sender_asks(person):
    body = {"user_id": "b1", "type": "security", "template": "liked", "variables": {"actor": "a"}, "channels": ["in_app"],
            "batch_key": "x", "batch": {"window_seconds": 60}}
    accept_notification(body, raw_payload=body, api_key=None, idempotency_key=None)
    while routing.route_lane("critical"):
        pass

    assert not Batch.objects.exists() and Notification.objects.get().status == "sending"


def digest_person(api, zone="Europe/Berlin", **digest):
    person = make_recipient("d1", timezone=zone)
    Template.objects.create(name="social_digest", channel="in_app", title="Your day",
                            body="{{ digest.count }} things happened")
    etag = api.get("/api/v1/users/d1/preferences")["ETag"]
    response = api.patch("/api/v1/users/d1/preferences", {"categories": {"social": {"digest": {
        "frequency": "daily", "time": "09:00", **digest}}}}, format="json", HTTP_IF_MATCH=etag)
    assert response.status_code == 200, response.content
    return person


def post_social(n: int) -> None:
    body = {"user_id": "d1", "type": "social", "template": "liked", "variables": {"actor": f"user{n}"}, "channels": ["in_app"]}
    accept_notification(body, raw_payload=body, api_key=None, idempotency_key=None)


def test_a_daily_digest_collects_the_category_until_nine_local_and_goes_out_once(api, person):
    digest_person(api)
    for n in range(3):
        post_social(n)
    route_all()

    batch = Batch.objects.get(key="digest:social")
    berlin = batch.closes_at.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Berlin"))
    assert (berlin.hour, berlin.minute, batch.count) == (9, 0, 3)
    assert 0 < (batch.closes_at - timezone.now()).total_seconds() <= 24 * 3600
    assert close_now() == 1
    [message] = messages()
    assert (message.template_name, message.variables["digest"]["count"]) == ("social_digest", 3)
    assert api.get("/api/v1/users/d1/preferences").json()["categories"]["social"]["digest"]["time"] == "09:00"


def test_turning_the_category_off_mid_period_drops_the_digest(api, person):
    digest_person(api)
    post_social(1)
    route_all()
    etag = api.get("/api/v1/users/d1/preferences")["ETag"]
    api.patch("/api/v1/users/d1/preferences", {"categories": {"social": {"enabled": False}}}, format="json", HTTP_IF_MATCH=etag)

    close_now()

    assert Batch.objects.get().state == "dropped" and not messages()


@pytest.mark.parametrize(("category", "digest", "field"), [
    ("social", {"frequency": "daily", "time": "9am"}, "categories.social.digest.time"),
    ("social", {"frequency": "weekly", "time": "09:00", "weekday": "funday"}, "categories.social.digest.weekday"),
    ("social", {"frequency": "monthly", "time": "09:00", "day": 0}, "categories.social.digest.day"),
    ("security", {"frequency": "daily", "time": "09:00"}, "categories.security.digest"),
])
def test_bad_digest_choices_are_400_naming_the_field(api, person, category, digest, field):
    make_recipient("d2")
    etag = api.get("/api/v1/users/d2/preferences")["ETag"]

    response = api.patch("/api/v1/users/d2/preferences", {"categories": {category: {"digest": digest}}}, format="json",
                         HTTP_IF_MATCH=etag)

    assert (response.status_code, response.json()["error"]["field"]) == (400, field)
