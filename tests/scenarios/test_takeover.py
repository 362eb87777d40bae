"""A dead worker's work moves again in seconds, and work that keeps killing its workers is parked."""

import os
import signal
import threading
import time
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from delivery.models import DeadLetter, Delivery, DeliveryAttempt, SandboxMessage
from notifications.models import Notification, Outbox
from tests.factories import delivery_of, make_recipient, make_templates, notification_body, status_of
from tests.services import wait_for

# As in production: without liveness, nothing would move before this lease ran out.
LONG_LEASE = {"HERALD_DELIVERY_LEASE_SECONDS": "120", "HERALD_TASK_TIME_LIMIT": "90", "HERALD_ATTEMPT_BUDGET_SECONDS": "60"}


class Supervisor:
    """Restarts the worker a second after it dies, as `make run` and compose do."""

    def __init__(self, worker):
        self.worker, self.stopped, self.restarts = worker, threading.Event(), []
        self.thread = threading.Thread(target=self.watch, daemon=True)

    def watch(self) -> None:
        while not self.stopped.wait(0.1):
            if self.worker.process.poll() is not None:
                try:  # what the dead worker left behind (its embedded beat) goes with it
                    os.killpg(self.worker.process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                time.sleep(1)
                self.worker.start()
                self.restarts.append(time.monotonic())

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopped.set()
        self.thread.join(60)


@pytest.fixture
def long_lease_worker(workers, broker, transactional_db):
    return workers.use("long-lease", LONG_LEASE)


@pytest.fixture
def crashable_worker(workers, broker, transactional_db):
    return workers.use("crashable", {**LONG_LEASE, "HERALD_SANDBOX_CRASH_WORKER": "1"})


def test_a_killed_workers_deliveries_move_again_within_seconds_of_its_restart_not_at_the_lease(api, long_lease_worker):
    # given provider calls under way on a worker whose lease would last two minutes
    make_templates(channels=("email",))
    make_recipient("r1")
    ids = [api.post("/api/v1/notifications", notification_body(
        user_id="r1", variables={"name": f"Ada {i}"}, metadata={"sandbox": {"latency_ms": 3000}}), format="json").json()["id"]
        for i in range(3)]
    wait_for(lambda: DeliveryAttempt.objects.filter(finished_at__isnull=True).count() == 3, message="the calls to start")

    # when the worker dies with SIGKILL and comes back
    long_lease_worker.kill()
    long_lease_worker.start()
    restarted_at = timezone.now()

    # then every delivery it held is taken over within 10 s (and sent 3 s later), once
    wait_for(lambda: all(status_of(n) == "sent" for n in ids), 30, message="the deliveries after the restart")
    last_sent = max(delivery_of(n, "email").sent_at for n in ids)
    assert last_sent - restarted_at < timedelta(seconds=10 + 3)
    for notification_id in ids:
        delivery = delivery_of(notification_id, "email")
        assert SandboxMessage.objects.filter(delivery=delivery).count() == 1
        assert delivery.takeovers == 1
        assert "taken_over" in [entry.get("reason") for entry in delivery.status_history]


def test_deliveries_and_routing_claims_of_a_process_that_no_longer_exists_are_taken_over_at_once(api, long_lease_worker):
    # given a delivery and a notification claimed a moment ago by a process whose liveness key is gone
    make_templates(channels=("email",))
    person = make_recipient("r1")
    ghost, now = f"ghost:{uuid.uuid4()}", timezone.now()
    routing = Notification.objects.create(recipient=person, type="transaction", priority="high", template_name="welcome",
                                          variables={"name": "Ada"}, status="routing", status_changed_at=now, claimed_by=ghost)
    Outbox.objects.create(notification=routing, available_at=now)
    sending = Notification.objects.create(recipient=person, type="transaction", priority="high", template_name="welcome",
                                          variables={"name": "Grace"}, status="sending", status_changed_at=now)
    delivery = Delivery.objects.create(notification=sending, channel="email", priority="high", status="sending",
                                       claimed_at=now, claimed_by=ghost, attempts=1)
    started = time.monotonic()

    # then both move long before the two-minute lease would let them
    wait_for(lambda: status_of(routing.pk) == "sent" and status_of(sending.pk) == "sent", 20,
             message="the ghost's claims to be taken over")
    assert time.monotonic() - started < 10
    assert Delivery.objects.get(pk=delivery.pk).takeovers == 1
    assert Notification.objects.get(pk=routing.pk).takeovers == 1


def test_a_delivery_that_kills_its_worker_is_parked_and_the_lane_goes_on(api, crashable_worker):
    # given a poisonous critical SMS among ordinary critical ones
    make_templates(channels=("sms",))
    make_recipient("r1")
    with Supervisor(crashable_worker) as supervisor:
        poison = api.post("/api/v1/notifications", notification_body(
            user_id="r1", priority="critical", channels=["sms"], variables={"name": "Poison"}, metadata={"sandbox": {"crash_worker": True}}),
            format="json").json()["id"]
        ordinary = [api.post("/api/v1/notifications", notification_body(
            user_id="r1", priority="critical", channels=["sms"], variables={"name": f"Ada {i}"}), format="json").json()["id"] for i in range(30)]

        # then the poison is parked with its reason within a minute, every ordinary one is sent once
        wait_for(lambda: status_of(poison) == "failed", 60, message="the poisonous delivery to be parked")
        wait_for(lambda: all(status_of(n) == "sent" for n in ordinary), 30, message="the ordinary deliveries")
    parked = delivery_of(poison, "sms")
    assert parked.error_code == "killed_its_worker"
    assert parked.takeovers == 4
    assert DeadLetter.objects.get(delivery=parked).reason == "killed_its_worker"
    assert len(supervisor.restarts) == 4  # it took four workers down, and no more
    for notification_id in ordinary:
        delivery = delivery_of(notification_id, "sms")
        assert delivery.takeovers < 4
        assert SandboxMessage.objects.filter(delivery=delivery).count() == 1
