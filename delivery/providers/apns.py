"""Push to iOS devices through Apple Push Notification service (`aioapns`, token auth)."""

import asyncio
import logging
import threading
import uuid
from pathlib import Path
from urllib.parse import urlsplit

from aioapns import APNs, NotificationRequest, PushType
from aioapns.connection import APNsDevelopmentClientProtocol, APNsProductionClientProtocol
from aioapns.exceptions import ConnectionError as APNsConnectionError
from aioapns.exceptions import MaxAttemptsExceeded
from django.conf import settings
from h2.exceptions import ProtocolError

from core.queues import URGENT_PRIORITIES
from core.vocabulary import ErrorCode
from delivery.providers.base import OutgoingMessage, SendResult, merge_push_results

log = logging.getLogger(__name__)

DEAD_TOKEN = {"Unregistered", "ExpiredToken", "BadDeviceToken", "DeviceTokenNotForTopic"}
AUTH_PROBLEM = {"InvalidProviderToken", "MissingProviderToken", "BadCertificate", "Forbidden"}


class ApnsProvider:
    """One APNs client per worker process on its own event loop thread: the client keeps its
    HTTP/2 connections and its provider JWT (Apple refuses tokens re-signed too often)."""

    name = "apns"
    watch_stalls = True

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name="apns-loop", daemon=True).start()
        self.client = asyncio.run_coroutine_threadsafe(self._make_client(), self.loop).result(10)

    async def _make_client(self) -> APNs:
        client = APNs(
            key=Path(settings.APNS_KEY_FILE).read_text(),
            key_id=settings.APNS_KEY_ID,
            team_id=settings.APNS_TEAM_ID,
            topic=settings.APNS_TOPIC,
            use_sandbox=settings.APNS_USE_SANDBOX,
            max_connection_attempts=2,
        )
        if settings.APNS_HOST:
            target = urlsplit(settings.APNS_HOST)
            base = APNsDevelopmentClientProtocol if settings.APNS_USE_SANDBOX else APNsProductionClientProtocol
            client.pool.protocol_class = type("ConfiguredAPNs", (base,), {
                "APNS_SERVER": target.hostname, "APNS_PORT": target.port or 443,
            })
            if target.scheme == "http":  # HTTP/2 without TLS: only for a local simulator
                client.pool.ssl_context = None
        return client

    def send(self, message: OutgoingMessage) -> SendResult:
        # Every device at once, all within one timeout, so a person with many devices cannot
        # stretch an attempt past its budget.
        future = asyncio.run_coroutine_threadsafe(self._send_all(message), self.loop)
        try:
            outcomes = future.result(settings.HERALD_PROVIDER_TIMEOUT)
        except TimeoutError:
            future.cancel()
            return SendResult.unknown(ErrorCode.TIMEOUT, f"APNs did not answer within {settings.HERALD_PROVIDER_TIMEOUT}s")
        results = []
        for token, outcome in zip(message.to, outcomes, strict=True):
            if isinstance(outcome, (MaxAttemptsExceeded, APNsConnectionError, ProtocolError, OSError)):
                results.append(SendResult.retry(ErrorCode.CONNECTION_ERROR, f"APNs unreachable: {outcome!r}", provider_fault=True))
            elif isinstance(outcome, BaseException):
                raise outcome
            elif outcome.is_successful:
                results.append(SendResult.sent(outcome.notification_id))
            elif outcome.description in DEAD_TOKEN or outcome.status == "410":
                results.append(SendResult.invalid_recipient(ErrorCode.UNREGISTERED, "APNs no longer knows this token", (token,)))
            else:
                results.append(classify(outcome.status, outcome.description))
        return merge_push_results(results)

    async def _send_all(self, message: OutgoingMessage) -> list:
        return await asyncio.gather(
            *(self.client.send_notification(self._request(message, token)) for token in message.to),
            return_exceptions=True,
        )

    def _request(self, message: OutgoingMessage, token: str) -> NotificationRequest:
        metadata = message.metadata if isinstance(message.metadata, dict) else {}
        alert = {"title": message.content.get("title", ""), "body": message.content.get("body", "")}
        return NotificationRequest(
            device_token=token,
            message={"aps": {"alert": alert, "sound": "default"}, "herald_delivery_id": message.delivery_id},
            # A stable apns-id and collapse id per delivery: a resend after a lost answer
            # replaces the first alert on the device instead of showing a second one.
            notification_id=str(uuid.uuid5(uuid.UUID(message.delivery_id), token)),
            time_to_live=metadata.get("ttl_seconds", settings.APNS_DEFAULT_TTL_SECONDS),
            priority=10 if message.priority in URGENT_PRIORITIES else 5,
            collapse_key=metadata.get("collapse_key") or message.delivery_id,
            push_type=PushType.ALERT,
        )


def classify(status: str, reason: str | None) -> SendResult:
    text = f"APNs {status}: {reason}"
    if status == "429":
        return SendResult.retry(ErrorCode.RATE_LIMITED, text)
    if reason == "ExpiredProviderToken":  # the client signs a fresh JWT on the next try
        return SendResult.retry("expired_provider_token", text)
    if reason in AUTH_PROBLEM or status == "403":
        log.error("APNs rejected our provider token: %s", text)
        return SendResult.failed(ErrorCode.AUTH_FAILED, text, provider_fault=True)
    if status.startswith("5"):
        return SendResult.retry(f"http_{status}", text, provider_fault=True)
    return SendResult.failed(reason or f"http_{status}", text)
