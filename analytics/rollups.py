"""Hourly delivery rollups: counted where deliveries move, read by the analytics API and the ops dashboard.

The apps that move deliveries hand `count()` what happened (a group, an event, how many, and for
sends each accept → sent latency); it adds that to the group's row for the hour in one upsert
per call, inside the caller's transaction, so the counts commit or roll back with the moves they
count. A read sums rows of whole hours: its cost depends on the range and the groups, never on
the number of deliveries, and the rows outlive the deliveries they count.
"""

import bisect
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from django.db import connection

from analytics.models import DeliveryRollup
from core.metrics import LATENCY_BUCKETS

EVENTS = ("sent", "delivered", "opened", "clicked", "converted", "bounced", "failed", "unsubscribed")
GROUPS = ("channel", "provider", "template", "category", "priority", "experiment_arm")
BUCKETS = len(LATENCY_BUCKETS) + 1


@dataclass(frozen=True)
class Group:
    channel: str
    provider: str = ""
    template: str = ""
    category: str = ""
    priority: str = ""
    experiment_arm: str = ""


def group_of(delivery, provider: str | None = None) -> Group:
    """A delivery's group (its notification must be loaded): channel, provider, template, category, priority, arm."""
    notification = delivery.notification
    return Group(delivery.channel, (delivery.provider if provider is None else provider)[:50], notification.template_name,
                 notification.type, delivery.priority, delivery.experiment_arm or "")


def bucket_of(seconds: float) -> int:
    """The latency bucket `seconds` falls in (upper bounds inclusive, as Prometheus's `le`)."""
    return bisect.bisect_left(LATENCY_BUCKETS, seconds)


def hour_of(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def count(facts: list[tuple[Group, str, float | None]], at: datetime) -> None:
    """Add (group, event, latency seconds or None) facts to the hour of `at`: one statement."""
    if not facts:
        return
    rows: dict[Group, dict] = defaultdict(lambda: {"events": dict.fromkeys(EVENTS, 0), "buckets": [0] * BUCKETS, "sum": 0.0})
    for group, event, latency in facts:
        row = rows[group]
        row["events"][event] += 1
        if latency is not None:
            row["buckets"][bucket_of(latency)] += 1
            row["sum"] += latency
    hour = hour_of(at)
    values, params = [], []
    for group, row in rows.items():
        values.append("(" + ", ".join(["%s"] * (1 + len(GROUPS) + len(EVENTS) + 3)) + ")")
        params += [hour, *(getattr(group, name) for name in GROUPS), *row["events"].values(), row["buckets"],
                   sum(row["buckets"]), row["sum"]]
    table = DeliveryRollup._meta.db_table
    added = ", ".join(f"{event} = r.{event} + excluded.{event}" for event in EVENTS)
    buckets = ", ".join(f"r.latency_buckets[{i}] + excluded.latency_buckets[{i}]" for i in range(1, BUCKETS + 1))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} AS r (hour, {', '.join(GROUPS)}, {', '.join(EVENTS)}, latency_buckets, latency_count, latency_sum) "
            f"VALUES {', '.join(values)} "
            f"ON CONFLICT (hour, {', '.join(GROUPS)}) DO UPDATE SET {added}, latency_buckets = ARRAY[{buckets}]::bigint[], "
            f"latency_count = r.latency_count + excluded.latency_count, latency_sum = r.latency_sum + excluded.latency_sum",
            params,
        )


def quantile(q: float, buckets: list[int]) -> float | None:
    """The `q` quantile of latencies counted in `buckets`, interpolated within its bucket as Prometheus's
    histogram_quantile does; the last bucket (past the largest bound) answers that bound. None if empty."""
    total = sum(buckets)
    if not total:
        return None
    rank = q * total
    seen = 0
    for index, counted in enumerate(buckets):
        if counted and seen + counted >= rank:
            if index >= len(LATENCY_BUCKETS):
                return LATENCY_BUCKETS[-1]
            lower = LATENCY_BUCKETS[index - 1] if index else 0.0
            return lower + (LATENCY_BUCKETS[index] - lower) * (rank - seen) / counted
        seen += counted
    return LATENCY_BUCKETS[-1]


def read(start: datetime, end: datetime, interval: str, group_by: list[str]) -> list[dict]:
    """Per `interval` (hour or day, UTC) from `start` to `end` and per group: each event's count, the
    latency buckets summed. One query over the rollup rows of the range."""
    columns = ", ".join(group_by)
    sums = ", ".join([f"sum({event})" for event in EVENTS] + [f"sum(latency_buckets[{i}])" for i in range(1, BUCKETS + 1)])
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT date_trunc(%s, hour AT TIME ZONE 'UTC') AS at{', ' + columns if columns else ''}, {sums} "
            f"FROM {DeliveryRollup._meta.db_table} WHERE hour >= %s AND hour < %s "
            f"GROUP BY 1{''.join(f', {n}' for n in range(2, len(group_by) + 2))} ORDER BY 1",
            [interval, start, end],
        )
        rows = cursor.fetchall()
    found = []
    for row in rows:
        at, groups, numbers = row[0], row[1:1 + len(group_by)], [int(n or 0) for n in row[1 + len(group_by):]]
        found.append({"at": at, "group": dict(zip(group_by, groups, strict=True)),
                      "events": dict(zip(EVENTS, numbers[:len(EVENTS)], strict=True)), "buckets": numbers[len(EVENTS):]})
    return found
