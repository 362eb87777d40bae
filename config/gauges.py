"""Gauges about the whole installation that need a query: lane depths, the age of each lane's
oldest due row, current dead letters, breaker states.

One collector for the installation: beat runs `collect_installation_gauges` every
HERALD_GAUGES_INTERVAL_SECONDS (15) on some worker, which takes a Redis lock for the interval (a
second beat publishes in vain), runs the queries under a statement_timeout and writes one
snapshot to Redis. The web server's /metrics reads that snapshot: a scrape costs one Redis read
and never waits on a query, however slow the database is. `herald_installation_gauges_age_seconds`
says how old the snapshot is (beat or the workers stopped: it grows).
"""

import json
import logging
import time

from celery import shared_task
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily
from redis.exceptions import RedisError

from core import redis_client
from core.logs import fields
from core.metrics import LANES
from core.queues import PRIORITIES

log = logging.getLogger(__name__)

SNAPSHOT_KEY = "herald:gauges:snapshot"
LOCK_KEY = "herald:gauges:lock"

DELIVERY_LANES_SQL = """
SELECT channel, priority, count(*), extract(epoch FROM %(now)s - min(available_at))
FROM delivery_delivery WHERE status = 'queued' AND held_until IS NULL AND available_at <= %(now)s
GROUP BY channel, priority
"""
ROUTING_LANES_SQL = """
SELECT priority, count(*), extract(epoch FROM %(now)s - min(due)) FROM (
    SELECT priority, created_at AS due FROM notifications_notification WHERE status IN ('pending', 'queued')
    UNION ALL
    SELECT priority, scheduled_at FROM notifications_notification WHERE status = 'scheduled' AND scheduled_at <= %(now)s
) AS waiting GROUP BY priority
"""
DEAD_LETTERS_SQL = "SELECT count(*) FROM delivery_deadletter WHERE requeued_at IS NULL"
BREAKER_STATES = {"closed": 0, "half-open": 1, "open": 2}


def measure() -> dict:
    """The snapshot: {"at", "lanes": {lane: [depth, oldest due age]}, "dead_letters", "breakers": {provider: 0|1|2}}."""
    from delivery.breaker import state_of
    from delivery.providers import PROVIDER_CLASSES

    now = timezone.now()
    lanes = {lane: [0, 0.0] for lane in LANES}
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL statement_timeout = %s", [f"{int(settings.HERALD_GAUGES_STATEMENT_TIMEOUT_SECONDS * 1000)}ms"])
        cursor.execute(DELIVERY_LANES_SQL, {"now": now})
        for channel, priority, depth, age in cursor.fetchall():
            lane = f"{channel}.{'urgent' if priority in ('critical', 'high') else 'bulk'}"
            if lane in lanes:
                lanes[lane] = [lanes[lane][0] + depth, max(lanes[lane][1], float(age or 0))]
        cursor.execute(ROUTING_LANES_SQL, {"now": now})
        for priority, depth, age in cursor.fetchall():
            if priority in PRIORITIES:
                lanes[priority] = [depth, max(0.0, float(age or 0))]
        cursor.execute(DEAD_LETTERS_SQL)
        (dead_letters,) = cursor.fetchone()
    breakers = {}
    for provider in PROVIDER_CLASSES:
        try:
            breakers[provider] = BREAKER_STATES[state_of(provider)]
        except RedisError:
            pass
    return {"at": time.time(), "lanes": lanes, "dead_letters": dead_letters, "breakers": breakers}


@shared_task
def collect_installation_gauges() -> bool:
    """Measure the installation's gauges once per interval, whichever worker beat's message reaches."""
    interval = settings.HERALD_GAUGES_INTERVAL_SECONDS
    try:
        if not redis_client.shared().set(LOCK_KEY, 1, nx=True, px=int(interval * 900)):
            return False
    except RedisError:
        return False
    started = time.monotonic()
    try:
        snapshot = measure()
    except DatabaseError as exc:  # a statement past its timeout: the previous snapshot ages, the alert says so
        log.warning("installation gauges not measured", extra=fields(event="gauges_failed", error=type(exc).__name__))
        return False
    snapshot["took"] = time.monotonic() - started
    redis_client.shared().set(SNAPSHOT_KEY, json.dumps(snapshot), ex=3600)
    return True


def read_snapshot() -> dict | None:
    try:
        raw = redis_client.shared().get(SNAPSHOT_KEY)
    except RedisError:
        return None
    return json.loads(raw) if raw else None


class InstallationGauges:
    """A prometheus-client collector exposing the latest snapshot (the web server's /metrics only)."""

    def describe(self):
        return []

    def collect(self):
        snapshot = read_snapshot()
        age = GaugeMetricFamily("herald_installation_gauges_age_seconds",
                                "Seconds since the lane, dead-letter and breaker gauges were measured")
        if snapshot is None:
            return
        age.add_metric([], max(0.0, time.time() - snapshot["at"]))
        yield age
        depth = GaugeMetricFamily("herald_lane_depth", "Rows due on the lane and not yet claimed", labels=["lane"])
        oldest = GaugeMetricFamily("herald_lane_oldest_due_age_seconds", "How long the lane's oldest due row has waited",
                                   labels=["lane"])
        for lane, (count, seconds) in sorted(snapshot["lanes"].items()):
            depth.add_metric([lane], count)
            oldest.add_metric([lane], seconds)
        yield depth
        yield oldest
        dead = GaugeMetricFamily("herald_dead_letters", "Dead letters not requeued")
        dead.add_metric([], snapshot["dead_letters"])
        yield dead
        breakers = GaugeMetricFamily("herald_breaker_state", "A provider's circuit breaker: 0 closed, 1 half-open, 2 open",
                                     labels=["provider"])
        for provider, state in sorted(snapshot["breakers"].items()):
            breakers.add_metric([provider], state)
        yield breakers
