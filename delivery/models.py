import uuid

from django.db import models
from django.utils import timezone

from core.states import Status
from core.vocabulary import Channel, Priority


class Delivery(models.Model):
    """One notification on one channel: the row is the truth, queue messages only point at it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    notification = models.ForeignKey("notifications.Notification", on_delete=models.CASCADE, related_name="deliveries")
    channel = models.CharField(max_length=20, choices=Channel.choices)
    # The notification's, copied so that a lane (channel × urgent or bulk) claims its rows without a join.
    priority = models.CharField(max_length=10, choices=Priority.choices, default=Priority.MEDIUM)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    status_changed_at = models.DateTimeField(default=timezone.now)
    status_history = models.JSONField(default=list, blank=True)
    provider = models.CharField(max_length=50, blank=True)
    provider_message_id = models.CharField(max_length=255, blank=True, db_index=True)
    content = models.JSONField(default=dict, blank=True, help_text="Rendered subject/title/body as sent.")
    # The template version routing chose (null: a template that has no versions), rendered
    # whatever is published later; the locale variant it rendered and how that was found.
    template_version = models.PositiveIntegerField(null=True, blank=True)
    template_locale = models.CharField(max_length=35, blank=True)
    locale_fallback = models.CharField(max_length=10, blank=True, help_text="exact, language, default or any")
    # The experiment arm this delivery was sent as ("" when none): see experiments/.
    experiment_arm = models.CharField(max_length=50, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    # The next attempt may not start before this; a message arriving earlier is put back.
    available_at = models.DateTimeField(default=timezone.now)
    # Held for the person's quiet hours: published by a sweep when this time comes.
    held_until = models.DateTimeField(null=True, blank=True)
    # Set when a worker claims the row; a claim older than the lease, or whose worker process
    # stopped refreshing its claimer key (core/claimers.py), is abandoned.
    claimed_at = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=120, blank=True, default="", db_default="")
    # How many times in a row the row was taken over from a worker that died holding it; past
    # HERALD_POISON_TAKEOVERS it is taken to be what kills its workers and is parked (delivery/chunks.py).
    takeovers = models.PositiveSmallIntegerField(default=0, db_default=0)
    # When the row was last claimed by a lane or put on the broker (rows are claimed in chunks;
    # a retry sets it to null). Kept for the timeline and for messages of older releases.
    published_at = models.DateTimeField(null=True, blank=True, default=timezone.now)
    # What was done after an attempt whose outcome is unknown (see delivery/unknown_outcomes.py).
    unknown_outcome_action = models.CharField(max_length=40, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)
    clicked_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    error_code = models.CharField(max_length=100, blank=True)
    error_message = models.TextField(blank=True)
    # Set on a delivery created because another channel could not reach the person.
    fallback_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="fallbacks")
    # Set on a delivery an escalation step created: that step's position in the notification's workflow.
    escalation_step = models.PositiveSmallIntegerField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "deliveries"
        constraints = [
            models.UniqueConstraint(fields=["notification", "channel"], name="delivery_one_per_channel")
        ]
        indexes = [
            # Newest first, and a date range, for ops' list in admin (added concurrently: the table is large).
            models.Index(fields=["created_at"], name="delivery_created"),
            models.Index(fields=["status", "available_at"], name="delivery_status_due"),
            # What a lane claims, soonest due first (delivery/chunks.py).
            models.Index(fields=["channel", "priority", "available_at"], name="delivery_claimable",
                         condition=models.Q(status="queued", held_until__isnull=True)),
            models.Index(
                fields=["available_at"], name="delivery_unpublished_due",
                condition=models.Q(status="queued", published_at__isnull=True),
            ),
            # The rows in flight, by who holds them: what a takeover looks for (delivery/chunks.py).
            models.Index(fields=["claimed_by"], name="delivery_in_flight", condition=models.Q(status="sending")),
        ]

    def __str__(self) -> str:
        return f"{self.channel} delivery {str(self.pk)[:8]} ({self.status})"


class DeliveryAttempt(models.Model):
    class Outcome(models.TextChoices):
        SENT = "sent"
        RETRY = "retry"
        INVALID_RECIPIENT = "invalid_recipient"
        FAILED = "failed"
        ABANDONED = "abandoned"
        SKIPPED = "skipped"  # the provider's circuit breaker was open, so it was not called
        UNKNOWN = "unknown"  # the request went out and no answer came back

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField()
    provider = models.CharField(max_length=50, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=20, choices=Outcome.choices, blank=True)
    provider_message_id = models.CharField(max_length=255, blank=True)
    error_code = models.CharField(max_length=100, blank=True)
    error_message = models.TextField(blank=True)
    retry_in_seconds = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["delivery", "number"]

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.delivery_id}: {self.outcome or 'running'}"


class DeadLetter(models.Model):
    """A delivery Herald gave up on; ops can read why and requeue it."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="dead_letters")
    reason = models.CharField(max_length=100)
    error_code = models.CharField(max_length=100, blank=True)
    error_message = models.TextField(blank=True)
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    requeued_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        # Granted on its own in admin: nobody edits a dead letter, but on-call staff may send it again.
        permissions = [("requeue_deadletter", "Can requeue a dead letter")]

    def __str__(self) -> str:
        return f"{self.reason}: delivery {str(self.delivery_id)[:8]}"


class SandboxMessage(models.Model):
    """What a real provider would have been asked to send, recorded by the sandbox provider."""

    delivery = models.OneToOneField(Delivery, on_delete=models.CASCADE, related_name="sandbox_message")
    channel = models.CharField(max_length=20, choices=Channel.choices)
    to = models.JSONField(default=list)
    content = models.JSONField(default=dict)
    headers = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.channel} to {self.to}"


class Suppression(models.Model):
    """An address a provider told us is dead: a hard bounce, an invalid or opted-out number, a gone endpoint.

    Kept by address, not by person, so a corrected email address is reachable again.
    """

    channel = models.CharField(max_length=20, choices=Channel.choices)
    address = models.CharField(max_length=2000)
    reason = models.CharField(max_length=100)
    detail = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["channel", "address"], name="suppression_unique_address")]

    def __str__(self) -> str:
        return f"{self.channel} {self.address}: {self.reason}"


class DeliveryEvent(models.Model):
    """A receipt from a provider or an engagement report from an app, as received.

    Providers resend events, so each is stored once per (source, event_key).
    """

    delivery = models.ForeignKey(Delivery, null=True, blank=True, on_delete=models.CASCADE, related_name="events")
    source = models.CharField(max_length=20)  # sendgrid, twilio, app
    event = models.CharField(max_length=50)
    event_key = models.CharField(max_length=255)
    # Receipts can beat the worker's own "sent" update; these wait and are applied after it.
    provider_message_id = models.CharField(max_length=255, blank=True, db_index=True)
    occurred_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField(default=timezone.now)
    applied = models.BooleanField(default=False, help_text="Whether it moved the delivery's status.")
    payload = models.JSONField(default=dict)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["source", "event_key"], name="delivery_event_once")]
        ordering = ["received_at"]

    def __str__(self) -> str:
        return f"{self.source} {self.event} for {self.delivery_id}"
