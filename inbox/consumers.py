"""The inbox WebSocket: /ws/inbox?token=<inbox token>.

Server → client frames (JSON, each with a "type"):
  init      on connect: user_id, version, unread_count, the newest items, has_more,
            heartbeat_seconds, expires_at
  item      a new item was delivered (item, version, unread_count)
  changed   items changed state (items, version, unread_count)
  all_read  / all_seen: every unread / unseen item (of `category`, if set) changed at once
  deleted   items were deleted (ids, version, unread_count)
  resumed   answer to `resume`: items after the client's last id, oldest first, in pages
  heartbeat every HERALD_INBOX_HEARTBEAT_SECONDS;  pong  answer to `ping`
  error     {"error": {"code", "message", "field"}, "ref"}; the connection stays up, except
            for token errors, which close it with code 4401
Client → server: ping, resume {last_id}, mark_read / mark_unread / mark_seen / archive /
unarchive / delete {id}, mark_all_read {category?}, mark_all_seen. Any may carry a "ref",
echoed on its error or pong.

Every change reaches all of the recipient's sockets, the one that asked included; frames
carry the inbox version so a client can drop news older than what it already shows.
"""

import asyncio
import functools
import json
import logging
import time
import weakref
from datetime import UTC, datetime
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.db import close_old_connections

from core import metrics
from inbox import items
from inbox.auth import recipient_for
from inbox.live import group_name
from inbox.tokens import InboxToken, TokenError, read_token

log = logging.getLogger(__name__)

UNAUTHORIZED = 4401
RESUME_PAGE = 200
GROUP_OPS_AT_ONCE = 50


def db(fn):
    """Run `fn` in a worker thread and hand its database connection back to the pool after.

    Not thread-sensitive: calls from many sockets run in parallel instead of queueing on
    one thread. The connection is closed inside the call: with asgiref 3.13 the cleanup
    database_sync_to_async does around it sees other connection storage, so the pooled
    connection would stay checked out.
    """

    @functools.wraps(fn)
    def closing(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        finally:
            close_old_connections()

    return sync_to_async(closing, thread_sensitive=False)


_group_gates: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]" = weakref.WeakKeyDictionary()


def group_gate() -> asyncio.Semaphore:
    """Bounds concurrent group joins and leaves per event loop.

    Thousands of clients reconnecting at once (after a deploy) would otherwise each take a
    Redis connection at the same moment, and the layer's pool refuses, not waits, past its
    size (redis-py's MaxConnectionsError).
    """
    loop = asyncio.get_running_loop()
    gate = _group_gates.get(loop)
    if gate is None:
        gate = _group_gates[loop] = asyncio.Semaphore(GROUP_OPS_AT_ONCE)
    return gate


