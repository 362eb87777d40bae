"""Routing: which channels a notification goes out on, and falling back to the next one when a channel
cannot reach the person. The only place that creates Delivery rows."""

import hashlib
import json
import logging
import threading
import time
from collections import defaultdict
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Q
from django.utils import timezone

from core import bulk, claimers, metrics, tracing, wake
from core.logs import fields
from core.queues import routing_queue
from core.states import Status, move_all, transition
from core.vocabulary import Channel
from delivery.claims import cancel_unsent
from delivery.models import Delivery, Suppression
from delivery.publishing import wake_deliveries
from experiments import assignment as experiment_arms
from notifications import batching, escalation
from notifications.models import Notification, Outbox, WorkflowStep
from notifications.policy import choose_channels, fallback_order, unreachable_reason
from notifications.states import NOTIFICATION_TRANSITIONS
from preferences import policy as preference_policy
from preferences import store as preference_store
from preferences.models import Recipient
from templates_app.models import MessageTemplate, Template

log = logging.getLogger(__name__)


class LostClaim(Exception):
    """Another worker took this notification over while it was being routed."""


def claim_for_routing(notification_id) -> datetime | None:
    """Take the notification for routing; the claim's time, or None if another worker has it or it is done."""
    now = timezone.now()
    if transition(
        Notification, NOTIFICATION_TRANSITIONS, notification_id, Status.ROUTING,
        sources={Status.PENDING, Status.SCHEDULED, Status.QUEUED},
        condition=Q(scheduled_at__isnull=True) | Q(scheduled_at__lte=now), at=now,
    ):
        return now
    stale = now - timedelta(seconds=settings.HERALD_DELIVERY_LEASE_SECONDS)
    if transition(
        Notification, NOTIFICATION_TRANSITIONS, notification_id, Status.ROUTING,
        sources={Status.ROUTING}, condition=Q(status_changed_at__lt=stale), reason="worker_lost", at=now,
    ):
        return now
    return None


ROUTE_LANE_TASK = "notifications.tasks.route_lane"

# One statement claims a chunk of one priority's routable notifications: accepted ones
# (pending, or queued by an older release) and scheduled ones now due. SKIP LOCKED lets
# concurrent claimers take different rows; each row's claim time (status_changed_at) fences
# its routing as in claim_for_routing, and names the process that holds it (core/claimers.py).
CLAIM_CHUNK_SQL = """
WITH waiting AS (
    SELECT id FROM notifications_notification
    WHERE status IN ('pending', 'queued') AND priority = %(priority)s
    ORDER BY created_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED
), due AS (
    SELECT id FROM notifications_notification
    WHERE status = 'scheduled' AND scheduled_at <= %(now)s AND priority = %(priority)s
    LIMIT %(limit)s FOR UPDATE SKIP LOCKED
)
UPDATE notifications_notification AS n
SET status = 'routing', status_changed_at = %(now)s, claimed_by = %(claimer)s, takeovers = 0,
    status_history = n.status_history || %(history)s::jsonb
WHERE n.id IN (SELECT id FROM waiting UNION ALL SELECT id FROM due)
RETURNING n.id
"""

# Notifications whose routing worker died: its claimer key expired (core/claimers.py), or (Redis unreadable) the
# claim is older than the lease. Taken over with the count of takeovers in a row.
CLAIM_ABANDONED_SQL = """
WITH abandoned AS (
    SELECT id FROM notifications_notification
    WHERE status = 'routing' AND (status_changed_at < %(stale)s OR claimed_by = ANY(%(dead)s))
      AND priority = %(priority)s AND takeovers BETWEEN %(least)s AND %(most)s
    ORDER BY status_changed_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED
)
UPDATE notifications_notification AS n
SET status_changed_at = %(now)s, claimed_by = %(claimer)s, takeovers = n.takeovers + 1,
    status_history = n.status_history || %(history)s::jsonb
WHERE n.id IN (SELECT id FROM abandoned)
RETURNING n.id, n.takeovers
"""

