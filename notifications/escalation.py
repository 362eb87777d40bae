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

import json
import logging
from datetime import datetime, timedelta

from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from redis.exceptions import RedisError

from core import bulk, metrics
from core.publishing import publish
from core.states import Status
from delivery.claims import cancel_unstarted
from delivery.models import Delivery
from delivery.publishing import wake_deliveries
from notifications.lifecycle import refresh_notification_status
from notifications.models import Notification, WorkflowStep
from notifications.policy import choose_channels
from preferences import escalation as escalation_steps
from preferences import policy as preference_policy
from preferences import store as preference_store

log = logging.getLogger(__name__)

ESCALATE_TASK = "notifications.tasks.escalate"
ESCALATE_QUEUE = "critical"
State = WorkflowStep.State
OPEN_STATES = (State.WAITING, State.PLANNED)
# A first send held back for these reasons is not a message the person missed: nothing escalates.
NOT_ESCALATED = {"duplicate", "frequency_capped"}


def steps_for(notification: Notification) -> tuple[escalation_steps.Step, ...]:
    """The request's steps if it gave any (even none), else its category's."""
    if notification.escalation is not None:
        return escalation_steps.parse(notification.escalation)
    return preference_store.category_policy(notification.type).escalation


def plan(notification: Notification, first: list[Delivery], skipped: list[dict], now: datetime) -> list[WorkflowStep]:
    """The workflow rows routing writes with the first send: that send, the next step waiting, the rest planned.

    The first wait starts when the first send goes out (after the person's quiet hours, if it is
    held). If the first send reached no channel, the first step is due at once; if it was held
    back as a duplicate or by a frequency cap, there is nothing to escalate.
    """
    steps = steps_for(notification)
    if not steps or (not first and any(s["reason"] in NOT_ESCALATED for s in skipped)):
        return []
    channels = [delivery.channel for delivery in first]
    sent_at = max([now, *(delivery.held_until for delivery in first if delivery.held_until)])
    rows = [WorkflowStep(notification=notification, position=0, kind=WorkflowStep.Kind.SEND, channels=channels,
                         state=State.DONE if channels else State.SKIPPED, finished_at=now,
                         reason="" if channels else "no_channel_to_send")]
    for position, step in enumerate(steps, start=1):
        first_step = position == 1
        due = sent_at + timedelta(seconds=step.wait_seconds if channels else 0) if first_step else None
        rows.append(WorkflowStep(
            notification=notification, position=position, kind=WorkflowStep.Kind.ESCALATION, channels=list(step.channels),
            condition=step.condition, wait_seconds=step.wait_seconds, state=State.WAITING if first_step else State.PLANNED,
            due_at=due,
        ))
    return rows


def wake() -> bool:
    return publish(ESCALATE_TASK, [], ESCALATE_QUEUE)


def escalate_due(limit: int, now: datetime | None = None) -> int:
    """Fire up to `limit` due steps (each once: locked, checked and moved in one transaction); how many were taken.

    The chunk is read and written in a few statements. If it fails for a reason other than the
    database, its steps are fired one by one, so one bad step cannot hold back the others.
    """
    now = now or timezone.now()
    with transaction.atomic():
        due = list(WorkflowStep.objects.select_for_update(skip_locked=True)
                   .filter(state=State.WAITING, due_at__lte=now).order_by("due_at")[:limit])
        try:
            with transaction.atomic():
                lanes = fire(due, now)
        except (DatabaseError, RedisError):
            raise  # the task retries with backoff: the steps stay due
        except Exception:
            log.exception("firing %d escalation steps failed; firing them one by one", len(due))
            lanes = set()
            for step in due:
                try:
                    with transaction.atomic():
                        lanes |= fire([step], now)
                except (DatabaseError, RedisError):
                    raise
                except Exception as exc:
                    log.exception("escalation step %s failed", step.pk)
                    finish([(step, State.SKIPPED, "escalation_error", [{"error": str(exc)[:500]}])], now)
                    if not promote_next([step], now):
                        refresh_notification_status(step.notification_id)
        transaction.on_commit(lambda: [wake_deliveries(channel, priority) for channel, priority in lanes])
    return len(due)


