"""The inbox end to end: uvicorn serving config.asgi, a real Celery worker, Redis channel layer.

A notification accepted over HTTP is routed and delivered by the worker, whose in-app
provider stores the item and pushes it through the channel layer to the ASGI process.
"""

import itertools
import json
import threading

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from delivery.models import Delivery
from inbox.models import InboxItem
from inbox.tokens import issue_token
from tests.factories import make_recipient, make_templates, notification_body
from tests.inbox.support import asgi_server  # noqa: F401  (fixture)
from tests.services import wait_for

RECV = 15  # seconds a frame may take: routing and delivery run through the worker


@pytest.fixture
def users(live, asgi_server):  # noqa: F811
    make_templates(channels=("in_app",))
    return make_recipient("ada"), make_recipient("bob")


@pytest.fixture
def http(asgi_server, api_key):  # noqa: F811
    with httpx.Client(base_url=asgi_server.http_url, headers={"Authorization": f"Bearer {api_key[1]}"}, timeout=10) as client:
        yield client


def mint(http, user_id: str, **body) -> str:
    response = http.post(f"/api/v1/users/{user_id}/inbox-token", json=body)
    assert response.status_code == 200, response.text
    return response.json()["token"]


_sent = itertools.count()


def send(http, user_id: str, **overrides) -> str:
    # Distinct variables each time: routing drops a repeat of the same message as a duplicate.
    overrides.setdefault("variables", {"name": f"Ada {next(_sent)}"})
    response = http.post("/api/v1/notifications", json=notification_body(user_id=user_id, channels=["in_app"], **overrides))
    assert response.status_code == 202, response.text
    return response.json()["id"]


class Inbox:
    """One browser tab's socket."""

    def __init__(self, server, token: str):
        self.socket = connect(f"{server.ws_url}/ws/inbox?token={token}", open_timeout=10)
        self.init = self.next()
        assert self.init["type"] == "init", self.init

    def next(self, timeout: float = RECV, skip=("heartbeat",)) -> dict:
        while True:
            frame = json.loads(self.socket.recv(timeout=timeout))
            if frame["type"] not in skip:
                return frame

    def send(self, **message) -> None:
        self.socket.send(json.dumps(message))

    def assert_hears_nothing_before_pong(self) -> None:
        self.send(type="ping", ref="probe")
        assert self.next() == {"type": "pong", "ref": "probe"}

    def close(self) -> None:
        self.socket.close()


@pytest.fixture
def open_inbox(asgi_server):  # noqa: F811
    opened = []

    def open_(token: str) -> Inbox:
        inbox = Inbox(asgi_server, token)
        opened.append(inbox)
        return inbox

    yield open_
    for inbox in opened:
        inbox.close()


def test_a_notification_accepted_by_the_api_is_pushed_to_the_users_open_socket(users, http, open_inbox):
    # given ada's browser tab with an empty inbox
    tab = open_inbox(mint(http, "ada"))
    assert (tab.init["unread_count"], tab.init["items"]) == (0, [])

    # when her backend sends her a notification
    notification_id = send(http, "ada", variables={"name": "Ada"}, metadata={"action_url": "/welcome", "group_key": "onboarding"})

    # then the worker's delivery reaches the socket without asking
    frame = tab.next()
    assert frame["type"] == "item"
    item = frame["item"]
    assert item["notification_id"] == notification_id
    assert (item["title"], item["body"]) == ("Hello", "Hello Ada via in_app")
    assert (item["category"], item["action_url"], item["group_key"]) == ("transaction", "/welcome", "onboarding")
    assert frame["unread_count"] == 1
    # and the delivery records the inbox item as what the provider sent
    delivery = wait_for(lambda: Delivery.objects.filter(notification_id=notification_id, status="sent").first(),
                        message="the in-app delivery to be recorded as sent")
    assert (delivery.provider, delivery.provider_message_id) == ("inbox", str(item["id"]))
    assert InboxItem.objects.filter(delivery=delivery).count() == 1


