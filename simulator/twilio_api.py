"""Twilio Programmable Messaging: POST /2010-04-01/Accounts/{AccountSid}/Messages.json to send, and
GET on the same path to list the messages sent (newest first, filtered by To, From and DateSent)."""

import base64
import binascii
import math
import re
import secrets
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email.utils import formatdate
from urllib.parse import urlencode, urlsplit

from simulator.exchange import Incoming, Parsed, Reply, garbage_reply, json_reply, parse_form

API_VERSION = "2010-04-01"
MAX_BODY = 1600
MESSAGE_LIMIT = 10_000  # accepted messages kept for the list API; the oldest go first
PAGE_SIZE, MAX_PAGE_SIZE = 50, 1000
POOL_NUMBER = "+15005550006"  # the sender Twilio reports when a Messaging Service picked one
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
ALPHANUMERIC_SENDER = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$")
SHORT_CODE = re.compile(r"^\d{5,6}$")

# Rejected by the API, like Twilio's test credentials' magic numbers.
MAGIC_REJECTIONS = {
    "+15005550001": 21211,
    "+15005550009": 21614,
    "+15005550004": 21610,
}
# Accepted, then reported failed in the status callback with this ErrorCode.
MAGIC_UNDELIVERED = {
    "+15005550030": 30003,
    "+15005550035": 30005,
    "+15005550036": 30006,
    "+15005550037": 30007,
}

MESSAGES = {
    20001: "Invalid {field}",
    20003: "Authenticate",
    20404: "The requested resource was not found",
    20429: "Too Many Requests",
    20500: "An internal server error has occurred",
    20503: "Service is unavailable. Please try again",
    21211: "The 'To' number {to} is not a valid phone number.",
    21212: "The 'From' number {sender} is not a valid phone number, shortcode, or alphanumeric sender ID.",
    21602: "Message body is required.",
    21603: "A 'From' phone number is required.",
    21604: "A 'To' phone number is required.",
    21609: "Invalid StatusCallback url",
    21610: "Attempt to send to unsubscribed recipient",
    21614: "'To' number is not a valid mobile number",
    21617: "The concatenated message body exceeds the 1600 character limit.",
}
STATUS_BY_CODE = {20003: 401, 20404: 404, 20429: 429, 20500: 500, 20503: 503}
CODE_BY_STATUS = {400: 21211, 401: 20003}  # otherwise Twilio's generic codes are 20000 + the status

GSM7_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
GSM7_EXTENSION = set("^{}\\[~]|€\f")  # each takes an escape septet as well


@dataclass(frozen=True)
class TwilioReceipts:
    """The status callbacks one accepted message will get."""
    callback_url: str
    params: dict[str, str]
    statuses: list[tuple[str, int | None]]  # (MessageStatus, ErrorCode)