def fire(steps: list[WorkflowStep], now: datetime) -> set[tuple[str, str]]:
    """Send each due step whose condition still holds, else cancel it and what follows; the lanes to wake.

    Reads what the chunk needs in a few queries (notifications with their people, deliveries,
    templates, suppressions; preferences read ahead) and writes every outcome in a few more.
    """
    # Imported here: routing imports this module to plan a notification's steps.
    from notifications.routing import templates_and_suppressions, with_people

    if not steps:
        return set()
    notifications = {n.pk: n for n in with_people(Notification.objects.filter(pk__in={s.notification_id for s in steps}))}
    reached, used = delivery_progress(list(notifications))
    template_channels, versions, suppressed = templates_and_suppressions(list(notifications.values()))
    outcomes, deliveries, stopped = [], [], {}
    with preference_store.read_ahead(n.recipient_id for n in notifications.values()):
        for step in steps:
            notification = notifications[step.notification_id]
            ended = escalation_steps.CONDITIONS[step.condition]
            if notification.status == Status.CANCELED:
                outcomes.append((step, State.CANCELED, "notification_canceled", []))
                stopped[notification.pk] = "notification_canceled"
            elif ended in reached.get(notification.pk, ()):
                # Only this step's condition is over: a later step may wait for something else.
                outcomes.append((step, State.CANCELED, ended, []))
            else:
                created, skipped = plan_deliveries(notification, step, now, used.get(notification.pk, set()),
                                                   template_channels.get(notification.template_name, set()), suppressed,
                                                   versions.get(notification.template_name))
                deliveries += created
                outcomes.append((step, State.DONE, "", skipped) if created else (step, State.SKIPPED, "no_channel_to_send", skipped))
    bulk.insert(Delivery, deliveries)
    finish(outcomes, now)
    for notification_id, reason in stopped.items():
        cancel_open([notification_id], reason, now)
    going_on = [step for step, _, reason, _ in outcomes if reason != "notification_canceled"]
    promoted = promote_next(going_on, now)
    for step, state, _, _ in outcomes:
        if state != State.DONE and step.notification_id not in promoted:
            refresh_notification_status(step.notification_id)  # its last step sent nothing: it may have failed
    if deliveries:
        log.info("escalation: %d steps sent %d messages", len(going_on), len(deliveries))
    return {(d.channel, d.priority) for d in deliveries if d.held_until is None}


def delivery_progress(notification_ids: list) -> tuple[dict, dict]:
    """({notification: {"delivered", "read"} as far as any delivery got}, {notification: channels it has}) in one query."""
    reached: dict = {}
    used: dict = {}
    rows = Delivery.objects.filter(notification_id__in=notification_ids).values_list(
        "notification_id", "channel", "status", "delivered_at", "read_at")
    for notification_id, channel, status, delivered_at, read_at in rows:
        used.setdefault(notification_id, set()).add(channel)
        if read_at is not None or status == Status.READ:
            reached.setdefault(notification_id, set()).update({"delivered", "read"})
        elif delivered_at is not None or status == Status.DELIVERED:
            reached.setdefault(notification_id, set()).add("delivered")
    return reached, used


def plan_deliveries(notification: Notification, step: WorkflowStep, now: datetime, used: set[str], template_channels: set[str],
                    suppressed: dict, version: int | None) -> tuple[list[Delivery], list[dict]]:
    """The step's deliveries, with the person's reachability, choices and quiet hours applied as routing does."""
    from notifications.routing import admission_id, dedup_key, queued_delivery, unreachable_channels

    unreachable = unreachable_channels(notification.recipient, notification.active_devices, suppressed)
    skipped = [{"channel": channel, "reason": "already_sent"} for channel in step.channels if channel in used]
    candidates, cannot = choose_channels([c for c in step.channels if c not in used], template_channels, unreachable)
    skipped += cannot
    decisions = preference_policy.decide(
        notification.recipient, notification.type, candidates, notification.priority, dedup_key(notification), now,
        admission_id=admission_id(notification),
    ) if candidates else []
    deliveries = []
    for decision in decisions:
        if decision.action == preference_policy.SUPPRESS:
            skipped.append({"channel": decision.channel, "reason": decision.reason})
            continue
        deliveries.append(queued_delivery(notification, decision, now, version=version, escalation_step=step.position,
                                          reason=f"escalation_step_{step.position}:{step.condition}"))
    return deliveries, skipped


