"""Outgoing webhooks to a recipient's URL, signed per the Standard Webhooks spec."""

import json
from datetime import UTC, datetime
from urllib.parse import urlsplit

import certifi
import urllib3
from django.conf import settings
from standardwebhooks.webhooks import Webhook

from core import network
from core.vocabulary import ErrorCode
from delivery.providers.base import OutgoingMessage, SendResult, retry_after_seconds


class WebhookProvider:
    name = "webhook"
    watch_stalls = False

    def __init__(self):
        self.signer = Webhook(settings.HERALD_WEBHOOK_SECRET)

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
        try:
            destination = network.resolve(message.to[0], allow_private=settings.HERALD_WEBHOOK_ALLOW_PRIVATE)
        except network.UnsafeDestination as exc:
            return SendResult.failed(ErrorCode.FORBIDDEN_DESTINATION, str(exc))
        except network.UnresolvableDestination as exc:
            return SendResult.retry(ErrorCode.UNRESOLVABLE, str(exc))
        try:
            status, response_headers = post_pinned(destination, message.to[0], body.encode(), headers)
        except urllib3.exceptions.NewConnectionError as exc:  # a subclass of the timeout below, so first
            return SendResult.retry(ErrorCode.CONNECTION_ERROR, f"Endpoint unreachable: {exc}")
        except urllib3.exceptions.ConnectTimeoutError as exc:
            return SendResult.retry(ErrorCode.CONNECTION_ERROR, f"Endpoint unreachable: {exc}")
        except urllib3.exceptions.TimeoutError:
            return SendResult.unknown(ErrorCode.TIMEOUT, f"No answer within {settings.HERALD_PROVIDER_TIMEOUT}s", provider_fault=False)
        except urllib3.exceptions.HTTPError as exc:
            return SendResult.unknown(ErrorCode.CONNECTION_LOST, f"The connection broke before the endpoint answered: {exc}", provider_fault=False)
        # One endpoint's trouble is that endpoint's, so nothing here counts toward a provider breaker.
        if 200 <= status < 300:
            return SendResult.sent(webhook_id)
        if status == 410:
            return SendResult.invalid_recipient(ErrorCode.ENDPOINT_GONE, "The endpoint answered 410 Gone; it will not be called again.")
        if status in (408, 429):  # this endpoint asks us to slow down: waiting, not failing
            return SendResult.retry(ErrorCode.ENDPOINT_RATE_LIMITED, f"The endpoint answered {status}.", after=retry_after_seconds(response_headers))
        if status >= 500:
            return SendResult.retry(f"http_{status}", f"The endpoint answered {status}.", after=retry_after_seconds(response_headers))
        return SendResult.failed(f"http_{status}", f"The endpoint answered {status}.")


def post_pinned(destination: network.Destination, url: str, body: bytes, headers: dict) -> tuple[int, dict]:
    """POST to the address that was checked, never to a fresh lookup of the name.

    TLS still verifies the certificate against the URL's host name (SNI and hostname check).
    The answer's body is never read or stored: only its status matters, and keeping it would
    let a caller read internal responses back through the API.
    """
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    default_port = 443 if destination.scheme == "https" else 80
    host = f"[{destination.host}]" if ":" in destination.host else destination.host
    headers = {**headers, "Host": host if destination.port == default_port else f"{host}:{destination.port}"}
    timeout = urllib3.Timeout(connect=settings.HERALD_PROVIDER_CONNECT_TIMEOUT, read=settings.HERALD_PROVIDER_TIMEOUT)
    last_error: Exception | None = None
    for address in destination.addresses:
        if destination.scheme == "https":
            pool = urllib3.HTTPSConnectionPool(
                address, destination.port, timeout=timeout, retries=False, cert_reqs="CERT_REQUIRED",
                ca_certs=certifi.where(), server_hostname=destination.host, assert_hostname=destination.host,
            )
        else:
            pool = urllib3.HTTPConnectionPool(address, destination.port, timeout=timeout, retries=False)
        try:
            response = pool.urlopen("POST", path, body=body, headers=headers, redirect=False, preload_content=False)
            response.release_conn()
            return response.status, dict(response.headers)
        except urllib3.exceptions.NewConnectionError as exc:
            last_error = exc  # refused before anything was sent: the next address may answer
        finally:
            pool.close()
    raise last_error
