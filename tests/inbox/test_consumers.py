"""The inbox WebSocket in-process (Channels' WebsocketCommunicator) on real PostgreSQL and Redis."""

import json
import time

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import channel_layers
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator

from delivery.providers.base import OutgoingMessage
from inbox import consumers, items
from inbox.provider import InboxProvider
from inbox.routing import websocket_urlpatterns
from inbox.tokens import issue_token
from tests.factories import make_recipient
from tests.inbox.support import make_in_app_delivery

application = URLRouter(websocket_urlpatterns)
TIMEOUT = 5


def run(scenario):
    """Run an async scenario from a sync test; DB calls it makes share the test's thread."""
    return async_to_sync(scenario)()


def deliver_now(recipient, title="Hello", **metadata) -> int:
    delivery = make_in_app_delivery(recipient, metadata=metadata)
    result = InboxProvider().send(OutgoingMessage(
        delivery_id=str(delivery.pk), channel="in_app", to=[recipient.external_id],
        content={"title": title, "body": f"{title} body"}, priority="medium", attempt=1,
        notification_id=str(delivery.notification_id), notification_type="social", metadata=metadata,
    ))
    return int(result.provider_message_id)


deliver = database_sync_to_async(deliver_now)


def token_for(recipient, ttl: int = 300, now: float | None = None) -> str:
    return issue_token(recipient.pk, recipient.external_id, ttl, now=now)[0]


async def open_inbox(recipient, token: str | None = None) -> tuple[WebsocketCommunicator, dict]:
    communicator = WebsocketCommunicator(application, f"/ws/inbox?token={token or token_for(recipient)}")
    connected, _ = await communicator.connect(timeout=TIMEOUT)
    assert connected
    init = await next_frame(communicator)
    assert init["type"] == "init", init
    return communicator, init


async def next_frame(communicator, skip=("heartbeat",)) -> dict:
    while True:
        frame = await communicator.receive_json_from(timeout=TIMEOUT)
        if frame["type"] not in skip:
            return frame


async def assert_hears_nothing_before_pong(communicator):
    # Anything queued for this socket arrives before the answer to a ping sent now.
    await communicator.send_json_to({"type": "ping", "ref": "probe"})
    assert await next_frame(communicator) == {"type": "pong", "ref": "probe"}


@pytest.fixture(autouse=True)
def fresh_channel_layer():
    # The layer object keeps per-event-loop state; each test runs its own loop.
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@pytest.fixture
def ada(transactional_db):
    return make_recipient("ada")


@pytest.fixture
def bob(transactional_db):
    return make_recipient("bob")


def test_a_socket_opens_with_the_unread_count_and_newest_items(ada, settings):
    settings.HERALD_INBOX_INIT_ITEMS = 2
    ids = [deliver_now(ada, f"n{i}") for i in range(3)]
    items.mark_read(ada.pk, ids[0])

    async def scenario():
        communicator, init = await open_inbox(ada)
        await communicator.disconnect()
        return init

    init = run(scenario)

    assert init["unread_count"] == 2
    assert [i["id"] for i in init["items"]] == [ids[2], ids[1]]
    assert init["has_more"] is True
    assert init["user_id"] == "ada"
    assert init["version"] == items.current_version(ada.pk)
    assert init["heartbeat_seconds"] == settings.HERALD_INBOX_HEARTBEAT_SECONDS


def test_a_delivered_item_is_pushed_to_every_open_socket_of_its_recipient(ada):
    async def scenario():
        tab1, _ = await open_inbox(ada)
        tab2, _ = await open_inbox(ada)
        item_id = await deliver(ada, "Your order shipped", action_url="/orders/1")
        frames = [await next_frame(tab1), await next_frame(tab2)]
        await tab1.disconnect()
        await tab2.disconnect()
        return item_id, frames

    item_id, frames = run(scenario)

    for frame in frames:
        assert frame["type"] == "item"
        assert frame["item"]["id"] == item_id
        assert frame["item"]["title"] == "Your order shipped"
        assert frame["item"]["action_url"] == "/orders/1"
        assert frame["unread_count"] == 1


def test_a_change_made_on_one_socket_reaches_all_of_them(ada):
    first, second = deliver_now(ada, "a"), deliver_now(ada, "b")

    async def scenario():
        tab1, _ = await open_inbox(ada)
        tab2, _ = await open_inbox(ada)
        await tab1.send_json_to({"type": "mark_read", "id": first})
        read = [await next_frame(tab1), await next_frame(tab2)]
        await tab2.send_json_to({"type": "archive", "id": second})
        archived = [await next_frame(tab1), await next_frame(tab2)]
        await tab1.send_json_to({"type": "mark_all_read"})
        all_read = [await next_frame(tab1), await next_frame(tab2)]
        await tab1.disconnect()
        await tab2.disconnect()
        return read, archived, all_read

    read, archived, all_read = run(scenario)

    assert read[0] == read[1]
    assert read[0]["type"] == "changed" and read[0]["unread_count"] == 1
    assert read[0]["items"][0]["id"] == first and read[0]["items"][0]["read_at"]
    assert archived[0] == archived[1]
    assert archived[0]["items"][0]["archived_at"] and archived[0]["unread_count"] == 0
    assert all_read[0]["type"] == "all_read" and all_read[0]["unread_count"] == 0
    assert read[0]["version"] < archived[0]["version"] < all_read[0]["version"]


