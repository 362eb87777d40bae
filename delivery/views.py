"""Provider receipt webhooks, Herald's tracked links and open pixel, and the dead-letter API."""

import hashlib
import logging
import uuid

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError
from django.http import HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from redis.exceptions import RedisError
from rest_framework import serializers
from rest_framework.parsers import FormParser, JSONParser
from rest_framework.response import Response
from rest_framework.views import APIView

from core import redis_client
from core.errors import ApiError, error_body, payload_too_large
from core.openapi import error, results_of
from delivery import receipts, tracking
from delivery.models import DeadLetter, Delivery
from delivery.outcomes import requeue_dead_letter
from delivery.providers import receipts_reader

log = logging.getLogger(__name__)


def replay_key(source: str, signed: str) -> str:
    # Keyed on what was signed, not on the signature: ECDSA signatures are malleable and
    # base64 decoding skips junk, so one payload can carry many valid signatures.
    return f"herald:webhook-seen:{source}:{hashlib.sha256(signed.encode()).hexdigest()}"


def refuse_replay(key: str) -> None:
    """A signed request already processed is refused (events are idempotent anyway)."""
    if redis_client.shared().exists(key):
        raise ApiError(403, "replayed", "This signed request was already received.")


def remember_processed(key: str) -> None:
    # Only after success, so a provider retrying a request that failed on our side gets in.
    redis_client.shared().set(key, 1, ex=settings.HERALD_WEBHOOK_MAX_AGE_SECONDS * 2)


