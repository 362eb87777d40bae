import json

from django.conf import settings
from django.db.models import Prefetch
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework import status as http
from rest_framework.fields import DateTimeField
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import ApiError, error_body, validation_error_body
from core.openapi import error
from core.parsers import ItemwiseJSONParser, refusal
from core.serializers import StrictSerializer, choice
from core.states import Status
from core.vocabulary import Channel
from delivery import receipts
from delivery.models import Delivery
from experiments import assignment as experiment_arms
from notifications import routing
from notifications.accept import accept_many, accept_notification
from notifications.lifecycle import count_conversion
from notifications.models import Notification
from notifications.serializers import AcceptedNotification, NotificationRequest, NotificationSummary, NotificationView
from preferences.models import Recipient


class NotificationCreate(APIView):
    required_scopes = {"POST": "notifications:write"}

    @extend_schema(
        request=NotificationRequest,
        examples=[
            OpenApiExample(
                "A welcome message", request_only=True,
                value={"user_id": "ada", "type": "transaction", "template": "welcome", "variables": {"name": "Ada"}},
            ),
        ],
        responses={
            202: OpenApiResponse(AcceptedNotification, "Accepted (or, for a repeated idempotency key, the original)."),
            404: error("No such user."),
            409: error("A request with the same idempotency key is still in flight; retry."),
            422: error("The user is deactivated, or the idempotency key was used with another body."),
        },
        parameters=[
            OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=False),
            OpenApiParameter(
                "Location", str, OpenApiParameter.HEADER, response=[202], required=True, description="The notification's URL.",
            ),
            OpenApiParameter(
                "Idempotent-Replayed", str, OpenApiParameter.HEADER, response=[202], enum=["true"],
                description="Present when the answer is the original notification of a repeated idempotency key.",
            ),
        ],
    )
    def post(self, request):
        """Accept a notification for delivery. Answers 202 after validation; delivery happens in the background."""
        payload = request.data
        serializer = NotificationRequest(data=payload)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        key = idempotency_key(request, data)
        accepted = accept_notification(data, raw_payload=payload, api_key=request.auth, idempotency_key=key)
        n = accepted.notification
        # The AcceptedNotification shape, written out: a serializer here costs more than the insert.
        body = {"id": str(n.pk), "status": n.status, "created_at": drf_datetime(n.created_at),
                "scheduled_at": drf_datetime(n.scheduled_at) if n.scheduled_at else None}
        headers = {"Location": f"/api/v1/notifications/{n.pk}"}
        if accepted.replayed:
            headers["Idempotent-Replayed"] = "true"
        return Response(body, status=http.HTTP_202_ACCEPTED, headers=headers)


drf_datetime = DateTimeField().to_representation


BATCH_ITEM = inline_serializer("BatchItemResult", {
    "index": serializers.IntegerField(help_text="The item's position in `notifications`."),
    "id": serializers.UUIDField(required=False, help_text="The notification, when accepted."),
    "status": serializers.CharField(required=False),
    "replayed": serializers.BooleanField(required=False, help_text="True when an idempotency key named an earlier notification."),
    "error": serializers.DictField(required=False, help_text="Why the item was refused: code, message, field."),
})


@extend_schema_field(serializers.DictField())
class UncheckedItem(serializers.Field):
    """One element of a batch, as ItemwiseJSONParser left it: the view judges it on its own."""

    def to_internal_value(self, data):
        return data

    def to_representation(self, value):
        return value


class NotificationBatchRequest(StrictSerializer):
    notifications = serializers.ListField(child=UncheckedItem(), allow_empty=False,
                                          help_text=f"Up to {settings.HERALD_BATCH_MAX_ITEMS} notifications, each as for POST /notifications.")


