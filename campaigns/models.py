import uuid

from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from core.vocabulary import NotificationType, Priority

TOPIC_KEY = RegexValidator(r"\A[a-z0-9][a-z0-9._:-]{0,99}\Z", "Lowercase letters, digits, and . _ : - (at most 100).")


class Topic(models.Model):
    """A list people subscribe to (a product's release notes, a team's alerts); campaigns send to it."""

    key = models.CharField(max_length=100, unique=True, validators=[TOPIC_KEY])
    name = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.key


class TopicSubscription(models.Model):
    topic = models.ForeignKey(Topic, on_delete=models.CASCADE, related_name="subscriptions")
    recipient = models.ForeignKey("preferences.Recipient", on_delete=models.CASCADE, related_name="topic_subscriptions")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["topic", "recipient"], name="one_subscription_per_topic_person")]


class Campaign(models.Model):
    """One template and variables for an audience, fanned out into one notification per person."""

    class Status(models.TextChoices):
        FANNING_OUT = "fanning_out"
        FANNED_OUT = "fanned_out"
        CANCELED = "canceled"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200, blank=True)
    type = models.CharField(max_length=20, choices=NotificationType.choices)
    priority = models.CharField(max_length=10, choices=Priority.choices)
    template_name = models.CharField("template", max_length=100)
    variables = models.JSONField(default=dict, blank=True)
    channels = models.JSONField(default=list, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    # {"user_ids": [...]} (deduplicated, in the caller's order), {"topic": key} or {"filter": {...}}.
    audience = models.JSONField()
    api_key = models.ForeignKey("notifications.ApiKey", null=True, blank=True, on_delete=models.SET_NULL)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.FANNING_OUT)
    created_at = models.DateTimeField(default=timezone.now)
    # The fan-out's progress, advanced in the same transaction as each chunk's insert:
    # a position in user_ids, or the last recipient id taken from a topic or filter.
    cursor = models.BigIntegerField(default=0)
    progressed_at = models.DateTimeField(default=timezone.now)
    fanned_out_at = models.DateTimeField(null=True, blank=True)
    canceled_at = models.DateTimeField(null=True, blank=True)
    targeted = models.IntegerField(null=True, blank=True, help_text="The audience's size, once known.")
    accepted = models.IntegerField(default=0, help_text="Notifications created.")
    skipped = models.JSONField(default=dict, blank=True, help_text="People not sent to, counted by reason.")
    # When each person gets it, if not at once: {"local_time": "09:00"}, {"local_datetime": "2026-12-01T09:00"}
    # (a schedule's occurrence in each person's own timezone) or {"optimal": true, "window_hours": 24}.
    send_at = models.JSONField(null=True, blank=True)
    # The recurring schedule that created it, if any (schedules/ sits above this app).
    schedule_id = models.UUIDField(null=True, blank=True, editable=False)

    class Meta:
        indexes = [models.Index(fields=["status", "progressed_at"], name="campaign_fan_out_progress")]

    def __str__(self) -> str:
        return self.name or str(self.id)
