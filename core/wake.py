"""Waking a lane's worker: at most one wake-up message per lane in flight, whatever the traffic.

Work is claimed from the database in chunks (rows are the truth; see notifications/routing.py
and delivery/chunks.py), so a message only needs to say "there is work on this lane". Each
producer sets a short-lived Redis flag and publishes only if it was not set already; the
consumer clears the flag *before* each claim, so a row committed before the flag was seen set
is always inside the claim that follows, and one committed after the clear publishes anew.
A wake-up lost with the broker is repaired by the periodic sweeps, which wake every lane
with due rows.
"""

from django.conf import settings
from redis.exceptions import RedisError

from core import redis_client
from core.publishing import publish
from core.queues import QUEUE_PREFIX


def _flag(lane: str) -> str:
    # Installations sharing a Redis apart from their broker queues (HERALD_QUEUE_PREFIX) wake their own lanes.
    return f"herald:wake:{QUEUE_PREFIX}:{lane}" if QUEUE_PREFIX else f"herald:wake:{lane}"


def wake(task_name: str, queue: str, lane: str, args: list) -> bool:
    """Publish `task_name(*args)` on `queue` unless a wake-up for `lane` is already on its way."""
    if not redis_client.skipping():
        try:
            if not redis_client.shared().set(_flag(lane), 1, nx=True, px=int(settings.HERALD_WAKE_SECONDS * 1000)):
                return True
        except RedisError:
            redis_client.failed()  # cannot tell whether one is on its way: send one
    return publish(task_name, args, queue)


def woken(lane: str) -> None:
    """Called by the consumer right before each claim: the next producer publishes again."""
    try:
        redis_client.shared().delete(_flag(lane))
    except RedisError:
        pass  # the flag expires by itself within HERALD_WAKE_SECONDS
