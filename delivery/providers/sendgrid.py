"""Email through SendGrid's v3 Mail Send API (the official `sendgrid` SDK)."""

import http.client
import logging
import time
import urllib.error

from django.conf import settings
from python_http_client import exceptions as http_errors
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import Category, CustomArg, Header, Mail

from delivery.providers.base import OutgoingMessage, SendResult, retry_after_seconds

log = logging.getLogger(__name__)


class SendGridProvider:
    name = "sendgrid"

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
        try:
            response = self.client.send(mail)
        except http_errors.HTTPError as exc:
            return classify_error(exc)
        except urllib.error.URLError as exc:  # urllib raises this only before the request is complete
            return SendResult.retry("connection_error", f"SendGrid unreachable: {exc}", provider_fault=True)
        except (TimeoutError, ConnectionError, http.client.HTTPException) as exc:
            # Raised while waiting for the answer: SendGrid may have taken the message.
            return SendResult.unknown("timeout" if isinstance(exc, TimeoutError) else "connection_lost",
                                      f"SendGrid did not answer: {exc!r}")
        # Without X-Message-Id the send still happened: receipts map back by custom args.
        return SendResult.sent(response.headers.get("X-Message-Id", ""))


def classify_error(exc: http_errors.HTTPError) -> SendResult:
    status = getattr(exc, "status_code", 0) or 0
    body = _text(getattr(exc, "body", b""))
    headers = getattr(exc, "headers", None) or {}
    if status == 429:
        return SendResult.retry("rate_limited", "SendGrid rate limit", after=_reset_after(headers))
    if status >= 500:
        return SendResult.retry(f"http_{status}", f"SendGrid server error: {body[:300]}", provider_fault=True)
    if status in (401, 403):
        log.error("SendGrid rejected our credentials (%s): %s", status, body[:300])
        return SendResult.failed("auth_failed", f"SendGrid {status}: {body[:300]}", provider_fault=True)
    if status == 400 and ("personalizations" in body and "email" in body.lower()):
        return SendResult.invalid_recipient("invalid_email", f"SendGrid refused the address: {body[:300]}")
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
