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

The chunk's rules are evaluated in bounded processes, all in one call where time allows
(schedules/evaluation.py). A schedule whose rule cannot be evaluated within the bounds, even
alone, is parked with the reason (state `parked`, `parked_reason`), and the rest fire as usual.
"""

import json
import logging
from datetime import datetime

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from campaigns import fanout
from core import metrics
from core.errors import ApiError
from notifications.accept import find_recipients_and_variants, insert_many_with_outbox, prepare
from notifications.routing import wake_routing
from preferences.models import Recipient
from schedules import evaluation, recurrence
from schedules.models import Schedule, ScheduleRun

log = logging.getLogger(__name__)


def zone_of(schedule: Schedule, people_zones: dict[str, str] | None = None) -> str:
    """The timezone the schedule's wall-clock times are read in right now (`people_zones`: user id → timezone, read ahead)."""
    if schedule.timezone != Schedule.RECIPIENT_TIMEZONE:
        return schedule.timezone
    if schedule.kind != "notification":
        return recurrence.EARLIEST_ZONE
    user_id = schedule.payload.get("user_id")
    if people_zones is None:
        people_zones = dict(Recipient.objects.filter(external_id=user_id).values_list("external_id", "timezone"))
    return people_zones.get(user_id, "UTC")


def set_upcoming(schedule: Schedule, upcoming: list[list[str]]) -> None:
    """Store the occurrences from the next one on ([[occurrence, instant]…], as the jobs give them);
    none left ends an active schedule."""
    schedule.upcoming = [{"occurrence": wall, "at": at} for wall, at in upcoming]
    if not upcoming:
        schedule.next_occurrence, schedule.next_run_at = "", None
        if schedule.state == Schedule.State.ACTIVE:
            schedule.state = Schedule.State.ENDED
        return
    schedule.next_occurrence = upcoming[0][0]
    schedule.next_run_at = datetime.fromisoformat(upcoming[0][1])


def park(schedule: Schedule, reason: str) -> None:
    """Stop firing a schedule whose rule could not be evaluated; it says why, and resume tries again."""
    log.warning("schedule %s parked: %s", schedule.pk, reason)
    schedule.state, schedule.next_run_at, schedule.upcoming = Schedule.State.PARKED, None, []
    schedule.parked_reason = f"Its rule could not be evaluated when it came due: {reason}"


def fire_due(limit: int, now: datetime | None = None) -> int:
    """Fire up to `limit` due schedules; how many were taken (one transaction, hence all or none).

    The chunk's notifications are checked and inserted together (two lookups, one insert), its
    runs written in one statement and its schedules moved in one more.
    """
    now = now or timezone.now()
    with transaction.atomic():
        # The API key each notification is accepted under comes with its schedule (a query per schedule was
        # a third of the sweep's time, profiled); only the schedules are locked.
        due = list(Schedule.objects.select_for_update(skip_locked=True, of=("self",)).select_related("api_key")
                   .filter(state=Schedule.State.ACTIVE, next_run_at__lte=now).order_by("next_run_at")[:limit])
        zones = zones_of(due)
        placed = evaluation.place(due, zones, now) if due else []
        runs = [run for schedule, answer in zip(due, placed) if (run := advance(schedule, answer, now)) is not None]
        send_notifications([run for run in runs if run.schedule.kind == "notification"], now)
        for run in runs:
            if run.schedule.kind == "campaign":
                send_campaign(run)
        ScheduleRun.objects.bulk_create(runs, ignore_conflicts=True)  # unique per occurrence: the lock's backstop
        for run in runs:
            run.schedule.fired += run.outcome == ScheduleRun.Outcome.SENT
        move(due, now)
    return len(due)


MOVE_SQL = """
UPDATE schedules_schedule AS s SET next_occurrence = v.next_occurrence, next_run_at = v.next_run_at, state = v.state,
    skipped = v.skipped, last_occurrence = v.last_occurrence, last_run_at = %s, fired = v.fired, updated_at = %s,
    upcoming = v.upcoming::jsonb, count_end = v.count_end::jsonb, parked_reason = v.parked_reason
FROM unnest(%s::uuid[], %s::text[], %s::timestamptz[], %s::text[], %s::int[], %s::text[], %s::int[], %s::text[], %s::text[],
            %s::text[])
    AS v(id, next_occurrence, next_run_at, state, skipped, last_occurrence, fired, upcoming, count_end, parked_reason)
WHERE s.id = v.id
"""


def move(schedules: list[Schedule], now: datetime) -> None:
    """Write where each schedule stands now, in one statement (Django's bulk_update cost 2 s per 1,000, profiled)."""
    if not schedules:
        return
    with connection.cursor() as cursor:
        cursor.execute(MOVE_SQL, [now, now, [s.pk for s in schedules], [s.next_occurrence for s in schedules],
                                  [s.next_run_at for s in schedules], [s.state for s in schedules], [s.skipped for s in schedules],
                                  [s.last_occurrence for s in schedules], [s.fired for s in schedules],
                                  [json.dumps(s.upcoming) for s in schedules],
                                  [json.dumps(s.count_end) if s.count_end is not None else None for s in schedules],
                                  [s.parked_reason for s in schedules]])


