"""Campaigns (one message for many people) and topics (lists people subscribe to)."""

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework import status as http
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from campaigns import fanout
from campaigns.models import TOPIC_KEY, Campaign, Topic, TopicSubscription
from campaigns.serializers import CampaignRequest, CampaignView, SubscribersRequest, TopicRequest
from core.errors import ApiError
from core.openapi import error
from core.states import Status
from notifications.models import Notification
from preferences.models import Recipient

PROGRESS_GROUPS = {
    "waiting": (Status.PENDING, Status.SCHEDULED, Status.QUEUED, Status.ROUTING),
    "sending": (Status.SENDING,),
    "sent": (Status.SENT, Status.DELIVERED, Status.READ),
    "failed": (Status.FAILED,),
    "canceled": (Status.CANCELED,),
    "deduplicated": (Status.DEDUPLICATED,),  # a repeat of a message the person got within the dedup window
}


def progress_of(campaign: Campaign) -> dict[str, int]:
    counts = dict(Notification.objects.filter(campaign_id=campaign.pk).values_list("status").annotate(n=Count("id")))
    return {group: sum(counts.get(s, 0) for s in statuses) for group, statuses in PROGRESS_GROUPS.items()}


def campaign_response(campaign: Campaign, status: int = 200, **kwargs) -> Response:
    return Response(CampaignView(campaign, context={"progress": progress_of(campaign)}).data, status=status, **kwargs)


def too_many(request, field: str, limit: int) -> None:
    """413 naming the limit, before the body is validated item by item."""
    data = request.data
    for part in field.split("."):
        data = data.get(part) if isinstance(data, dict) else None
    if isinstance(data, list) and len(data) > limit:
        raise ApiError(413, "too_many_items", f"At most {limit} user ids per request.", field)


class CampaignCreate(APIView):
    required_scopes = {"POST": "notifications:write"}

    @extend_schema(request=CampaignRequest, responses={
        202: OpenApiResponse(CampaignView, "Accepted; the fan-out runs in the background."),
        400: error("Invalid field, unknown template or topic, or variables the template does not accept."),
        413: error(f"More than {settings.HERALD_CAMPAIGN_MAX_USER_IDS} user ids."),
    })
    def post(self, request):
        """Send one template to an audience: up to 100,000 user ids, a topic, or the users matching a filter."""
        too_many(request, "audience.user_ids", settings.HERALD_CAMPAIGN_MAX_USER_IDS)
        serializer = CampaignRequest(data=request.data)
        serializer.is_valid(raise_exception=True)
        campaign = fanout.create(serializer.validated_data, request.auth)
        return campaign_response(campaign, http.HTTP_202_ACCEPTED, headers={"Location": f"/api/v1/campaigns/{campaign.pk}"})


class CampaignDetail(APIView):
    required_scopes = {"GET": "notifications:read"}

    @extend_schema(responses={200: CampaignView, 404: error("No such campaign.")})
    def get(self, request, campaign_id):
        """A campaign's progress: targeted, accepted, skipped by reason, and its notifications by status."""
        return campaign_response(get_object_or_404(Campaign.objects.defer("audience"), pk=campaign_id))


class CampaignCancel(APIView):
    required_scopes = {"POST": "notifications:write"}

    @extend_schema(request=None, responses={200: CampaignView, 409: error("Already canceled.")})
    def post(self, request, campaign_id):
        """Stop the fan-out and everything not yet sent; a message already with its provider goes on."""
        campaign = get_object_or_404(Campaign.objects.defer("audience"), pk=campaign_id)
        if not fanout.cancel(campaign.pk):
            raise ApiError(409, "already_canceled", "This campaign was already canceled.")
        campaign.refresh_from_db()
        return campaign_response(campaign)


TOPIC_VIEW = inline_serializer("Topic", {
    "key": serializers.CharField(), "name": serializers.CharField(), "subscribers": serializers.IntegerField(),
    "created_at": serializers.DateTimeField(),
})


def topic_or_404(key: str) -> Topic:
    return get_object_or_404(Topic, key=key)


def topic_response(topic: Topic, status: int = 200) -> Response:
    return Response({"key": topic.key, "name": topic.name, "subscribers": topic.subscriptions.count(),
                     "created_at": serializers.DateTimeField().to_representation(topic.created_at)}, status=status)


class TopicDetail(APIView):
    required_scopes = {"GET": "users:read", "PUT": "users:write", "DELETE": "users:write"}

    @extend_schema(responses={200: TOPIC_VIEW, 404: error("No such topic.")})
    def get(self, request, key):
        """A topic and how many people follow it."""
        return topic_response(topic_or_404(key))

    @extend_schema(request=TopicRequest, responses={200: OpenApiResponse(TOPIC_VIEW, "Updated."), 201: OpenApiResponse(TOPIC_VIEW, "Created.")})
    def put(self, request, key):
        """Create a topic, or rename it."""
        try:
            TOPIC_KEY(key)
        except Exception:
            raise ApiError(400, "invalid", TOPIC_KEY.message, "key") from None
        serializer = TopicRequest(data=request.data)
        serializer.is_valid(raise_exception=True)
        topic, created = Topic.objects.update_or_create(key=key, defaults={"name": serializer.validated_data["name"]})
        return topic_response(topic, http.HTTP_201_CREATED if created else http.HTTP_200_OK)

    @extend_schema(responses={204: None, 404: error("No such topic.")})
    def delete(self, request, key):
        """Delete a topic and its subscriptions."""
        topic_or_404(key).delete()
        return Response(status=http.HTTP_204_NO_CONTENT)


