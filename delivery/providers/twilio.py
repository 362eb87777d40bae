"""SMS through Twilio's Messages API (the official `twilio` SDK)."""

import logging
import threading
from datetime import datetime, timedelta

import requests
from django.conf import settings
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from delivery import sms_text
from delivery.providers.base import LookupUnavailable, OutgoingMessage, SendResult, requests_failure, retry_after_seconds

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


class TwilioProvider:
    name = "twilio"

    def __init__(self):
        # Response headers are not on Twilio's exceptions; a hook keeps the last Retry-After per thread.
        self._last_response = threading.local()
        http_client = TwilioHttpClient(
            timeout=settings.HERALD_PROVIDER_TIMEOUT,
            request_hooks={"response": self._remember_response},
        )
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
            return SendResult.retry("malformed_response", f"Twilio answered something unreadable: {exc}", provider_fault=True)
        if not getattr(created, "sid", None):
            return SendResult.retry("malformed_response", "Twilio answered without a message sid", provider_fault=True)
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

    def _classify(self, status: int, code, text: str) -> SendResult:
        if code in UNREACHABLE_NUMBER:
            return SendResult.invalid_recipient(UNREACHABLE_NUMBER[code], f"Twilio {code}: {text}")
        if code in ACCOUNT_PROBLEM:
            log.error("Twilio refused because of our account's configuration: %s %s", code, text)
            return SendResult.failed(ACCOUNT_PROBLEM[code], f"Twilio {code}: {text}", provider_fault=True)
        if status == 429 or code == 20429:
            return SendResult.retry("rate_limited", f"Twilio {code}: {text}", after=retry_after_seconds(self._last_response.headers))
        if status in (401, 403) or code == 20003:
            log.error("Twilio rejected our credentials: %s %s", code, text)
            return SendResult.failed("auth_failed", f"Twilio {code}: {text}", provider_fault=True)
        if status >= 500 or not status:
            after = retry_after_seconds(self._last_response.headers)
            return SendResult.retry(f"http_{status}", f"Twilio {code}: {text}", after=after, provider_fault=True)
        return SendResult.failed(f"twilio_{code or status}", f"Twilio {code}: {text}")