class TwilioApi:
    name = "twilio"

    def __init__(self):
        # (accepted at, epoch seconds; the message resource as listed): what the list API shows.
        self._messages: deque[tuple[float, dict]] = deque(maxlen=MESSAGE_LIMIT)

    def parse(self, incoming: Incoming) -> Parsed:
        form = parse_form(incoming.body)
        to = form.get("To")
        return Parsed(form, [to] if isinstance(to, str) and to else [])

    def handle(self, incoming: Incoming, parsed: Parsed) -> Reply:
        account_sid = incoming.route["account"]
        if not _authenticated(incoming.headers.get("authorization", ""), account_sid):
            return _error(401, 20003)
        form = parsed.body
        to, sender = form.get("To", ""), form.get("From", "")
        service_sid, body = form.get("MessagingServiceSid", ""), form.get("Body", "")
        callback = form.get("StatusCallback", "")
        if not to:
            return _error(400, 21604)
        if not sender and not service_sid:
            return _error(400, 21603)
        if not body and not form.get("MediaUrl") and not form.get("ContentSid"):
            return _error(400, 21602)
        if len(body) > MAX_BODY:
            return _error(400, 21617)
        number = _without_channel(to)
        if not E164.match(number):
            return _error(400, 21211, to=to)
        if sender and not _valid_sender(_without_channel(sender)):
            return _error(400, 21212, sender=sender)
        if callback and urlsplit(callback).scheme not in ("http", "https"):
            return _error(400, 21609)
        if number in MAGIC_REJECTIONS:
            return _error(400, MAGIC_REJECTIONS[number], to=to)
        sid = "SM" + secrets.token_hex(16)
        resource = _message_resource(sid, account_sid, to, sender, service_sid, body, form)
        receipts = None
        if callback:
            error_code = MAGIC_UNDELIVERED.get(number)
            final = ("undelivered", error_code) if error_code else ("delivered", None)
            params = {"AccountSid": account_sid, "ApiVersion": API_VERSION, "From": sender or POOL_NUMBER,
                      "MessageSid": sid, "SmsSid": sid, "To": to}
            if service_sid:
                params["MessagingServiceSid"] = service_sid
            receipts = TwilioReceipts(callback, params, [("sent", None), final])
        self._messages.append((time.time(), _as_listed(resource, MAGIC_UNDELIVERED.get(number))))
        return json_reply(201, resource, {"Twilio-Request-Id": "RQ" + secrets.token_hex(16)},
                          message_id=sid, receipts=receipts)

    def list_messages(self, incoming: Incoming) -> Reply:
        """GET Messages.json: this account's accepted messages, newest first, one page at a time."""
        account_sid = incoming.route["account"]
        if not _authenticated(incoming.headers.get("authorization", ""), account_sid):
            return _error(401, 20003)
        query = incoming.query
        try:
            page = int(query.get("Page", "0"))
            size = min(int(query.get("PageSize", str(PAGE_SIZE))), MAX_PAGE_SIZE)
        except ValueError:
            return _error(400, 20001, field="Page or PageSize")
        if page < 0 or size < 1:
            return _error(400, 20001, field="Page or PageSize")
        checks = []
        for name in ("DateSent", "DateSent>", "DateSent<"):
            if query.get(name):
                try:
                    checks.append(_date_sent_check(name, query[name]))
                except ValueError:
                    return _error(400, 20001, field=name)
        wanted = {"account_sid": account_sid, **{field: query[name] for name, field in (("To", "to"), ("From", "from"))
                                                 if query.get(name)}}
        found = [
            message for accepted_at, message in reversed(self._messages)
            if all(message[field] == value for field, value in wanted.items())
            and all(check(datetime.fromtimestamp(int(accepted_at), UTC)) for check in checks)
        ]
        uri = f"/{API_VERSION}/Accounts/{account_sid}/Messages.json"
        filters = {name: value for name, value in query.items() if name not in ("Page", "PageSize", "PageToken")}

        def page_uri(number: int) -> str:
            return f"{uri}?{urlencode({**filters, 'PageSize': size, 'Page': number})}"

        start = page * size
        return json_reply(200, {
            "messages": found[start:start + size],
            "page": page, "page_size": size, "start": start, "end": start + max(len(found[start:start + size]) - 1, 0),
            "uri": page_uri(page), "first_page_uri": page_uri(0),
            "next_page_uri": page_uri(page + 1) if start + size < len(found) else None,
            "previous_page_uri": page_uri(page - 1) if page > 0 else None,
        })

    def forget_messages(self) -> None:
        self._messages.clear()

    def resolve_fault(self, status, error, retry_after):
        code = None
        if error is not None:
            try:
                code = int(error)
            except (TypeError, ValueError):
                raise ValueError(f"a Twilio error is a numeric code such as 21211, not {error!r}") from None
        if status is None:
            if code is None:
                raise ValueError("a Twilio fault needs a status or an error code")
            status = STATUS_BY_CODE.get(code, 400)
        if code is None:
            code = CODE_BY_STATUS.get(status, 20000 + status)
        return status, str(code)

    def fault_reply(self, incoming, status, error, retry_after):
        to = self.parse(incoming).recipients
        headers = {} if retry_after is None else {"Retry-After": str(math.ceil(retry_after))}
        return _error(status, int(error), headers, to=to[0] if to else "")

    def rate_limited_reply(self, incoming, per_second, wait):
        return _error(429, 20429)

    def malformed_reply(self, incoming, status):
        return garbage_reply(status or 201)