class RawBodyMixin:
    """Webhook signatures cover the exact bytes received, so views read the raw body."""

    authentication_classes: list = []
    permission_classes: list = []

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        # Read before any parser so that Django holds the body to DATA_UPLOAD_MAX_MEMORY_SIZE
        # (DRF's form parser reads the stream without a limit).
        _ = request.body

    def handle_exception(self, exc):
        if isinstance(exc, RequestDataTooBig):
            return payload_too_large(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
        return super().handle_exception(exc)


WEBHOOK_RECEIPT = inline_serializer(
    "WebhookReceipt",
    {"received": serializers.IntegerField(help_text="Events in the request."),
     "new": serializers.IntegerField(help_text="Events not seen before.")},
)
SENDGRID_SIGNATURE = [
    OpenApiParameter("X-Twilio-Email-Event-Webhook-Signature", str, OpenApiParameter.HEADER, required=True),
    OpenApiParameter("X-Twilio-Email-Event-Webhook-Timestamp", str, OpenApiParameter.HEADER, required=True),
]
TWILIO_SIGNATURE = [OpenApiParameter("X-Twilio-Signature", str, OpenApiParameter.HEADER, required=True)]
WEBHOOK_REFUSALS = {
    401: error("The provider's credentials are not configured, or the request is unsigned."),
    403: error("The signature does not match, is too old, or was already received."),
}


class ReceiptWebhook(RawBodyMixin, APIView):
    """A provider's signed receipts: the provider module verifies and reads them, this view stores them."""

    provider_name: str

    def post(self, request):
        receipts_in = receipts_reader(self.provider_name).read_receipts(request)
        seen = replay_key(self.provider_name, receipts_in.signed)
        refuse_replay(seen)
        new = 0
        for event in receipts_in.events:
            delivery = find_delivery(event.delivery_id, event.provider_message_id)
            if delivery is None:
                log.info("%s %s for an unknown message (%s / %s) ignored",
                         self.provider_name, event.event, event.delivery_id, event.provider_message_id)
                continue
            new += receipts.record_event(
                source=self.provider_name, event=event.event, event_key=event.event_key, delivery=delivery,
                provider_message_id=event.provider_message_id, occurred_at=event.occurred_at, payload=event.payload,
                effect=receipts_reader(self.provider_name).receipt_effect(event.payload),
            )
        remember_processed(seen)
        return Response({"received": receipts_in.received, "new": new})


class SendGridWebhook(ReceiptWebhook):
    provider_name = "sendgrid"
    parser_classes = [JSONParser]

    @extend_schema(
        request=None, responses={200: WEBHOOK_RECEIPT, **WEBHOOK_REFUSALS}, parameters=SENDGRID_SIGNATURE,
        description="SendGrid's signed Event Webhook: a JSON array of events, verified against the signature headers.",
    )
    def post(self, request):
        return super().post(request)


TWILIO_STATUS = inline_serializer(
    "TwilioStatusCallback",
    {"MessageSid": serializers.CharField(required=False), "MessageStatus": serializers.CharField(required=False),
     "SmsSid": serializers.CharField(required=False), "SmsStatus": serializers.CharField(required=False)},
)


class TwilioWebhook(ReceiptWebhook):
    provider_name = "twilio"
    parser_classes = [FormParser]

    @extend_schema(
        request={"application/x-www-form-urlencoded": TWILIO_STATUS},
        responses={200: WEBHOOK_RECEIPT, **WEBHOOK_REFUSALS}, parameters=TWILIO_SIGNATURE,
        description="Twilio's message status callback, verified against X-Twilio-Signature.",
    )
    def post(self, request):
        return super().post(request)


def find_delivery(delivery_id, provider_message_id: str) -> Delivery | None:
    """The delivery an event is about: by Herald's id when the provider echoes it, else by the provider's."""
    try:
        by_id = Delivery.objects.filter(pk=uuid.UUID(str(delivery_id))).first() if delivery_id else None
    except ValueError:
        by_id = None
    if by_id or not provider_message_id:
        return by_id
    return Delivery.objects.filter(provider_message_id=provider_message_id).first()


class DeadLetterView(serializers.ModelSerializer):
    notification_id = serializers.UUIDField(source="delivery.notification_id")
    channel = serializers.CharField(source="delivery.channel")

    class Meta:
        model = DeadLetter
        fields = ["id", "delivery", "notification_id", "channel", "reason", "error_code", "error_message", "payload", "created_at", "requeued_at"]


class DeadLetterList(APIView):
    required_scopes = {"GET": "notifications:read"}

    @extend_schema(responses=results_of("DeadLetterList", DeadLetterView), parameters=[OpenApiParameter("requeued", bool)])
    def get(self, request):
        """Dead letters, newest first; `?requeued=false` for those still waiting."""
        rows = DeadLetter.objects.select_related("delivery").order_by("-created_at")
        requeued = request.query_params.get("requeued")
        if requeued is not None:
            if requeued not in ("true", "false"):
                raise ApiError(400, "invalid", "requeued must be true or false.", "requeued")
            rows = rows.filter(requeued_at__isnull=requeued == "false")
        return Response({"results": DeadLetterView(rows[:500], many=True).data})


class DeadLetterRequeue(APIView):
    required_scopes = {"POST": "notifications:write"}

    @extend_schema(
        request=None, responses={200: DeadLetterView, 409: error("Already requeued, or its delivery moved on.")}
    )
    def post(self, request, dead_letter_id):
        """Give a dead-lettered delivery a fresh set of attempts (409 if already requeued)."""
        letter = get_object_or_404(DeadLetter, pk=dead_letter_id)
        if not requeue_dead_letter(letter.pk):
            raise ApiError(409, "already_requeued", "This dead letter was already requeued or its delivery moved on.")
        letter.refresh_from_db()
        return Response(DeadLetterView(letter).data)


# The smallest transparent GIF: what an open pixel answers.
PIXEL_GIF = bytes.fromhex("47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b")


def record_engagement(delivery_id: str, event: str, payload: dict) -> None:
    """A click or open seen by Herald's own tracking: recorded once per delivery (the first one)."""
    delivery = Delivery.objects.filter(pk=delivery_id).first()
    if delivery is None:
        return
    try:
        receipts.record_event(
            source="herald", event=event, event_key=f"{event}:{delivery_id}", delivery=delivery, provider_message_id="",
            occurred_at=timezone.now(), payload=payload, effect=receipts.engagement_effect(event),
        )
    except (DatabaseError, RedisError):  # the person still gets where they were going
        log.exception("delivery %s: could not record a tracked %s", delivery_id, event)


def tracked_link(request, delivery_token: str, link_token: str):
    """A tracked link: count the click, then send the person on to the URL the email had (once the
    link is older than HERALD_TRACKED_LINK_DAYS, show where it went instead, and count nothing)."""
    delivery_id, url = tracking.read_delivery(delivery_token), tracking.read_link(link_token)
    content = Delivery.objects.filter(pk=delivery_id).values_list("content", flat=True).first() if delivery_id else None
    if url is None or content is None or not tracking.was_sent_in(content, delivery_token, link_token):
        return JsonResponse(error_body("not_found", "This link is not one Herald sent."), status=404)
    if tracking.read_link(link_token, max_age_days=settings.HERALD_TRACKED_LINK_DAYS) is None:
        return render(request, "delivery/link_expired.html", {"url": url, "days": settings.HERALD_TRACKED_LINK_DAYS},
                      status=410)
    record_engagement(delivery_id, "clicked", {"url": url})
    return HttpResponseRedirect(url)


def open_pixel(request, delivery_token: str):
    delivery_id = tracking.read_delivery(delivery_token)
    if delivery_id is not None:
        record_engagement(delivery_id, "opened", {})
    return HttpResponse(PIXEL_GIF, content_type="image/gif", headers={"Cache-Control": "no-store, private"})
