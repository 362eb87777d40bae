"""SMS through Twilio's Messages API (the official `twilio` SDK)."""

import json
import logging
import threading
from datetime import datetime, timedelta

import requests
from django.conf import settings
from django.http import HttpRequest
from requests.adapters import HTTPAdapter
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from core import safe_json, sms_text
from core.errors import ApiError
from core.states import Status
from core.vocabulary import ErrorCode
from delivery.providers.base import (
    LookupUnavailable,
    OutgoingMessage,
    ReceiptEffect,
    ReceivedEvent,
    SendResult,
    SignedReceipts,
    requests_failure,
    retry_after_seconds,
)

log = logging.getLogger(__name__)

# Twilio error codes that mean "this number cannot take SMS from us": stop using it.
UNREACHABLE_NUMBER = {
    21211: "invalid_number",
    21614: "not_a_mobile",
    21610: "unsubscribed",  # the person replied STOP
    21612: "unreachable_number",
}
# Our account's settings, not the number: fail loudly instead of suppressing the person.
ACCOUNT_PROBLEM = {21408: "region_not_enabled", 21606: "from_number_not_sms_capable", 21659: "from_number_not_ours"}
# ErrorCodes on an undelivered/failed status callback that mean the number will never take SMS.
DEAD_NUMBER_ON_CALLBACK = {"30005": "unknown_number", "30006": "landline", "21610": "unsubscribed", "30004": "blocked"}


