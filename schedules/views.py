"""Recurring schedules: create, read, pause, resume, cancel (firing is schedules/firing.py)."""

import json

from django.db import transaction
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status as http
from rest_framework.response import Response
from rest_framework.views import APIView

from campaigns import fanout
from core import bounded
from core.errors import ApiError
from core.openapi import error
from notifications.accept import check_escalation, check_template, find_recipient_and_variants
from schedules import evaluation, firing, recurrence
from schedules.models import Schedule
from schedules.serializers import ScheduleRequest, ScheduleView


def schedule_response(schedule: Schedule, status: int = 200, **kwargs) -> Response:
    return Response(ScheduleView(schedule).data, status=status, **kwargs)


def check_payload(kind: str, data: dict) -> None:
    """ApiError naming the field if what the schedule sends could not be accepted now."""
    if kind == "campaign":
        fanout.check(data, prefix="campaign.")
        return
    found = find_recipient_and_variants(data["user_id"], data["template"])
    if found is None:
        raise ApiError(400, "unknown_user", f"No user {data['user_id']!r}.", "notification.user_id")
    try:
        check_template(data["template"], found[2], data.get("channels") or [], data.get("variables", {}))
        check_escalation(data.get("escalation"), found[2])
    except ApiError as exc:
        exc.field = f"notification.{exc.field}"
        raise


class ScheduleList(APIView):
    required_scopes = {"GET": "notifications:read", "POST": "notifications:write"}

    @extend_schema(request=ScheduleRequest, responses={
        201: OpenApiResponse(ScheduleView, "Created; its next occurrences are listed."),
        400: error("Invalid field, a recurrence that does not parse, never fires, fires more than once a minute or is "
                   "too costly to evaluate, an end before the start, an unknown timezone, user or template."),
        503: error("No process to evaluate the rule could be started, or every slot for heavy requests is taken; retry."),
    })
    def post(self, request):
        """Send a notification or a campaign at each occurrence of an RRULE or cron, in a timezone or each recipient's own."""
        now = timezone.now()
        serializer = ScheduleRequest(data=request.data, context={"now": now})
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        kind = "notification" if "notification" in data else "campaign"
        payload = json.loads(json.dumps(data[kind], default=str))
        check_payload(kind, payload)
        schedule = Schedule(
            name=data["name"], kind=kind, payload=payload, rrule=data.get("rrule", ""), cron=data.get("cron", ""),
            timezone=data["timezone"], starts_at=data["starts_at"], ends_at=data.get("ends_at"),
            missed=data["missed_occurrences"], api_key=request.auth,
        )
        placed = checked(schedule, after=max(schedule.starts_at, now))
        schedule.rrule, schedule.count_end = placed["rrule"], placed["count"]
        firing.set_upcoming(schedule, placed["next"])
        if schedule.next_run_at is None:
            raise ApiError(400, "invalid_recurrence", "Never fires after now.", "ends_at" if schedule.ends_at else "starts_at")
        schedule.save()
        return schedule_response(schedule, http.HTTP_201_CREATED, headers={"Location": f"/api/v1/schedules/{schedule.pk}"})

    @extend_schema(responses={200: ScheduleView(many=True)})
    def get(self, request):
        """The 100 most recent schedules (?state=active|paused|canceled|ended|parked to filter)."""
        schedules = Schedule.objects.order_by("-created_at").prefetch_related(ScheduleView.recent_runs_prefetch())
        state = request.query_params.get("state")
        if state:
            if state not in Schedule.State.values:
                raise ApiError(400, "invalid", f"Unknown state {state!r}; expected one of: {', '.join(Schedule.State.values)}.", "state")
            schedules = schedules.filter(state=state)
        return Response(ScheduleView(schedules[:100], many=True).data)


class ScheduleDetail(APIView):
    required_scopes = {"GET": "notifications:read"}

    @extend_schema(responses={200: ScheduleView, 404: error("No such schedule.")})
    def get(self, request, schedule_id):
        """A schedule: its state, next occurrences and recent runs."""
        return schedule_response(get_object_or_404(Schedule, pk=schedule_id))


def checked(schedule: Schedule, after, since: str = "") -> dict:
    """The schedule's rule checked and its occurrences from `after` found (evaluation.check), or the 4xx/5xx to answer."""
    try:
        return evaluation.check(schedule, firing.zone_of(schedule), after, since)
    except recurrence.InvalidRecurrence as exc:
        raise ApiError(400, "invalid_recurrence", str(exc), exc.field) from None
    except bounded.Busy:
        raise
    except bounded.BoundBroken:
        raise ApiError(503, "unavailable", "The rule cannot be evaluated right now; retry shortly.",
                       "rrule" if schedule.rrule else "cron") from None


def change_state(schedule_id, sources: set[str], target: str, what: str) -> Schedule:
    """Move the schedule (locked, so never while it fires) from one of `sources` to `target`; 409 otherwise."""
    with transaction.atomic():
        schedule = get_object_or_404(Schedule.objects.select_for_update(), pk=schedule_id)
        if schedule.state not in sources:
            raise ApiError(409, "invalid_state", f"A {schedule.state} schedule cannot be {what}.", "state")
        now = timezone.now()
        if target == Schedule.State.ACTIVE:
            placed = checked(schedule, after=max(schedule.starts_at, now), since=schedule.next_occurrence)
            schedule.state, schedule.parked_reason, schedule.count_end = target, "", placed["count"]
            firing.set_upcoming(schedule, placed["next"])
            schedule.skipped += placed.get("skipped", 0)
        else:
            schedule.state = target
            if target == Schedule.State.CANCELED:
                schedule.next_run_at, schedule.next_occurrence, schedule.upcoming = None, "", []
        schedule.save()
    return schedule


class SchedulePause(APIView):
    required_scopes = {"POST": "notifications:write"}

    @extend_schema(request=None, responses={200: ScheduleView, 409: error("Not active.")})
    def post(self, request, schedule_id):
        """Stop firing until resumed; occurrences that fall in the pause are skipped."""
        return schedule_response(change_state(schedule_id, {Schedule.State.ACTIVE}, Schedule.State.PAUSED, "paused"))


class ScheduleResume(APIView):
    required_scopes = {"POST": "notifications:write"}

    @extend_schema(request=None, responses={200: ScheduleView, 400: error("The rule is refused (again): see the message."),
                                            409: error("Not paused or parked.")})
    def post(self, request, schedule_id):
        """Fire again from the next occurrence after now (a parked schedule's rule is evaluated again first)."""
        return schedule_response(change_state(schedule_id, {Schedule.State.PAUSED, Schedule.State.PARKED},
                                              Schedule.State.ACTIVE, "resumed"))


class ScheduleCancel(APIView):
    required_scopes = {"POST": "notifications:write"}

    @extend_schema(request=None, responses={200: ScheduleView, 409: error("Already canceled or ended.")})
    def post(self, request, schedule_id):
        """Never fire again (what it already sent goes on)."""
        return schedule_response(change_state(schedule_id, {Schedule.State.ACTIVE, Schedule.State.PAUSED, Schedule.State.PARKED},
                                              Schedule.State.CANCELED, "canceled"))
