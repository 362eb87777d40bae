"""People's choices, quiet hours, caps and dedup, end to end through the router and a real worker."""

import threading
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from delivery.models import Delivery
from notifications import routing
from notifications.models import Notification
from tests.factories import delivery_of, delivery_status, make_recipient, make_templates, notification_body, status_of
from tests.services import wait_for

TERMINAL = ("sent", "failed")


def set_preferences(api, user_id: str, changes: dict) -> dict:
    etag = api.get(f"/api/v1/users/{user_id}/preferences")["ETag"]
    response = api.patch(f"/api/v1/users/{user_id}/preferences", changes, format="json", HTTP_IF_MATCH=etag)
    assert response.status_code == 200, response.content
    return response.json()


def send(api, **body) -> str:
    response = api.post("/api/v1/notifications", notification_body(user_id="pf", **body), format="json")
    assert response.status_code == 202, response.content
    return response.json()["id"]


def skipped(api, notification_id) -> list[dict]:
    return api.get(f"/api/v1/notifications/{notification_id}").json()["skipped_channels"]


def setup_person(**fields):
    make_templates()
    return make_recipient("pf", **fields)


def test_a_category_turned_off_is_suppressed_and_says_so(api, live):
    setup_person()
    set_preferences(api, "pf", {"categories": {"social": {"enabled": False}}})

    notification_id = send(api, type="social", channels=["push", "in_app"])

    wait_for(lambda: status_of(notification_id) == "failed", message="suppressed social notification")
    assert skipped(api, notification_id) == [
        {"channel": "push", "reason": "opted_out"}, {"channel": "in_app", "reason": "opted_out"},
    ]
    assert not Delivery.objects.filter(notification_id=notification_id).exists()


def test_a_channel_turned_off_is_skipped_while_the_others_go(api, live):
    setup_person()
    set_preferences(api, "pf", {"channels": {"sms": False}})

    notification_id = send(api, channels=["sms", "email"])

    wait_for(lambda: status_of(notification_id) == "sent", message="email to be sent")
    assert skipped(api, notification_id) == [{"channel": "sms", "reason": "opted_out"}]
    assert delivery_of(notification_id, "sms") is None


def test_everything_off_still_lets_required_security_alerts_through(api, live):
    setup_person()
    set_preferences(api, "pf", {"enabled": False, "channels": {"email": False}})

    blocked = send(api, type="transaction", channels=["email"])
    security = send(api, type="security", channels=["email"], variables={"name": "alert"})

    wait_for(lambda: status_of(security) == "sent", message="security email despite opt-outs")
    wait_for(lambda: status_of(blocked) == "failed", message="transaction to be suppressed")
    assert skipped(api, blocked) == [{"channel": "email", "reason": "opted_out"}]


def test_quiet_hours_hold_push_until_the_window_ends_while_email_goes_now(api, live):
    # given a person in Tokyo whose quiet hours cover the present moment
    setup_person(timezone="Asia/Tokyo")
    local_now = timezone.now().astimezone(ZoneInfo("Asia/Tokyo"))
    start = (local_now - timedelta(hours=1)).strftime("%H:%M")
    end = (local_now + timedelta(hours=2)).strftime("%H:%M")
    set_preferences(api, "pf", {"quiet_hours": {"enabled": True, "start": start, "end": end}})

    # when a reminder goes to push and email
    notification_id = send(api, type="reminder", channels=["push", "email"])

    # then email goes now, push is held (not dropped) until the window's end, and the API says so
    wait_for(lambda: delivery_status(notification_id, "email") == "sent", message="email during quiet hours")
    push = delivery_of(notification_id, "push")
    assert push.status == "queued"
    window_end = datetime.combine(local_now.date(), datetime.strptime(end, "%H:%M").time(), tzinfo=ZoneInfo("Asia/Tokyo"))
    if window_end < local_now:
        window_end += timedelta(days=1)
    assert push.held_until == window_end
    [held] = skipped(api, notification_id)
    assert held["reason"] == "quiet_hours_held_until"
    assert datetime.fromisoformat(held["until"]) == window_end

    # when the window ends (the clock is moved to it by moving the hold: the sweep releases what is due)
    Delivery.objects.filter(pk=push.pk).update(held_until=timezone.now(), available_at=timezone.now())

    # then the held push is delivered
    wait_for(lambda: delivery_status(notification_id, "push") == "sent", message="held push after the window")


