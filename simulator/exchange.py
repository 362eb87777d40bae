"""What passes between a transport (HTTP/1.1 or HTTP/2) and a simulated provider API."""

import json
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qs

# Served when a fault asks for a 2xx the SDK cannot parse: what a misbehaving proxy sends.
GARBAGE_BODY = b"<html><body><h1>200 OK</h1><p>upstream sent something unexpected</p></body></html>"


@dataclass(frozen=True)
class Incoming:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    route: dict[str, str] = field(default_factory=dict)  # parameters captured from the path
    query: dict[str, str] = field(default_factory=dict)  # the query string (last value of a repeated name)


@dataclass(frozen=True)
class Parsed:
    body: Any  # JSON or form data as a dict, or the raw text when it does not parse
    recipients: list[str]  # email addresses, phone numbers or device tokens the request is for
    extra: dict = field(default_factory=dict)  # more to record, e.g. a decoded JWT


@dataclass
class Reply:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    error: str | None = None  # the provider's error code or reason, for the recording
    message_id: str | None = None
    receipts: Any = None  # a receipt job to run after a successful send


class ProviderApi(Protocol):
    name: str

    def parse(self, incoming: Incoming) -> Parsed: ...

    def handle(self, incoming: Incoming, parsed: Parsed) -> Reply: ...

    def resolve_fault(self, status: int | None, error: str | None,
                      retry_after: float | None) -> tuple[int | None, str | None]: ...

    def fault_reply(self, incoming: Incoming, status: int, error: str | None,
                    retry_after: float | None) -> Reply: ...

    def rate_limited_reply(self, incoming: Incoming, per_second: float, wait: float) -> Reply: ...

    def malformed_reply(self, incoming: Incoming, status: int | None) -> Reply: ...


def json_reply(status: int, payload: Any, headers: dict[str, str] | None = None, **fields) -> Reply:
    all_headers = {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
    return Reply(status, all_headers, json.dumps(payload).encode(), **fields)


def garbage_reply(status: int, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, {"Content-Type": "text/html", **(headers or {})}, GARBAGE_BODY, error="malformed")


def parse_json(raw: bytes) -> Any:
    """The JSON value of a body, or its text when it is not JSON."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def parse_form(raw: bytes) -> dict:
    """A form-encoded body as a dict; only MediaUrl may repeat, as in Twilio's API."""
    fields = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
    return {name: values if name == "MediaUrl" and len(values) > 1 else values[0]
            for name, values in fields.items()}
