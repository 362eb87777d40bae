import hashlib
import secrets
import uuid

from django.db import models
from django.utils import timezone

from core.states import Status
from core.vocabulary import NotificationType, Priority


class Notification(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    recipient = models.ForeignKey("preferences.Recipient", on_delete=models.PROTECT, related_name="notifications")
    type = models.CharField(max_length=20, choices=NotificationType.choices)
    priority = models.CharField(max_length=10, choices=Priority.choices)
    template_name = models.CharField("template", max_length=100)
    variables = models.JSONField(default=dict, blank=True)
    requested_channels = models.JSONField(default=list, blank=True)
    idempotency_key = models.CharField(max_length=255, null=True, blank=True, unique=True)
    request_hash = models.CharField(max_length=64, blank=True)
    scheduled_at = models.DateTimeField(null=True, blank=True)
    # When the caller reported that the person did what the notification asked (once).
    converted_at = models.DateTimeField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    api_key = models.ForeignKey("notifications.ApiKey", null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    status_changed_at = models.DateTimeField(default=timezone.now)
    status_history = models.JSONField(default=list, blank=True)
    # While `routing`: the worker process that claimed it (status_changed_at is the claim's time),
    # and how many times in a row it was taken over from a worker that died routing it.
    claimed_by = models.CharField(max_length=120, blank=True, default="", db_default="")
    takeovers = models.PositiveSmallIntegerField(default=0, db_default=0)
    # Channels routing decided not to use, each with a machine-readable reason.
    skipped_channels = models.JSONField(default=list, blank=True)
    # The campaign that created it, if any (campaigns/ sits above this app, so an id, not a key).
    campaign_id = models.UUIDField(null=True, blank=True, editable=False)
    # Items sharing a batch key (and person) are sent as one message (notifications/batching.py);
    # `batch_policy` overrides the category's window for this notification.
    batch_key = models.CharField(max_length=255, blank=True)
    batch_policy = models.JSONField(null=True, blank=True)
    # Set on the messages a batch became: one per part (a batch whose items' variables are too large
    # for one message is split, notifications/batch_closing.py), however often its close is retried.
    batch = models.ForeignKey("notifications.Batch", null=True, blank=True, on_delete=models.PROTECT,
                              related_name="messages")
    batch_part = models.PositiveSmallIntegerField(null=True, blank=True)
    # Why it is sent when it is (a local time, or the hour the person engages most), if the sender asked.
    send_time = models.JSONField(null=True, blank=True)
    # Escalation steps given with the request, instead of its category's (preferences/escalation.py); [] = none.
    escalation = models.JSONField(null=True, blank=True)
    # The schedule and occurrence that created it, if any (schedules/ sits above this app).
    schedule_id = models.UUIDField(null=True, blank=True, editable=False)
    # The W3C trace context of the request that accepted it (core/tracing.py; "" with tracing off):
    # queue messages carry no rows, so routing and sending find the notification's trace here.
    traceparent = models.CharField(max_length=55, blank=True, default="", db_default="")

    class Meta:
        indexes = [
            models.Index(fields=["recipient", "-created_at"], name="notification_recipient_recent"),
            models.Index(fields=["status", "status_changed_at"], name="notification_status_age"),
            # What routing claims, oldest first, per priority (notifications/routing.py CLAIM_CHUNK_SQL).
            models.Index(fields=["priority", "created_at"], name="notification_routable",
                         condition=models.Q(status__in=["pending", "queued"])),
            models.Index(fields=["priority", "scheduled_at"], name="notification_scheduled",
                         condition=models.Q(status="scheduled")),
            models.Index(fields=["claimed_by"], name="notification_routing", condition=models.Q(status="routing")),
        ]
        constraints = [
            models.UniqueConstraint(fields=["batch", "batch_part"], condition=models.Q(batch__isnull=False),
                                    name="one_message_per_batch_part"),
            # A campaign reaches each person once, however often its fan-out is retried.
            models.UniqueConstraint(fields=["campaign_id", "recipient"], condition=models.Q(campaign_id__isnull=False),
                                    name="one_notification_per_campaign_person"),
        ]

    def __str__(self) -> str:
        # No person here: their database id means nothing to ops, and their user id would cost a query.
        return f"{self.type} notification {str(self.pk)[:8]} ({self.status})"


class Outbox(models.Model):
    """A notification that must reach the routing queue.

    Written in the same transaction as the notification; removed once routing has taken it.
    The relay republishes rows whose publish never happened (broker down, process killed).
    """

    notification = models.OneToOneField(Notification, on_delete=models.CASCADE, primary_key=True)
    available_at = models.DateTimeField(db_index=True)
    relay_count = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name_plural = "outbox"

    def __str__(self) -> str:
        return str(self.notification_id)


SCOPES = (
    "notifications:read",
    "notifications:write",
    "users:read",
    "users:write",
    "templates:read",
    "templates:write",
    "analytics:read",
)


def hash_api_key(raw_key: str) -> str:
    # Keys are 192-bit random strings, so a fast hash is enough; there is nothing to brute-force.
    return hashlib.sha256(raw_key.encode()).hexdigest()


class ApiKey(models.Model):
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True, help_text="Shown to identify the key; not secret.")
    key_hash = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    @classmethod
    def issue(cls, name: str, scopes: list[str] | None = None) -> tuple["ApiKey", str]:
        """Create a key and return it with its raw value, which is never stored."""
        prefix = "hk_" + secrets.token_hex(4)
        raw_key = f"{prefix}_{secrets.token_urlsafe(24)}"
        key = cls.objects.create(
            name=name, prefix=prefix, key_hash=hash_api_key(raw_key), scopes=list(scopes or SCOPES)
        )
        return key, raw_key


class Batch(models.Model):
    """Items for one person and key, collected until the window ends (or N arrive), then sent as one.

    One open batch per (person, key) at a time (a partial unique index): an item that arrives
    while a batch closes finds no open one and starts the next. Closing is one transaction that
    locks the batch (FOR UPDATE SKIP LOCKED), creates its message and marks it closed.
    """

    class State(models.TextChoices):
        OPEN = "open"
        FULL = "full"  # reached its item limit: closed by the next sweep, takes no more items
        CLOSED = "closed"
        EMPTY = "empty"  # closed with no item (the first was sent at once and nothing followed)
        DROPPED = "dropped"  # a digest whose person turned its category off before it was due

    recipient = models.ForeignKey("preferences.Recipient", on_delete=models.CASCADE, related_name="batches")
    key = models.CharField(max_length=300)
    type = models.CharField(max_length=20, choices=NotificationType.choices)
    priority = models.CharField(max_length=10, choices=Priority.choices)
    template_name = models.CharField(max_length=100)
    requested_channels = models.JSONField(default=list, blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.OPEN)
    opened_at = models.DateTimeField()
    closes_at = models.DateTimeField()
    # A sliding window moves with each item, but never past this.
    latest_close_at = models.DateTimeField()
    window_seconds = models.PositiveIntegerField()
    sliding = models.BooleanField(default=False)
    max_items = models.PositiveIntegerField(null=True, blank=True)
    count = models.PositiveIntegerField(default=0)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["recipient", "key"], condition=models.Q(state="open"), name="one_open_batch_per_key"),
        ]
        indexes = [models.Index(fields=["closes_at"], condition=models.Q(state__in=["open", "full"]), name="batch_to_close")]
        verbose_name_plural = "batches"

    def __str__(self) -> str:
        return f"{self.key} ({self.state}, {self.count})"