class NotificationBatch(APIView):
    required_scopes = {"POST": "notifications:write"}
    parser_classes = [ItemwiseJSONParser]  # each item is judged alone, down to its characters and numbers

    @extend_schema(
        request=NotificationBatchRequest,
        responses={
            202: inline_serializer("BatchResult", {
                "accepted": serializers.IntegerField(), "rejected": serializers.IntegerField(),
                "results": serializers.ListField(child=BATCH_ITEM),
            }),
            413: error(f"More than {settings.HERALD_BATCH_MAX_ITEMS} notifications."),
        },
    )
    def post(self, request):
        """Accept many notifications at once; each is validated on its own and the valid ones are accepted."""
        if isinstance(request.data, dict) and isinstance(request.data.get("notifications"), list):
            if len(request.data["notifications"]) > settings.HERALD_BATCH_MAX_ITEMS:
                raise ApiError(413, "too_many_items", f"At most {settings.HERALD_BATCH_MAX_ITEMS} notifications per batch.",
                               "notifications")
        batch = NotificationBatchRequest(data=request.data)
        batch.is_valid(raise_exception=True)
        items, results = [], {}
        for index, raw in enumerate(batch.validated_data["notifications"]):
            refused = refusal(raw)
            if refused is not None:
                field = ".".join(filter(None, ["notifications", str(index), refused.path]))
                results[index] = {"index": index, **error_body("invalid", f"{field}: {refused}", field)}
                continue
            if not isinstance(raw, dict):
                field = f"notifications.{index}"
                results[index] = {"index": index, **error_body("invalid", f"{field}: Expected an object.", field)}
                continue
            item = NotificationRequest(data=raw)
            if not item.is_valid():
                results[index] = {"index": index, **validation_error_body(item.errors, f"notifications.{index}")}
                continue
            items.append((index, item.validated_data, raw, item.validated_data.get("idempotency_key")))
        outcomes = accept_many([(data, raw, key) for _, data, raw, key in items], api_key=request.auth)
        for (index, *_), outcome in zip(items, outcomes, strict=True):
            if isinstance(outcome, ApiError):
                field = f"notifications.{index}.{outcome.field}" if outcome.field else f"notifications.{index}"
                results[index] = {"index": index, **error_body(outcome.code, str(outcome.detail), field)}
            else:
                n = outcome.notification
                results[index] = {"index": index, "id": str(n.pk), "status": n.status, "replayed": outcome.replayed}
        ordered = [results[i] for i in sorted(results)]
        accepted = sum(1 for r in ordered if "id" in r)
        return Response({"accepted": accepted, "rejected": len(ordered) - accepted, "results": ordered}, status=http.HTTP_202_ACCEPTED)


def idempotency_key(request, data: dict) -> str | None:
    header = request.headers.get("Idempotency-Key")
    body = data.get("idempotency_key")
    if header is not None and (not header.strip() or len(header) > 255):
        raise ApiError(400, "invalid", "Idempotency-Key must be 1-255 characters.", "Idempotency-Key")
    if header and body and header != body:
        raise ApiError(400, "invalid", "Idempotency-Key header and idempotency_key field differ.", "idempotency_key")
    return header or body


class NotificationDetail(APIView):
    required_scopes = {"GET": "notifications:read"}

    @extend_schema(responses=NotificationView)
    def get(self, request, notification_id):
        """A notification's overall status and one entry per channel."""
        return notification_response(notification_id)


def notification_response(notification_id) -> Response:
    notification = get_object_or_404(
        Notification.objects.select_related("recipient").prefetch_related(
            Prefetch("deliveries", queryset=Delivery.objects.order_by("created_at", "channel"))
        ),
        pk=notification_id,
    )
    return Response(NotificationView(notification).data)


class NotificationCancel(APIView):
    required_scopes = {"POST": "notifications:write"}

    @extend_schema(request=None, responses={200: NotificationView, 409: error("Delivery has already started.")})
    def post(self, request, notification_id):
        """Cancel a notification that has not started delivery (409 once it has)."""
        notification = get_object_or_404(Notification, pk=notification_id)
        if not routing.cancel(notification.pk):
            notification.refresh_from_db(fields=["status"])
            raise ApiError(
                409, "not_cancelable", f"Notification is already {notification.status}; it can no longer be canceled."
            )
        return notification_response(notification_id)


