"""Signed provider webhooks: helpers tests can use on their own, and the simulator's automatic receipts.

After an accepted send, and once configured, the simulator posts what the provider would:
- SendGrid: one Event Webhook batch per send with `processed` and then `delivered` events for every
  recipient (`bounce` instead of `delivered` for an address at @bounce.test), carrying the send's
  custom_args, categories and an `sg_message_id` that starts with the send's X-Message-Id.
- Twilio: a status callback to the message's StatusCallback for `sent`, then `delivered` (or
  `undelivered` with an ErrorCode for the magic numbers in twilio_api.MAGIC_UNDELIVERED).
Posts run in the background, never delay the send's response, and every attempt is logged.
"""

import asyncio
import base64
import json
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlencode

import aiohttp
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from twilio.request_validator import RequestValidator

from simulator.sendgrid_api import SendGridReceipts, is_bounce_address
from simulator.twilio_api import TwilioReceipts

SENDGRID_SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
POST_TIMEOUT_SECONDS = 10


def sendgrid_event_request(events: list[dict], private_key, timestamp: int | None = None) -> tuple[str, dict]:
    """The raw body and headers of a signed SendGrid Event Webhook post.

    `private_key` is an EC P-256 key or its PEM. The signature is ECDSA-SHA256 over timestamp + body,
    DER-encoded, base64: what `sendgrid.helpers.eventwebhook.EventWebhook.verify_signature` checks.
    """
    raw_body = json.dumps(events, separators=(",", ":")) + "\r\n"  # SendGrid's payloads end in CRLF
    stamp = str(int(time.time() if timestamp is None else timestamp))
    signature = load_event_signing_key(private_key).sign((stamp + raw_body).encode(), ec.ECDSA(hashes.SHA256()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "SendGrid Event API",
        SENDGRID_SIGNATURE_HEADER: base64.b64encode(signature).decode(),
        SENDGRID_TIMESTAMP_HEADER: stamp,
    }
    return raw_body, headers


def twilio_status_request(url: str, params: dict[str, str], auth_token: str) -> dict:
    """Headers of a Twilio status callback to `url` with form `params`, signed with the account's auth token."""
    return {
        "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
        "User-Agent": "TwilioProxy/1.1",
        "X-Twilio-Signature": RequestValidator(auth_token).compute_signature(url, params),
    }


def load_event_signing_key(private_key) -> ec.EllipticCurvePrivateKey:
    """An EC private key from a key object or PEM text; ValueError if it is not a P-256 key."""
    if isinstance(private_key, str):
        private_key = private_key.encode()
    if isinstance(private_key, bytes):
        private_key = serialization.load_pem_private_key(private_key, password=None)
    if not isinstance(private_key, ec.EllipticCurvePrivateKey) or private_key.curve.name != "secp256r1":
        raise ValueError("the SendGrid event signing key must be an EC P-256 private key")
    return private_key


def sendgrid_events(receipts: SendGridReceipts, timestamp: int | None = None) -> list[dict]:
    """The `processed` events for every recipient, then `delivered` (or `bounce`) for each."""
    now = int(time.time() if timestamp is None else timestamp)
    processed, outcomes = [], []
    for index, (email, custom_args) in enumerate(receipts.recipients):
        # Custom args sit at the top level of each event; SendGrid's own fields win a name clash.
        common = {**custom_args, "email": email, "timestamp": now,
                  "smtp-id": f"<{receipts.message_id}@ismtpd-sim.sendgrid.net>",
                  "sg_message_id": f"{receipts.message_id}.recvd-sim-1-{index:04X}.0"}
        if receipts.categories:
            common["category"] = receipts.categories
        processed.append({**common, "event": "processed", "sg_event_id": _event_id()})
        if is_bounce_address(email):
            outcomes.append({**common, "event": "bounce", "sg_event_id": _event_id(), "type": "bounce",
                             "status": "5.1.1", "bounce_classification": "Invalid Address", "tls": 1,
                             "reason": "550 5.1.1 The email account that you tried to reach does not exist.",
                             "ip": "149.72.1.1"})
        else:
            outcomes.append({**common, "event": "delivered", "sg_event_id": _event_id(),
                             "response": "250 2.0.0 OK", "tls": 1, "ip": "149.72.1.1"})
    return processed + outcomes


@dataclass(frozen=True)
class ReceiptSettings:
    sendgrid_webhook_url: str | None = None
    sendgrid_signing_key: ec.EllipticCurvePrivateKey | None = None  # None posts unsigned events
    twilio_auth_token: str | None = None
    delay_ms: float = 0


class ReceiptPoster:
    """Posts receipts on the simulator's event loop and keeps a log of every attempt."""

    def __init__(self):
        self.settings = ReceiptSettings()
        self.log: list[dict] = []
        self._tasks: set[asyncio.Task] = set()
        self._session: aiohttp.ClientSession | None = None

    def schedule(self, job) -> None:
        settings = self.settings
        if isinstance(job, SendGridReceipts) and settings.sendgrid_webhook_url:
            work = self._post_sendgrid(job, settings)
        elif isinstance(job, TwilioReceipts) and settings.twilio_auth_token:
            work = self._post_twilio(job, settings)
        else:
            return
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def reset(self) -> None:
        """Forget settings and log; receipts still waiting to be posted are dropped."""
        await self._cancel_pending()
        self.settings = ReceiptSettings()
        self.log = []

    async def close(self) -> None:
        await self._cancel_pending()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _post_sendgrid(self, job: SendGridReceipts, settings: ReceiptSettings) -> None:
        await asyncio.sleep(settings.delay_ms / 1000)
        events = sendgrid_events(job)
        if settings.sendgrid_signing_key is not None:
            body, headers = sendgrid_event_request(events, settings.sendgrid_signing_key)
        else:
            body = json.dumps(events, separators=(",", ":")) + "\r\n"
            headers = {"Content-Type": "application/json", "User-Agent": "SendGrid Event API"}
        await self._post("sendgrid", settings.sendgrid_webhook_url, body.encode(), headers,
                         message_id=job.message_id, events=[event["event"] for event in events])

    async def _post_twilio(self, job: TwilioReceipts, settings: ReceiptSettings) -> None:
        for status, error_code in job.statuses:
            await asyncio.sleep(settings.delay_ms / 1000)
            params = {**job.params, "MessageStatus": status, "SmsStatus": status}
            if error_code is not None:
                params["ErrorCode"] = str(error_code)
            headers = twilio_status_request(job.callback_url, params, settings.twilio_auth_token)
            await self._post("twilio", job.callback_url, urlencode(params).encode(), headers,
                             message_id=job.params["MessageSid"], events=[status])

    async def _post(self, provider: str, url: str, body: bytes, headers: dict, **summary) -> None:
        entry = {"provider": provider, "url": url, "time": time.time(), "status": None, "ok": False,
                 "error": None, "body": body.decode(), **summary}
        self.log.append(entry)
        try:
            async with self._client().post(url, data=body, headers=headers) as response:
                await response.read()
                entry["status"] = response.status
                entry["ok"] = 200 <= response.status < 300
        except (TimeoutError, aiohttp.ClientError, ValueError) as error:
            entry["error"] = f"{type(error).__name__}: {error}"

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=POST_TIMEOUT_SECONDS))
        return self._session

    async def _cancel_pending(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _event_id() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("=")
