from core.publishing import publish
from core.queues import delivery_queue

DELIVER_TASK = "delivery.tasks.deliver"


def publish_delivery(delivery_id, channel: str, priority: str) -> bool:
    """Wake a worker on the channel's lane for this delivery (its row is already committed).

    When the broker cannot take the message, the row is marked unpublished and the dispatch
    sweep publishes it within seconds of the broker's return.
    """
    if publish(DELIVER_TASK, [str(delivery_id)], delivery_queue(channel, priority)):
        return True
    from delivery.models import Delivery

    Delivery.objects.filter(pk=delivery_id, status="queued").update(published_at=None)
    return False
