"""Which processes holding claims are alive: a Redis key each one refreshes every second.

A claim (a delivery being sent, a notification being routed) names the process that made it
(`this_process`). Once that process stops refreshing its key (killed, out of memory, its machine
gone), the key expires within HERALD_CLAIMER_TTL_SECONDS and its claims may be taken over at
once, instead of when their lease runs out minutes later. The lease stays as the fallback for
when Redis cannot be read: a claimer is never called dead on missing evidence.
"""

import logging
import os
import socket
import threading
import time

from django.conf import settings
from redis.exceptions import RedisError

from core import redis_client

log = logging.getLogger(__name__)

_identity: dict[int, str] = {}
_lock = threading.Lock()


def _key(claimer: str) -> str:
    return f"herald:claimer:{claimer}"


def this_process() -> str:
    """This process's name on its claims, unique to this process's life; starts its heartbeat."""
    pid = os.getpid()
    if pid not in _identity:
        with _lock:
            if pid not in _identity:
                _identity[pid] = f"{socket.gethostname()}:{pid}:{time.time_ns() // 1_000_000}"
                _beat(_identity[pid])
                threading.Thread(target=_heartbeat, args=(_identity[pid],), name="herald-claimer", daemon=True).start()
    return _identity[pid]


# Since when Redis has been keeping claimer keys. A Redis that restarted without its data (or
# was flushed) has lost every key at once: until every live process has refreshed its own, a
# missing key says nothing, and nobody is called dead.
KEPT_SINCE = "herald:claimers:kept-since"


def _beat(claimer: str) -> None:
    try:
        pipe = redis_client.shared().pipeline(transaction=False)
        pipe.set(_key(claimer), 1, px=int(settings.HERALD_CLAIMER_TTL_SECONDS * 1000))
        pipe.set(KEPT_SINCE, time.time(), nx=True)
        pipe.execute()
    except RedisError as exc:
        log.warning("claimers: could not refresh %s: %s", claimer, exc)


def _heartbeat(claimer: str) -> None:
    while _identity.get(os.getpid()) == claimer:
        time.sleep(settings.HERALD_CLAIMER_INTERVAL_SECONDS)
        _beat(claimer)


def dead_among(claimers: set[str]) -> list[str]:
    """Those of `claimers` whose process has stopped refreshing its key (never this one); none if
    Redis cannot be read, or has not been keeping keys long enough to tell."""
    named = sorted(c for c in claimers if c and c != _identity.get(os.getpid()))
    if not named:
        return []
    try:
        kept_since, *alive = redis_client.shared().mget([KEPT_SINCE, *(_key(c) for c in named)])
    except RedisError:
        return []
    if kept_since is None or time.time() - float(kept_since) < settings.HERALD_CLAIMER_TTL_SECONDS + 2 * settings.HERALD_CLAIMER_INTERVAL_SECONDS:
        return []
    return [claimer for claimer, present in zip(named, alive, strict=True) if present is None]


class DeadClaimers:
    """`dead_among` for the claimers a query names, asked at most once per interval per process:
    the claim statements that use it run many times a second."""

    def __init__(self, query: str):
        self.query = query
        self.checked_at = float("-inf")
        self.dead: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, cursor) -> list[str]:
        with self.lock:
            if time.monotonic() - self.checked_at >= settings.HERALD_CLAIMER_INTERVAL_SECONDS:
                cursor.execute(self.query)
                self.dead = dead_among({row[0] for row in cursor.fetchall()})
                self.checked_at = time.monotonic()
            return self.dead
