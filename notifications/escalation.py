"""Escalation: after a notification's first send, further channels, each after a wait and only
while its condition holds (not read, not delivered), until one is read.

The race between a read and an escalation is settled by the database:
- A step is fired by the sweep in one transaction that locks it (FOR UPDATE SKIP LOCKED),
  checks its condition against the notification's deliveries, creates its deliveries and
  moves it to `done`. A read is recorded in one transaction that moves the delivery, cancels
  the steps whose condition it ends (waiting on the sweep's lock if it holds one) and then
  cancels the deliveries of steps already fired whose provider call has not started
  (delivery.claims.cancel_unstarted, which an attempt's start serialises with).
- So a read that lands before the escalation's delivery is claimed for its provider call
  cancels it; one that lands after the call started is recorded, and stops every later step.
"""

import logging
from datetime import datetime, timedelta

from django.db import DatabaseError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from core.publishing import publish
from core.states import Status
from delivery.claims import cancel_unstarted
from delivery.models import Delivery
from delivery.publishing import wake_deliveries
from notifications.lifecycle import refresh_notification_status
from notifications.models import Notification, WorkflowStep
from preferences import escalation as escalation_steps
from preferences import policy as preference_policy
from preferences import store as preference_store
from templates_app.models import Template

log = logging.getLogger(__name__)

ESCALATE_TASK = "notifications.tasks.escalate"
ESCALATE_QUEUE = "critical"
State = WorkflowStep.State
OPEN_STATES = (State.WAITING, State.PLANNED)


def steps_for(notification: Notification) -> tuple[escalation_steps.Step, ...]:
    """The request's steps if it gave any (even none), else its category's."""
    if notification.escalation is not None:
        return escalation_steps.parse(notification.escalation)
    return preference_store.policy_for(notification.type, preference_store.category_policies()).escalation


def plan(notification: Notification, first_channels: list[str], now: datetime) -> list[WorkflowStep]:
    """The workflow rows routing writes with the first send: that send, the next step waiting, the rest planned.

    If the first send reached no channel, the first escalation step is due at once.
    """
    steps = steps_for(notification)
    if not steps:
        return []
    rows = [WorkflowStep(notification=notification, position=0, kind=WorkflowStep.Kind.SEND, channels=first_channels,
                         state=State.DONE if first_channels else State.SKIPPED, finished_at=now,
                         reason="" if first_channels else "no_channel_to_send")]
    for position, step in enumerate(steps, start=1):
        first = position == 1
        due = now + timedelta(seconds=step.wait_seconds if first_channels else 0) if first else None
        rows.append(WorkflowStep(
            notification=notification, position=position, kind=WorkflowStep.Kind.ESCALATION, channels=list(step.channels),
            condition=step.condition, wait_seconds=step.wait_seconds, state=State.WAITING if first else State.PLANNED,
            due_at=due,
        ))
    return rows


def wake() -> bool:
    return publish(ESCALATE_TASK, [], ESCALATE_QUEUE)


def escalate_due(limit: int, now: datetime | None = None) -> int:
    """Fire up to `limit` due steps (each once: locked, checked and moved in one transaction); how many were taken."""
    now = now or timezone.now()
    lanes: set[tuple[str, str]] = set()
    with transaction.atomic():
        due = list(WorkflowStep.objects.select_for_update(skip_locked=True)
                   .filter(state=State.WAITING, due_at__lte=now).order_by("due_at")[:limit])
        for step in due:
            try:
                with transaction.atomic():
                    lanes |= fire(step, now)
            except DatabaseError:
                raise
            except Exception as exc:  # a bug in one step must not hold back every other due step
                log.exception("escalation step %s failed", step.pk)
                finish(step, State.SKIPPED, now, "escalation_error", [{"error": str(exc)[:500]}])
                promote_next(step, now)
        transaction.on_commit(lambda: [wake_deliveries(channel, priority) for channel, priority in lanes])
    return len(due)


