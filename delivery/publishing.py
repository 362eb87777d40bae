from config.celery import publish
from config.queues import delivery_queue

DELIVER_TASK = "delivery.tasks.deliver"


def publish_delivery(delivery_id, channel: str, priority: str, countdown: float | None = None) -> bool:
    """Wake a worker on the channel's lane for this delivery (its row is already committed)."""
    return publish(DELIVER_TASK, [str(delivery_id)], delivery_queue(channel, priority), countdown=countdown)
