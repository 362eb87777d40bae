from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.serializers import StrictSerializer, choice
from core.states import Status
from core.vocabulary import Channel, NotificationType, Priority
from delivery.models import Delivery
from notifications import batching
from notifications.models import Notification
from notifications.routing import TEST_VERSION_KEY


class MessageRequest(StrictSerializer):
    """What a message says and how it goes out, for one person (a notification) or many (a campaign)."""

    type = choice(NotificationType.choices, "type")
    template = serializers.SlugField(max_length=100)
    variables = serializers.DictField(required=False, default=dict)
    channels = serializers.ListField(child=choice(Channel.choices, "channel"), required=False, allow_empty=False)
    priority = choice(Priority.choices, "priority", required=False)
    metadata = serializers.DictField(required=False, default=dict)

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
            "template_version", "template_locale", "locale_fallback", "experiment_arm", "clicked_at",
        ]

    def get_next_attempt_at(self, delivery) -> str | None:
        if delivery.status == Status.QUEUED and delivery.attempts:
            return serializers.DateTimeField().to_representation(delivery.available_at)
        return None

    def get_last_error(self, delivery) -> dict | None:
        if not delivery.error_code:
            return None
        return {"code": delivery.error_code, "message": delivery.error_message}


class NotificationView(serializers.ModelSerializer):
    user_id = serializers.CharField(source="recipient.external_id")
    template = serializers.CharField(source="template_name")
    channels = serializers.JSONField(source="requested_channels")
    deliveries = DeliveryView(many=True)
    batch = serializers.SerializerMethodField()

    class Meta:
        model = Notification
        fields = [
            "id", "user_id", "type", "priority", "template", "channels", "status", "created_at",
            "scheduled_at", "converted_at", "metadata", "status_history", "skipped_channels", "deliveries", "batch",
        ]

    @extend_schema_field(serializers.DictField(allow_null=True))
    def get_batch(self, notification) -> dict | None:
        """An item: its batch, why it waits and the message it went out in; a batch's message: its item count."""
        return batching.describe(notification)


class NotificationSummary(serializers.ModelSerializer):
    template = serializers.CharField(source="template_name")

    class Meta:
        model = Notification
        fields = ["id", "type", "priority", "template", "status", "created_at", "scheduled_at"]
