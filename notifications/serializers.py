from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.serializers import StrictSerializer, choice
from core.states import Status
from core.vocabulary import Channel, NotificationType, Priority
from delivery.models import Delivery
from notifications import batching, send_time
from notifications.models import Notification, WorkflowStep
from notifications.routing import TEST_VERSION_KEY
from preferences import escalation as escalation_steps


class MessageRequest(StrictSerializer):
    """What a message says and how it goes out, for one person (a notification) or many (a campaign)."""

    type = choice(NotificationType.choices, "type")
    template = serializers.SlugField(max_length=100)
    variables = serializers.DictField(required=False, default=dict)
    channels = serializers.ListField(child=choice(Channel.choices, "channel"), required=False, allow_empty=False)
    priority = choice(Priority.choices, "priority", required=False)
    metadata = serializers.DictField(required=False, default=dict)
    send_at = serializers.CharField(required=False, max_length=10, help_text=(
        '"HH:MM": the next such moment in the recipient\'s timezone; "optimal": the start of the local hour in which '
        'the person opened or clicked most in the last 90 days, within send_window_hours, else the category\'s '
        'default hour. The reason is shown as `send_time`. Quiet hours still apply.'))
    send_window_hours = serializers.IntegerField(required=False, min_value=1, max_value=24,
                                                 help_text='For send_at "optimal": how far ahead it may wait (default 24).')

    def validate_send_at(self, value):
        problem = send_time.problem(value)
        if problem:
            raise serializers.ValidationError(problem)
        return value

    def validate(self, attrs):
        attrs = super().validate(attrs)
        if attrs.get("send_window_hours") is not None and attrs.get("send_at") != send_time.OPTIMAL:
            raise serializers.ValidationError({"send_window_hours": 'Only with send_at "optimal".'})
        return attrs

    def validate_channels(self, value):
        if len(set(value)) != len(value):
            raise serializers.ValidationError("Each channel may appear only once.")
        return value

    def validate_metadata(self, value):
        """Metadata is the caller's, but the keys Herald reads must have the type providers need."""
        expected = {"collapse_key": str, "ttl_seconds": int, "action_url": str, "icon": str, "image": str, "group_key": str}
        for key, kind in expected.items():
            if key in value and (not isinstance(value[key], kind) or isinstance(value[key], bool)):
                raise serializers.ValidationError({key: f"Must be a {kind.__name__}."})
        if len(value.get("collapse_key", "")) > 64:
            raise serializers.ValidationError({"collapse_key": "At most 64 characters (an APNs limit)."})
        if value.get("ttl_seconds", 0) < 0:
            raise serializers.ValidationError({"ttl_seconds": "Must not be negative."})
        if TEST_VERSION_KEY in value:
            raise serializers.ValidationError({TEST_VERSION_KEY: "Reserved for admin's \"send a test\"."})
        return value


class BatchRequest(StrictSerializer):
    """This notification's batching, instead of its category's (notifications/batching.py)."""

    window_seconds = serializers.IntegerField(min_value=1, max_value=7 * 24 * 3600)
    max_window_seconds = serializers.IntegerField(min_value=1, max_value=7 * 24 * 3600, required=False)
    max_items = serializers.IntegerField(min_value=1, max_value=100_000, required=False)
    first_at_once = serializers.BooleanField(required=False, default=False)

    def validate(self, attrs):
        if attrs.get("max_window_seconds") is not None and attrs["max_window_seconds"] < attrs["window_seconds"]:
            raise serializers.ValidationError({"max_window_seconds": "Must be at least window_seconds."})
        return attrs


