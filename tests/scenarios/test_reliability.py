"""Nothing accepted is lost: broker outages, killed workers, failing providers."""

import time

from delivery.models import DeadLetter, DeliveryAttempt, SandboxMessage
from notifications.models import Outbox
from tests.factories import delivery_of, make_recipient, make_templates, notification_body, status_of
from tests.services import wait_for


def setup_user(user_id: str = "r1") -> None:
    make_templates(channels=("email",))
    make_recipient(user_id)


def test_a_notification_accepted_while_the_broker_is_down_is_delivered_when_it_returns(api, live, broker):
    # given
    setup_user()
    broker.stop()
    try:
        # when
        started = time.monotonic()
        response = api.post("/api/v1/notifications", notification_body(user_id="r1"), format="json")

        # then it is accepted at once (no waiting on the dead broker) and waits in the outbox
        assert time.monotonic() - started < 2
        assert response.status_code == 202, response.content
        notification_id = response.json()["id"]
        assert response.json()["status"] == "pending"
        assert Outbox.objects.filter(notification_id=notification_id).exists()
    finally:
        broker.start()

    # and the relay publishes it once the broker is back
    wait_for(lambda: status_of(notification_id) == "sent", 45, message=f"relayed notification to be sent ({live.log_path})")
    assert not Outbox.objects.filter(notification_id=notification_id).exists()
    assert SandboxMessage.objects.filter(delivery__notification_id=notification_id).count() == 1


def test_a_worker_whose_tasks_finish_while_the_broker_is_down_consumes_again_when_it_returns(api, live, broker):
    # given both of the worker's task slots busy with slow provider calls (one lane each)
    make_templates(channels=("email", "sms"))
    make_recipient("r1")
    slow = {"sandbox": {"latency_ms": 3000}}
    slow_ids = [
        api.post("/api/v1/notifications", notification_body(user_id="r1", variables={"name": name}, metadata=slow,
                                                            channels=[channel]), format="json").json()["id"]
        for name, channel in (("Ada", "email"), ("Grace", "sms"))
    ]
    wait_for(
        lambda: DeliveryAttempt.objects.filter(delivery__notification_id__in=slow_ids, finished_at__isnull=True).count() == 2,
        message="both slow provider calls to start",
    )

    # when the broker goes away while they finish (so their acks fail), then comes back.
    # Left to itself kombu keeps a failed ack's prefetch slot, and a worker whose every slot
    # is held so never polls the broker again (config/celery.py frees the slot).
    refused_before = acks_refused(live.log_text())
    broker.stop()
    try:
        wait_for(lambda: all(status_of(id_) == "sent" for id_ in slow_ids), 20, message="the slow deliveries to finish")
        wait_for(lambda: acks_refused(live.log_text()) > refused_before, 10, message=f"an ack to be refused ({live.log_path})")
    finally:
        broker.start()

    # then the worker reconnects and takes new work
    body = notification_body(user_id="r1", variables={"name": "Edsger"})
    notification_id = api.post("/api/v1/notifications", body, format="json").json()["id"]
    wait_for(lambda: status_of(notification_id) == "sent", 30, message=f"new work after the outage ({live.log_path})")
    for id_ in slow_ids:
        assert SandboxMessage.objects.filter(delivery__notification_id=id_).count() == 1


def acks_refused(worker_log: str) -> int:
    """Messages whose ack Celery could not send: failed on the dead connection, or skipped once it was gone."""
    return sum(worker_log.count(phrase) for phrase in (
        "Couldn't ack", "cannot be acknowledged after a connection loss", "cannot be acknowledged as the connection is gone"))


def test_a_worker_killed_mid_delivery_is_replaced_and_the_message_goes_out_exactly_once(api, live):
    # given a provider call that takes a while
    setup_user()
    body = notification_body(user_id="r1", metadata={"sandbox": {"latency_ms": 2500}})
    notification_id = api.post("/api/v1/notifications", body, format="json").json()["id"]
    wait_for(
        lambda: DeliveryAttempt.objects.filter(delivery__notification_id=notification_id, finished_at__isnull=True).exists(),
        message="the provider call to start",
    )

    # when the whole worker dies with SIGKILL mid-call, and comes back
    live.kill()
    assert SandboxMessage.objects.count() == 0
    live.start()

    # then the delivery completes, once
    wait_for(lambda: status_of(notification_id) == "sent", 40, message="delivery after the worker restart")
    delivery = delivery_of(notification_id, "email")
    assert SandboxMessage.objects.filter(delivery=delivery).count() == 1
    outcomes = list(DeliveryAttempt.objects.filter(delivery=delivery).order_by("number").values_list("outcome", flat=True))
    assert outcomes == ["unknown", "sent"]
    # the sandbox call never returned, so its outcome is unknown; email collapses a resend
    # by its Message-ID, so sending again was right
    assert delivery.unknown_outcome_action == "resent_receiver_dedupes"
    assert delivery.attempts == 2