def test_critical_alerts_ignore_quiet_hours(api, live):
    setup_person(timezone="Europe/Berlin")
    local_now = timezone.now().astimezone(ZoneInfo("Europe/Berlin"))
    set_preferences(api, "pf", {"quiet_hours": {
        "enabled": True, "start": (local_now - timedelta(hours=1)).strftime("%H:%M"),
        "end": (local_now + timedelta(hours=1)).strftime("%H:%M"),
    }})

    notification_id = send(api, type="security", channels=["push"])

    wait_for(lambda: delivery_status(notification_id, "push") == "sent", message="critical push during quiet hours")
    assert skipped(api, notification_id) == []


def test_twenty_concurrent_marketing_sends_let_exactly_the_hourly_cap_through(live, api_key):
    # given a person who opted in to marketing (capped at 2 an hour by default)
    setup_person()
    client = APIClient(HTTP_AUTHORIZATION=f"Bearer {api_key[1]}")
    set_preferences(client, "pf", {"categories": {"marketing": {"enabled": True}}})
    barrier = threading.Barrier(20)
    ids = []

    def post(n):
        own = APIClient(HTTP_AUTHORIZATION=f"Bearer {api_key[1]}")
        barrier.wait()
        ids.append(own.post("/api/v1/notifications", notification_body(
            user_id="pf", type="marketing", channels=["email"], variables={"name": f"offer {n}"},
        ), format="json").json()["id"])
        connection.close()

    # when twenty different offers are sent at the same moment
    threads = [threading.Thread(target=post, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # then exactly two go out and eighteen are suppressed as frequency-capped
    wait_for(lambda: Notification.objects.filter(pk__in=ids, status__in=TERMINAL).count() == 20, 60, message="all routed")
    statuses = list(Notification.objects.filter(pk__in=ids).values_list("status", flat=True))
    assert statuses.count("sent") == 2
    capped = Notification.objects.filter(pk__in=ids, status="failed")
    assert all(n.skipped_channels == [{"channel": "email", "reason": "frequency_capped"}] for n in capped)


def test_the_same_message_twice_within_the_hour_is_suppressed_as_a_duplicate(api, live):
    setup_person()

    first = send(api, channels=["email"])
    wait_for(lambda: status_of(first) == "sent", message="first")
    second = send(api, channels=["email"])

    wait_for(lambda: status_of(second) == "deduplicated", message="duplicate to be suppressed")
    assert skipped(api, second) == [{"channel": "email", "reason": "duplicate"}]
    assert api.get(f"/api/v1/notifications/{second}").json()["status_history"][-1]["reason"] == "duplicate"


def test_routing_with_cached_preferences_reads_no_preference_tables(transactional_db, broker):
    # given preferences already cached by one routed notification
    recipient = setup_person()
    first, second = (
        Notification.objects.create(recipient=recipient, type="transaction", priority="high", template_name="welcome",
                                    variables={"name": name}, status="queued", requested_channels=["email"])
        for name in ("a", "b")
    )
    routing.route(first.pk)

    # when the next one is routed
    with CaptureQueriesContext(connection) as queries:
        routing.route(second.pk)

    # then
    assert Delivery.objects.filter(notification=second).count() == 1
    touched = [q["sql"] for q in queries if "preferences_preferences" in q["sql"] or "preferences_categorysetting" in q["sql"]]
    assert touched == []
