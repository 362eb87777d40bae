"""Push to Android and web devices through Firebase Cloud Messaging HTTP v1 (`firebase-admin`)."""

import logging
import uuid

import firebase_admin
from django.conf import settings
from firebase_admin import _http_client, credentials, exceptions, messaging

from core.queues import URGENT_PRIORITIES
from core.vocabulary import ErrorCode
from delivery.providers.base import OutgoingMessage, SendResult, merge_push_results, retry_after_seconds

log = logging.getLogger(__name__)

GOOGLE_FCM_HOST = "https://fcm.googleapis.com"


def _configure_sdk() -> None:
    # Herald owns retries (one attempt log, the breaker, Retry-After); the SDK would otherwise
    # retry 500/503 four times inside a single attempt. The SDK reads this object at call time.
    _http_client.DEFAULT_RETRY_CONFIG.total = 0
    _http_client.DEFAULT_RETRY_CONFIG.connect = 0
    _http_client.DEFAULT_RETRY_CONFIG.read = 0
    _http_client.DEFAULT_RETRY_CONFIG.status = 0
    messaging._MessagingService.FCM_URL = f"{settings.FCM_API_HOST.rstrip('/')}/v1/projects/{{0}}/messages:send"


class FcmProvider:
    name = "fcm"
    watch_stalls = True

    def __init__(self):
        _configure_sdk()
        # The service account's token_uri is honoured, so the OAuth exchange can be pointed elsewhere too.
        certificate = credentials.Certificate(settings.FCM_CREDENTIALS_FILE)
        if settings.FCM_API_HOST != GOOGLE_FCM_HOST:
            # google-auth looks up a "regional access boundary" at Google after its first token,
            # with no setting to point it elsewhere; aimed at another FCM host, it must not call out.
            certificate.get_credential()._is_regional_access_boundary_lookup_required = lambda: False
        self.app = firebase_admin.initialize_app(
            certificate,
            options={"httpTimeout": settings.HERALD_PROVIDER_TIMEOUT},
            name=f"herald-{uuid.uuid4().hex[:8]}",
        )

    def send(self, message: OutgoingMessage) -> SendResult:
        urgent = message.priority in URGENT_PRIORITIES
        collapse_key = message.metadata.get("collapse_key") if isinstance(message.metadata, dict) else None
        batch = [
            messaging.Message(
                token=token,
                notification=messaging.Notification(title=message.content.get("title"), body=message.content.get("body")),
                data={"herald_delivery_id": message.delivery_id, "herald_notification_id": message.notification_id},
                # The tag (and APNs collapse id) is the delivery's: a resend after a lost answer
                # replaces the first notification on the device instead of adding a second.
                android=messaging.AndroidConfig(
                    priority="high" if urgent else "normal", collapse_key=collapse_key,
                    notification=messaging.AndroidNotification(tag=message.delivery_id),
                ),
                webpush=messaging.WebpushConfig(
                    headers={"Urgency": "high" if urgent else "normal"},
                    notification=messaging.WebpushNotification(tag=message.delivery_id),
                ),
                apns=messaging.APNSConfig(headers={"apns-collapse-id": collapse_key or message.delivery_id}),
            )
            for token in message.to
        ]
        try:
            responses = messaging.send_each(batch, app=self.app).responses
        except (exceptions.FirebaseError, ValueError) as exc:
            return classify(exc)
        results = []
        for token, response in zip(message.to, responses, strict=True):
            if response.success:
                results.append(SendResult.sent(response.message_id))
            elif isinstance(response.exception, (messaging.UnregisteredError, messaging.SenderIdMismatchError)):
                results.append(SendResult.invalid_recipient(ErrorCode.UNREGISTERED, "FCM no longer knows this token", (token,)))
            else:
                results.append(classify(response.exception))
        return merge_push_results(results)


def classify(exc: Exception) -> SendResult:
    headers = getattr(getattr(exc, "http_response", None), "headers", None)
    text = str(exc)
    if isinstance(exc, messaging.QuotaExceededError):
        # FCM's 429: waiting, like every provider's rate limit (no attempt used; the shared rate adapts).
        return SendResult.retry(ErrorCode.RATE_LIMITED, text, after=retry_after_seconds(headers))
    if isinstance(exc, messaging.ThirdPartyAuthError) or isinstance(exc, (exceptions.UnauthenticatedError, exceptions.PermissionDeniedError)):
        log.error("FCM rejected our credentials: %s", text)
        return SendResult.failed(ErrorCode.AUTH_FAILED, text, provider_fault=True)
    if isinstance(exc, exceptions.InvalidArgumentError):
        return SendResult.failed(ErrorCode.INVALID_ARGUMENT, text)
    if isinstance(exc, (exceptions.UnavailableError, exceptions.InternalError, exceptions.DeadlineExceededError,
                        exceptions.UnknownError)):
        return SendResult.retry(getattr(exc, "code", "unavailable").lower(), text, after=retry_after_seconds(headers), provider_fault=True)
    return SendResult.retry("fcm_error", f"{type(exc).__name__}: {text}", provider_fault=True)
