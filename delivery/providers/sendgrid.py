"""Email through SendGrid's v3 Mail Send API (the official `sendgrid` SDK)."""

import binascii
import hashlib
import http.client
import json
import logging
import time
import urllib.error
from html import escape

from django.conf import settings
from django.http import HttpRequest
from python_http_client import exceptions as http_errors
from sendgrid import SendGridAPIClient
from sendgrid.helpers.eventwebhook import EventWebhook
from sendgrid.helpers.mail import Category, CustomArg, Header, Mail, Personalization, Substitution, To

from core import safe_json
from core.errors import ApiError
from core.states import Status
from core.vocabulary import ErrorCode
from delivery.providers.base import (
    Outcome,
    OutgoingMessage,
    ReceiptEffect,
    ReceivedEvent,
    SendResult,
    SignedReceipts,
    epoch,
    retry_after_seconds,
)

log = logging.getLogger(__name__)


class SendGridProvider:
    name = "sendgrid"
    watch_stalls = True

    def __init__(self):
        self.client = SendGridAPIClient(api_key=settings.SENDGRID_API_KEY, host=settings.SENDGRID_API_HOST)
        self.client.client.timeout = settings.HERALD_PROVIDER_TIMEOUT  # the SDK default is no timeout

    def send(self, message: OutgoingMessage) -> SendResult:
        mail = Mail(
            from_email=settings.HERALD_EMAIL_FROM,
            to_emails=message.to,
            subject=message.content.get("subject", ""),
            plain_text_content=message.content.get("body") or None,
            html_content=message.content.get("html_body") or None,
        )
        # Custom args come back on every event webhook, mapping receipts to the delivery.
        mail.custom_arg = [
            CustomArg("herald_delivery_id", message.delivery_id),
            CustomArg("herald_notification_id", message.notification_id),
        ]
        if message.notification_type:
            mail.category = Category(message.notification_type)
        for name, value in message.headers.items():
            mail.header = Header(name, value)
        return self._post(mail)

    # Mail Send takes up to 1,000 personalizations in one request: each has its own recipient,
    # subject, headers and custom args; the body is shared, with per-person substitutions.
    max_batch = 1000

    def batch_key(self, message: OutgoingMessage) -> str:
        """Messages with the same key can go out in one request: the same category, and the same
        body once what is personal in it (their links) is a substitution."""
        canonical = json.dumps([shared_body(message), message.notification_type], sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def send_batch(self, messages: list[OutgoingMessage]) -> list[SendResult]:
        """Send messages that share a batch key in one request; one result per message, in order."""
        if len(messages) == 1:
            return [self.send(messages[0])]
        first = messages[0]
        content = shared_body(first)
        mail = Mail(
            from_email=settings.HERALD_EMAIL_FROM, subject=first.content.get("subject", ""),
            plain_text_content=content["body"] or None, html_content=content["html_body"] or None,
        )
        for message in messages:
            personalization = Personalization()
            for address in message.to:
                personalization.add_to(To(address))
            personalization.subject = message.content.get("subject", "")
            personalization.add_custom_arg(CustomArg("herald_delivery_id", message.delivery_id))
            personalization.add_custom_arg(CustomArg("herald_notification_id", message.notification_id))
            for name, value in message.headers.items():
                personalization.add_header(Header(name, value))
            for tag, value in message.personal.items():
                personalization.add_substitution(Substitution(tag, value))
            mail.add_personalization(personalization, index=len(mail.personalizations))
        if first.notification_type:
            mail.category = Category(first.notification_type)
        result = self._post(mail)
        if result.outcome in (Outcome.FAILED, Outcome.INVALID_RECIPIENT) and not result.provider_fault:
            # SendGrid refused the request for one message's sake: each goes alone, so the
            # others are sent and only the faulty one fails.
            return [self.send(message) for message in messages]
        return [result] * len(messages)

    def probe(self) -> SendResult:
        """Whether SendGrid answers, asked without sending anything (GET /v3/scopes): the breaker's
        half-open probe, so that no email is risked on a SendGrid that may still hang."""
        try:
            self.client.client.scopes.get()
        except http_errors.HTTPError as exc:
            return classify_error(exc)
        except urllib.error.URLError as exc:
            return SendResult.retry(ErrorCode.CONNECTION_ERROR, f"SendGrid unreachable: {exc}", provider_fault=True)
        except (TimeoutError, ConnectionError, http.client.HTTPException) as exc:
            return SendResult.retry(ErrorCode.TIMEOUT, f"SendGrid did not answer its health check: {exc!r}", provider_fault=True)
        return SendResult.sent("")

    def _post(self, mail: Mail) -> SendResult:
        try:
            response = self.client.send(mail)
        except http_errors.HTTPError as exc:
            return classify_error(exc)
        except urllib.error.URLError as exc:  # urllib raises this only before the request is complete
            return SendResult.retry(ErrorCode.CONNECTION_ERROR, f"SendGrid unreachable: {exc}", provider_fault=True)
        except (TimeoutError, ConnectionError, http.client.HTTPException) as exc:
            # Raised while waiting for the answer: SendGrid may have taken the message.
            return SendResult.unknown(ErrorCode.TIMEOUT if isinstance(exc, TimeoutError) else ErrorCode.CONNECTION_LOST,
                                      f"SendGrid did not answer: {exc!r}")
        # Without X-Message-Id the send still happened: receipts map back by custom args.
        return SendResult.sent(response.headers.get("X-Message-Id", ""))

    @staticmethod
    def read_receipts(request: HttpRequest) -> SignedReceipts:
        """SendGrid's signed Event Webhook: a JSON array of events, signed with ECDSA."""
        public_key = settings.SENDGRID_WEBHOOK_PUBLIC_KEY
        if not public_key:
            raise ApiError(401, "not_configured", "SENDGRID_WEBHOOK_PUBLIC_KEY is not set; events are refused.")
        signature = request.headers.get("X-Twilio-Email-Event-Webhook-Signature", "")
        timestamp = request.headers.get("X-Twilio-Email-Event-Webhook-Timestamp", "")
        if not signature or not timestamp:
            raise ApiError(401, "unsigned", "Missing SendGrid signature headers.")
        body = request.body.decode("utf-8", "replace")
        try:
            valid = EventWebhook(public_key).verify_signature(body, signature, timestamp)
        except (binascii.Error, ValueError, TypeError):
            valid = False
        if not valid:
            raise ApiError(403, "bad_signature", "The SendGrid signature does not match.")
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > settings.HERALD_WEBHOOK_MAX_AGE_SECONDS:
            raise ApiError(403, "stale", "The SendGrid signature timestamp is too old; refusing a replay.")
        try:
            # Signed by SendGrid, so kept: characters PostgreSQL cannot store are replaced, not refused.
            events = safe_json.scrub(json.loads(body))
        except RecursionError:
            raise ApiError(400, "malformed_json", f"Body nests deeper than {safe_json.MAX_DEPTH} levels.") from None
        except ValueError:
            raise ApiError(400, "malformed_json", "Body is not valid JSON.") from None
        if not isinstance(events, list):
            raise ApiError(400, "invalid", "Expected a JSON array of events.")
        return SignedReceipts(signed=timestamp + body, received=len(events),
                              events=[received_event(event) for event in events if isinstance(event, dict)])

    @staticmethod
    def receipt_effect(payload: dict) -> ReceiptEffect:
        kind = payload.get("event")
        if kind == "delivered":
            return ReceiptEffect(Status.DELIVERED, ("delivered_at",))
        if kind == "open":
            return ReceiptEffect(Status.READ, ("read_at",))
        if kind == "click":
            return ReceiptEffect(Status.READ, ("read_at", "clicked_at"))
        if kind == "bounce":
            reason = str(payload.get("reason", ""))[:2000]
            if payload.get("type") == "blocked":  # a soft bounce: the mailbox exists
                return ReceiptEffect(None, error_code=ErrorCode.SOFT_BOUNCE, error_message=reason)
            return ReceiptEffect(Status.BOUNCED, error_code=ErrorCode.HARD_BOUNCE, error_message=reason, suppress=True)
        if kind == "dropped":
            reason = str(payload.get("reason", ""))
            dead = "bounce" in reason.lower() or "invalid" in reason.lower()
            return ReceiptEffect(Status.FAILED, ("failed_at",), ErrorCode.DROPPED, reason[:2000], suppress=dead)
        return ReceiptEffect(None)  # processed, deferred, spamreport, unsubscribe: recorded for the timeline


def shared_body(message: OutgoingMessage) -> dict[str, str]:
    """The message's body and HTML with each personal value replaced by its tag."""
    shared = {part: message.content.get(part) or "" for part in ("body", "html_body")}
    for tag, value in message.personal.items():
        if value:
            shared = {part: text.replace(value, tag).replace(escape(value), tag) for part, text in shared.items()}
    return shared


def received_event(event: dict) -> ReceivedEvent:
    message_id = str(event.get("sg_message_id", "")).split(".")[0]
    key = event.get("sg_event_id") or f"{message_id}:{event.get('event')}:{event.get('timestamp')}"
    delivery_id = event.get("herald_delivery_id")
    return ReceivedEvent(
        event=str(event.get("event", "")), event_key=str(key), delivery_id=str(delivery_id) if delivery_id else None,
        provider_message_id=message_id, occurred_at=epoch(event.get("timestamp")), payload=event,
    )


def classify_error(exc: http_errors.HTTPError) -> SendResult:
    status = getattr(exc, "status_code", 0) or 0
    body = _text(getattr(exc, "body", b""))
    headers = getattr(exc, "headers", None) or {}
    if status == 429:
        return SendResult.retry(ErrorCode.RATE_LIMITED, "SendGrid rate limit", after=_reset_after(headers))
    if status >= 500:
        return SendResult.retry(f"http_{status}", f"SendGrid server error: {body[:300]}", provider_fault=True)
    if status in (401, 403):
        log.error("SendGrid rejected our credentials (%s): %s", status, body[:300])
        return SendResult.failed(ErrorCode.AUTH_FAILED, f"SendGrid {status}: {body[:300]}", provider_fault=True)
    if status == 400 and ("personalizations" in body and "email" in body.lower()):
        return SendResult.invalid_recipient(ErrorCode.INVALID_EMAIL, f"SendGrid refused the address: {body[:300]}")
    return SendResult.failed(f"http_{status}", f"SendGrid refused the message: {body[:300]}")


def _reset_after(headers) -> float | None:
    after = retry_after_seconds(headers)
    if after is not None:
        return after
    reset = headers.get("X-RateLimit-Reset") if hasattr(headers, "get") else None
    try:
        return max(float(reset) - time.time(), 0.0) if reset else None
    except ValueError:
        return None


def _text(body) -> str:
    return body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or "")