class TwilioProvider:
    name = "twilio"
    watch_stalls = True

    def __init__(self):
        # Response headers are not on Twilio's exceptions; a hook keeps the last Retry-After per thread.
        self._last_response = threading.local()
        http_client = TwilioHttpClient(
            timeout=settings.HERALD_PROVIDER_TIMEOUT,  # one for connect and read: the SDK refuses a pair
            request_hooks={"response": self._remember_response},
        )
        # Keep as many connections as calls may be in flight here, so none is opened per message.
        adapter = HTTPAdapter(pool_maxsize=settings.HERALD_PROVIDER_MAX_IN_FLIGHT)
        http_client.session.mount("https://", adapter)
        http_client.session.mount("http://", adapter)
        # environment={} stops TWILIO_EDGE / TWILIO_REGION from rewriting the API host.
        self.client = Client(settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN, environment={}, http_client=http_client)
        self.client.api.base_url = settings.TWILIO_API_HOST

    def _remember_response(self, response, *args, **kwargs):
        self._last_response.headers = dict(response.headers)
        return response

    def send(self, message: OutgoingMessage) -> SendResult:
        sms = sms_text.prepare(message.content.get("body", ""), settings.HERALD_SMS_MAX_SEGMENTS)
        self._last_response.headers = {}
        try:
            created = self.client.messages.create(
                to=message.to[0],
                from_=settings.TWILIO_FROM_NUMBER,
                body=sms.text,
                status_callback=f"{settings.PUBLIC_BASE_URL}/api/v1/webhooks/twilio?delivery={message.delivery_id}",
            )
        except TwilioRestException as exc:
            return self._classify(exc.status, exc.code, exc.msg)
        except TwilioException as exc:  # RFC 9457 bodies raise TwilioServiceException, not a subclass
            return self._classify(getattr(exc, "status", 0) or 0, getattr(exc, "code", None), str(exc))
        except (requests.Timeout, requests.ConnectionError) as exc:
            return requests_failure(exc, "Twilio")
        except (ValueError, KeyError) as exc:  # a 2xx body the SDK could not read
            return SendResult.retry(ErrorCode.MALFORMED_RESPONSE, f"Twilio answered something unreadable: {exc}", provider_fault=True)
        if not getattr(created, "sid", None):
            return SendResult.retry(ErrorCode.MALFORMED_RESPONSE, "Twilio answered without a message sid", provider_fault=True)
        return SendResult.sent(created.sid)

    def find_sent(self, message: OutgoingMessage, since: datetime) -> str | None:
        """The sid of this message if Twilio has it (same number and text, created since `since`), else None.

        Twilio keeps no idempotency key, so the list of messages to the number is the only way
        to learn whether a request whose answer was lost was taken.
        """
        text = sms_text.prepare(message.content.get("body", ""), settings.HERALD_SMS_MAX_SEGMENTS).text
        try:
            # Newest first, by number only: DateSent is set when a carrier takes the message,
            # and one Twilio accepted moments ago may not have it yet.
            found = self.client.messages.list(to=message.to[0], limit=50)
        except (TwilioException, requests.RequestException, ValueError, KeyError) as exc:
            raise LookupUnavailable(f"Twilio's message list did not answer: {exc}") from exc
        for sent in found:
            created = getattr(sent, "date_created", None)
            if sent.body == text and (created is None or created >= since - timedelta(seconds=5)):
                return sent.sid
        return None

    @staticmethod
    def read_receipts(request: HttpRequest) -> SignedReceipts:
        """Twilio's message status callback (one status per request), signed with X-Twilio-Signature."""
        signature = request.headers.get("X-Twilio-Signature", "")
        if not signature:
            raise ApiError(401, "unsigned", "Missing X-Twilio-Signature.")
        if not settings.TWILIO_AUTH_TOKEN:
            raise ApiError(401, "not_configured", "TWILIO_AUTH_TOKEN is not set; callbacks are refused.")
        params = {key: request.POST.get(key) for key in request.POST}
        url = settings.PUBLIC_BASE_URL + request.get_full_path()
        if not RequestValidator(settings.TWILIO_AUTH_TOKEN).validate(url, params, signature):
            raise ApiError(403, "bad_signature", "The Twilio signature does not match.")
        signed = url + json.dumps(params, sort_keys=True)
        params = safe_json.scrub(params)
        message_sid = params.get("MessageSid") or params.get("SmsSid") or ""
        status = params.get("MessageStatus") or params.get("SmsStatus") or ""
        event = ReceivedEvent(
            event=status, event_key=f"{message_sid}:{status}", delivery_id=request.GET.get("delivery"),
            provider_message_id=message_sid, occurred_at=None, payload=params,
        )
        return SignedReceipts(signed=signed, received=1, events=[event])

    @staticmethod
    def receipt_effect(payload: dict) -> ReceiptEffect:
        status = payload.get("MessageStatus") or payload.get("SmsStatus")
        if status == "delivered":
            return ReceiptEffect(Status.DELIVERED, ("delivered_at",))
        if status == "read":
            return ReceiptEffect(Status.READ, ("read_at",))
        if status in ("undelivered", "failed"):
            code = str(payload.get("ErrorCode") or "")
            return ReceiptEffect(
                Status.FAILED, ("failed_at",), f"twilio_{code}" if code else status,
                f"Twilio reported {status} ({code or 'no code'})", suppress=code in DEAD_NUMBER_ON_CALLBACK,
            )
        return ReceiptEffect(None)  # queued, sending, sent: already known

    def _classify(self, status: int, code, text: str) -> SendResult:
        if code in UNREACHABLE_NUMBER:
            return SendResult.invalid_recipient(UNREACHABLE_NUMBER[code], f"Twilio {code}: {text}")
        if code in ACCOUNT_PROBLEM:
            log.error("Twilio refused because of our account's configuration: %s %s", code, text)
            return SendResult.failed(ACCOUNT_PROBLEM[code], f"Twilio {code}: {text}", provider_fault=True)
        if status == 429 or code == 20429:
            return SendResult.retry(ErrorCode.RATE_LIMITED, f"Twilio {code}: {text}", after=retry_after_seconds(self._last_response.headers))
        if status in (401, 403) or code == 20003:
            log.error("Twilio rejected our credentials: %s %s", code, text)
            return SendResult.failed(ErrorCode.AUTH_FAILED, f"Twilio {code}: {text}", provider_fault=True)
        if status >= 500 or not status:
            after = retry_after_seconds(self._last_response.headers)
            return SendResult.retry(f"http_{status}", f"Twilio {code}: {text}", after=after, provider_fault=True)
        return SendResult.failed(f"twilio_{code or status}", f"Twilio {code}: {text}")