ROUTING_CLAIMERS_SQL = "SELECT DISTINCT claimed_by FROM notifications_notification WHERE status = 'routing'"
dead_claimers = claimers.DeadClaimers(ROUTING_CLAIMERS_SQL)


def claim_chunk(priority: str, limit: int) -> tuple[list, datetime]:
    """Claim up to `limit` routable notifications of `priority` in one statement: (ids, the claim's time)."""
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(CLAIM_CHUNK_SQL, {
            "priority": priority, "limit": limit, "now": now, "claimer": claimers.this_process(),
            "history": json.dumps([{"status": Status.ROUTING.value, "at": now.isoformat()}]),
        })
        return [row[0] for row in cursor.fetchall()], now


def claim_abandoned(priority: str, *, least: int, most: int, limit: int) -> tuple[list[tuple], datetime]:
    """Take over up to `limit` notifications of `priority` whose routing worker died, among those
    already taken over `least` to `most` times in a row: ([(id, takeovers)], the claim's time)."""
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(CLAIM_ABANDONED_SQL, {
            "priority": priority, "limit": limit, "now": now, "least": least, "most": most,
            "claimer": claimers.this_process(), "dead": dead_claimers(cursor),
            "stale": now - timedelta(seconds=settings.HERALD_DELIVERY_LEASE_SECONDS),
            "history": json.dumps([{"status": Status.ROUTING.value, "at": now.isoformat(), "reason": "worker_lost"}]),
        })
        return cursor.fetchall(), now


# As for deliveries (delivery/chunks.py): taken over as a whole chunk the first time, in groups of
# SUSPECT_GROUP the second, one at a time after that, parked at HERALD_POISON_TAKEOVERS.
SUSPECT_GROUP = 10
_alone = threading.Lock()


def take_over_abandoned(priority: str) -> int:
    """Route `priority`'s notifications whose worker died; one at HERALD_POISON_TAKEOVERS is parked."""
    taken = 0
    for least, most, limit in ((0, 0, settings.HERALD_ROUTE_CHUNK), (1, 1, SUSPECT_GROUP)):
        taken += route_taken_over(*claim_abandoned(priority, least=least, most=most, limit=limit))
    if _alone.acquire(blocking=False):
        try:
            taken += route_taken_over(*claim_abandoned(priority, least=2, most=32767, limit=1))
        finally:
            _alone.release()
    metrics.taken_over("notification", priority, taken)
    return taken


def route_taken_over(rows: list[tuple], claimed_at: datetime) -> int:
    poisonous = [pk for pk, takeovers in rows if takeovers >= settings.HERALD_POISON_TAKEOVERS]
    if poisonous:
        park(poisonous, claimed_at)
    routable = [pk for pk, takeovers in rows if takeovers < settings.HERALD_POISON_TAKEOVERS]
    if routable:
        route_chunk_or_each(routable, claimed_at)
    return len(rows)


ABANDONED_PRIORITIES_SQL = """
SELECT DISTINCT priority FROM notifications_notification
WHERE status = 'routing' AND (status_changed_at < %(stale)s OR claimed_by = ANY(%(dead)s))
"""


def wake_abandoned() -> int:
    """Wake each routing lane holding notifications whose worker died; how many lanes."""
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(ABANDONED_PRIORITIES_SQL, {
            "stale": now - timedelta(seconds=settings.HERALD_DELIVERY_LEASE_SECONDS), "dead": dead_claimers(cursor)})
        priorities = [row[0] for row in cursor.fetchall()]
    for priority in priorities:
        wake_routing(priority)
    return len(priorities)