def zones_of(schedules: list[Schedule]) -> dict:
    """{schedule: the timezone its wall-clock times are read in now}, with one query for people's own."""
    people = {s.payload.get("user_id") for s in schedules
              if s.timezone == Schedule.RECIPIENT_TIMEZONE and s.kind == "notification"}
    found = dict(Recipient.objects.filter(external_id__in=people).values_list("external_id", "timezone")) if people else {}
    return {s.pk: zone_of(s, found) for s in schedules}


def advance(schedule: Schedule, answer: dict, now: datetime) -> ScheduleRun | None:
    """Move the schedule past its due occurrence (the latest missed one, by its policy) as its rule's
    evaluation says (recurrence_jobs.fire): the run to send, or None if skipped, not due yet or parked."""
    schedule.updated_at = now
    if "error" in answer:
        park(schedule, answer["error"])
        metrics.schedule_fired("parked")
        return None
    placed = answer["ok"]
    schedule.count_end = placed["count"]
    if not schedule.next_occurrence or placed["send"] is None:
        # Set by hand in the database (started over from now), or a person who moved east to west since
        # the due time was set: it comes at that wall time where they are now.
        set_upcoming(schedule, placed["next"])
        return None
    missed, due_at = placed["missed"], datetime.fromisoformat(placed["due_at"])
    set_upcoming(schedule, placed["next"])
    schedule.last_occurrence, schedule.last_run_at = placed["send"], now
    late = (now - due_at).total_seconds()
    if schedule.missed == Schedule.Missed.SKIP and late > settings.HERALD_SCHEDULE_GRACE_SECONDS:
        schedule.skipped += missed + 1
        log.info("schedule %s: occurrence %s is %.0f s late; skipped", schedule.pk, schedule.last_occurrence, late)
        metrics.schedule_fired("skipped", late)
        return None
    schedule.skipped += missed
    run = ScheduleRun(schedule=schedule, occurrence=schedule.last_occurrence, due_at=due_at, fired_at=now,
                      skipped_before=missed, outcome=ScheduleRun.Outcome.SENT)
    run.wall = recurrence.from_key(placed["send"])
    metrics.schedule_fired("fired", late)
    return run


def send_notifications(runs: list[ScheduleRun], now: datetime) -> None:
    """Each run's notification (idempotency key `schedule:<id>:<occurrence>`), accepted as POST /notifications would.

    A run whose person or template is gone is recorded failed with the reason.
    """
    if not runs:
        return
    payloads = [run.schedule.payload for run in runs]
    recipients, variants = find_recipients_and_variants({p["user_id"] for p in payloads}, {p["template"] for p in payloads})
    prepared = []
    for run, payload in zip(runs, payloads):
        recipient = recipients.get(payload["user_id"])
        found = (*recipient[:2], variants.get(payload["template"], []), recipient[2]) if recipient else None
        try:
            notification = prepare({**payload, "schedule_id": run.schedule.pk}, found, raw_payload=payload,
                                   api_key=run.schedule.api_key, idempotency_key=f"schedule:{run.schedule.pk}:{run.occurrence}")
        except ApiError as exc:
            run.outcome, run.error = ScheduleRun.Outcome.FAILED, {"code": exc.code, "message": str(exc.detail), "field": exc.field}
            continue
        run.notification_id = notification.pk
        prepared.append(notification)
    inserted = insert_many_with_outbox(prepared)
    for run in runs:
        if run.notification_id is not None and run.notification_id not in inserted:
            # Its key is taken: this occurrence was sent already (the lock makes this a backstop, not a path).
            log.warning("schedule %s: occurrence %s was already sent", run.schedule.pk, run.occurrence)
            run.notification_id, run.outcome = None, ScheduleRun.Outcome.FAILED
            run.error = {"code": "already_sent", "message": "This occurrence's notification exists already.", "field": None}
    for priority in {n.priority for n in prepared if n.pk in inserted and n.scheduled_at is None}:
        transaction.on_commit(lambda priority=priority: wake_routing(priority))


def send_campaign(run: ScheduleRun) -> None:
    """The run's campaign, in a savepoint: a campaign that cannot be created is recorded failed with the reason."""
    try:
        with transaction.atomic():
            run.campaign_id = create_campaign(run.schedule, run.wall)
    except ApiError as exc:
        run.outcome, run.error = ScheduleRun.Outcome.FAILED, {"code": exc.code, "message": str(exc.detail), "field": exc.field}


def create_campaign(schedule: Schedule, wall: datetime):
    """The occurrence's campaign; sent at the occurrence in each person's own timezone if the schedule says so."""
    data = dict(schedule.payload)
    if schedule.timezone == Schedule.RECIPIENT_TIMEZONE and not data.get("send_at"):
        data["send_at_local"] = wall.isoformat(timespec="minutes")
    return fanout.create(data, schedule.api_key, schedule_id=schedule.pk).pk