def test_a_failing_provider_is_retried_with_growing_backoff_then_sent(api, live):
    setup_user()
    body = notification_body(user_id="r1", metadata={"sandbox": {"fail": "retry", "fail_attempts": 2}})

    notification_id = api.post("/api/v1/notifications", body, format="json").json()["id"]

    wait_for(lambda: status_of(notification_id) == "sent", 30, message="sent on the third attempt")
    delivery = delivery_of(notification_id, "email")
    attempts = list(DeliveryAttempt.objects.filter(delivery=delivery).order_by("number"))
    assert [a.outcome for a in attempts] == ["retry", "retry", "sent"]
    assert attempts[0].retry_in_seconds <= attempts[1].retry_in_seconds
    # each retry waited at least the backoff it announced
    for before, after in zip(attempts, attempts[1:]):
        waited = (after.started_at - before.finished_at).total_seconds()
        assert waited >= before.retry_in_seconds * 0.9
    assert [h["status"] for h in delivery.status_history] == [
        "queued", "sending", "failed", "queued", "sending", "failed", "queued", "sending", "sent",
    ]
    assert not DeadLetter.objects.exists()


def test_a_delivery_that_keeps_failing_is_dead_lettered_with_its_reason(api, live):
    setup_user()
    body = notification_body(user_id="r1", metadata={"sandbox": {"fail": "retry"}})

    notification_id = api.post("/api/v1/notifications", body, format="json").json()["id"]

    wait_for(lambda: status_of(notification_id) == "failed", 30, message="delivery to give up")
    delivery = delivery_of(notification_id, "email")
    assert delivery.attempts == 4  # HERALD_MAX_ATTEMPTS in tests/settings.py
    letter = DeadLetter.objects.get(delivery=delivery)
    assert letter.reason == "max_attempts_exceeded"
    assert letter.error_code == "sandbox_unavailable"
    assert letter.payload["template"] == "welcome"
    detail = api.get(f"/api/v1/notifications/{notification_id}").json()
    assert detail["deliveries"][0]["last_error"]["code"] == "sandbox_unavailable"


def test_a_permanent_failure_is_not_retried_and_is_dead_lettered(api, live):
    setup_user()
    body = notification_body(user_id="r1", metadata={"sandbox": {"fail": "failed"}})

    notification_id = api.post("/api/v1/notifications", body, format="json").json()["id"]

    wait_for(lambda: status_of(notification_id) == "failed", message="permanent failure")
    delivery = delivery_of(notification_id, "email")
    assert delivery.attempts == 1
    assert DeadLetter.objects.get(delivery=delivery).reason == "permanent_failure"


def test_an_invalid_recipient_fails_without_retry_or_dead_letter(api, live):
    setup_user()
    body = notification_body(user_id="r1", metadata={"sandbox": {"fail": "invalid_recipient"}})

    notification_id = api.post("/api/v1/notifications", body, format="json").json()["id"]

    wait_for(lambda: status_of(notification_id) == "failed", message="invalid recipient")
    delivery = delivery_of(notification_id, "email")
    assert delivery.attempts == 1
    assert delivery.error_code == "sandbox_invalid_recipient"
    assert not DeadLetter.objects.exists()


def test_a_requeued_dead_letter_gets_fresh_attempts(api, live):
    from delivery.outcomes import requeue_dead_letter
    from notifications.models import Notification

    # given a delivery dead-lettered while its provider was failing
    setup_user()
    body = notification_body(user_id="r1", metadata={"sandbox": {"fail": "retry"}})
    notification_id = api.post("/api/v1/notifications", body, format="json").json()["id"]
    wait_for(lambda: status_of(notification_id) == "failed", 30, message="dead letter")
    letter = DeadLetter.objects.get()

    # when the provider has recovered and ops requeue it (twice, by accident)
    Notification.objects.filter(pk=notification_id).update(metadata={})
    first, second = requeue_dead_letter(letter.pk), requeue_dead_letter(letter.pk)

    # then it is sent once, with a fresh attempt count
    assert (first, second) == (True, False)
    wait_for(lambda: status_of(notification_id) == "sent", 30, message="requeued delivery to be sent")
    delivery = delivery_of(notification_id, "email")
    assert delivery.attempts == 1
    assert SandboxMessage.objects.filter(delivery=delivery).count() == 1
    letter.refresh_from_db()
    assert letter.requeued_at is not None


def test_a_template_that_raises_while_rendering_fails_once_as_a_render_error(api, live):
    # given a template that blows up at render time with something other than a template error
    from templates_app.models import Template

    make_recipient("r2")
    Template.objects.create(name="broken", channel="email", subject="s", body="{{ name + 1 }}")

    notification_id = api.post("/api/v1/notifications", notification_body(user_id="r2", template="broken"), format="json").json()["id"]

    wait_for(lambda: status_of(notification_id) == "failed", 30, message="the broken template to fail")
    delivery = delivery_of(notification_id, "email")
    assert delivery.attempts == 1
    assert delivery.error_code == "render_error" and "TypeError" in delivery.error_message
    assert DeadLetter.objects.get(delivery=delivery).reason == "permanent_failure"
