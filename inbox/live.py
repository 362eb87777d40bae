"""Hints to a recipient's open sockets through the channel layer.

The channel layer is at-most-once: a hint can be lost (Redis down, a full channel), so a
hint only says what the database already holds. Clients order hints by inbox version and
resynchronise from the database when they reconnect.
"""

import asyncio
import logging
import os
import threading

from channels.layers import get_channel_layer
from django.db import transaction

log = logging.getLogger(__name__)

FRAME_EVENT = "inbox.frame"
SEND_TIMEOUT = 5.0

_loop: asyncio.AbstractEventLoop | None = None
_loop_pid = 0
_loop_lock = threading.Lock()


def group_name(recipient_id: int) -> str:
    """The channel layer group holding every open socket of one recipient."""
    return f"inbox.{recipient_id}"


def sender_loop() -> asyncio.AbstractEventLoop:
    # One long-lived loop per process for sync callers (the Celery worker, sync views): the
    # channel layer keeps a Redis pool per loop, so a fresh loop per hint (async_to_sync)
    # would open and close a Redis connection for every delivery. Rebuilt after a fork.
    global _loop, _loop_pid
    with _loop_lock:
        if _loop is None or _loop_pid != os.getpid():
            _loop = asyncio.new_event_loop()
            _loop_pid = os.getpid()
            threading.Thread(target=_loop.run_forever, name="inbox-hints", daemon=True).start()
        return _loop


def broadcast(recipient_id: int, frame: dict) -> bool:
    """Send `frame` to every open socket of the recipient; False (logged) if the layer failed."""
    message = {"type": FRAME_EVENT, "frame": frame}
    try:
        future = asyncio.run_coroutine_threadsafe(
            get_channel_layer().group_send(group_name(recipient_id), message), sender_loop()
        )
        future.result(SEND_TIMEOUT)
    except Exception as exc:  # a lost hint is recovered on reconnect; the change itself is committed
        log.warning("inbox hint to recipient %s lost: %s", recipient_id, exc)
        return False
    return True


def broadcast_on_commit(recipient_id: int, frame: dict) -> None:
    """Broadcast once the surrounding transaction commits (at once outside one)."""
    transaction.on_commit(lambda: broadcast(recipient_id, frame))