def finish(outcomes: list[tuple], now: datetime) -> None:
    """Write each (step, state, reason, detail) in one statement."""
    if not outcomes:
        return
    for _, state, _, _ in outcomes:
        metrics.escalation_step(state)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE notifications_workflowstep AS s SET state = v.state, reason = v.reason, detail = v.detail::jsonb, finished_at = %s "
            "FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[]) AS v(id, state, reason, detail) WHERE s.id = v.id",
            [now, [step.pk for step, _, _, _ in outcomes], [str(state) for _, state, _, _ in outcomes],
             [reason for _, _, reason, _ in outcomes], [json.dumps(detail) for _, _, _, detail in outcomes]],
        )


def promote_next(steps: list[WorkflowStep], now: datetime) -> set:
    """Start the wait of the first planned step after each of `steps`; the notifications that have one."""
    if not steps:
        return set()
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE notifications_workflowstep AS s SET state = 'waiting', due_at = %s + s.wait_seconds * interval '1 second' "
            "FROM (SELECT DISTINCT ON (w.notification_id) w.id FROM notifications_workflowstep AS w "
            "      JOIN unnest(%s::uuid[], %s::int[]) AS v(notification_id, position) "
            "        ON w.notification_id = v.notification_id AND w.position > v.position "
            "      WHERE w.state = 'planned' ORDER BY w.notification_id, w.position) AS following "
            "WHERE s.id = following.id RETURNING s.notification_id",
            [now, [step.notification_id for step in steps], [step.position for step in steps]],
        )
        return {row[0] for row in cursor.fetchall()}


def stop_for(notification_id, reached: str, now: datetime | None = None) -> int:
    """The person's `reached` ("read" or "delivered") ends every step waiting for it not to happen:
    cancel those not fired, then the deliveries of fired ones whose provider call has not started.

    Called in the transaction that records the read or delivery; the order of the two writes is
    what makes the race rules in this module's docstring hold.
    """
    if not WorkflowStep.objects.filter(notification_id=notification_id).exists():
        return 0  # most notifications have no workflow: a receipt for one costs this one look
    now = now or timezone.now()
    ended = [name for name, state in escalation_steps.CONDITIONS.items() if state == reached or reached == "read"]
    with connection.cursor() as cursor:
        # Locked in position order, as the sweep locks a step before the one after it: no deadlock.
        cursor.execute(
            "WITH open AS (SELECT id FROM notifications_workflowstep WHERE notification_id = %s "
            "              AND state IN ('waiting', 'planned') ORDER BY position FOR UPDATE) "
            "UPDATE notifications_workflowstep AS s SET state = 'canceled', finished_at = %s, reason = %s "
            "FROM open WHERE s.id = open.id AND s.state IN ('waiting', 'planned') AND s.condition = ANY(%s) "
            "RETURNING s.position, s.due_at",
            [notification_id, now, reached, ended])
        canceled = cursor.fetchall()
    waited = [position for position, due_at in canceled if due_at is not None]
    if waited:  # the step that was waiting is gone: the next one still waiting for something else starts its wait
        promote_next([WorkflowStep(notification_id=notification_id, position=max(waited))], now)
    fired = list(WorkflowStep.objects.filter(notification_id=notification_id, state=State.DONE, condition__in=ended)
                 .values_list("position", flat=True))
    stopped = cancel_unstarted(Delivery.objects.filter(notification_id=notification_id, escalation_step__in=fired),
                               reason=f"{reached}_before_sent") if fired else 0
    if canceled or stopped:
        log.info("notification %s %s: %d escalation steps and %d deliveries canceled", notification_id, reached, len(canceled), stopped)
    return len(canceled) + stopped


def on_delivery_moved(sender, notification_id, status, **kwargs) -> None:
    """A delivery was delivered or read: stop the steps that waited for it not to be (before the roll-up)."""
    if status in (Status.DELIVERED, Status.READ):
        stop_for(notification_id, "read" if status == Status.READ else "delivered")


def cancel_open(notification_ids, reason: str, now: datetime | None = None) -> int:
    """Cancel every step not yet fired of `notification_ids` (ids or a subquery)."""
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
