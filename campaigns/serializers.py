from django.conf import settings
from rest_framework import serializers

from campaigns.fanout import AUDIENCE_FILTERS, audience_of
from campaigns.models import TOPIC_KEY, Campaign
from core.serializers import StrictSerializer
from notifications.serializers import MessageRequest


def user_id_field() -> serializers.CharField:
    return serializers.CharField(max_length=255)


class AudienceRequest(StrictSerializer):
    user_ids = serializers.ListField(child=user_id_field(), required=False, allow_empty=False,
                                     help_text=f"Up to {settings.HERALD_CAMPAIGN_MAX_USER_IDS}; repeats are sent once.")
    topic = serializers.CharField(max_length=100, required=False, validators=[TOPIC_KEY])
    filter = serializers.DictField(required=False, help_text=f"Recipient attributes: {', '.join(AUDIENCE_FILTERS)}; "
                                   "at least one (a broadcast says `everyone`).")
    everyone = serializers.BooleanField(required=False, help_text="true: every active person Herald knows.")

    def validate_filter(self, value):
        if not value:
            raise serializers.ValidationError("An empty filter would match every person; give at least one attribute, "
                                              'or "everyone": true to send to everyone.')
        for key, item in value.items():
            kind = AUDIENCE_FILTERS.get(key)
            if kind is None:
                raise serializers.ValidationError({key: f"Unknown filter; expected one of: {', '.join(AUDIENCE_FILTERS)}."})
            if not isinstance(item, kind) or (kind is int and isinstance(item, bool)):
                raise serializers.ValidationError({key: f"Must be a {kind.__name__}."})
        return value

    def validate_everyone(self, value):
        if value is not True:
            raise serializers.ValidationError('Only true: to send to a part of the people, give user_ids, a topic or a filter.')
        return value

    def validate(self, attrs):
        attrs = super().validate(attrs)
        given = [name for name in ("user_ids", "topic", "filter", "everyone") if name in attrs]
        if len(given) != 1:
            raise serializers.ValidationError("Give exactly one of user_ids, topic, filter or everyone.")
        if "user_ids" in attrs:
            attrs["user_ids"] = list(dict.fromkeys(attrs["user_ids"]))
        return attrs


class CampaignRequest(MessageRequest):
    name = serializers.CharField(max_length=200, required=False, default="")
    audience = AudienceRequest()


class CampaignView(serializers.ModelSerializer):
    template = serializers.CharField(source="template_name")
    status = serializers.SerializerMethodField(help_text="fanning_out, sending, completed or canceled.")
    audience = serializers.SerializerMethodField()
    notifications = serializers.SerializerMethodField(help_text="The campaign's notifications by where they stand.")

    class Meta:
        model = Campaign
        fields = ["id", "name", "type", "priority", "template", "status", "audience", "created_at", "fanned_out_at",
                  "canceled_at", "targeted", "accepted", "skipped", "send_at", "notifications"]

    def get_audience(self, campaign) -> dict:
        """The topic or filter; for user ids, how many (the list itself can be 100,000 long)."""
        kind, value = audience_of(campaign)
        return {"user_ids": campaign.targeted} if kind == "user_ids" else {kind: value}

    def get_notifications(self, campaign) -> dict:
        return self.context["progress"]

    def get_status(self, campaign) -> str:
        if campaign.status != Campaign.Status.FANNED_OUT:
            return campaign.status
        progress = self.context["progress"]
        return "sending" if progress["waiting"] or progress["sending"] else "completed"


class TopicRequest(StrictSerializer):
    name = serializers.CharField(max_length=200, required=False, default="")


class SubscribersRequest(StrictSerializer):
    user_ids = serializers.ListField(child=user_id_field(), allow_empty=False,
                                     help_text=f"Up to {settings.HERALD_TOPIC_BULK_MAX_USER_IDS} per request.")