def fire(step: WorkflowStep, now: datetime) -> set[tuple[str, str]]:
    """Send a due step if its condition still holds, else cancel it and what follows; the lanes to wake."""
    notification = Notification.objects.select_related("recipient").get(pk=step.notification_id)
    if notification.status in (Status.CANCELED,):
        cancel_open(notification.pk, "notification_canceled", now)
        return set()
    reached = reached_state(notification.pk)
    if escalation_steps.CONDITIONS[step.condition] in reached:
        finish(step, State.CANCELED, now, escalation_steps.CONDITIONS[step.condition])
        stop_for(notification.pk, "read" if "read" in reached else "delivered", now)
        return set()
    deliveries, skipped = plan_deliveries(notification, step, now)
    Delivery.objects.bulk_create(deliveries)
    finish(step, State.DONE if deliveries else State.SKIPPED, now, "" if deliveries else "no_channel_to_send", skipped)
    if not promote_next(step, now) and not deliveries:
        refresh_notification_status(notification.pk)
    log.info("notification %s: escalation step %d sent on %s", notification.pk, step.position,
             [d.channel for d in deliveries] or "nothing")
    return {(d.channel, d.priority) for d in deliveries if d.held_until is None}


def plan_deliveries(notification: Notification, step: WorkflowStep, now: datetime) -> tuple[list[Delivery], list[dict]]:
    """The step's deliveries, with the person's reachability, choices and quiet hours applied as routing does."""
    from notifications.routing import current_version, dedup_key, unreachable_channels

    used = set(Delivery.objects.filter(notification=notification).values_list("channel", flat=True))
    template_channels = set(Template.objects.filter(name=notification.template_name).values_list("channel", flat=True))
    unreachable = unreachable_channels(notification.recipient)
    skipped, candidates = [], []
    for channel in step.channels:
        reason = ("already_sent" if channel in used else "no_template" if channel not in template_channels
                  else unreachable.get(channel))
        if reason:
            skipped.append({"channel": channel, "reason": reason})
        else:
            candidates.append(channel)
    decisions = preference_policy.decide(
        notification.recipient, notification.type, candidates, notification.priority, dedup_key(notification), now,
        admission_id=str(notification.pk),
    ) if candidates else []
    version = current_version(notification.template_name)
    deliveries = []
    for decision in decisions:
        if decision.action == preference_policy.SUPPRESS:
            skipped.append({"channel": decision.channel, "reason": decision.reason})
            continue
        held_until = decision.hold_until if decision.action == preference_policy.HOLD else None
        reason = f"escalation_step_{step.position}:{step.condition}"
        deliveries.append(Delivery(
            notification=notification, channel=decision.channel, priority=notification.priority, status=Status.QUEUED,
            status_changed_at=now, status_history=[{"status": Status.QUEUED, "at": now.isoformat(), "reason": reason}],
            available_at=held_until or now, held_until=held_until, created_at=now, template_version=version,
            escalation_step=step.position,
        ))
    return deliveries, skipped


def reached_state(notification_id) -> set[str]:
    """What the notification's deliveries reached on any channel: "delivered", "read" (a read implies delivered)."""
    rows = Delivery.objects.filter(notification_id=notification_id).filter(
        Q(read_at__isnull=False) | Q(delivered_at__isnull=False) | Q(status__in=[Status.DELIVERED, Status.READ])
    ).values_list("status", "read_at")
    reached = set()
    for status, read_at in rows:
        reached.add("delivered")
        if read_at is not None or status == Status.READ:
            reached.add("read")
    return reached


def finish(step: WorkflowStep, state: str, now: datetime, reason: str = "", detail: list | None = None) -> None:
    WorkflowStep.objects.filter(pk=step.pk).update(state=state, finished_at=now, reason=reason, detail=detail or [])


def promote_next(step: WorkflowStep, now: datetime) -> bool:
    """Start the wait of the step after `step`; False if there is none left to wait for."""
    following = WorkflowStep.objects.filter(notification_id=step.notification_id, position=step.position + 1,
                                            state=State.PLANNED).first()
    if following is None:
        return False
    WorkflowStep.objects.filter(pk=following.pk, state=State.PLANNED).update(
        state=State.WAITING, due_at=now + timedelta(seconds=following.wait_seconds))
    return True