def test_every_open_tab_and_device_of_a_user_stays_in_sync(users, http, open_inbox):
    # given two tabs of ada's
    token = mint(http, "ada")
    laptop, phone = open_inbox(token), open_inbox(mint(http, "ada"))
    send(http, "ada")
    send(http, "ada")
    first, second = laptop.next()["item"]["id"], laptop.next()["item"]["id"]
    # Two worker processes may deliver them at once, so each tab may see them in either order.
    assert {phone.next()["item"]["id"], phone.next()["item"]["id"]} == {first, second}

    # when she reads one on the laptop
    laptop.send(type="mark_read", id=first)

    # then the phone's badge and list follow
    changed = phone.next()
    assert changed["type"] == "changed"
    assert changed["items"][0]["id"] == first and changed["items"][0]["read_at"]
    assert changed["unread_count"] == 1
    assert laptop.next() == changed

    # and a change made over REST reaches both sockets too
    response = httpx.post(f"{http.base_url}/api/v1/inbox/mark-all-read", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    for tab in (laptop, phone):
        frame = tab.next()
        assert (frame["type"], frame["unread_count"]) == ("all_read", 0)
        assert frame["version"] > changed["version"]


def test_a_client_that_drops_and_reconnects_while_notifications_flow_misses_none(users, http, open_inbox, live):
    # given notifications being sent to ada continuously
    total = 12
    sent: list[str] = []
    sender = threading.Thread(target=lambda: sent.extend(send(http, "ada", variables={"name": f"n{i}"}) for i in range(total)))
    token = mint(http, "ada")
    tab = open_inbox(token)
    seen = {item["id"] for item in tab.init["items"]}
    sender.start()

    # when her connection drops after the first few arrive
    while len(seen) < 3:
        frame = tab.next()
        if frame["type"] == "item":
            seen.add(frame["item"]["id"])
    tab.close()
    dropped_at = len(seen)

    # and she comes back with the newest id she has
    tab = open_inbox(token)
    seen |= {item["id"] for item in tab.init["items"]}
    tab.send(type="resume", last_id=max(seen))
    sender.join(30)
    assert len(sent) == total
    wait_for(lambda: InboxItem.objects.filter(recipient__external_id="ada").count() == total,
             40, message=f"all {total} items to be delivered (worker log: {live.log_path})")
    expected = set(InboxItem.objects.filter(recipient__external_id="ada").values_list("id", flat=True))
    resumed = False
    while not (resumed and expected <= seen):
        frame = tab.next()
        if frame["type"] == "item":
            seen.add(frame["item"]["id"])
        elif frame["type"] == "resumed":
            resumed = True
            seen |= {item["id"] for item in frame["items"]}

    # then every item reached her, across the gap
    assert dropped_at < total
    assert seen == expected


def test_a_socket_with_an_expired_token_is_refused_and_an_open_one_closes_when_its_token_expires(users, asgi_server):  # noqa: F811
    import time

    ada = users[0]
    expired, _ = issue_token(ada.pk, "ada", ttl_seconds=10, now=time.time() - 60)
    with connect(f"{asgi_server.ws_url}/ws/inbox?token={expired}", open_timeout=10) as socket:
        assert json.loads(socket.recv(timeout=RECV))["error"]["code"] == "token_expired"
        with pytest.raises(ConnectionClosed) as closed:
            socket.recv(timeout=RECV)
        assert closed.value.rcvd.code == 4401

    short_lived, _ = issue_token(ada.pk, "ada", ttl_seconds=2)
    with connect(f"{asgi_server.ws_url}/ws/inbox?token={short_lived}", open_timeout=10) as socket:
        assert json.loads(socket.recv(timeout=RECV))["type"] == "init"
        frame = json.loads(socket.recv(timeout=RECV))
        assert frame["error"]["code"] == "token_expired"
        with pytest.raises(ConnectionClosed) as closed:
            socket.recv(timeout=RECV)
        assert closed.value.rcvd.code == 4401

    response = httpx.get(f"{asgi_server.http_url}/api/v1/inbox/items", headers={"Authorization": f"Bearer {expired}"})
    assert (response.status_code, response.json()["error"]["code"]) == (401, "token_expired")


def test_one_users_token_can_neither_see_nor_touch_another_users_inbox(users, http, open_inbox):
    # given an item in bob's inbox and both users' tabs open
    bob_token = mint(http, "bob")
    bobs_tab = open_inbox(bob_token)
    send(http, "bob")
    bobs_item = bobs_tab.next()["item"]["id"]
    ada_token = mint(http, "ada")
    adas_tab = open_inbox(ada_token)

    # when ada's token reaches for bob's item over the socket and over REST
    adas_tab.send(type="mark_read", id=bobs_item, ref="x")
    refused = adas_tab.next()
    headers = {"Authorization": f"Bearer {ada_token}"}
    rest = [
        httpx.get(f"{http.base_url}/api/v1/inbox/items/{bobs_item}", headers=headers),
        httpx.post(f"{http.base_url}/api/v1/inbox/items/{bobs_item}/read", headers=headers),
        httpx.delete(f"{http.base_url}/api/v1/inbox/items/{bobs_item}", headers=headers),
    ]
    listed = httpx.get(f"{http.base_url}/api/v1/inbox/items", headers=headers).json()["results"]

    # then it is told the item does not exist, and bob's item is untouched
    assert (refused["type"], refused["error"]["code"], refused["ref"]) == ("error", "not_found", "x")
    assert [r.status_code for r in rest] == [404, 404, 404]
    assert listed == []
    assert InboxItem.objects.get(pk=bobs_item).read_at is None

    # and ada's notifications never reach bob's socket
    send(http, "ada")
    assert adas_tab.next()["type"] == "item"
    bobs_tab.assert_hears_nothing_before_pong()
