from django.conf import settings
from rest_framework import serializers

from core.serializers import StrictSerializer, choice
from inbox.items import GROUP_BY, STATES


class ItemView(serializers.Serializer):
    """Documents the item shape; items are rendered by inbox.items.item_data."""

    id = serializers.IntegerField()
    title = serializers.CharField()
    body = serializers.CharField()
    icon = serializers.URLField(allow_null=True)
    image = serializers.URLField(allow_null=True)
    action_url = serializers.CharField(allow_null=True)
    category = serializers.CharField()
    group_key = serializers.CharField(allow_null=True)
    notification_id = serializers.UUIDField(allow_null=True)
    created_at = serializers.DateTimeField()
    seen_at = serializers.DateTimeField(allow_null=True)
    read_at = serializers.DateTimeField(allow_null=True)
    archived_at = serializers.DateTimeField(allow_null=True)
    version = serializers.IntegerField(help_text="The inbox version at this item's last change.")


class ItemListQuery(StrictSerializer):
    state = choice([(s, s) for s in STATES], "state", required=False, default="inbox")
    category = serializers.CharField(required=False, max_length=50)
    group_key = serializers.CharField(required=False, max_length=255)
    cursor = serializers.CharField(required=False)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=100)


class GroupListQuery(StrictSerializer):
    by = choice([(b, b) for b in GROUP_BY], "grouping", required=False, default="group_key")
    state = choice([(s, s) for s in STATES], "state", required=False, default="inbox")
    category = serializers.CharField(required=False, max_length=50)
    cursor = serializers.CharField(required=False)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=100)


class GroupView(serializers.Serializer):
    key = serializers.CharField(help_text='The group key, the category, or "item:<id>" for an ungrouped item.')
    count = serializers.IntegerField()
    unread_count = serializers.IntegerField()
    latest = ItemView()


class MarkAllReadRequest(StrictSerializer):
    category = serializers.CharField(required=False, max_length=50)


class MarkAllResult(serializers.Serializer):
    updated = serializers.IntegerField()
    unread_count = serializers.IntegerField()
    version = serializers.IntegerField()


class Counts(serializers.Serializer):
    unread_count = serializers.IntegerField()
    unseen_count = serializers.IntegerField()
    version = serializers.IntegerField()


class InboxTokenRequest(StrictSerializer):
    ttl_seconds = serializers.IntegerField(required=False, min_value=10)

    def validate_ttl_seconds(self, value):
        if value > settings.HERALD_INBOX_TOKEN_MAX_TTL_SECONDS:
            raise serializers.ValidationError(f"Must be at most {settings.HERALD_INBOX_TOKEN_MAX_TTL_SECONDS}.", code="max_value")
        return value


class InboxTokenView(serializers.Serializer):
    token = serializers.CharField()
    user_id = serializers.CharField()
    expires_at = serializers.DateTimeField()
    websocket_url = serializers.CharField()
