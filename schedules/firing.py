"""Firing schedules: each due occurrence becomes one notification or campaign, exactly once.

A sweep (celery beat, every second) locks the due schedules with FOR UPDATE SKIP LOCKED and,
for each, in one transaction: writes the occurrence's run (unique per schedule and occurrence),
creates its notification (idempotency key `schedule:<id>:<occurrence>`) or campaign, and moves
the schedule to its next occurrence. Two sweeps (two beat processes) never take the same
schedule; a worker killed mid-way commits nothing and the next sweep does it all again.

After downtime, the occurrences missed are not sent one by one: `fire_latest` sends the latest
of them once (however late), `skip` sends it only if it is at most HERALD_SCHEDULE_GRACE_SECONDS
late. Either way the others are counted as skipped, and the schedule goes on from the next
occurrence in the future. Resuming a paused schedule skips what fell in the pause.
"""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone

from campaigns import fanout
from core.errors import ApiError
from notifications.accept import find_recipient_and_variants, insert_many_with_outbox, prepare
from notifications.routing import wake_routing
from preferences.models import Recipient
from schedules import recurrence
from schedules.models import Schedule, ScheduleRun

log = logging.getLogger(__name__)


def zone_of(schedule: Schedule) -> str:
    """The timezone the schedule's wall-clock times are read in right now."""
    if schedule.timezone != Schedule.RECIPIENT_TIMEZONE:
        return schedule.timezone
    if schedule.kind == "notification":
        found = Recipient.objects.filter(external_id=schedule.payload["user_id"]).values_list("timezone", flat=True).first()
        return found or "UTC"
    return recurrence.EARLIEST_ZONE


def recurrence_of(schedule: Schedule, zone_name: str) -> recurrence.Recurrence:
    end = recurrence.wall_time(schedule.ends_at, zone_name) if schedule.ends_at else None
    return recurrence.Recurrence(schedule.rrule, schedule.cron,
                                 recurrence.wall_time(schedule.starts_at, zone_name).replace(second=0, microsecond=0), end)


def upcoming(schedule: Schedule, count: int, after: datetime | None = None) -> list[dict]:
    """The next `count` occurrences after `after` (default: the next one's), with their instants."""
    zone_name = zone_of(schedule)
    rule = recurrence_of(schedule, zone_name)
    if after is None:
        if not schedule.next_occurrence:
            return []
        wall = recurrence.from_key(schedule.next_occurrence)
    else:
        wall = rule.after(recurrence.wall_time(after, zone_name))
    found = []
    while wall is not None and len(found) < count:
        found.append({"occurrence": recurrence.occurrence_key(wall), "at": recurrence.instant(wall, zone_name)})
        wall = next_after(rule, wall, zone_name)
    return found


def next_after(rule: recurrence.Recurrence, wall: datetime, zone_name: str) -> datetime | None:
    """The occurrence after `wall` whose instant is later too (two wall times in a spring gap are one instant)."""
    at = recurrence.instant(wall, zone_name)
    following = rule.after(wall)
    while following is not None and recurrence.instant(following, zone_name) <= at:
        following = rule.after(following)
    return following


def start(schedule: Schedule, now: datetime) -> None:
    """Set the schedule's first occurrence at or after max(starts_at, now) (on create and on resume)."""
    zone_name = zone_of(schedule)
    rule = recurrence_of(schedule, zone_name)
    after = max(schedule.starts_at, now)
    wall = rule.after(recurrence.wall_time(after, zone_name) - timedelta(seconds=1))
    while wall is not None and recurrence.instant(wall, zone_name) < after:
        wall = rule.after(wall)
    set_next(schedule, wall, zone_name)


def set_next(schedule: Schedule, wall: datetime | None, zone_name: str) -> None:
    if wall is None:
        schedule.next_occurrence, schedule.next_run_at = "", None
        if schedule.state == Schedule.State.ACTIVE:
            schedule.state = Schedule.State.ENDED
        return
    schedule.next_occurrence = recurrence.occurrence_key(wall)
    schedule.next_run_at = recurrence.instant(wall, zone_name)


def fire_due(limit: int, now: datetime | None = None) -> int:
    """Fire up to `limit` due schedules; how many were taken (one transaction, hence all or none)."""
    now = now or timezone.now()
    with transaction.atomic():
        due = list(Schedule.objects.select_for_update(skip_locked=True)
                   .filter(state=Schedule.State.ACTIVE, next_run_at__lte=now).order_by("next_run_at")[:limit])
        for schedule in due:
            fire(schedule, now)
    return len(due)


