"""Outgoing webhooks to a recipient's URL, signed per the Standard Webhooks spec."""

import ipaddress
import json
import socket
from datetime import UTC, datetime
from urllib.parse import urlsplit

import requests
from django.conf import settings
from standardwebhooks.webhooks import Webhook

from delivery.providers.base import OutgoingMessage, SendResult, retry_after_seconds


class WebhookProvider:
    name = "webhook"

    def __init__(self):
        self.signer = Webhook(settings.HERALD_WEBHOOK_SECRET)
        self.session = requests.Session()

    def send(self, message: OutgoingMessage) -> SendResult:
        # The id is stable across retries, so receivers can drop duplicates by `webhook-id`.
        webhook_id = f"msg_{message.delivery_id}"
        now = datetime.now(UTC)
        body = json.dumps({
            "type": "notification",
            "notification_id": message.notification_id,
            "notification_type": message.notification_type,
            "priority": message.priority,
            "content": message.content,
            "metadata": message.metadata,
            "timestamp": now.isoformat(),
        })
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Herald-Webhooks/1",
            "webhook-id": webhook_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": self.signer.sign(webhook_id, now, body),
        }
        url = message.to[0]
        refused = unsafe_destination(url)
        if refused:
            return SendResult.failed("forbidden_destination", refused)
        try:
            # The answer's body is never read or stored: only its status matters, and keeping
            # it would let a caller read internal responses back through the API.
            response = self.session.post(
                url, data=body.encode(), headers=headers,
                timeout=settings.HERALD_PROVIDER_TIMEOUT, allow_redirects=False, stream=True,
            )
            response.close()
        except requests.Timeout:
            return SendResult.retry("timeout", f"No answer within {settings.HERALD_PROVIDER_TIMEOUT}s")
        except requests.RequestException as exc:
            return SendResult.retry("connection_error", f"Endpoint unreachable: {exc}")
        # One endpoint's trouble is that endpoint's, so nothing here counts toward a provider breaker.
        status = response.status_code
        if 200 <= status < 300:
            return SendResult.sent(webhook_id)
        if status == 410:
            return SendResult.invalid_recipient("endpoint_gone", "The endpoint answered 410 Gone; it will not be called again.")
        if status in (408, 429) or status >= 500:
            return SendResult.retry(f"http_{status}", f"The endpoint answered {status}.", after=retry_after_seconds(response.headers))
        return SendResult.failed(f"http_{status}", f"The endpoint answered {status}.")


def unsafe_destination(url: str) -> str | None:
    """Why `url` must not be called (it resolves to this network), or None.

    Recipients' webhook URLs come from API callers; without this, Herald could be used to
    reach internal services. HERALD_WEBHOOK_ALLOW_PRIVATE lifts it for local development.
    """
    if settings.HERALD_WEBHOOK_ALLOW_PRIVATE:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "Webhook URLs must be http(s) with a host."
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP)}
    except OSError as exc:
        return f"Cannot resolve {parts.hostname}: {exc}"
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if not ip.is_global:
            return f"{parts.hostname} resolves to a non-public address ({ip})."
    return None