class NotificationRequest(MessageRequest):
    user_id = serializers.CharField(max_length=255)
    batch_key = serializers.CharField(max_length=255, required=False, allow_blank=True,
                                      help_text="Notifications to the same person with the same template and batch key "
                                                "within the batch window go out as one message (e.g. a post id).")
    batch = BatchRequest(required=False)
    scheduled_at = serializers.DateTimeField(required=False, allow_null=True)
    idempotency_key = serializers.CharField(max_length=255, required=False)
    escalation = serializers.JSONField(required=False, help_text=(
        'Steps after the first send, instead of the category\'s: [{"channels": ["sms"], "wait_seconds": 300, '
        '"if": "not_read"}, ...]; each waits after the one before (at most 7 days) and is canceled once its condition '
        '(not_read, not_opened, not_delivered) stops holding. [] = none.'))

    def validate_escalation(self, value):
        problems = escalation_steps.problems(value)
        if problems:
            field, message = problems[0]
            raise serializers.ValidationError({field: message} if field else message)
        return value

    def validate(self, attrs):
        attrs = super().validate(attrs)
        if attrs.get("send_at") and attrs.get("scheduled_at"):
            raise serializers.ValidationError({"send_at": "Give scheduled_at or send_at, not both."})
        return attrs

    def validate_scheduled_at(self, value):
        if value is not None and value <= timezone.now():
            raise serializers.ValidationError("Must be in the future.", code="in_the_past")
        return value


class AcceptedNotification(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.ChoiceField(Status.choices)
    created_at = serializers.DateTimeField()
    scheduled_at = serializers.DateTimeField(allow_null=True)


class DeliveryView(serializers.ModelSerializer):
    queued_at = serializers.DateTimeField(source="created_at")
    next_attempt_at = serializers.SerializerMethodField()
    last_error = serializers.SerializerMethodField()

    class Meta:
        model = Delivery
        fields = [
            "id", "channel", "status", "provider", "provider_message_id", "attempts",
            "queued_at", "sent_at", "delivered_at", "read_at", "failed_at", "next_attempt_at", "last_error",
            "template_version", "template_locale", "locale_fallback", "experiment_arm", "clicked_at", "escalation_step",
        ]

    def get_next_attempt_at(self, delivery) -> str | None:
        if delivery.status == Status.QUEUED and delivery.attempts:
            return serializers.DateTimeField().to_representation(delivery.available_at)
        return None

    def get_last_error(self, delivery) -> dict | None:
        if not delivery.error_code:
            return None
        return {"code": delivery.error_code, "message": delivery.error_message}


class WorkflowStepView(serializers.ModelSerializer):
    condition = serializers.CharField(help_text="not_read, not_opened, not_delivered; cannot_reach for a fallback.")

    class Meta:
        model = WorkflowStep
        fields = ["position", "kind", "channels", "condition", "wait_seconds", "state", "due_at", "finished_at", "reason", "detail"]


class NotificationView(serializers.ModelSerializer):
    user_id = serializers.CharField(source="recipient.external_id")
    template = serializers.CharField(source="template_name")
    channels = serializers.JSONField(source="requested_channels")
    deliveries = DeliveryView(many=True)
    batch = serializers.SerializerMethodField()
    send_time = serializers.JSONField(allow_null=True, help_text=(
        "Why it is sent at scheduled_at, when the sender asked for send_at: the local time and timezone, or for "
        '"optimal" the hour chosen and its basis (engagement, with the count, or the category default).'))
    workflow = serializers.SerializerMethodField()
    schedule_id = serializers.UUIDField(allow_null=True, read_only=True)

    class Meta:
        model = Notification
        fields = [
            "id", "user_id", "type", "priority", "template", "channels", "status", "created_at",
            "scheduled_at", "send_time", "converted_at", "metadata", "status_history", "skipped_channels", "deliveries",
            "batch", "workflow", "schedule_id",
        ]

    @extend_schema_field(WorkflowStepView(many=True, allow_null=True))
    def get_workflow(self, notification) -> list | None:
        """Its first send, fallbacks and escalation steps: done, waiting (due_at), planned, skipped or canceled (reason)."""
        steps = list(notification.workflow_steps.all())
        return WorkflowStepView(steps, many=True).data if steps else None

    @extend_schema_field(serializers.DictField(allow_null=True))
    def get_batch(self, notification) -> dict | None:
        """An item: its batch, why it waits and the message it went out in; a batch's message: its item count."""
        return batching.describe(notification)


class NotificationSummary(serializers.ModelSerializer):
    template = serializers.CharField(source="template_name")

    class Meta:
        model = Notification
        fields = ["id", "type", "priority", "template", "status", "created_at", "scheduled_at"]
