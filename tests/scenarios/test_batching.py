"""Batches closed by a real worker (and its beat) that is SIGKILLed while closing them."""

import threading
import time
from collections import Counter

import pytest
from django.db import connection

from inbox.models import InboxItem
from notifications.models import Batch, Notification
from preferences.models import Recipient
from templates_app.models import Template
from tests.scenarios.test_faults import database_refusing_connections
from tests.services import wait_for

PEOPLE = 200


@pytest.fixture
def closing_worker(workers, broker, transactional_db):
    """A worker that closes batches in small chunks, so that a kill lands mid-way through them."""
    return workers.use("batching", {"HERALD_BATCH_CLOSE_CHUNK": "5", "HERALD_WORKER_CONCURRENCY": "4"})


def likes(api, people: int, per_person: int, window: int = 2, prefix: str = "k") -> None:
    Template.objects.get_or_create(name="liked", channel="in_app", defaults={"title": "Like", "body": "{{ actor }} liked your post"})
    Recipient.objects.bulk_create([Recipient(external_id=f"{prefix}{n}") for n in range(people)], ignore_conflicts=True)
    items = [{"user_id": f"{prefix}{n}", "type": "social", "template": "liked", "variables": {"actor": f"a{i}"},
              "channels": ["in_app"], "batch_key": "post", "batch": {"window_seconds": window}}
             for i in range(per_person) for n in range(people)]
    response = api.post("/api/v1/notifications/batch", {"notifications": items}, format="json")
    assert response.status_code == 202 and response.json()["accepted"] == people * per_person


def assert_each_item_sent_once(people: int, prefix: str = "k") -> None:
    """Every item is in exactly one batch, every batch became one sent message, and the inbox (the
    provider) got exactly one item per message."""
    messages = list(Notification.objects.filter(batch__isnull=False).select_related("recipient"))
    items = Notification.objects.filter(template_name="liked", batch__isnull=True, status="batched").count()
    assert sum(m.variables["batch"]["count"] for m in messages) == items
    assert all(m.status == "sent" for m in messages)
    assert set(Batch.objects.values_list("state", flat=True)) == {"closed"}
    inbox = Counter(InboxItem.objects.values_list("recipient__external_id", flat=True))
    assert inbox == Counter(m.recipient.external_id for m in messages)
    assert set(inbox) == {f"{prefix}{n}" for n in range(people)}


@pytest.mark.timeout(300)
def test_a_worker_killed_while_closing_batches_leaves_every_item_in_exactly_one_sent_message(api, closing_worker):
    # given 200 people who each get three likes on their post within a 2-second window
    likes(api, PEOPLE, 3)
    wait_for(lambda: Notification.objects.filter(status="batched").count() == 3 * PEOPLE, 60, message="every like batched")

    # when the windows end and the worker is SIGKILLed twice while it closes them
    for _ in range(2):
        wait_for(lambda: Batch.objects.filter(state="closed").exists(), 30, 0.01, message="closing under way")
        closing_worker.kill()
        time.sleep(0.5)
        closing_worker.start()

    # then every batch becomes exactly one message, with all three of its items, sent once
    wait_for(lambda: Notification.objects.filter(batch__isnull=False, status="sent").count() == PEOPLE, 120, 0.5,
             message="every batch's message sent")
    assert {m.variables["batch"]["count"] for m in Notification.objects.filter(batch__isnull=False)} == {3}
    assert_each_item_sent_once(PEOPLE)


@pytest.mark.timeout(300)
def test_a_database_outage_while_batches_close_loses_nothing_and_sends_each_once(api, closing_worker):
    # given 100 people with two likes each, batched for two seconds
    likes(api, 100, 2)
    wait_for(lambda: Notification.objects.filter(status="batched").count() == 200, 60, message="every like batched")

    # when PostgreSQL refuses the worker for three seconds just as the windows end
    with database_refusing_connections():
        time.sleep(3)

    # then every batch still becomes exactly one sent message
    wait_for(lambda: Notification.objects.filter(batch__isnull=False, status="sent").count() == 100, 120, 0.5,
             message="every batch's message sent")
    assert_each_item_sent_once(100)


@pytest.mark.timeout(300)
def test_likes_that_keep_arriving_while_batches_close_each_go_out_in_exactly_one_message(api, closing_worker):
    # given likes for 20 people arriving for six seconds, with one-second windows
    stop = threading.Event()

    def keep_liking():
        n = 0
        try:
            while not stop.is_set():
                likes(api, 20, 1, window=1, prefix="c")
                n += 1
                time.sleep(0.2)
        finally:
            connection.close()

    sender = threading.Thread(target=keep_liking)
    sender.start()
    time.sleep(6)
    stop.set()
    sender.join()
    sent = Notification.objects.filter(template_name="liked", batch__isnull=True).count()

    # then every like ends up batched and in exactly one sent message
    wait_for(lambda: Notification.objects.filter(template_name="liked", batch__isnull=True, status="batched").count() == sent
             and not Batch.objects.exclude(state="closed").exists()
             and not Notification.objects.filter(batch__isnull=False).exclude(status="sent").exists(), 120, 0.5,
             message="every like's batch closed and sent")
    assert Batch.objects.count() > 20  # batches closed while likes kept coming, and later ones took them
    assert_each_item_sent_once(20, prefix="c")


@pytest.mark.timeout(300)
def test_a_batch_too_large_for_one_message_is_split_into_messages_that_each_go_out(api, workers, broker, transactional_db):
    # given 10,000 likes of 8 KB each for one person within one window (80 MB: no single render could take it)
    workers.use("sandbox")
    Template.objects.create(name="liked", channel="in_app", title="Likes",
                            body="{{ batch.count }} likes, part {{ batch.part.number }} of {{ batch.part.of }}: "
                                 "{% for item in batch['items'] %}{{ item.actor }} {% endfor %}")
    Recipient.objects.create(external_id="popular")
    padding = "x" * 8000
    for start in range(0, 10_000, 500):
        items = [{"user_id": "popular", "type": "social", "template": "liked", "variables": {"actor": f"a{i}", "text": padding},
                  "channels": ["in_app"], "batch_key": "post", "batch": {"window_seconds": 30}}
                 for i in range(start, start + 500)]
        response = api.post("/api/v1/notifications/batch", {"notifications": items}, format="json")
        assert response.json()["accepted"] == 500, response.content
    wait_for(lambda: Notification.objects.filter(status="batched").count() == 10_000, 180, 0.5, message="every like batched")

    # when its window ends
    Batch.objects.update(closes_at=Batch.objects.values_list("opened_at", flat=True).first())

    # then it closes into several messages, each within the message bound, every one sent,
    # and every item in exactly one of them
    wait_for(lambda: Batch.objects.filter(state="closed").exists(), 60, 0.5, message="the batch to close")
    messages = list(Notification.objects.filter(batch__isnull=False).order_by("batch_part"))
    assert len(messages) > 1
    wait_for(lambda: not Notification.objects.filter(batch__isnull=False).exclude(status="sent").exists(), 120, 0.5,
             message="every part sent")
    counted = Counter()
    for message in messages:
        part = message.variables["batch"]["part"]
        assert part["of"] == len(messages) and message.variables["batch"]["count"] == 10_000
        counted.update(item["actor"] for item in message.variables["batch"]["items"])
    assert counted == Counter(f"a{i}" for i in range(10_000))
    assert InboxItem.objects.count() == len(messages)
    item = Notification.objects.filter(status="batched").last()
    described = api.get(f"/api/v1/notifications/{item.pk}").json()["batch"]
    assert described["message_status"] == "sent" and described["kind"] == "batch"
