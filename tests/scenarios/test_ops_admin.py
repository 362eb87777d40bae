"""The admin ops work in, over HTTP: audit records nobody can change, actions with their own permission and a
record of who took them, people by user id, and lists that cost the same however many rows they show."""

import re
from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from campaigns.models import Campaign
from delivery.models import DeadLetter, Delivery, DeliveryAttempt, DeliveryEvent, SandboxMessage
from experiments.models import Experiment, Exposure
from inbox.models import InboxItem
from notifications.models import Batch, BatchItem, Notification, Outbox
from schedules.models import Schedule, ScheduleRun
from templates_app.models import MessageTemplate
from tests.factories import make_failed_delivery, make_recipient

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-ops-password"


@pytest.fixture
def ada():
    return make_recipient("ada", phone="")


@pytest.fixture
def trail(ada):
    """One record of every audit model, as Herald's workers and the API leave them."""
    notification, email, letter = make_failed_delivery(ada)
    push = Delivery.objects.get(notification=notification, channel="push")
    now = timezone.now()
    waiting = Notification.objects.create(recipient=ada, type="social", priority="medium", template_name="welcome")
    batch = Batch.objects.create(recipient=ada, key="social:welcome:post-1", type="social", priority="medium",
                                 template_name="welcome", opened_at=now, closes_at=now, latest_close_at=now, window_seconds=60)
    BatchItem.objects.create(batch=batch, notification=waiting, position=1, added_at=now)
    experiment = Experiment.objects.create(name="Subject", template=MessageTemplate.objects.create(name="welcome"),
                                           channel="email", arms=[{"key": "A", "version": 1, "weight": 100}])
    schedule = Schedule.objects.create(kind="notification", payload={"user_id": "ada"}, cron="0 9 * * *", timezone="UTC",
                                       starts_at=now)
    ScheduleRun.objects.create(schedule=schedule, occurrence="2026-01-01T09:00", due_at=now, fired_at=now, outcome="sent",
                               notification_id=notification.pk)
    return {
        "notification": notification, "delivery": email, "attempt": email.attempt_log.first(), "dead letter": letter,
        "outbox": Outbox.objects.create(notification=waiting, available_at=now),
        "event": DeliveryEvent.objects.create(delivery=push, source="app", event="opened", event_key="e1", applied=True),
        "sandbox message": SandboxMessage.objects.create(delivery=push, channel="push", to=["token-ada"], content={"title": "Hi"}),
        "batch": batch,
        "exposure": Exposure.objects.create(experiment=experiment, notification_id=notification.pk, recipient_id=ada.pk, arm="A",
                                            exposed_at=now),
        "schedule": schedule,
        "campaign": Campaign.objects.create(type="marketing", priority="low", template_name="welcome",
                                            audience={"user_ids": ["ada"]}),
        "inbox item": InboxItem.objects.create(recipient=ada, title="Hello"),
    }


def admin_url(record, view: str) -> str:
    name = f"admin:{record._meta.app_label}_{record._meta.model_name}_{view}"
    return reverse(name) if view in ("changelist", "add") else reverse(name, args=[record.pk])


