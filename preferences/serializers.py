from django.conf import settings
from rest_framework import serializers

from core import network
from core.serializers import StrictSerializer, choice
from core.vocabulary import Channel, NotificationType
from preferences import digests
from preferences.models import E164, LOCALE, Device, Recipient, validate_timezone


def iana_timezone(value: str) -> None:
    try:
        validate_timezone(value)
    except Exception as exc:
        raise serializers.ValidationError(f"{value!r} is not an IANA timezone such as Europe/Berlin.") from exc

def public_webhook_url(value: str) -> None:
    if not value or settings.HERALD_WEBHOOK_ALLOW_PRIVATE:
        return
    try:
        network.refuse_private_url(value)
    except network.UnsafeDestination as exc:
        raise serializers.ValidationError(f"Webhook URLs must point to a public address: {exc}") from None


class RecipientRequest(StrictSerializer):
    email = serializers.EmailField(required=False, allow_blank=True, max_length=254)
    phone = serializers.CharField(required=False, allow_blank=True, validators=[E164])
    locale = serializers.CharField(required=False, max_length=35, validators=[LOCALE])
    timezone = serializers.CharField(required=False, max_length=64, validators=[iana_timezone])
    active = serializers.BooleanField(required=False)
    webhook_url = serializers.URLField(required=False, allow_blank=True, max_length=2000, validators=[public_webhook_url])


class DeviceView(serializers.ModelSerializer):
    active = serializers.BooleanField(source="is_active")

    class Meta:
        model = Device
        fields = ["platform", "token", "active", "invalidated_reason", "created_at", "registered_at"]


class RecipientView(serializers.ModelSerializer):
    user_id = serializers.CharField(source="external_id")
    active = serializers.BooleanField(source="is_active")
    devices = DeviceView(many=True)

    class Meta:
        model = Recipient
        fields = ["user_id", "email", "phone", "locale", "timezone", "active", "webhook_url", "devices", "created_at", "updated_at"]


class DeviceRequest(StrictSerializer):
    platform = choice(Device.Platform.choices, "platform")
    token = serializers.CharField(max_length=1024)


class Strict(serializers.Serializer):
    """Names unknown fields at any nesting depth (StrictSerializer checks only the top level)."""

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError(
                {"non_field_errors": [serializers.ErrorDetail("Must be a JSON object.", code="invalid")]}
            )
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError({unknown[0]: [serializers.ErrorDetail("Unknown field.", code="unknown_field")]})
        return super().to_internal_value(data)


def unknown_name(kind: str, value: str, allowed: list[str]) -> serializers.ErrorDetail:
    return serializers.ErrorDetail(f'Unknown {kind} "{value}"; expected one of: {", ".join(allowed)}.', code="invalid_choice")


HHMM = {"format": "%H:%M", "input_formats": ["%H:%M", "%H:%M:%S"]}


class QuietHoursRequest(Strict):
    enabled = serializers.BooleanField(required=False)
    start = serializers.TimeField(required=False, allow_null=True, **HHMM)
    end = serializers.TimeField(required=False, allow_null=True, **HHMM)
    timezone = serializers.CharField(required=False, max_length=64, validators=[iana_timezone])


class DigestField(serializers.JSONField):
    """A digest schedule (preferences/digests.py), `{"frequency": "off"}`, or null for the category default."""

    def to_internal_value(self, data):
        data = super().to_internal_value(data)
        if data is not None:
            for field, message in digests.problems(data)[:1]:
                raise serializers.ValidationError({field: [message]} if field else [message])
        return data


class CategoryChoiceRequest(Strict):
    enabled = serializers.BooleanField(required=False, allow_null=True, help_text="null: the category default.")
    digest = DigestField(required=False, allow_null=True, help_text=(
        'Collect this category into a digest instead of sending each: {"frequency": "daily" | "weekly" | "monthly", '
        '"time": "HH:MM" (local), "weekday": "monday"… (weekly), "day": 1–31 (monthly)}; {"frequency": "off"} sends '
        'each at once; null: the category default.'))
    channels = serializers.ListField(
        child=serializers.CharField(), required=False, allow_null=True, help_text="null: the category's default channels."
    )

    def validate_channels(self, value):
        if value is None:
            return value
        for channel in value:
            if channel not in Channel.values:
                raise serializers.ValidationError(unknown_name("channel", channel, Channel.values))
        if len(set(value)) != len(value):
            raise serializers.ValidationError("Each channel may appear only once.")
        return value


class PreferencesRequest(Strict):
    version = serializers.IntegerField(required=False, min_value=0, help_text="Alternative to the If-Match header.")
    enabled = serializers.BooleanField(required=False, help_text="Off turns off every category that is not required.")
    channels = serializers.DictField(child=serializers.BooleanField(), required=False)
    categories = serializers.DictField(child=CategoryChoiceRequest(), required=False)
    quiet_hours = QuietHoursRequest(required=False)

    def validate_channels(self, value):
        for channel in value:
            if channel not in Channel.values:
                raise serializers.ValidationError({channel: [unknown_name("channel", channel, Channel.values)]})
        return value

    def validate_categories(self, value):
        for category in value:
            if category not in NotificationType.values:
                raise serializers.ValidationError({category: [unknown_name("category", category, NotificationType.values)]})
        return value


class CategoryView(serializers.Serializer):
    enabled = serializers.BooleanField()
    channels = serializers.ListField(child=serializers.CharField())
    required = serializers.BooleanField()
    opt_in = serializers.BooleanField()
    unsubscribed_at = serializers.DateTimeField(allow_null=True)
    digest = serializers.JSONField(allow_null=True)
    respects_quiet_hours = serializers.BooleanField()
    frequency_caps = serializers.DictField(child=serializers.IntegerField(allow_null=True))


class QuietHoursView(serializers.Serializer):
    enabled = serializers.BooleanField()
    start = serializers.CharField(allow_null=True)
    end = serializers.CharField(allow_null=True)
    timezone = serializers.CharField()


class PreferencesView(serializers.Serializer):
    """Schema of the effective preferences document (built by preferences.editing)."""

    user_id = serializers.CharField()
    version = serializers.IntegerField()
    enabled = serializers.BooleanField()
    channels = serializers.DictField(child=serializers.BooleanField())
    categories = serializers.DictField(child=CategoryView())
    quiet_hours = QuietHoursView()