class BatchItem(models.Model):
    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="items")
    notification = models.OneToOneField(Notification, on_delete=models.CASCADE, related_name="batch_item")
    position = models.PositiveIntegerField()
    added_at = models.DateTimeField()
    # Which of the batch's messages it went out in (1 unless the batch was split when it closed).
    part = models.PositiveSmallIntegerField(default=1, db_default=1)

    class Meta:
        ordering = ["batch", "added_at", "position"]


class WorkflowStep(models.Model):
    """One step of a notification's workflow: its first send, a fallback, or an escalation.

    Escalation steps wait in order: the next one is `waiting` (due at `due_at`), the ones after
    it `planned`. A sweep fires due steps (notifications/escalation.py); a read or delivery that
    makes a step's condition false cancels it in the same transaction that records it.
    """

    class Kind(models.TextChoices):
        SEND = "send"  # the channels routing chose
        FALLBACK = "fallback"  # a channel could not reach the person, so the next one was tried
        ESCALATION = "escalation"

    class State(models.TextChoices):
        PLANNED = "planned"  # waits for the step before it
        WAITING = "waiting"  # fires at due_at if its condition still holds
        DONE = "done"  # its deliveries were created
        SKIPPED = "skipped"  # it fired, but none of its channels could be used (see detail)
        CANCELED = "canceled"  # its condition stopped holding, or the notification was stopped

    notification = models.ForeignKey(Notification, on_delete=models.CASCADE, related_name="workflow_steps")
    position = models.PositiveSmallIntegerField()
    kind = models.CharField(max_length=12, choices=Kind.choices)
    channels = models.JSONField(default=list)
    condition = models.CharField(max_length=20, blank=True)
    wait_seconds = models.PositiveIntegerField(default=0)
    state = models.CharField(max_length=10, choices=State.choices)
    due_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    reason = models.CharField(max_length=100, blank=True)
    # The channels it skipped, with reasons.
    detail = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["notification", "position"]
        constraints = [models.UniqueConstraint(fields=["notification", "position"], name="one_workflow_step_per_position")]
        indexes = [models.Index(fields=["due_at"], condition=models.Q(state="waiting"), name="workflow_step_due")]

    def __str__(self) -> str:
        return f"step {self.position} of {self.notification_id} ({self.state})"