def fire(schedule: Schedule, now: datetime) -> ScheduleRun | None:
    """Send the schedule's due occurrence (the latest missed one, by its policy) and move it to the next."""
    if not schedule.next_occurrence:  # set by hand in the database: start over from now
        start(schedule, now)
        schedule.save(update_fields=["next_occurrence", "next_run_at", "state", "updated_at"])
        return None
    zone_name = zone_of(schedule)
    rule = recurrence_of(schedule, zone_name)
    due_wall = recurrence.from_key(schedule.next_occurrence)
    latest = rule.latest(recurrence.wall_time(now, zone_name)) or due_wall
    latest = max(latest, due_wall)
    missed = rule.count_between(due_wall, latest)
    due_at = recurrence.instant(latest, zone_name)
    late = (now - due_at).total_seconds()
    run = None
    if schedule.missed == Schedule.Missed.SKIP and late > settings.HERALD_SCHEDULE_GRACE_SECONDS:
        missed += 1
        log.info("schedule %s: occurrence %s is %.0f s late; skipped", schedule.pk, recurrence.occurrence_key(latest), late)
    else:
        run = send_occurrence(schedule, latest, due_at, now, missed)
    set_next(schedule, next_after(rule, latest, zone_name), zone_name)
    schedule.skipped += missed
    schedule.last_occurrence = recurrence.occurrence_key(latest)
    schedule.last_run_at = now
    schedule.fired += 1 if run is not None and run.outcome == ScheduleRun.Outcome.SENT else 0
    schedule.save(update_fields=["next_occurrence", "next_run_at", "state", "skipped", "last_occurrence", "last_run_at",
                                 "fired", "updated_at"])
    return run


def send_occurrence(schedule: Schedule, wall: datetime, due_at: datetime, now: datetime, missed: int) -> ScheduleRun | None:
    """Write the occurrence's run and create what it sends, in a savepoint; None if it was sent before."""
    key = recurrence.occurrence_key(wall)
    run = ScheduleRun(schedule=schedule, occurrence=key, due_at=due_at, fired_at=now, skipped_before=missed,
                      outcome=ScheduleRun.Outcome.SENT)
    try:
        with transaction.atomic():
            run.save(force_insert=True)
            if schedule.kind == "notification":
                run.notification_id = create_notification(schedule, key)
            else:
                run.campaign_id = create_campaign(schedule, wall)
            ScheduleRun.objects.filter(pk=run.pk).update(notification_id=run.notification_id, campaign_id=run.campaign_id)
    except IntegrityError:
        # The run exists: this occurrence was sent already (the unique key stands behind the lock).
        log.warning("schedule %s: occurrence %s was already sent", schedule.pk, key)
        return None
    except ApiError as exc:
        # The person or template is gone or changed: record why, and go on with the next occurrence.
        run.outcome, run.error = ScheduleRun.Outcome.FAILED, {"code": exc.code, "message": str(exc.detail), "field": exc.field}
        run.pk = None
        run.save(force_insert=True)
    except DatabaseError:
        raise
    return run


def create_notification(schedule: Schedule, occurrence: str):
    """The occurrence's notification, with its idempotency key; its id."""
    data = {**schedule.payload, "schedule_id": schedule.pk}
    found = find_recipient_and_variants(data["user_id"], data["template"])
    notification = prepare(data, found, raw_payload=schedule.payload, api_key=schedule.api_key,
                           idempotency_key=f"schedule:{schedule.pk}:{occurrence}")
    if not insert_many_with_outbox([notification]):
        raise IntegrityError(f"schedule {schedule.pk} occurrence {occurrence} has a notification already")
    if notification.scheduled_at is None:
        transaction.on_commit(lambda: wake_routing(notification.priority))
    return notification.pk


def create_campaign(schedule: Schedule, wall: datetime):
    """The occurrence's campaign; sent at the occurrence in each person's own timezone if the schedule says so."""
    data = dict(schedule.payload)
    if schedule.timezone == Schedule.RECIPIENT_TIMEZONE and not data.get("send_at"):
        data["send_at_local"] = wall.isoformat(timespec="minutes")
    return fanout.create(data, schedule.api_key, schedule_id=schedule.pk).pk