def park(notification_ids: list, claimed_at: datetime) -> None:
    """Fail notifications whose routing workers kept dying while they held them (whatever kills them is
    most likely in them), so they cannot take more workers down."""
    log.error("parking %d notifications whose routing workers died %d times in a row", len(notification_ids),
              settings.HERALD_POISON_TAKEOVERS)
    with transaction.atomic():
        moved = move_all(Notification.objects.filter(pk__in=notification_ids, status_changed_at=claimed_at),
                         NOTIFICATION_TRANSITIONS, Status.FAILED, sources={Status.ROUTING}, reason="killed_its_worker")
        if moved:
            Outbox.objects.filter(notification_id__in=notification_ids).delete()
    metrics.parked_rows("notification", moved)


def wake_routing(priority: str) -> bool:
    """Make sure a worker on `priority`'s routing lane will look for work (core/wake.py)."""
    return wake.wake(ROUTE_LANE_TASK, routing_queue(priority), f"route:{priority}", [priority])


def route_lane(priority: str) -> int:
    """Route `priority`'s waiting notifications, a chunk at a time, for up to HERALD_CHUNK_BUDGET_SECONDS."""
    deadline = time.monotonic() + settings.HERALD_CHUNK_BUDGET_SECONDS
    routed = 0
    while True:
        wake.woken(f"route:{priority}")
        taken_over = take_over_abandoned(priority)
        ids, claimed_at = claim_chunk(priority, settings.HERALD_ROUTE_CHUNK)
        if len(ids) == settings.HERALD_ROUTE_CHUNK:
            wake_routing(priority)  # more may wait: another thread takes the next chunk
        route_chunk_or_each(ids, claimed_at)
        routed += len(ids) + taken_over
        if len(ids) < settings.HERALD_ROUTE_CHUNK and not taken_over:
            return routed
        if time.monotonic() > deadline:
            return routed  # the lane was woken when this chunk was claimed full


def route_chunk_or_each(ids: list, claimed_at: datetime) -> None:
    """Route a claimed chunk; if that fails, its notifications one by one, so one bad row holds back no other."""
    try:
        route_chunk(ids, claimed_at)
    except Exception:
        log.exception("routing a chunk of %d failed; routing them one by one", len(ids))
        for done, notification_id in enumerate(ids):
            try:
                route_claimed(notification_id, claimed_at)
            except Exception:
                give_back(ids[done + 1:], claimed_at)  # the retried task takes them at once
                raise


def give_back(notification_ids: list, claimed_at: datetime) -> None:
    """Return claims this worker still holds to `queued`, so they need not wait for the lease."""
    move_all(Notification.objects.filter(pk__in=notification_ids, status_changed_at=claimed_at), NOTIFICATION_TRANSITIONS,
             Status.QUEUED, sources={Status.ROUTING}, reason="routing_error")


def route(notification_id) -> None:
    """Claim one notification and route it (the message of a single-row publish)."""
    claimed_at = claim_for_routing(notification_id)
    if claimed_at is None:
        log.info("notification %s already routed or canceled; skipping", notification_id)
        return
    route_claimed(notification_id, claimed_at)


def route_claimed(notification_id, claimed_at: datetime) -> None:
    """Create the deliveries of a notification this worker claimed at `claimed_at`, and publish them."""
    try:
        plan_and_create_deliveries(notification_id, claimed_at)
    except LostClaim:
        log.warning("notification %s was taken over by another worker mid-routing", notification_id)
    except Exception:
        # Give the claim back (if still ours) so the retried task can take it at once.
        transition(Notification, NOTIFICATION_TRANSITIONS, notification_id, Status.QUEUED,
                   sources={Status.ROUTING}, condition=Q(status_changed_at=claimed_at), reason="routing_error")
        raise


def plan_and_create_deliveries(notification_id, claimed_at: datetime) -> None:
    if notification_id not in route_chunk([notification_id], claimed_at):
        raise LostClaim(notification_id)


def with_people(notifications):
    """`notifications` (a queryset) with their person and the count of the person's active devices, in one query."""
    return notifications.select_related("recipient").annotate(
        active_devices=Count("recipient__devices", filter=Q(recipient__devices__is_active=True)))