class ClientError(Exception):
    def __init__(self, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.code = code
        self.field = field


def init_frame(recipient_id: int) -> dict:
    # The version is read first: the items and count may be newer than it, never older.
    version = items.current_version(recipient_id)
    page = items.newest(recipient_id, settings.HERALD_INBOX_INIT_ITEMS)
    return {
        "type": "init", "version": version, "unread_count": items.unread_count(recipient_id),
        "items": [items.item_data(i) for i in page.items], "has_more": page.has_more,
    }


def resume_frame(recipient_id: int, last_id: int) -> dict:
    version = items.current_version(recipient_id)
    page = items.after(recipient_id, last_id, RESUME_PAGE)
    return {
        "type": "resumed", "version": version, "unread_count": items.unread_count(recipient_id),
        "items": [items.item_data(i) for i in page.items], "has_more": page.has_more,
    }


MAX_ID = 2**63 - 1


def item_id(message: dict) -> int:
    value = message.get("id")
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_ID:
        raise ClientError("invalid", "`id` must be a positive integer item id.", "id")
    return value


ITEM_CHANGES = {
    "mark_read": items.mark_read,
    "mark_unread": items.mark_unread,
    "mark_seen": items.mark_seen,
    "archive": items.archive,
    "unarchive": items.unarchive,
    "delete": items.delete,
}


class InboxConsumer(AsyncWebsocketConsumer):
    token: InboxToken | None = None
    keep_alive_task: asyncio.Task | None = None

    async def connect(self):
        raw = (parse_qs(self.scope.get("query_string", b"").decode("latin-1")).get("token") or [""])[0]
        try:
            token = read_token(raw)
            if not await db(recipient_for)(token):
                raise TokenError("invalid_token", "The inbox token's user no longer exists.")
        except TokenError as exc:
            # Accept first so the browser can read why; a refused handshake only says "failed".
            await self.accept()
            await self.send_error(exc.code, str(exc))
            await self.close(UNAUTHORIZED)
            return
        self.token = token
        self.group = group_name(token.recipient_id)
        # Join before reading the inbox: an item committed in between arrives twice rather
        # than never (clients drop duplicates by id).
        async with group_gate():
            await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        frame = await db(init_frame)(token.recipient_id)
        frame.update(
            user_id=token.user_id, heartbeat_seconds=settings.HERALD_INBOX_HEARTBEAT_SECONDS,
            expires_at=datetime.fromtimestamp(token.expires_at, UTC).isoformat().replace("+00:00", "Z"),
        )
        await self.send_frame(frame)
        self.keep_alive_task = asyncio.create_task(self.keep_alive())
        metrics.inbox_connected(1)

    async def disconnect(self, code):
        if self.keep_alive_task:
            self.keep_alive_task.cancel()
        if self.token:
            if self.keep_alive_task:
                metrics.inbox_connected(-1)
            async with group_gate():
                await self.channel_layer.group_discard(self.group, self.channel_name)

    async def keep_alive(self):
        """Heartbeats, group membership refreshes, and closing the socket when the token expires."""
        heartbeat = settings.HERALD_INBOX_HEARTBEAT_SECONDS
        refresh_every = settings.HERALD_INBOX_GROUP_REFRESH_SECONDS
        last_refresh = time.monotonic()
        try:
            while True:
                left = self.token.seconds_left()
                if left <= heartbeat:
                    await asyncio.sleep(max(left, 0))
                    await self.send_error("token_expired", "The inbox token has expired; reconnect with a new one.")
                    await self.close(UNAUTHORIZED)
                    return
                await asyncio.sleep(heartbeat)
                await self.send_frame({"type": "heartbeat"})
                if time.monotonic() - last_refresh > refresh_every:
                    # Group membership expires (channel layer group_expiry); a long-lived socket re-joins.
                    try:
                        async with group_gate():
                            await self.channel_layer.group_add(self.group, self.channel_name)
                        last_refresh = time.monotonic()
                    except Exception:  # a Redis blip: keep the heartbeat and expiry going, retry next beat
                        log.warning("inbox group refresh failed for %s", self.channel_name, exc_info=True)
        except asyncio.CancelledError:
            raise
        except Exception:  # the socket went away under us; disconnect() cleans up
            log.debug("inbox keep-alive for %s stopped", self.channel_name, exc_info=True)

    async def receive(self, text_data=None, bytes_data=None):
        if self.token is None:
            return
        if self.token.seconds_left() <= 0:  # never rely on the keep-alive task alone for expiry
            await self.send_error("token_expired", "The inbox token has expired; reconnect with a new one.")
            await self.close(UNAUTHORIZED)
            return
        ref = None
        try:
            message = self.parse(text_data, bytes_data)
            ref = message.get("ref")
            if ref is not None and (not isinstance(ref, (str, int)) or isinstance(ref, bool) or len(str(ref)) > 100):
                ref = None
                raise ClientError("invalid", "`ref` must be a string or integer of at most 100 characters.", "ref")
            await self.handle(message, ref)
        except ClientError as exc:
            await self.send_error(exc.code, str(exc), exc.field, ref)
        except items.ItemNotFound as exc:
            await self.send_error("not_found", f"No inbox item {exc.args[0]}.", "id", ref)
        except Exception:  # the database or Redis failed us; the socket stays up and the client may retry
            log.exception("inbox socket message failed")
            await self.send_error("server_error", "The message could not be handled; try again.", None, ref)

    def parse(self, text_data, bytes_data) -> dict:
        if text_data is None:
            raise ClientError("invalid_message", "Send JSON text frames, not binary ones.")
        limit = settings.HERALD_INBOX_MAX_CLIENT_MESSAGE_BYTES
        if len(text_data) > limit or len(text_data.encode()) > limit:
            raise ClientError("message_too_large", f"Messages may be at most {limit} bytes.")
        try:
            message = json.loads(text_data)
        except ValueError as exc:
            raise ClientError("malformed_json", f"Message is not valid JSON: {exc}") from None
        if not isinstance(message, dict):
            raise ClientError("invalid_message", "A message must be a JSON object with a `type`.")
        if not isinstance(message.get("type"), str):
            raise ClientError("invalid", "A message needs a string `type`.", "type")
        return message

    async def handle(self, message: dict, ref) -> None:
        kind = message["type"]
        recipient_id = self.token.recipient_id
        if kind == "ping":
            await self.send_frame({"type": "pong", "ref": ref})
        elif kind in ITEM_CHANGES:
            await db(ITEM_CHANGES[kind])(recipient_id, item_id(message))
        elif kind == "mark_all_read":
            category = message.get("category")
            if category is not None and (not isinstance(category, str) or len(category) > 50):
                raise ClientError("invalid", "`category` must be a string of at most 50 characters.", "category")
            await db(items.mark_all_read)(recipient_id, category or None)
        elif kind == "mark_all_seen":
            await db(items.mark_all_seen)(recipient_id)
        elif kind == "resume":
            last_id = message.get("last_id")
            if isinstance(last_id, bool) or not isinstance(last_id, int) or not 0 <= last_id <= MAX_ID:
                raise ClientError("invalid", "`last_id` must be the id of the newest item you have, or 0.", "last_id")
            await self.resume(last_id)
        else:
            raise ClientError("unknown_type", f"Unknown message type {kind[:50]!r}.", "type")

    async def resume(self, last_id: int) -> None:
        while True:
            frame = await db(resume_frame)(self.token.recipient_id, last_id)
            await self.send_frame(frame)
            if not frame["has_more"]:
                return
            last_id = frame["items"][-1]["id"]

    async def inbox_frame(self, event):
        """A hint from the channel layer (inbox.live.broadcast)."""
        await self.send_frame(event["frame"])

    async def send_frame(self, frame: dict) -> None:
        await self.send(text_data=json.dumps(frame, separators=(",", ":")))

    async def send_error(self, code: str, message: str, field: str | None = None, ref=None) -> None:
        await self.send_frame({"type": "error", "error": {"code": code, "message": message, "field": field}, "ref": ref})
