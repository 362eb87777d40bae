"""Listing and reading notifications over the REST API."""

import pytest

from notifications.models import Notification
from tests.factories import make_recipient


@pytest.mark.django_db
def test_a_users_notifications_are_listed_newest_first_with_pagination_and_status_filter(api):
    recipient = make_recipient("a")
    for i in range(5):
        Notification.objects.create(recipient=recipient, type="social", priority="medium", template_name=f"t{i}",
                                    status="sent" if i % 2 else "failed")

    page = api.get("/api/v1/users/a/notifications?limit=2").json()
    rest = api.get(page["next"]).json()
    failed = api.get("/api/v1/users/a/notifications?status=failed").json()

    assert [n["template"] for n in page["results"]] == ["t4", "t3"]
    assert [n["template"] for n in rest["results"]] == ["t2", "t1"]
    assert {n["status"] for n in failed["results"]} == {"failed"}
    assert len(failed["results"]) == 3
    assert api.get("/api/v1/users/a/notifications?status=nope").status_code == 400


@pytest.mark.django_db
def test_an_unknown_notification_id_is_404(api):
    assert api.get("/api/v1/notifications/6f1c1c1e-0000-0000-0000-000000000000").status_code == 404
    assert api.get("/api/v1/notifications/not-a-uuid").status_code == 404


@pytest.mark.django_db
def test_an_open_or_click_without_a_channel_is_a_400_naming_channel_and_a_conversion_needs_none(api):
    notification = Notification.objects.create(recipient=make_recipient("a"), type="transaction", priority="high",
                                               template_name="welcome", status="sent")
    url = f"/api/v1/notifications/{notification.pk}/events"

    opened = api.post(url, {"event": "opened"}, format="json")
    clicked = api.post(url, {"event": "clicked"}, format="json")
    converted = api.post(url, {"event": "converted"}, format="json")

    assert (opened.status_code, clicked.status_code) == (400, 400)
    assert opened.json()["error"] == {
        "code": "required", "field": "channel",
        "message": "channel: Required for opened: the channel the person opened the notification on.",
        "details": {"channel": ["Required for opened: the channel the person opened the notification on."]}}
    assert clicked.json()["error"]["field"] == "channel"
    assert converted.status_code == 202
