"""The inbox REST API: token minting with an API key, and the end user's inbox with an inbox token."""

import time

import pytest
from rest_framework.test import APIClient

from delivery.providers.base import OutgoingMessage
from inbox import items
from inbox.models import InboxItem
from inbox.provider import InboxProvider
from inbox.tokens import issue_token, read_token
from notifications.models import ApiKey
from tests.factories import make_recipient
from tests.inbox.support import make_in_app_delivery

INBOX = "/api/v1/inbox"


def deliver(recipient, title="Hello", type="social", **metadata) -> InboxItem:
    delivery = make_in_app_delivery(recipient, type=type, metadata=metadata)
    result = InboxProvider().send(OutgoingMessage(
        delivery_id=str(delivery.pk), channel="in_app", to=[recipient.external_id],
        content={"title": title, "body": f"{title} body"}, priority="medium", attempt=1,
        notification_id=str(delivery.notification_id), notification_type=type, metadata=metadata,
    ))
    return InboxItem.objects.get(pk=int(result.provider_message_id))


def inbox_client(recipient, ttl: int = 300) -> APIClient:
    client = APIClient()
    raw, _ = issue_token(recipient.pk, recipient.external_id, ttl)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


@pytest.fixture
def ada(db):
    return make_recipient("ada")


@pytest.fixture
def bob(db):
    return make_recipient("bob")


# --- minting tokens ---------------------------------------------------------------------


def test_a_backend_mints_an_inbox_token_for_one_of_its_users(api, ada):
    # when
    response = api.post("/api/v1/users/ada/inbox-token", {"ttl_seconds": 120}, format="json")

    # then
    assert response.status_code == 200, response.content
    body = response.json()
    token = read_token(body["token"])
    assert (token.recipient_id, token.user_id) == (ada.pk, "ada")
    assert 110 < token.seconds_left() <= 120
    assert body["user_id"] == "ada"
    assert body["websocket_url"].endswith("/ws/inbox?token=" + body["token"].replace(":", "%3A"))
    assert body["expires_at"].endswith("Z")


@pytest.mark.parametrize("public, socket, expected", [
    ("http://127.0.0.1:8000", "", "ws://127.0.0.1:8000/ws/inbox?token="),
    ("https://herald.example.com/", "", "wss://herald.example.com/ws/inbox?token="),
    ("https://herald.example.com", "https://sockets.example.com", "wss://sockets.example.com/ws/inbox?token="),
])
def test_the_published_websocket_url_is_the_public_origin_unless_overridden(api, ada, settings, public, socket, expected):
    settings.PUBLIC_BASE_URL, settings.HERALD_INBOX_SOCKET_URL = public, socket

    body = api.post("/api/v1/users/ada/inbox-token").json()

    assert body["websocket_url"].startswith(expected)