def test_a_reconnecting_client_gets_everything_it_missed(ada, monkeypatch):
    # given a client that had the first item when it went away, and five more delivered meanwhile
    monkeypatch.setattr(consumers, "RESUME_PAGE", 2)
    had = deliver_now(ada, "before")
    missed = [deliver_now(ada, f"missed {i}") for i in range(5)]

    async def scenario():
        communicator, _ = await open_inbox(ada)
        await communicator.send_json_to({"type": "resume", "last_id": had})
        pages = [await next_frame(communicator) for _ in range(3)]
        await communicator.disconnect()
        return pages

    # when it reconnects and resumes
    pages = run(scenario)

    # then it receives all of them, oldest first, in pages
    assert [p["type"] for p in pages] == ["resumed"] * 3
    assert [p["has_more"] for p in pages] == [True, True, False]
    assert [i["id"] for p in pages for i in p["items"]] == missed
    assert pages[-1]["unread_count"] == 6


def test_bad_messages_get_an_error_frame_and_the_socket_stays_up(ada, settings):
    settings.HERALD_INBOX_MAX_CLIENT_MESSAGE_BYTES = 200
    cases = [
        ("{not json", "malformed_json", None),
        ("[1, 2]", "invalid_message", None),
        ('{"id": 1}', "invalid", "type"),
        ('{"type": "explode"}', "unknown_type", "type"),
        ('{"type": "mark_read"}', "invalid", "id"),
        ('{"type": "mark_read", "id": "7"}', "invalid", "id"),
        ('{"type": "mark_read", "id": true}', "invalid", "id"),
        ('{"type": "archive", "id": 100000000000000000000000000000}', "invalid", "id"),
        ('{"type": "resume", "last_id": -1}', "invalid", "last_id"),
        ('{"type": "mark_all_read", "category": 5}', "invalid", "category"),
        ('{"type": "ping", "ref": {"x": 1}}', "invalid", "ref"),
        (json.dumps({"type": "ping", "pad": "x" * 500}), "message_too_large", None),
    ]

    async def scenario():
        communicator, _ = await open_inbox(ada)
        errors = []
        for text, _, _ in cases:
            await communicator.send_to(text_data=text)
            errors.append(await next_frame(communicator))
        await communicator.send_to(bytes_data=b"\x00\x01")
        errors.append(await next_frame(communicator))
        await communicator.send_json_to({"type": "ping", "ref": 7})
        pong = await next_frame(communicator)
        await communicator.disconnect()
        return errors, pong

    errors, pong = run(scenario)

    for frame, (_, code, field) in zip(errors, cases):
        assert frame["type"] == "error"
        assert (frame["error"]["code"], frame["error"]["field"]) == (code, field), frame
        assert frame["error"]["message"]
    assert errors[-1]["error"]["code"] == "invalid_message"
    assert pong == {"type": "pong", "ref": 7}


def test_an_unknown_item_or_another_users_item_gets_not_found(ada, bob):
    bobs = deliver_now(bob)

    async def scenario():
        communicator, _ = await open_inbox(ada)
        frames = []
        for message in ({"type": "mark_read", "id": 999999, "ref": "a"}, {"type": "archive", "id": bobs, "ref": "b"},
                        {"type": "delete", "id": bobs, "ref": "c"}):
            await communicator.send_json_to(message)
            frames.append(await next_frame(communicator))
        await communicator.disconnect()
        return frames

    frames = run(scenario)

    assert [(f["type"], f["error"]["code"], f["error"]["field"], f["ref"]) for f in frames] == [
        ("error", "not_found", "id", "a"), ("error", "not_found", "id", "b"), ("error", "not_found", "id", "c"),
    ]
    assert items.get_item(bob.pk, bobs).archived_at is None


def test_a_socket_hears_nothing_of_another_users_inbox(ada, bob):
    async def scenario():
        adas, _ = await open_inbox(ada)
        bobs, _ = await open_inbox(bob)
        await deliver(ada, "private")
        heard = await next_frame(adas)
        await adas.send_json_to({"type": "mark_all_read"})
        await next_frame(adas)
        await assert_hears_nothing_before_pong(bobs)
        await adas.disconnect()
        await bobs.disconnect()
        return heard

    assert run(scenario)["item"]["title"] == "private"


@pytest.mark.parametrize("make_token, code", [
    (lambda r: token_for(r, ttl=10, now=time.time() - 60), "token_expired"),
    (lambda r: token_for(r)[:-4] + "AAAA", "invalid_token"),
    (lambda r: "", "invalid_token"),
])
def test_a_bad_token_is_told_why_and_closed_with_4401(ada, make_token, code):
    async def scenario():
        communicator = WebsocketCommunicator(application, f"/ws/inbox?token={make_token(ada)}")
        await communicator.connect(timeout=TIMEOUT)
        frame = await communicator.receive_json_from(timeout=TIMEOUT)
        closed = await communicator.receive_output(timeout=TIMEOUT)
        await communicator.disconnect()
        return frame, closed

    frame, closed = run(scenario)

    assert frame["type"] == "error" and frame["error"]["code"] == code
    assert closed == {"type": "websocket.close", "code": 4401}


def test_a_socket_is_closed_when_its_token_expires(ada, settings):
    settings.HERALD_INBOX_HEARTBEAT_SECONDS = 60

    async def scenario():
        communicator, init = await open_inbox(ada, token_for(ada, ttl=1))
        frame = await next_frame(communicator)
        closed = await communicator.receive_output(timeout=TIMEOUT)
        await communicator.disconnect()
        return frame, closed

    frame, closed = run(scenario)

    assert frame["error"]["code"] == "token_expired"
    assert closed == {"type": "websocket.close", "code": 4401}


def test_an_open_socket_gets_heartbeats(ada, settings):
    settings.HERALD_INBOX_HEARTBEAT_SECONDS = 0.2

    async def scenario():
        communicator, _ = await open_inbox(ada)
        beats = [await communicator.receive_json_from(timeout=TIMEOUT) for _ in range(2)]
        await communicator.disconnect()
        return beats

    assert run(scenario) == [{"type": "heartbeat"}, {"type": "heartbeat"}]