def templates_and_suppressions(notifications: list[Notification]) -> tuple[dict[str, set[str]], dict[str, int], dict]:
    """What deciding their channels needs beside the people: each template's channels and current
    version, and the suppressions of every address, in three queries."""
    names = {n.template_name for n in notifications}
    template_channels: dict[str, set[str]] = defaultdict(set)
    for name, channel in Template.objects.filter(name__in=names).values_list("name", "channel"):
        template_channels[name].add(channel)
    addresses = {address for n in notifications for address in n.recipient.contact_addresses().values() if address}
    return dict(template_channels), current_versions(names), suppressions(addresses)


def route_chunk(notification_ids: list, claimed_at: datetime) -> set:
    """Route notifications claimed at `claimed_at`: read what they need in a few queries, decide
    each on its own, and write every delivery and status move in one transaction. The ids routed.

    The status move is fenced by the claim: a row another worker took over is left to it, and
    its deliveries are never written.
    """
    notifications = list(with_people(
        Notification.objects.filter(pk__in=notification_ids, status=Status.ROUTING, status_changed_at=claimed_at))
    )
    started_ns = tracing.now_ns()
    now = timezone.now()
    held: set = set()
    # One read of the chunk's preferences serves both the batching rules and the routing decisions.
    with preference_store.read_ahead(n.recipient_id for n in notifications):
        rules = {n.pk: rule for n in notifications if (rule := batching.rule_for(n, now))}
        if rules:  # items of a batch wait for it (notifications/batching.py); the rest are routed now
            route_now, held = batching.collect([n for n in notifications if n.pk in rules], rules, claimed_at, now)
            notifications = [n for n in notifications if n.pk not in rules] + route_now
        template_channels, versions, suppressed = templates_and_suppressions(notifications)
        arms = experiment_arms.arms_for([(n.recipient_id, n.recipient.external_id, n.template_name) for n in notifications])
        exposures: dict = defaultdict(list)
        planned = {n.pk: plan(n, template_channels.get(n.template_name, set()), suppressed, now, versions.get(n.template_name),
                              arms, exposures[n.pk])
                   for n in notifications}
        workflows = {n.pk: rows for n in notifications if (rows := escalation.plan(n, *planned[n.pk], now))}
    # Deliveries, the decision record and the status move commit together: a crash leaves
    # the notifications in `routing`, to be taken over once their claim goes stale.
    with transaction.atomic():
        moved = move_routed({pk: (deliveries, skipped) for pk, (deliveries, skipped) in planned.items()}, claimed_at, now,
                            escalating=set(workflows))
        bulk.insert(Delivery, [d for pk in moved for d in planned[pk][0]])
        WorkflowStep.objects.bulk_create([step for pk in moved for step in workflows.get(pk, ())])
        if any(not planned[pk][0] for pk in moved & set(workflows)):
            transaction.on_commit(escalation.wake)  # a first send that reached nobody escalates at once
        experiment_arms.record_exposures([exposure for pk in moved for exposure in exposures[pk]])
        Outbox.objects.filter(notification_id__in=moved).delete()
        lanes = {(d.channel, d.priority) for pk in moved for d in planned[pk][0] if d.held_until is None}
        transaction.on_commit(lambda: [wake_deliveries(channel, priority) for channel, priority in lanes])
    routed(notifications, planned, moved, started_ns)
    return moved | held


def routed(notifications: list[Notification], planned: dict, moved: set, started_ns: int) -> None:
    """A log line and a span (under the notification's own trace) for each notification routed."""
    items = []
    for n in notifications:
        if n.pk not in moved:
            continue
        deliveries, skipped = planned[n.pk]
        channels = ",".join(sorted(d.channel for d in deliveries))
        log.info("notification routed", extra=fields(
            event="notification_routed", notification_id=n.pk, priority=n.priority, lane=n.priority, channels=channels,
            skipped=",".join(sorted(f"{s['channel']}:{s['reason']}" for s in skipped))))
        items.append((n.traceparent, {"notification_id": n.pk, "channels": channels, "priority": n.priority}))
    tracing.record_each("herald.route", items, started_ns)