def test_minting_a_token_needs_the_users_write_scope(ada):
    _, raw_key = ApiKey.issue("reader", scopes=["users:read"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")

    response = client.post("/api/v1/users/ada/inbox-token")

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "insufficient_scope"


def test_minting_a_token_without_an_api_key_is_refused(ada):
    response = APIClient().post("/api/v1/users/ada/inbox-token")

    assert response.status_code == 401


def test_minting_a_token_for_an_unknown_user_names_the_user(api, db):
    response = api.post("/api/v1/users/nobody/inbox-token")

    assert response.status_code == 404
    assert response.json()["error"] == {
        "code": "unknown_user", "message": response.json()["error"]["message"], "field": "user_id",
    }


@pytest.mark.parametrize("body, field", [({"ttl_seconds": 1}, "ttl_seconds"), ({"ttl_seconds": 10**7}, "ttl_seconds"),
                                         ({"ttl_seconds": "soon"}, "ttl_seconds"), ({"ttl": 60}, "ttl")])
def test_a_bad_token_request_names_the_field(api, ada, body, field):
    response = api.post("/api/v1/users/ada/inbox-token", body, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["field"] == field


# --- authentication ---------------------------------------------------------------------


def test_an_api_key_is_not_an_inbox_token(api, ada):
    response = api.get(f"{INBOX}/items")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_token"


def test_an_expired_inbox_token_is_refused_as_expired(ada):
    raw, _ = issue_token(ada.pk, "ada", ttl_seconds=10, now=time.time() - 60)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")

    response = client.get(f"{INBOX}/items")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "token_expired"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_tampered_inbox_token_is_refused(ada, bob):
    raw, _ = issue_token(ada.pk, "ada")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw[:-3]}abc")

    response = client.get(f"{INBOX}/items")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_token"


def test_a_missing_inbox_token_is_refused(db):
    response = APIClient().get(f"{INBOX}/unread-count")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


def test_a_token_for_a_user_that_was_deleted_and_recreated_is_refused(ada):
    raw, _ = issue_token(ada.pk, "ada")
    ada.delete()
    make_recipient("ada")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")

    assert client.get(f"{INBOX}/items").status_code == 401


def test_any_site_may_call_the_inbox_api_with_a_token(ada):
    # A preflight carries no Authorization header, so it must not need one.
    response = APIClient().options(f"{INBOX}/items/1/read", HTTP_ORIGIN="https://app.example.com",
                                   HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
                                   HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization")

    assert response.status_code == 204
    assert response["Access-Control-Allow-Origin"] == "*"
    assert "Authorization" in response["Access-Control-Allow-Headers"]
    assert inbox_client(ada).get(f"{INBOX}/items")["Access-Control-Allow-Origin"] == "*"


# --- reading ----------------------------------------------------------------------------


def test_the_inbox_lists_newest_first_in_pages(ada):
    # given
    created = [deliver(ada, f"n{i}") for i in range(5)]
    client = inbox_client(ada)

    # when
    first = client.get(f"{INBOX}/items", {"limit": 2}).json()
    second = client.get(first["next"]).json()
    third = client.get(second["next"]).json()

    # then
    ids = [i["id"] for page in (first, second, third) for i in page["results"]]
    assert ids == [item.pk for item in reversed(created)]
    assert third["next"] is None
    newest = first["results"][0]
    assert newest["title"] == "n4" and newest["body"] == "n4 body"
    assert newest["category"] == "social"
    assert newest["read_at"] is None and newest["seen_at"] is None and newest["archived_at"] is None


def test_the_inbox_filters_by_state_and_category(ada):
    read = deliver(ada, "read one", type="transaction")
    unread = deliver(ada, "unread one", type="social")
    archived = deliver(ada, "archived one", type="social")
    items.mark_read(ada.pk, read.pk)
    items.archive(ada.pk, archived.pk)
    client = inbox_client(ada)

    def ids(**params):
        return [i["id"] for i in client.get(f"{INBOX}/items", params).json()["results"]]

    assert ids() == [unread.pk, read.pk]
    assert ids(state="unread") == [unread.pk]
    assert ids(state="read") == [read.pk]
    assert ids(state="archived") == [archived.pk]
    assert ids(state="all") == [archived.pk, unread.pk, read.pk]
    assert ids(category="transaction") == [read.pk]


@pytest.mark.parametrize("params, field", [({"state": "bogus"}, "state"), ({"limit": 0}, "limit"), ({"sort": "x"}, "sort")])
def test_bad_list_parameters_name_the_field(ada, params, field):
    response = inbox_client(ada).get(f"{INBOX}/items", params)

    assert response.status_code == 400
    assert response.json()["error"]["field"] == field


def test_the_grouped_view_counts_unread_items_per_group(ada):
    # given two comments on one post, one already read, and a lone item
    first = deliver(ada, "comment 1", group_key="post:1")
    deliver(ada, "comment 2", group_key="post:1")
    lone = deliver(ada, "welcome", type="transaction")
    items.mark_read(ada.pk, first.pk)
    client = inbox_client(ada)

    # when
    by_key = client.get(f"{INBOX}/groups").json()["results"]
    by_category = client.get(f"{INBOX}/groups", {"by": "category"}).json()["results"]

    # then
    assert [(g["key"], g["count"], g["unread_count"], g["latest"]["title"]) for g in by_key] == [
        (f"item:{lone.pk}", 1, 1, "welcome"),
        ("post:1", 2, 1, "comment 2"),
    ]
    assert [(g["key"], g["count"], g["unread_count"]) for g in by_category] == [("transaction", 1, 1), ("social", 2, 1)]


def test_the_grouped_view_pages(ada):
    for i in range(3):
        deliver(ada, f"g{i}", group_key=f"g{i}")
    client = inbox_client(ada)

    first = client.get(f"{INBOX}/groups", {"limit": 2}).json()
    second = client.get(first["next"]).json()

    assert [g["key"] for g in first["results"] + second["results"]] == ["g2", "g1", "g0"]


def test_unread_and_unseen_counts(ada):
    a, b, c = deliver(ada, "a"), deliver(ada, "b"), deliver(ada, "c")
    items.mark_read(ada.pk, a.pk)
    items.mark_seen(ada.pk, b.pk)
    items.archive(ada.pk, c.pk)

    counts = inbox_client(ada).get(f"{INBOX}/unread-count").json()

    assert counts["unread_count"] == 1
    assert counts["unseen_count"] == 0
    assert counts["version"] > 0


# --- changing ---------------------------------------------------------------------------


def test_an_item_goes_read_unread_seen_archived_and_back(ada):
    item = deliver(ada)
    client = inbox_client(ada)
    url = f"{INBOX}/items/{item.pk}"

    read = client.post(f"{url}/read").json()
    assert read["read_at"] is not None and read["seen_at"] is not None
    unread = client.post(f"{url}/unread").json()
    assert unread["read_at"] is None and unread["seen_at"] == read["seen_at"]
    archived = client.post(f"{url}/archive").json()
    assert archived["archived_at"] is not None
    assert client.get(f"{INBOX}/unread-count").json()["unread_count"] == 0
    assert client.post(f"{url}/unarchive").json()["archived_at"] is None
    assert unread["version"] < archived["version"]


def test_mark_seen_leaves_an_item_unread(ada):
    item = deliver(ada)

    seen = inbox_client(ada).post(f"{INBOX}/items/{item.pk}/seen").json()

    assert seen["seen_at"] is not None and seen["read_at"] is None


def test_mark_all_read_marks_every_unread_item_or_one_category(ada):
    deliver(ada, "a", type="social")
    deliver(ada, "b", type="social")
    deliver(ada, "c", type="transaction")
    client = inbox_client(ada)

    social = client.post(f"{INBOX}/mark-all-read", {"category": "social"}, format="json").json()
    rest = client.post(f"{INBOX}/mark-all-read").json()

    assert (social["updated"], social["unread_count"]) == (2, 1)
    assert (rest["updated"], rest["unread_count"]) == (1, 0)


def test_mark_all_seen_clears_unseen_without_reading(ada):
    deliver(ada)
    deliver(ada)
    client = inbox_client(ada)

    result = client.post(f"{INBOX}/mark-all-seen").json()

    assert result["updated"] == 2
    assert client.get(f"{INBOX}/unread-count").json() == {"unread_count": 2, "unseen_count": 0, "version": result["version"]}


def test_delete_removes_an_item_for_good(ada):
    item = deliver(ada)
    client = inbox_client(ada)

    assert client.delete(f"{INBOX}/items/{item.pk}").status_code == 204
    assert client.get(f"{INBOX}/items/{item.pk}").status_code == 404
    assert not InboxItem.objects.filter(pk=item.pk).exists()


@pytest.mark.parametrize("method, suffix", [("get", ""), ("delete", ""), ("post", "/read"), ("post", "/unread"),
                                            ("post", "/seen"), ("post", "/archive")])
def test_an_unknown_item_is_not_found(ada, method, suffix):
    response = getattr(inbox_client(ada), method)(f"{INBOX}/items/999999{suffix}")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert response.json()["error"]["field"] == "item_id"


def test_a_non_numeric_item_id_is_not_found(ada):
    response = inbox_client(ada).post(f"{INBOX}/items/abc/read")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("method, suffix", [("get", ""), ("delete", ""), ("post", "/read"), ("post", "/archive")])
def test_another_users_item_is_not_found_rather_than_forbidden(ada, bob, method, suffix):
    # given an item of bob's
    item = deliver(bob)

    # when ada's token reaches for it
    response = getattr(inbox_client(ada), method)(f"{INBOX}/items/{item.pk}{suffix}")

    # then it is as if it did not exist, and it is untouched
    assert response.status_code == 404
    item.refresh_from_db()
    assert item.read_at is None and item.archived_at is None


def test_a_token_sees_only_its_own_users_inbox(ada, bob):
    deliver(ada, "for ada")
    deliver(bob, "for bob")

    titles = [i["title"] for i in inbox_client(ada).get(f"{INBOX}/items").json()["results"]]
    inbox_client(ada).post(f"{INBOX}/mark-all-read")

    assert titles == ["for ada"]
    assert items.unread_count(bob.pk) == 1


# --- the provider -----------------------------------------------------------------------


def test_a_delivery_makes_one_item_however_often_it_is_sent(ada):
    delivery = make_in_app_delivery(ada)
    message = OutgoingMessage(
        delivery_id=str(delivery.pk), channel="in_app", to=["ada"], content={"title": "T", "body": "B"},
        priority="medium", attempt=1, notification_id=str(delivery.notification_id), notification_type="social",
    )

    first = InboxProvider().send(message)
    again = InboxProvider().send(message)

    assert first.outcome == "sent"
    assert first.provider_message_id == again.provider_message_id
    assert InboxItem.objects.filter(delivery=delivery).count() == 1


def test_a_delivery_to_an_unknown_user_is_an_invalid_recipient(db):
    result = InboxProvider().send(OutgoingMessage(
        delivery_id="00000000-0000-0000-0000-000000000000", channel="in_app", to=["ghost"], content={},
        priority="medium", attempt=1,
    ))

    assert result.outcome == "invalid_recipient"


def test_an_inbox_keeps_only_its_newest_items(ada, settings):
    settings.HERALD_INBOX_MAX_ITEMS = 3
    made = [deliver(ada, f"n{i}") for i in range(5)]

    kept = list(InboxItem.objects.filter(recipient=ada).order_by("id").values_list("pk", flat=True))

    assert kept == [item.pk for item in made[2:]]


def test_items_past_retention_are_purged(ada, settings):
    from datetime import timedelta

    from django.utils import timezone

    old, recent = deliver(ada, "old"), deliver(ada, "recent")
    InboxItem.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=91))

    assert items.purge_expired() == 1
    assert list(InboxItem.objects.values_list("pk", flat=True)) == [recent.pk]


# --- the widget and the demo page ---------------------------------------------------------


def test_the_widget_script_is_served_to_any_site(client):
    response = client.get("/inbox/inbox.js")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/javascript")
    assert b"HeraldInbox" in b"".join(response.streaming_content)


def test_the_demo_is_off_unless_turned_on(client, db, settings):
    settings.HERALD_INBOX_DEMO = False

    assert client.get("/inbox/demo/").status_code == 404
    assert client.get("/inbox/demo/token", {"user": "demo-ada"}).status_code == 404


def test_the_demo_mints_tokens_for_demo_users_only(client, db, settings):
    settings.HERALD_INBOX_DEMO = True
    settings.HERALD_INBOX_DEMO_USERS = ["demo-ada"]
    make_recipient("real-user")

    page = client.get("/inbox/demo/", {"user": "demo-ada"})
    minted = client.get("/inbox/demo/token", {"user": "demo-ada"})
    refused = client.get("/inbox/demo/token", {"user": "real-user"})

    assert page.status_code == 200
    assert b"data-herald-inbox" in page.content and b"/inbox/inbox.js" in page.content
    assert read_token(minted.json()["token"]).user_id == "demo-ada"
    assert refused.status_code == 404


def test_the_demo_sends_through_the_normal_accept_path(db, settings):
    from django.test import Client

    from notifications.models import Notification

    settings.HERALD_INBOX_DEMO = True
    settings.HERALD_INBOX_DEMO_USERS = ["demo-ada"]
    browser = Client(enforce_csrf_checks=True)
    page = browser.get("/inbox/demo/", {"user": "demo-ada"})
    csrf = page.cookies["csrftoken"].value

    sent = browser.post("/inbox/demo/send", {"user": "demo-ada", "title": "Hi", "message": "There"}, HTTP_X_CSRFTOKEN=csrf)
    forged = Client(enforce_csrf_checks=True).post("/inbox/demo/send", {"user": "demo-ada", "title": "x", "message": "y"})
    blank = browser.post("/inbox/demo/send", {"user": "demo-ada", "title": "", "message": "y"}, HTTP_X_CSRFTOKEN=csrf)

    assert sent.status_code == 202, sent.content
    notification = Notification.objects.get(pk=sent.json()["id"])
    assert (notification.recipient.external_id, notification.type, notification.requested_channels) == ("demo-ada", "transaction", ["in_app"])
    assert forged.status_code == 403
    assert blank.status_code == 400


def test_the_demo_sends_only_an_ordinary_in_app_message_whatever_the_request_asks(db, settings):
    from django.test import Client

    from notifications.models import Notification

    settings.HERALD_INBOX_DEMO = True
    settings.HERALD_INBOX_DEMO_USERS = ["demo-ada"]
    make_recipient("real-user", email="real@example.com")
    stranger = Client()
    assert stranger.get("/inbox/demo/").status_code == 200  # which creates the demo template

    # when an unauthenticated page visitor asks for a critical security message with a link, to a real user
    hostile = stranger.post("/inbox/demo/send", {
        "user": "demo-ada", "title": "Reset your password", "message": "now",
        "category": "security", "type": "security", "priority": "critical", "channels": "email",
        "action_url": "https://phish.example/reset", "group_key": "x",
    })
    elsewhere = stranger.post("/inbox/demo/send", {"user": "real-user", "title": "Hi", "message": "There"})

    # then the demo user gets an in-app transaction message at its default priority, without the link
    assert hostile.status_code == 202, hostile.content
    notification = Notification.objects.get(pk=hostile.json()["id"])
    assert (notification.type, notification.priority, notification.requested_channels) == ("transaction", "high", ["in_app"])
    assert notification.metadata == {}
    assert elsewhere.status_code == 404
    assert not Notification.objects.filter(recipient__external_id="real-user").exists()