def stop_for(notification_id, reached: str, now: datetime | None = None) -> int:
    """The person's `reached` ("read" or "delivered") ends every step waiting for it not to happen:
    cancel those not fired, then the deliveries of fired ones whose provider call has not started.

    Called in the transaction that records the read or delivery; the order of the two writes is
    what makes the race rules in this module's docstring hold.
    """
    now = now or timezone.now()
    ended = [name for name, state in escalation_steps.CONDITIONS.items() if state == reached or reached == "read"]
    canceled = WorkflowStep.objects.filter(notification_id=notification_id, state__in=OPEN_STATES, condition__in=ended).update(
        state=State.CANCELED, finished_at=now, reason=reached)
    fired = list(WorkflowStep.objects.filter(notification_id=notification_id, state=State.DONE, condition__in=ended)
                 .values_list("position", flat=True))
    stopped = cancel_unstarted(Delivery.objects.filter(notification_id=notification_id, escalation_step__in=fired),
                               reason=f"{reached}_before_sent") if fired else 0
    if canceled or stopped:
        log.info("notification %s %s: %d escalation steps and %d deliveries canceled", notification_id, reached, canceled, stopped)
    return canceled + stopped


def on_delivery_moved(sender, notification_id, status, **kwargs) -> None:
    """A delivery was delivered or read: stop the steps that waited for it not to be (before the roll-up)."""
    if status in (Status.DELIVERED, Status.READ):
        stop_for(notification_id, "read" if status == Status.READ else "delivered")


def cancel_open(notification_ids, reason: str, now: datetime | None = None) -> int:
    """Cancel every step not yet fired of `notification_ids` (an id, ids or a subquery)."""
    if not isinstance(notification_ids, (list, tuple, set)) and not hasattr(notification_ids, "query"):
        notification_ids = [notification_ids]
    return WorkflowStep.objects.filter(notification_id__in=notification_ids, state__in=OPEN_STATES).update(
        state=State.CANCELED, finished_at=now or timezone.now(), reason=reason)


def advance(notification_id, because: str, now: datetime | None = None) -> bool:
    """A channel cannot reach the person: make the next waiting step due now. False if none waits."""
    now = now or timezone.now()
    moved = WorkflowStep.objects.filter(notification_id=notification_id, state=State.WAITING, due_at__gt=now).update(due_at=now)
    waiting = moved or WorkflowStep.objects.filter(notification_id=notification_id, state=State.WAITING).exists()
    if moved:
        log.info("notification %s: %s, so its next escalation step is due now", notification_id, because)
        transaction.on_commit(wake)
    return bool(waiting)


def record_fallback(notification_id, delivery: Delivery, from_channel: str, reason: str, now: datetime) -> None:
    """Show a fallback in the notification's workflow: the first send (if not shown yet), then the fallback."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT coalesce(max(position), -1) FROM notifications_workflowstep WHERE notification_id = %s",
                       [notification_id])
        last = cursor.fetchone()[0]
    rows = []
    if last < 0:
        first = list(Delivery.objects.filter(notification_id=notification_id, fallback_from__isnull=True,
                                             escalation_step__isnull=True).exclude(pk=delivery.pk)
                     .values_list("channel", flat=True))
        rows.append(WorkflowStep(notification_id=notification_id, position=0, kind=WorkflowStep.Kind.SEND, channels=first,
                                 state=State.DONE, finished_at=now))
        last = 0
    rows.append(WorkflowStep(notification_id=notification_id, position=last + 1, kind=WorkflowStep.Kind.FALLBACK,
                             channels=[delivery.channel], condition="cannot_reach", state=State.DONE, finished_at=now,
                             reason=f"{from_channel}:{reason}"))
    WorkflowStep.objects.bulk_create(rows)