# Set by admin's "send a test" (notifications/apps.py): the version to render instead of the current one.
TEST_VERSION_KEY = "herald_template_version"


def plan(notification: Notification, template_channels: set[str], suppressed: dict, now: datetime,
         version: int | None = None, arms: dict | None = None, exposures: list | None = None) -> tuple[list, list]:
    """The notification's deliveries to create and the channels skipped (with reasons): the routing decision.

    Each delivery is pinned to the template's current `version`, or to the version of the
    person's arm where an experiment runs on that channel (`arms`; each such notification is
    appended to `exposures`): a version published while it waits does not change what it
    sends. A person in a holdout is sent nothing on that channel, unless the category is required.
    """
    recipient = notification.recipient
    tested = (notification.metadata or {}).get(TEST_VERSION_KEY)
    if isinstance(tested, int) and not isinstance(tested, bool):
        version, arms = tested, None  # ops' "send a test" of one version: no experiment applies
    candidates = notification.requested_channels or preference_policy.candidate_channels(recipient, notification.type)
    unreachable = unreachable_channels(recipient, notification.active_devices, suppressed)
    reachable, skipped = choose_channels(candidates, template_channels, unreachable)
    decisions = preference_policy.decide(
        recipient, notification.type, reachable, notification.priority, dedup_key(notification), now,
        admission_id=admission_id(notification),
    ) if reachable else []
    deliveries = []
    for decision in decisions:
        if decision.action == preference_policy.SUPPRESS:
            skipped.append({"channel": decision.channel, "reason": decision.reason})
            continue
        choice = (arms or {}).get((recipient.pk, notification.template_name, decision.channel))
        if choice is not None and choice.holdout and not preference_store.allows_holdout(notification.type):
            choice = None  # a message people count on is never held back, and so is not part of the experiment
        if choice is not None and exposures is not None:
            exposures.append((choice, notification.pk, recipient.pk))
        if choice is not None and choice.holdout:
            skipped.append({"channel": decision.channel, "reason": "experiment_holdout", "experiment": choice.experiment.pk})
            continue
        held = decision.action == preference_policy.HOLD
        if held:
            skipped.append({"channel": decision.channel, "reason": decision.reason, "until": decision.hold_until.isoformat()})
        arm = choice if choice is not None and not choice.holdout else None
        deliveries.append(queued_delivery(notification, decision, now, version=arm.version if arm else version,
                                          experiment_arm=arm.arm if arm else ""))
    return deliveries, skipped


def queued_delivery(notification: Notification, decision, now: datetime, *, version: int | None, reason: str = "",
                    **fields) -> Delivery:
    """The delivery a send or hold decision makes (a held one waits for its hold_until), queued with its reason."""
    held_until = decision.hold_until if decision.action == preference_policy.HOLD else None
    reason = reason or (decision.reason if held_until else "")
    return Delivery(
        notification=notification, channel=decision.channel, priority=notification.priority, status=Status.QUEUED,
        status_changed_at=now, status_history=[{"status": Status.QUEUED, "at": now.isoformat(), **({"reason": reason} if reason else {})}],
        available_at=held_until or now, held_until=held_until, created_at=now, template_version=version, **fields,
    )


def current_version(template_name: str) -> int | None:
    """The version a new delivery renders (the one whose channels routing just looked at)."""
    return MessageTemplate.objects.filter(name=template_name).values_list("current_version", flat=True).first()


def current_versions(template_names) -> dict[str, int]:
    """{template name: the version a new delivery of it renders} in one query."""
    return dict(MessageTemplate.objects.filter(name__in=template_names).values_list("name", "current_version"))