def count_segments(body: str) -> int:
    """SMS segments: GSM-7 160 septets (153 when concatenated), else UCS-2 70 units (67 when concatenated)."""
    if all(char in GSM7_BASIC or char in GSM7_EXTENSION for char in body):
        sizes = [2 if char in GSM7_EXTENSION else 1 for char in body]
        single, part = 160, 153
    else:
        # UTF-16 code units; a character outside the BMP takes a surrogate pair.
        sizes = [2 if ord(char) > 0xFFFF else 1 for char in body]
        single, part = 70, 67
    if sum(sizes) <= single:
        return 1
    segments, used = 1, 0
    for size in sizes:  # an escape sequence or surrogate pair is never split across segments
        if used + size > part:
            segments, used = segments + 1, 0
        used += size
    return segments


def _message_resource(sid, account_sid, to, sender, service_sid, body, form) -> dict:
    now = formatdate(usegmt=False).replace("-0000", "+0000")
    uri = f"/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}.json"
    media = form.get("MediaUrl")
    num_media = len(media) if isinstance(media, list) else int(bool(media))
    return {
        "account_sid": account_sid,
        "api_version": API_VERSION,
        "body": body,
        "date_created": now,
        "date_sent": None,
        "date_updated": now,
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": sender or None,
        "messaging_service_sid": service_sid or None,
        "num_media": str(num_media),
        "num_segments": str(count_segments(body)),
        "price": None,
        "price_unit": "USD",
        "sid": sid,
        # A Messaging Service send is "accepted" until the service picks a sender, as on Twilio.
        "status": "queued" if sender else "accepted",
        "subresource_uris": {"media": uri.replace(".json", "/Media.json")},
        "to": to,
        "uri": uri,
    }


def _as_listed(resource: dict, error_code: int | None) -> dict:
    """The message as the list API shows it once it went out: sent, then delivered or undelivered."""
    return {**resource, "from": resource["from"] or POOL_NUMBER, "date_sent": resource["date_created"],
            "status": "undelivered" if error_code else "delivered", "error_code": error_code,
            "error_message": "Message Delivery - Undeliverable" if error_code else None}


def _date_sent_check(name: str, value: str):
    """A test on a message's send time for DateSent (same day, or that second), DateSent> (on or after) or
    DateSent< (on or before). Takes YYYY-MM-DD or the SDK's YYYY-MM-DDTHH:MM:SSZ (UTC)."""
    if "T" in value:
        moment = datetime.strptime(value.rstrip("Z"), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
        start, end = moment, moment + timedelta(seconds=1)
    else:
        start = datetime.combine(date.fromisoformat(value), datetime.min.time(), UTC)
        end = start + timedelta(days=1)
    if name == "DateSent>":
        return lambda sent: sent >= start
    if name == "DateSent<":
        return lambda sent: sent < end
    return lambda sent: start <= sent < end


def _error(status: int, code: int, headers: dict | None = None, **values) -> Reply:
    template = MESSAGES.get(code, "Error")
    try:
        message = template.format(**values)
    except KeyError:
        message = template
    payload = {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}",
               "status": status}
    return json_reply(status, payload, headers, error=str(code))


def _authenticated(authorization: str, account_sid: str) -> bool:
    if not authorization.startswith("Basic "):
        return False
    try:
        username, _, password = base64.b64decode(authorization[6:]).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    return bool(password) and (username == account_sid or username.startswith("SK"))


def _without_channel(address: str) -> str:
    return address.split(":", 1)[1] if address.startswith(("whatsapp:", "messenger:")) else address


def _valid_sender(sender: str) -> bool:
    return bool(E164.match(sender) or SHORT_CODE.match(sender) or ALPHANUMERIC_SENDER.match(sender))
