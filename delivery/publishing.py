from core import wake
from core.queues import PRIORITIES, URGENT_PRIORITIES, delivery_queue

DELIVER_LANE_TASK = "delivery.tasks.deliver_lane"


def wake_deliveries(channel: str, priority: str) -> bool:
    """Make sure a worker on the lane of (`channel`, `priority`) will claim its due deliveries.

    The rows are committed already; when the broker cannot take the wake-up, the dispatch
    sweep wakes every lane with due rows within a second of its return.
    """
    queue = delivery_queue(channel, priority)
    return wake.wake(DELIVER_LANE_TASK, queue, f"deliver:{queue}", [queue])


def lane_priorities(queue: str) -> tuple[str, list[str]]:
    """The channel and the priorities a delivery queue's lane serves (`sms.urgent` → sms, critical and high)."""
    channel, lane = queue.split(".")
    urgent = lane == "urgent"
    return channel, [p for p in PRIORITIES if (p in URGENT_PRIORITIES) == urgent]
