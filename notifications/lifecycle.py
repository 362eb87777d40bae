"""The notification's overall status, rolled up from its deliveries as they move."""

from core.states import Status, move_all, transition
from delivery import accounting
from delivery.models import Delivery
from notifications.models import Notification, WorkflowStep
from notifications.states import NOTIFICATION_TRANSITIONS

FAILED_STATES = {Status.FAILED, Status.BOUNCED, Status.CANCELED}


def overall_status(delivery_statuses: list[str]) -> str | None:
    """The notification's status as its deliveries stand: the furthest any got, or failed if all did."""
    for status in (Status.READ, Status.DELIVERED, Status.SENT):
        if status in delivery_statuses:
            return status
    if any(s in (Status.QUEUED, Status.SENDING) for s in delivery_statuses):
        return Status.SENDING
    if delivery_statuses and all(s == Status.CANCELED for s in delivery_statuses):
        return Status.CANCELED
    if delivery_statuses and all(s in FAILED_STATES for s in delivery_statuses):
        return Status.FAILED
    return None


PROGRESS = (Status.SENDING, Status.SENT, Status.DELIVERED, Status.READ)


def refresh_notification_status(notification_id, delivery_status: str | None = None) -> None:
    """Bring the notification's overall status in line with its deliveries.

    A delivery moving forward (sent, delivered, read) can only move the notification forward
    to the same place, which needs no look at its siblings; anything else recomputes.
    """
    if delivery_status in PROGRESS[1:]:
        behind = set(PROGRESS[: PROGRESS.index(delivery_status)])
        transition(Notification, NOTIFICATION_TRANSITIONS, notification_id, delivery_status, sources=behind)
        return
    statuses = list(Delivery.objects.filter(notification_id=notification_id).values_list("status", flat=True))
    target = overall_status(statuses)
    if target in FAILED_STATES or not statuses:
        if WorkflowStep.objects.filter(notification_id=notification_id,
                                       state__in=[WorkflowStep.State.WAITING, WorkflowStep.State.PLANNED]).exists():
            return  # an escalation step may still reach the person
        if not statuses:  # its first send and every escalation step reached no channel
            transition(Notification, NOTIFICATION_TRANSITIONS, notification_id, Status.FAILED, sources={Status.SENDING},
                       reason="no_channel_to_send")
            return
    if target:
        transition(Notification, NOTIFICATION_TRANSITIONS, notification_id, target)


def on_delivery_moved(sender, notification_id, status, **kwargs) -> None:
    refresh_notification_status(notification_id, status)


def on_deliveries_sent(sender, notification_ids, **kwargs) -> None:
    """A chunk's deliveries were sent: their notifications move forward to sent, in one statement."""
    move_all(Notification.objects.filter(pk__in=notification_ids), NOTIFICATION_TRANSITIONS, Status.SENT,
             sources={Status.SENDING})


def count_conversion(notification_id, at) -> None:
    """A conversion counts for the delivery the person most likely acted on: the one sent last (none: not counted)."""
    delivery = (Delivery.objects.select_related("notification").filter(notification_id=notification_id, sent_at__isnull=False)
                .order_by("-sent_at").first())
    if delivery is not None:
        accounting.converted(delivery, at)