def staff(django_user_model, client, username: str, *codenames: str):
    user = django_user_model.objects.create_user(username, password=PASSWORD, is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    client.login(username=username, password=PASSWORD)
    return user


def test_a_staff_user_who_may_only_view_reads_every_audit_record_and_changes_none(client, django_user_model, trail):
    staff(django_user_model, client, "viewer", *{f"view_{record._meta.model_name}" for record in trail.values()})
    letter = trail["dead letter"]

    for what, record in trail.items():
        # then every list and record reads
        assert client.get(admin_url(record, "changelist")).status_code == 200, what
        page = client.get(admin_url(record, "change"))
        assert page.status_code == 200, what
        assert 'name="_save"' not in page.content.decode(), what
        # and nothing can be added, changed or deleted
        assert client.get(admin_url(record, "add")).status_code == 403, what
        assert client.post(admin_url(record, "add"), {}).status_code == 403, what
        assert client.post(admin_url(record, "change"), {}).status_code == 403, what
        assert client.get(admin_url(record, "delete")).status_code == 403, what
        assert client.post(admin_url(record, "delete"), {"post": "yes"}).status_code == 403, what

    # nor requeued, from its page or from the list
    assert 'id="requeue-form"' not in client.get(admin_url(letter, "change")).content.decode()
    assert client.post(reverse("admin:delivery_deadletter_requeue", args=[letter.pk])).status_code == 403
    client.post(admin_url(letter, "changelist"), {"action": "requeue", "_selected_action": [letter.pk]})
    letter.refresh_from_db()
    assert letter.requeued_at is None
    assert Delivery.objects.get(pk=letter.delivery_id).status == "failed"
    assert not LogEntry.objects.exists()


def test_not_even_a_superuser_may_add_change_or_delete_an_audit_record(admin_client, trail):
    for what, record in trail.items():
        assert admin_client.get(admin_url(record, "change")).status_code == 200, what
        assert admin_client.get(admin_url(record, "add")).status_code == 403, what
        assert admin_client.post(admin_url(record, "change"), {}).status_code == 403, what
        assert admin_client.post(admin_url(record, "delete"), {"post": "yes"}).status_code == 403, what
    assert Notification.objects.count() == 2 and DeadLetter.objects.count() == 1


def test_requeue_needs_its_own_permission_and_records_who_did_it_and_when(client, django_user_model, trail):
    # given an on-call user who may view dead letters and requeue them, and nothing else
    oncall = staff(django_user_model, client, "oncall", "view_deadletter", "requeue_deadletter")
    letter = trail["dead letter"]
    assert 'id="requeue-form"' in client.get(admin_url(letter, "change")).content.decode()

    # when they requeue it from its page
    response = client.post(reverse("admin:delivery_deadletter_requeue", args=[letter.pk]))

    # then its delivery is queued with fresh attempts, and who did it and when is on record and on the page
    assert response.status_code == 302 and response["Location"] == admin_url(letter, "change")
    letter.refresh_from_db()
    delivery = Delivery.objects.get(pk=letter.delivery_id)
    assert letter.requeued_at is not None and (delivery.status, delivery.attempts) == ("queued", 0)
    entry = LogEntry.objects.get()
    assert (entry.user, entry.object_id, entry.change_message) == (oncall, str(letter.pk), "Requeued")
    page = client.get(admin_url(letter, "change")).content.decode()
    assert "Requeued: its delivery is queued again" in page
    assert re.search(r"oncall at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", page)
    assert 'id="requeue-form"' not in page  # once is enough
    # and the same permission lets them requeue from the list, where it is recorded too
    second, *_ = make_failed_delivery(make_recipient("bob", phone=""))
    another = DeadLetter.objects.get(delivery__notification=second)
    client.post(admin_url(another, "changelist"), {"action": "requeue", "_selected_action": [another.pk]})
    assert LogEntry.objects.filter(object_id=str(another.pk), user=oncall, change_message="Requeued").exists()


def test_people_appear_by_user_id_and_ids_in_short(admin_client, trail, ada):
    delivery = trail["delivery"]

    listed = admin_client.get(admin_url(delivery, "changelist")).content.decode()
    page = admin_client.get(admin_url(trail["notification"], "change")).content.decode()

    assert ">ada</a>" in listed and f" to {ada.pk} " not in listed and f"to {ada.pk} (" not in listed
    assert f'title="{delivery.pk}">{str(delivery.pk)[:8]}</' in listed
    assert ">ada</a>" in page
    for section in ("Deliveries", "Status history", "Skipped channels", "Workflow"):
        assert f"<h2>{section}</h2>" in page
    assert "<td>no_phone</td>" in page and "<td>not_read</td>" in page


BIG_LISTS = [Notification, Delivery, DeliveryAttempt, DeadLetter, DeliveryEvent, Exposure, Batch, InboxItem]


def a_row_of_each_big_list(user_id: str) -> None:
    notification, delivery, _ = make_failed_delivery(make_recipient(user_id, phone=""))
    now = timezone.now()
    DeliveryEvent.objects.create(delivery=delivery, source="app", event="opened", event_key=f"opened:{user_id}")
    Batch.objects.create(recipient=notification.recipient, key="k", type="social", priority="medium", template_name="t",
                         opened_at=now, closes_at=now, latest_close_at=now, window_seconds=1)
    InboxItem.objects.create(recipient=notification.recipient, title="Hi")
    experiment = Experiment.objects.first() or Experiment.objects.create(
        name="e", template=MessageTemplate.objects.create(name="t"), channel="email", arms=[{"key": "A", "version": 1}])
    Exposure.objects.create(experiment=experiment, notification_id=notification.pk, recipient_id=notification.recipient_id,
                            arm="A", exposed_at=now)


@pytest.mark.parametrize("model", BIG_LISTS, ids=lambda model: model._meta.model_name)
def test_a_big_list_costs_the_same_queries_for_many_rows_as_for_one(admin_client, model):
    def listing_queries() -> int:
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        with CaptureQueriesContext(connection) as queries:
            assert admin_client.get(url).status_code == 200
        return len(queries)

    a_row_of_each_big_list("p0")
    one = listing_queries()
    for n in range(1, 5):
        a_row_of_each_big_list(f"p{n}")

    assert model.objects.count() > 1
    assert listing_queries() == one


def test_deliveries_filter_by_a_typed_date_range_and_search_exactly_by_user_id_or_id(admin_client, ada):
    _, today, _ = make_failed_delivery(ada)
    _, old, _ = make_failed_delivery(make_recipient("bob", phone=""))
    Delivery.objects.filter(notification=old.notification).update(created_at=timezone.now() - timedelta(days=10))
    url = reverse("admin:delivery_delivery_changelist")
    day = (timezone.localdate() - timedelta(days=10)).isoformat()

    def listed(**params) -> set[str]:
        html = admin_client.get(url, params).content.decode()
        return set(re.findall(r'class="short-id" title="([0-9a-f-]{36})"', html)) & {str(today.pk), str(old.pk)}

    assert listed() == {str(today.pk), str(old.pk)}
    assert listed(created_at__from=day, created_at__to=day) == {str(old.pk)}
    assert listed(created_at__from=timezone.localdate().isoformat()) == {str(today.pk)}
    assert admin_client.get(url, {"created_at__from": "not-a-day"}).status_code == 302  # Django's "bad filter" redirect
    assert listed(q="bob") == {str(old.pk)}
    assert listed(q=str(today.pk)) == {str(today.pk)}
    assert listed(q=str(today.notification_id)) == {str(today.pk)}
    assert listed(q="bo") == set()  # exact: no scan for substrings
