import uuid

from django.db import models
from django.utils import timezone as django_timezone


class Schedule(models.Model):
    """A notification (to one person) or a campaign (to an audience) sent again at each occurrence
    of a recurrence (RFC 5545 RRULE or cron) in a timezone, or in each recipient's own.

    Occurrences are wall-clock times in that timezone, stored as `YYYY-MM-DDTHH:MM`: the
    timezone decides the instant (schedules/recurrence.py).
    """

    class State(models.TextChoices):
        ACTIVE = "active"
        PAUSED = "paused"
        CANCELED = "canceled"
        ENDED = "ended"  # no occurrence left before its end
        PARKED = "parked"  # its rule could not be evaluated when it came due: see parked_reason

    class Missed(models.TextChoices):
        FIRE_LATEST = "fire_latest", "fire the latest missed occurrence once"
        SKIP = "skip", "skip occurrences more than the grace period late"

    RECIPIENT_TIMEZONE = "recipient"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200, blank=True)
    # "notification" (payload as POST /notifications takes it) or "campaign" (as POST /campaigns takes it).
    kind = models.CharField(max_length=20)
    payload = models.JSONField()
    rrule = models.CharField(max_length=1000, blank=True)
    cron = models.CharField(max_length=200, blank=True)
    timezone = models.CharField(max_length=64, help_text='An IANA timezone, or "recipient" for each recipient\'s own.')
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField(null=True, blank=True)
    missed = models.CharField(max_length=20, choices=Missed.choices, default=Missed.FIRE_LATEST)
    state = models.CharField(max_length=10, choices=State.choices, default=State.ACTIVE)
    next_occurrence = models.CharField(max_length=16, blank=True)
    next_run_at = models.DateTimeField(null=True, blank=True)
    # What GET shows, written whenever the schedule moves, so that reading it never expands a rule:
    # [{"occurrence", "at"}] from the next occurrence on (schedules/recurrence.py UPCOMING of them).
    upcoming = models.JSONField(default=list, blank=True)
    # COUNT's walk from the start, done once: {"dtstart": the start counted from, "last": the last
    # occurrence COUNT allows}; null without COUNT (schedules/recurrence_jobs.py).
    count_end = models.JSONField(null=True, blank=True)
    parked_reason = models.TextField(blank=True, help_text="Why the sweep stopped firing it (state parked).")
    last_occurrence = models.CharField(max_length=16, blank=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    fired = models.PositiveIntegerField(default=0, help_text="Occurrences sent.")
    skipped = models.PositiveIntegerField(default=0, help_text="Occurrences missed (downtime, or paused) and not sent.")
    api_key = models.ForeignKey("notifications.ApiKey", null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=django_timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["next_run_at"], condition=models.Q(state="active"), name="schedule_due")]

    def __str__(self) -> str:
        return self.name or str(self.id)


class ScheduleRun(models.Model):
    """One occurrence of a schedule that was sent (or failed to be): at most one per occurrence."""

    class Outcome(models.TextChoices):
        SENT = "sent"  # the notification or campaign was created
        FAILED = "failed"  # it could not be (the person or the template is gone): see error

    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="runs")
    occurrence = models.CharField(max_length=16)
    due_at = models.DateTimeField()
    fired_at = models.DateTimeField()
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    notification_id = models.UUIDField(null=True, blank=True)
    campaign_id = models.UUIDField(null=True, blank=True)
    # Occurrences missed just before this one and not sent (after downtime, fire_latest sends only the latest).
    skipped_before = models.PositiveIntegerField(default=0)
    error = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-fired_at"]
        constraints = [models.UniqueConstraint(fields=["schedule", "occurrence"], name="one_run_per_occurrence")]

    def __str__(self) -> str:
        return f"{self.schedule_id} at {self.occurrence} ({self.outcome})"
