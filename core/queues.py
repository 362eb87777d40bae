"""Celery queue names.

Routing runs on one queue per priority. Each delivery channel has two lanes so that a
marketing campaign (medium/low) never sits in front of a password reset (critical/high):
dedicated workers consume each lane (see docker-compose.yml).
"""

from kombu import Queue

PRIORITIES = ("critical", "high", "medium", "low")
CHANNELS = ("email", "sms", "push", "in_app", "webhook")
# Critical and high go through each channel's urgent lane and, on push, at high priority.
URGENT_PRIORITIES = ("critical", "high")


def routing_queue(priority: str) -> str:
    return priority


def delivery_queue(channel: str, priority: str) -> str:
    lane = "urgent" if priority in URGENT_PRIORITIES else "bulk"
    return f"{channel}.{lane}"


ALL_QUEUES = list(PRIORITIES) + [f"{c}.{lane}" for c in CHANNELS for lane in ("urgent", "bulk")]
CELERY_QUEUES = [Queue(name, routing_key=name) for name in ALL_QUEUES]
URGENT_QUEUES = [p for p in PRIORITIES if p in URGENT_PRIORITIES] + [f"{c}.urgent" for c in CHANNELS]
BULK_QUEUES = [p for p in PRIORITIES if p not in URGENT_PRIORITIES] + [f"{c}.bulk" for c in CHANNELS]

# Every worker runs with these. Heartbeat, gossip and mingle publish to the broker from the
# worker's event loop, with connection retries; while the broker is down that loop then
# blocks, so results, acks and time limits stall and in-flight tasks overrun their limits
# (seen in tests with the broker stopped mid-task). Herald uses none of the three.
WORKER_FLAGS = ("--without-heartbeat", "--without-gossip", "--without-mingle")
