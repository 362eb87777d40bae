"""Celery queue names.

Routing runs on one queue per priority. Each delivery channel has two lanes so that a
marketing campaign (medium/low) never sits in front of a password reset (critical/high):
dedicated workers consume each lane (see docker-compose.yml).

Code names queues by their lane (`critical`, `sms.urgent`); the broker knows them as
`broker_queue(lane)`, which carries HERALD_QUEUE_PREFIX so that installations sharing one
broker (a RabbitMQ vhost, a Redis database) never take each other's tasks. Read from the
environment here, not from Django settings: settings and scripts/run.py import this module.
"""

import os

from kombu import Queue

PRIORITIES = ("critical", "high", "medium", "low")
CHANNELS = ("email", "sms", "push", "in_app", "webhook")
# Critical and high go through each channel's urgent lane and, on push, at high priority.
URGENT_PRIORITIES = ("critical", "high")
QUEUE_PREFIX = os.environ.get("HERALD_QUEUE_PREFIX", "").strip().rstrip(".")


def broker_queue(lane: str) -> str:
    """The broker's name for a lane's queue: `acme.sms.urgent` with HERALD_QUEUE_PREFIX=acme."""
    return f"{QUEUE_PREFIX}.{lane}" if QUEUE_PREFIX else lane


def routing_queue(priority: str) -> str:
    return priority


def delivery_queue(channel: str, priority: str) -> str:
    lane = "urgent" if priority in URGENT_PRIORITIES else "bulk"
    return f"{channel}.{lane}"


# Lanes, as code names them.
ALL_QUEUES = list(PRIORITIES) + [f"{c}.{lane}" for c in CHANNELS for lane in ("urgent", "bulk")]
URGENT_LANES = [p for p in PRIORITIES if p in URGENT_PRIORITIES] + [f"{c}.urgent" for c in CHANNELS]
BULK_LANES = [p for p in PRIORITIES if p not in URGENT_PRIORITIES] + [f"{c}.bulk" for c in CHANNELS]
# Queues, as the broker and `celery worker -Q` name them.
CELERY_QUEUES = [Queue(broker_queue(name), routing_key=broker_queue(name)) for name in ALL_QUEUES]
URGENT_QUEUES = [broker_queue(lane) for lane in URGENT_LANES]
BULK_QUEUES = [broker_queue(lane) for lane in BULK_LANES]
WORKER_QUEUES = {"urgent": URGENT_QUEUES, "bulk": BULK_QUEUES}

# Every worker runs with these. Heartbeat, gossip and mingle publish to the broker from the
# worker's event loop, with connection retries; while the broker is down that loop then
# blocks, so results, acks and time limits stall and in-flight tasks overrun their limits
# (seen in tests with the broker stopped mid-task). Herald uses none of the three.
WORKER_FLAGS = ("--without-heartbeat", "--without-gossip", "--without-mingle")
