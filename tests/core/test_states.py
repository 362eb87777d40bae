"""The status state machine: legal moves only, atomically, each one timestamped."""

import threading

import pytest
from django.db import connection

from core.states import IllegalTransition, Status, move_all, transition
from delivery.models import Delivery
from delivery.states import DELIVERY_TRANSITIONS
from notifications.models import Notification
from tests.factories import make_recipient


def make_delivery(status=Status.QUEUED) -> Delivery:
    recipient = make_recipient("s1")
    notification = Notification.objects.create(recipient=recipient, type="transaction", priority="high", template_name="t")
    return Delivery.objects.create(notification=notification, channel="email", status=status)


def move(delivery, target, **kwargs) -> bool:
    return transition(Delivery, DELIVERY_TRANSITIONS, delivery.pk, target, **kwargs)


@pytest.mark.django_db
def test_a_legal_move_is_applied_and_timestamped():
    delivery = make_delivery()

    assert move(delivery, Status.SENDING) is True

    delivery.refresh_from_db()
    assert delivery.status == Status.SENDING
    assert delivery.status_history[-1]["status"] == "sending"
    assert delivery.status_history[-1]["at"] == delivery.status_changed_at.isoformat()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("current", "target"),
    [
        (Status.SENT, Status.QUEUED),
        (Status.DELIVERED, Status.SENDING),
        (Status.QUEUED, Status.SENT),
        (Status.READ, Status.DELIVERED),
        (Status.BOUNCED, Status.SENT),
        (Status.CANCELED, Status.QUEUED),
    ],
)
def test_an_illegal_move_is_refused_and_changes_nothing(current, target):
    delivery = make_delivery(status=current)

    assert move(delivery, target) is False

    delivery.refresh_from_db()
    assert delivery.status == current
    assert delivery.status_history == []


@pytest.mark.django_db
def test_asking_for_a_move_the_table_forbids_is_a_programming_error():
    delivery = make_delivery(status=Status.SENT)

    with pytest.raises(IllegalTransition):
        move(delivery, Status.QUEUED, sources={Status.SENT})


def test_the_tables_allow_retry_from_failed_to_queued_only():
    assert DELIVERY_TRANSITIONS[Status.FAILED] == {Status.QUEUED}
    for final in (Status.READ, Status.BOUNCED, Status.CANCELED):
        assert final not in DELIVERY_TRANSITIONS


def test_two_workers_racing_for_one_delivery_cannot_both_win(transactional_db):
    # given
    delivery = make_delivery()
    barrier = threading.Barrier(8)
    wins = []

    def claim():
        barrier.wait()
        wins.append(move(delivery, Status.SENDING, sources={Status.QUEUED}))
        connection.close()

    # when eight workers try to claim it at the same moment
    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # then exactly one moved it, and the history records one move
    assert sorted(wins) == [False] * 7 + [True]
    delivery.refresh_from_db()
    assert [h["status"] for h in delivery.status_history] == ["sending"]


@pytest.mark.django_db
def test_moving_many_rows_moves_only_those_in_a_named_source_and_records_why():
    queued = make_delivery()
    sent = Delivery.objects.create(notification=queued.notification, channel="sms", status=Status.SENT)
    rows = Delivery.objects.filter(pk__in=[queued.pk, sent.pk])

    moved = move_all(rows, DELIVERY_TRANSITIONS, Status.CANCELED, sources={Status.QUEUED}, reason="canceled")

    assert moved == 1
    queued.refresh_from_db()
    assert (queued.status, queued.status_history[-1]["reason"]) == ("canceled", "canceled")
    assert Delivery.objects.get(pk=sent.pk).status == Status.SENT
    with pytest.raises(IllegalTransition):
        move_all(rows, DELIVERY_TRANSITIONS, Status.CANCELED, sources={Status.SENT})