def move_routed(plans: dict, claimed_at: datetime, now: datetime, escalating: set = frozenset()) -> set:
    """Move each routed notification to sending (or failed, with nothing to send) in one statement; the ids moved.

    One with nothing to send now but escalation steps to come is `sending`: its steps may still reach the person.
    One held back as a repeat is `deduplicated`, not failed: the dedup window holds back the whole notification
    (preferences.policy.decide), so a `duplicate` among its skips means every channel that could go was one.
    """
    if not plans:
        return set()
    ids, statuses, skips, entries = [], [], [], []
    for pk, (deliveries, skipped) in plans.items():
        held_out = not deliveries and skipped and all(s["reason"] == "experiment_holdout" for s in skipped)
        repeat = not deliveries and any(s["reason"] == "duplicate" for s in skipped)
        target = (Status.SENDING if deliveries or (pk in escalating and not held_out and not repeat)
                  else Status.DEDUPLICATED if repeat else Status.CANCELED if held_out else Status.FAILED)
        reason = "experiment_holdout" if held_out else "duplicate" if repeat else "no_channel_to_send"
        entry = {"status": target.value, "at": now.isoformat(),
                 **({} if deliveries else {"reason": "escalating" if target == Status.SENDING else reason})}
        ids.append(pk)
        statuses.append(target.value)
        skips.append(json.dumps(skipped))
        entries.append(json.dumps([entry]))
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE notifications_notification AS n SET status = v.status, status_changed_at = %s, "
            "skipped_channels = v.skipped::jsonb, status_history = n.status_history || v.entry::jsonb "
            "FROM unnest(%s::uuid[], %s::text[], %s::text[], %s::text[]) AS v(id, status, skipped, entry) "
            "WHERE n.id = v.id AND n.status = 'routing' AND n.status_changed_at = %s RETURNING n.id",
            [now, ids, statuses, skips, entries, claimed_at],
        )
        return {row[0] for row in cursor.fetchall()}


def suppressions(addresses: set[str]) -> dict[tuple[str, str], str]:
    """{(channel, address): reason} for the addresses Herald stopped using."""
    if not addresses:
        return {}
    return {(channel, address): reason for channel, address, reason in
            Suppression.objects.filter(address__in=addresses).values_list("channel", "address", "reason")}


def admission_id(notification: Notification) -> str:
    """What the frequency caps count once: the notification, or the whole batch its message is a part of."""
    return f"batch:{notification.batch_id}" if notification.batch_id else str(notification.pk)


