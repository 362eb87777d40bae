"""Herald's own tracked links and open pixel."""

from datetime import timedelta

import pytest
import time_machine
from django.test import override_settings
from django.utils import timezone

from delivery import tracking
from delivery.models import Delivery, DeliveryEvent
from notifications.models import Notification
from tests.factories import make_recipient

BASE = "https://herald.example"
pytestmark = pytest.mark.usefixtures("public_base_url")


@pytest.fixture
def public_base_url(settings):
    settings.PUBLIC_BASE_URL, settings.HERALD_TRACK_LINKS = BASE, True


@override_settings(PUBLIC_BASE_URL=BASE, HERALD_TRACK_LINKS=True, HERALD_OPEN_PIXEL=True)
def test_http_links_in_both_parts_become_signed_redirects_and_the_pixel_is_added():
    content = tracking.tracked({
        "subject": "See https://x.example/a",
        "body": "Read https://x.example/a?b=1&c=2. Or mailto:ops@example.com",
        "html_body": '<p><a href="https://x.example/a?b=1&amp;c=2">read</a> <a href="mailto:ops@example.com">mail</a></p>',
    })
    personal = tracking.for_delivery(content, "2c1f7f8e-8f4e-4a4e-9a61-4c3e2c0e1d11")

    assert personal["subject"] == "See https://x.example/a"  # subjects are never rewritten
    text_link = personal["body"].split()[1].rstrip(".")
    assert text_link.startswith(f"{BASE}/l/") and personal["body"].split()[1].endswith(".")
    delivery_token, link_token = text_link.removeprefix(f"{BASE}/l/").split("/")
    assert tracking.read_link(link_token) == "https://x.example/a?b=1&c=2"
    assert tracking.read_delivery(delivery_token) == "2c1f7f8e-8f4e-4a4e-9a61-4c3e2c0e1d11"
    assert 'href="mailto:ops@example.com"' in personal["html_body"]
    assert personal["html_body"].count(f"{BASE}/l/") == 1 and f"{BASE}/o/{delivery_token}.gif" in personal["html_body"]


def test_tampered_tokens_do_not_verify():
    link = tracking.link_url("https://x.example/a")
    token = link.rsplit("/", 1)[1]
    assert tracking.read_link(token) == "https://x.example/a"
    assert tracking.read_link(token[:-2] + "xx") is None
    assert tracking.read_delivery(tracking.delivery_token("abc")[:-1] + "Z") is None


def sent_email_with(url: str, user_id: str = "t1") -> Delivery:
    """A sent email whose stored content holds `url` as a tracked link (as sending stores it)."""
    person = make_recipient(user_id)
    notification = Notification.objects.create(recipient=person, type="transaction", template_name="x", status="sent")
    delivery = Delivery.objects.create(notification=notification, channel="email", status="sent")
    delivery.content = tracking.for_delivery(tracking.tracked({"body": f"Go to {url} now"}), delivery.pk)
    delivery.save(update_fields=["content"])
    return delivery


@pytest.mark.django_db
def test_a_tracked_click_redirects_and_counts_once_per_delivery(client):
    delivery = sent_email_with("https://shop.example/cart?id=7")
    token = tracking.delivery_token(delivery.pk)
    link = tracking.link_url("https://shop.example/cart?id=7").rsplit("/", 1)[1]

    first = client.get(f"/l/{token}/{link}")
    again = client.get(f"/l/{token}/{link}")
    forged = client.get(f"/l/{token}/{tracking.link_url('https://evil.example').rsplit('/', 1)[1][:-3]}abc")
    pixel = client.get(f"/o/{token}.gif")

    assert (first.status_code, first["Location"]) == (302, "https://shop.example/cart?id=7")
    assert again.status_code == 302
    assert forged.status_code == 404 and "Location" not in forged
    assert pixel.status_code == 200 and pixel["Content-Type"] == "image/gif"
    events = DeliveryEvent.objects.filter(delivery=delivery, source="herald")
    assert sorted(events.values_list("event", flat=True)) == ["clicked", "opened"]
    delivery.refresh_from_db()
    assert delivery.status == "read" and delivery.clicked_at is not None


@pytest.mark.django_db
def test_a_conversion_is_recorded_once_even_with_nothing_sent(api):
    person = make_recipient("t2")
    notification = Notification.objects.create(recipient=person, type="transaction", template_name="x", status="canceled")

    first = api.post(f"/api/v1/notifications/{notification.pk}/events", {"event": "converted"}, format="json")
    again = api.post(f"/api/v1/notifications/{notification.pk}/events", {"event": "converted"}, format="json")

    assert (first.status_code, first.json()["new"], again.json()["new"]) == (202, True, False)
    assert api.get(f"/api/v1/notifications/{notification.pk}").json()["converted_at"] is not None


@pytest.mark.django_db
def test_a_link_works_only_with_the_delivery_it_was_sent_in(client):
    # given two people sent the same link
    first, second = sent_email_with("https://shop.example/a", "t1"), sent_email_with("https://shop.example/a", "t2")
    link = tracking.link_url("https://shop.example/a").rsplit("/", 1)[1]

    # when the second person's delivery token is paired with a link token they were never sent
    other = tracking.link_url("https://elsewhere.example/").rsplit("/", 1)[1]
    borrowed = client.get(f"/l/{tracking.delivery_token(second.pk)}/{other}")

    # then only links of their own message work

    assert client.get(f"/l/{tracking.delivery_token(first.pk)}/{link}").status_code == 302
    assert borrowed.status_code == 404 and "Location" not in borrowed
    assert not DeliveryEvent.objects.filter(delivery=second).exists()


@pytest.mark.django_db
def test_a_link_past_its_days_shows_where_it_went_and_neither_redirects_nor_counts(client, settings):
    delivery = sent_email_with("https://shop.example/old")
    link = tracking.link_url("https://shop.example/old").rsplit("/", 1)[1]
    settings.HERALD_TRACKED_LINK_DAYS = 30

    with time_machine.travel(timezone.now() + timedelta(days=31)):
        expired = client.get(f"/l/{tracking.delivery_token(delivery.pk)}/{link}")

    assert expired.status_code == 410 and "Location" not in expired
    assert "https://shop.example/old" in expired.content.decode()
    assert not DeliveryEvent.objects.filter(delivery=delivery).exists()