class SubscriberPage(CursorPagination):
    ordering = "id"
    page_size = 100
    page_size_query_param = "limit"
    max_page_size = 1000


SUBSCRIBED = inline_serializer("Subscribed", {
    "subscribed": serializers.IntegerField(help_text="New subscriptions."),
    "already": serializers.IntegerField(help_text="Already subscribed."),
    "unknown_user_ids": serializers.ListField(child=serializers.CharField()),
})


class TopicSubscribers(APIView):
    required_scopes = {"GET": "users:read", "POST": "users:write", "DELETE": "users:write"}

    @extend_schema(responses=inline_serializer("SubscriberList", {
        "results": serializers.ListField(child=inline_serializer("Subscriber", {
            "user_id": serializers.CharField(), "subscribed_at": serializers.DateTimeField()})),
        "next": serializers.URLField(allow_null=True), "previous": serializers.URLField(allow_null=True),
    }), parameters=[OpenApiParameter("cursor", str), OpenApiParameter("limit", int)])
    def get(self, request, key):
        """The topic's subscribers, oldest subscription first, a page at a time."""
        paginator = SubscriberPage()
        rows = TopicSubscription.objects.filter(topic=topic_or_404(key)).select_related("recipient")
        page = paginator.paginate_queryset(rows, request, view=self)
        results = [{"user_id": row.recipient.external_id,
                    "subscribed_at": serializers.DateTimeField().to_representation(row.created_at)} for row in page]
        return Response({"results": results, "next": paginator.get_next_link(), "previous": paginator.get_previous_link()})

    @extend_schema(request=SubscribersRequest, responses={200: SUBSCRIBED, 413: error("Too many user ids.")})
    def post(self, request, key):
        """Subscribe users (up to 10,000 per request); unknown user ids are listed, not an error."""
        topic = topic_or_404(key)
        user_ids = self.user_ids(request)
        found = dict(Recipient.objects.filter(external_id__in=user_ids).values_list("external_id", "id"))
        already = set(TopicSubscription.objects.filter(topic=topic, recipient_id__in=found.values()).values_list("recipient_id", flat=True))
        TopicSubscription.objects.bulk_create(
            [TopicSubscription(topic=topic, recipient_id=pk) for pk in found.values() if pk not in already], ignore_conflicts=True)
        return Response({"subscribed": len(found) - len(already), "already": len(already),
                         "unknown_user_ids": [u for u in user_ids if u not in found]})

    @extend_schema(operation_id="v1_topics_subscribers_bulk_destroy", request=SubscribersRequest, responses={200: inline_serializer("Unsubscribed", {
        "unsubscribed": serializers.IntegerField()}), 413: error("Too many user ids.")})
    def delete(self, request, key):
        """Unsubscribe users (up to 10,000 per request)."""
        topic = topic_or_404(key)
        removed, _ = TopicSubscription.objects.filter(topic=topic, recipient__external_id__in=self.user_ids(request)).delete()
        return Response({"unsubscribed": removed})

    def user_ids(self, request) -> list[str]:
        too_many(request, "user_ids", settings.HERALD_TOPIC_BULK_MAX_USER_IDS)
        serializer = SubscribersRequest(data=request.data)
        serializer.is_valid(raise_exception=True)
        return list(dict.fromkeys(serializer.validated_data["user_ids"]))


class TopicSubscriber(APIView):
    required_scopes = {"PUT": "users:write", "DELETE": "users:write"}

    @extend_schema(request=None, responses={201: None, 204: None, 404: error("No such topic or user.")})
    def put(self, request, key, user_id):
        """Subscribe one user: 201 when new, 204 when already subscribed."""
        topic = topic_or_404(key)
        recipient = get_object_or_404(Recipient, external_id=user_id)
        try:
            with transaction.atomic():
                TopicSubscription.objects.create(topic=topic, recipient=recipient)
        except IntegrityError:
            return Response(status=http.HTTP_204_NO_CONTENT)
        return Response(status=http.HTTP_201_CREATED)

    @extend_schema(responses={204: None, 404: error("No such topic, or the user does not follow it.")})
    def delete(self, request, key, user_id):
        """Unsubscribe one user."""
        removed, _ = TopicSubscription.objects.filter(topic=topic_or_404(key), recipient__external_id=user_id).delete()
        if not removed:
            raise ApiError(404, "not_subscribed", f"{user_id!r} does not follow {key!r}.", "user_id")
        return Response(status=http.HTTP_204_NO_CONTENT)
