"""Batches closed by a real worker (and its beat) that is SIGKILLed while closing them."""

import time
from collections import Counter

import pytest

from inbox.models import InboxItem
from notifications.models import Batch, Notification
from preferences.models import Recipient
from templates_app.models import Template
from tests.services import wait_for

PEOPLE = 200


@pytest.fixture
def closing_worker(workers, broker, transactional_db):
    """A worker that closes batches in small chunks, so that a kill lands mid-way through them."""
    return workers.use("batching", {"HERALD_BATCH_CLOSE_CHUNK": "5", "HERALD_WORKER_CONCURRENCY": "4"})


@pytest.mark.timeout(300)
def test_a_worker_killed_while_closing_batches_leaves_every_item_in_exactly_one_sent_message(api, closing_worker):
    # given 200 people who each get three likes on their post within a 2-second window
    Template.objects.create(name="liked", channel="in_app", title="Like", body="{{ actor }} liked your post")
    Recipient.objects.bulk_create([Recipient(external_id=f"k{n}") for n in range(PEOPLE)])
    items = [{"user_id": f"k{n}", "type": "social", "template": "liked", "variables": {"actor": f"a{i}"},
              "channels": ["in_app"], "batch_key": "post", "batch": {"window_seconds": 2}}
             for i in range(3) for n in range(PEOPLE)]
    response = api.post("/api/v1/notifications/batch", {"notifications": items}, format="json")
    assert response.status_code == 202 and response.json()["accepted"] == 3 * PEOPLE
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
    messages = list(Notification.objects.filter(batch__isnull=False).select_related("recipient"))
    assert Counter(m.recipient.external_id for m in messages) == {f"k{n}": 1 for n in range(PEOPLE)}
    assert {m.variables["batch"]["count"] for m in messages} == {3}
    assert set(Batch.objects.values_list("state", flat=True)) == {"closed"}
    # and the inbox (the in-app provider) got one item per person
    assert Counter(InboxItem.objects.values_list("recipient__external_id", flat=True)) == {f"k{n}": 1 for n in range(PEOPLE)}