def dedup_key(notification: Notification) -> str:
    """Same person, template and variables: the same message, whatever its idempotency key.

    A schedule's occurrences repeat one message by design, so each occurrence (its key) is its own.
    """
    identity = [notification.recipient_id, notification.template_name, notification.variables]
    if notification.schedule_id:
        identity.append(notification.idempotency_key)
    canonical = json.dumps(identity, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def cancel(notification_id) -> bool:
    """Cancel a notification that has not started routing; False if it is too late."""
    with transaction.atomic():
        canceled = transition(
            Notification, NOTIFICATION_TRANSITIONS, notification_id, Status.CANCELED,
            sources={Status.SCHEDULED, Status.PENDING, Status.QUEUED}, reason="canceled_by_api",
        )
        if canceled:
            Outbox.objects.filter(notification_id=notification_id).delete()
    return canceled


# A campaign's notifications whose deliveries were all canceled before any went out.
ALL_DELIVERIES_CANCELED_SQL = """
SELECT n.id FROM notifications_notification AS n
WHERE n.campaign_id = %s AND n.status = 'sending'
  AND NOT EXISTS (SELECT 1 FROM delivery_delivery AS d WHERE d.notification_id = n.id AND d.status <> 'canceled')
"""


def cancel_campaign(campaign_id) -> int:
    """Stop what a campaign has not sent: notifications not yet routed, and deliveries not yet claimed.

    A notification being routed right now loses its claim (routing → canceled), so the router's
    deliveries roll back with it; a delivery already `sending` goes on.
    """
    of_campaign = Notification.objects.filter(campaign_id=campaign_id)
    with transaction.atomic():
        canceled = move_all(of_campaign, NOTIFICATION_TRANSITIONS, Status.CANCELED, reason="campaign_canceled",
                            sources={Status.PENDING, Status.SCHEDULED, Status.QUEUED, Status.ROUTING})
        Outbox.objects.filter(notification__campaign_id=campaign_id).delete()
        cancel_unsent(of_campaign.values("pk"))
        escalation.cancel_open(of_campaign.values("pk"), "campaign_canceled")
        with connection.cursor() as cursor:
            cursor.execute(ALL_DELIVERIES_CANCELED_SQL, [campaign_id])
            emptied = [row[0] for row in cursor.fetchall()]
        canceled += move_all(Notification.objects.filter(pk__in=emptied), NOTIFICATION_TRANSITIONS, Status.CANCELED,
                             sources={Status.SENDING}, reason="campaign_canceled")
    return canceled


def unreachable_channels(recipient: Recipient, active_devices: int | None = None,
                         suppressed: dict | None = None) -> dict[str, str | None]:
    """For each channel, why `recipient` cannot receive it now (None when they can)."""
    if active_devices is None:
        active_devices = recipient.devices.filter(is_active=True).count()
    contact = recipient.contact_addresses()
    if suppressed is None:
        suppressed = suppressions({address for address in contact.values() if address})
    reasons = {}
    for channel in Channel.values:
        reasons[channel] = unreachable_reason(
            channel, email=recipient.email, phone=recipient.phone,
            webhook_url=recipient.webhook_url, active_devices=active_devices,
        ) or (suppressed.get((channel, contact[channel])) if contact.get(channel) else None)
    if not recipient.is_active:
        reasons = dict.fromkeys(reasons, "user_inactive")
    return reasons


def fall_back(delivery: Delivery, reason: str) -> Delivery | None:
    """Queue the next channel of the type's fallback order after `delivery`'s, once per notification.

    Used when a channel cannot reach the person (no device left, every token dead, a hard
    bounce, an invalid number), not for transient failures, which are retried instead. A
    notification with an escalation step waiting escalates now instead: its workflow says
    which channel comes next. The fallback is shown as a step of its workflow.
    """
    if escalation.advance(delivery.notification_id, f"{delivery.channel} cannot reach the person ({reason})"):
        return None
    order = fallback_order(delivery.notification.type)
    if delivery.channel not in order:
        return None
    with transaction.atomic():
        notification = Notification.objects.select_for_update().select_related("recipient").get(pk=delivery.notification_id)
        siblings = Delivery.objects.filter(notification=notification)
        if siblings.filter(fallback_from__isnull=False).exists():
            return None
        used = set(siblings.values_list("channel", flat=True))
        templates = set(Template.objects.filter(name=notification.template_name).values_list("channel", flat=True))
        unreachable = unreachable_channels(notification.recipient)
        for channel in order[order.index(delivery.channel) + 1:]:
            if channel in used or channel not in templates or unreachable.get(channel):
                continue
            now = timezone.now()
            # The person's choices and quiet hours apply to a fallback channel as to any other.
            [decision] = preference_policy.decide(
                notification.recipient, notification.type, [channel], notification.priority,
                dedup_key(notification), now, admission_id=admission_id(notification),
            )
            if decision.action == preference_policy.SUPPRESS:
                continue
            created = queued_delivery(notification, decision, now, version=current_version(notification.template_name),
                                      reason=f"fallback_from_{delivery.channel}:{reason}", fallback_from=delivery)
            created.save(force_insert=True)
            escalation.record_fallback(notification.pk, created, delivery.channel, reason, now)
            if created.held_until is None:
                transaction.on_commit(lambda ch=channel: wake_deliveries(ch, notification.priority))
            log.info("notification %s: %s could not reach the person (%s); falling back to %s",
                     notification.pk, delivery.channel, reason, channel)
            return created
    return None


def on_delivery_cannot_reach(sender, delivery, reason, **kwargs) -> None:
    fall_back(delivery, reason)