class NewestFirst(CursorPagination):
    ordering = "-created_at"
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 200


class RecipientNotifications(APIView):
    required_scopes = {"GET": "notifications:read"}
    pagination_class = NewestFirst

    @extend_schema(responses=NotificationSummary(many=True), parameters=[OpenApiParameter("status", str, enum=Status.values)])
    def get(self, request, user_id):
        """A user's notifications, newest first, optionally filtered by status."""
        recipient = get_object_or_404(Recipient, external_id=user_id)
        rows = Notification.objects.filter(recipient=recipient)
        status_filter = request.query_params.get("status")
        if status_filter:
            if status_filter not in Status.values:
                raise ApiError(400, "invalid_choice", f"Unknown status {status_filter!r}.", "status")
            rows = rows.filter(status=status_filter)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(rows, request, view=self)
        return paginator.get_paginated_response(NotificationSummary(page, many=True).data)


class EngagementRequest(StrictSerializer):
    event = choice([("opened", "opened"), ("clicked", "clicked"), ("converted", "converted")], "event")
    channel = choice(Channel.choices, "channel", required=False,
                     help_text="The channel the person opened or clicked on: required for those; `converted` takes none.")
    event_id = serializers.CharField(max_length=200, required=False)
    occurred_at = serializers.DateTimeField(required=False)

    def validate(self, attrs):
        # An open or click is of one delivery; guessing which would credit the wrong channel (and experiment arm).
        if attrs["event"] != "converted" and not attrs.get("channel"):
            raise serializers.ValidationError({"channel": serializers.ErrorDetail(
                f"Required for {attrs['event']}: the channel the person {attrs['event']} the notification on.",
                code="required")})
        return attrs


class NotificationEvents(APIView):
    required_scopes = {"POST": "notifications:write"}

    @extend_schema(
        request=EngagementRequest,
        responses={
            202: inline_serializer("EngagementRecorded", {
                "delivery": serializers.UUIDField(allow_null=True), "channel": serializers.ChoiceField(Channel.choices, allow_null=True),
                "status": serializers.ChoiceField(Status.choices), "new": serializers.BooleanField(),
            }),
            404: error("No such notification, or it has no delivery on that channel."),
        },
    )
    def post(self, request, notification_id):
        """Report that the person opened or clicked a notification (push and in-app engagement), or
        `converted`: did what it asked (bought, confirmed). Each is recorded once; a conversion
        counts for the notification even where nothing was sent (an experiment's holdout)."""
        notification = get_object_or_404(Notification, pk=notification_id)
        serializer = EngagementRequest(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if data["event"] == "converted":
            at = data.get("occurred_at") or timezone.now()
            new = bool(Notification.objects.filter(pk=notification.pk, converted_at__isnull=True).update(converted_at=at))
            experiment_arms.record_conversion(notification.pk, at)
            if new:
                count_conversion(notification.pk, at)
            notification.refresh_from_db(fields=["status"])
            return Response({"delivery": None, "channel": None, "status": notification.status, "new": new}, status=202)
        delivery = Delivery.objects.filter(notification=notification, channel=data["channel"]).first()
        if delivery is None:
            raise ApiError(404, "not_found", "This notification has no delivery on that channel.", "channel")
        occurred_at = data.get("occurred_at")
        key = data.get("event_id") or f"{delivery.pk}:{data['event']}:{(occurred_at or '')}"
        new = receipts.record_event(
            source="app", event=data["event"], event_key=key, delivery=delivery, provider_message_id="",
            occurred_at=occurred_at, payload=json.loads(json.dumps(request.data, default=str)),
            effect=receipts.engagement_effect(data["event"]),
        )
        delivery.refresh_from_db(fields=["status"])
        return Response({"delivery": str(delivery.pk), "channel": delivery.channel, "status": delivery.status, "new": new}, status=202)
