from datetime import datetime, timedelta

from django.db.models import Prefetch
from django.utils import timezone
from rest_framework import serializers

from campaigns.serializers import CampaignRequest
from core.serializers import StrictSerializer, choice
from notifications.serializers import NotificationRequest
from preferences.models import iana_zones
from schedules.models import Schedule, ScheduleRun


class ScheduledNotification(NotificationRequest):
    """What each occurrence sends to one person (as POST /notifications takes it, without a time or key)."""

    scheduled_at = None
    idempotency_key = None


class ScheduleRequest(StrictSerializer):
    name = serializers.CharField(max_length=200, required=False, default="")
    rrule = serializers.CharField(max_length=1000, required=False, help_text=(
        'An RFC 5545 recurrence rule\'s parts, e.g. "FREQ=WEEKLY;BYDAY=MO,WE;BYHOUR=9;BYMINUTE=0"; '
        'times it does not give come from starts_at.'))
    cron = serializers.CharField(max_length=200, required=False, help_text='Five cron fields, e.g. "0 9 * * 1-5".')
    timezone = serializers.CharField(max_length=64, help_text=(
        'The IANA timezone the rule\'s wall-clock times are in, or "recipient": each recipient\'s own.'))
    starts_at = serializers.DateTimeField(required=False, help_text=(
        "No occurrence before it (default: now), read to the next whole minute; as the rule's DTSTART it is the "
        "first occurrence when the rule gives it, and COUNT counts from it."))
    ends_at = serializers.DateTimeField(required=False, allow_null=True, help_text="No occurrence after it.")
    missed_occurrences = choice(Schedule.Missed.choices, "policy", required=False, default=Schedule.Missed.FIRE_LATEST,
                                help_text="After downtime: fire_latest sends the latest missed occurrence once; skip "
                                          "sends it only if at most HERALD_SCHEDULE_GRACE_SECONDS late.")
    notification = ScheduledNotification(required=False)
    campaign = CampaignRequest(required=False)

    def validate_timezone(self, value):
        if value != Schedule.RECIPIENT_TIMEZONE and value not in iana_zones():
            raise serializers.ValidationError(f'{value!r} is not an IANA timezone (or "recipient").')
        return value

    def validate(self, attrs):
        attrs = super().validate(attrs)
        if ("notification" in attrs) == ("campaign" in attrs):
            raise serializers.ValidationError({"notification": "Give either notification (one person) or campaign (an audience)."})
        if ("rrule" in attrs) == ("cron" in attrs):
            raise serializers.ValidationError({"rrule": "Give either rrule (RFC 5545) or cron."})
        attrs["starts_at"] = next_whole_minute(attrs.get("starts_at") or self.context.get("now") or timezone.now())
        for name in ("starts_at", "ends_at"):
            if attrs.get(name) is not None and not 2000 <= attrs[name].year <= 2200:
                raise serializers.ValidationError({name: "Must be between the years 2000 and 2200."})
        if attrs.get("ends_at") is not None and attrs["ends_at"] <= attrs["starts_at"]:
            raise serializers.ValidationError({"ends_at": "Must be after starts_at."})
        return attrs


def next_whole_minute(moment: datetime) -> datetime:
    """Occurrences are whole minutes: a start with seconds is read as the minute after (never before it)."""
    floor = moment.replace(second=0, microsecond=0)
    return floor if floor == moment else floor + timedelta(minutes=1)


class RunView(serializers.Serializer):
    occurrence = serializers.CharField()
    due_at = serializers.DateTimeField()
    fired_at = serializers.DateTimeField()
    outcome = serializers.CharField()
    notification_id = serializers.UUIDField(allow_null=True)
    campaign_id = serializers.UUIDField(allow_null=True)
    skipped_before = serializers.IntegerField()
    error = serializers.JSONField(allow_null=True)


class OccurrenceView(serializers.Serializer):
    occurrence = serializers.CharField(help_text="The wall-clock time in the schedule's timezone.")
    at = serializers.DateTimeField(help_text="When it fires.")


class ScheduleView(serializers.ModelSerializer):
    missed_occurrences = serializers.CharField(source="missed")
    next_occurrences = serializers.SerializerMethodField()
    recent_runs = serializers.SerializerMethodField()
    notification = serializers.SerializerMethodField()
    campaign = serializers.SerializerMethodField()

    class Meta:
        model = Schedule
        fields = ["id", "name", "state", "parked_reason", "rrule", "cron", "timezone", "starts_at", "ends_at",
                  "missed_occurrences", "next_run_at", "next_occurrence", "next_occurrences", "last_run_at", "last_occurrence",
                  "fired", "skipped", "notification", "campaign", "recent_runs", "created_at"]

    RECENT_RUNS = 10

    @classmethod
    def recent_runs_prefetch(cls) -> Prefetch:
        """Each listed schedule's recent runs in one query, not one per row."""
        return Prefetch("runs", queryset=ScheduleRun.objects.order_by("-fired_at")[:cls.RECENT_RUNS], to_attr="recent_runs")

    def get_next_occurrences(self, schedule) -> list[dict]:
        """As stored when the schedule last moved: showing them never expands its rule."""
        if schedule.state != Schedule.State.ACTIVE:
            return []
        stored = schedule.upcoming or (  # a row from before they were stored shows its next one until it fires
            [{"occurrence": schedule.next_occurrence, "at": schedule.next_run_at.isoformat()}] if schedule.next_run_at else [])
        return OccurrenceView([{"occurrence": o["occurrence"], "at": datetime.fromisoformat(o["at"])} for o in stored],
                              many=True).data

    def get_recent_runs(self, schedule) -> list[dict]:
        runs = getattr(schedule, "recent_runs", None)
        return RunView(schedule.runs.all()[:self.RECENT_RUNS] if runs is None else runs, many=True).data

    def get_notification(self, schedule) -> dict | None:
        return schedule.payload if schedule.kind == "notification" else None

    def get_campaign(self, schedule) -> dict | None:
        return schedule.payload if schedule.kind == "campaign" else None
