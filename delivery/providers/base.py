"""The one interface every provider implements: send a message, say what happened.

A provider never raises for something the provider told it: it returns a SendResult, and
delivery.sending alone decides from that result whether to retry, fail over to the
channel's next provider, fall back to another channel, or stop using an address.
"""

import email.utils
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol

from django.http import HttpRequest

from core.vocabulary import ErrorCode


@dataclass(frozen=True)
class OutgoingMessage:
    delivery_id: str
    channel: str
    to: list[str]  # email address, E.164 number, device tokens, webhook URL, or user id (in-app)
    content: dict  # rendered subject / title / body / html_body
    priority: str
    attempt: int
    notification_id: str = ""
    notification_type: str = ""
    metadata: dict = field(default_factory=dict)
    headers: dict = field(default_factory=dict)  # extra email headers, e.g. List-Unsubscribe
    # Values that differ per person inside the content (their unsubscribe link, their tracking
    # token), by the tag that stands for each: a provider sending one body to many substitutes them.
    personal: dict = field(default_factory=dict)


class Outcome(StrEnum):
    SENT = "sent"
    RETRY = "retry"
    INVALID_RECIPIENT = "invalid_recipient"
    FAILED = "failed"
    # The request went out and no answer came back (a read timeout, a dropped connection):
    # the provider may have sent it. delivery.unknown_outcomes decides what happens next.
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class SendResult:
    outcome: Outcome
    provider_message_id: str = ""
    retry_after: float | None = None  # seconds the provider asked us to wait, if it said
    error_code: str = ""
    error_message: str = ""
    # The provider itself is failing (5xx, timeouts, bad credentials), not this message:
    # counts toward its circuit breaker and sends the message to the channel's next provider.
    provider_fault: bool = False
    # Addresses the provider says are dead (unregistered push tokens); the rest were sent.
    invalid_addresses: tuple[str, ...] = ()

    @classmethod
    def sent(cls, provider_message_id: str, invalid_addresses: tuple[str, ...] = ()) -> "SendResult":
        return cls(Outcome.SENT, provider_message_id=provider_message_id, invalid_addresses=invalid_addresses)

    @classmethod
    def retry(cls, code: str, message: str, after: float | None = None, provider_fault: bool = False) -> "SendResult":
        return cls(Outcome.RETRY, retry_after=after, error_code=code, error_message=message, provider_fault=provider_fault)

    @classmethod
    def invalid_recipient(cls, code: str, message: str, invalid_addresses: tuple[str, ...] = ()) -> "SendResult":
        return cls(Outcome.INVALID_RECIPIENT, error_code=code, error_message=message, invalid_addresses=invalid_addresses)

    @classmethod
    def unknown(cls, code: str, message: str, provider_fault: bool = True) -> "SendResult":
        return cls(Outcome.UNKNOWN, error_code=code, error_message=message, provider_fault=provider_fault)

    @classmethod
    def failed(cls, code: str, message: str, provider_fault: bool = False) -> "SendResult":
        return cls(Outcome.FAILED, error_code=code, error_message=message, provider_fault=provider_fault)


class Provider(Protocol):
    name: str
    # Whether one call overrunning means the provider hangs, so new calls wait for it (delivery/breaker.py);
    # False where each destination is its own (webhooks) or nothing remote is called.
    watch_stalls: bool

    def send(self, message: OutgoingMessage) -> SendResult: ...

    # Optional: a request that sends nothing and shows whether the provider answers, used as the
    # breaker's half-open probe so that no message is risked on a provider that may still hang.
    # def probe(self) -> SendResult: ...


@dataclass(frozen=True)
class ReceiptEffect:
    """What a receipt event does to its delivery."""

    status: str | None = None  # None: recorded for the timeline only
    timestamps: tuple[str, ...] = ()  # fields to stamp with the event's time, e.g. delivered_at
    error_code: str = ""
    error_message: str = ""
    suppress: bool = False  # the address is dead: remember it and fall back to another channel


@dataclass(frozen=True)
class ReceivedEvent:
    """One event from a provider's receipt webhook, before it is matched to a delivery."""

    event: str
    event_key: str  # the provider's id for the event: a resent event is stored once
    delivery_id: str | None  # Herald's id, when the provider echoes it back
    provider_message_id: str
    occurred_at: datetime | None
    payload: dict


@dataclass(frozen=True)
class SignedReceipts:
    """A receipt webhook request whose signature checked out."""

    signed: str  # what the signature covers: a second request carrying it is a replay
    received: int
    events: list[ReceivedEvent]


class ReportsReceipts(Protocol):
    """A provider that posts signed receipts (delivered, opened, bounced) back to Herald."""

    @staticmethod
    def read_receipts(request: HttpRequest) -> SignedReceipts:
        """Verify the request's signature (raising core.errors.ApiError if it fails) and parse its events."""

    @staticmethod
    def receipt_effect(payload: dict) -> ReceiptEffect:
        """What one stored event (its payload as received) does to its delivery."""


def epoch(value) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(value), tz=UTC)
    except (TypeError, ValueError, OverflowError):
        return None


class LookupUnavailable(Exception):
    """The provider could not be asked whether it sent a message."""


def requests_failure(exc: Exception, provider: str) -> SendResult:
    """A `requests` error as a result: nothing sent if the connection never opened, else unknown."""
    import requests

    if isinstance(exc, requests.ConnectTimeout) or (
        isinstance(exc, requests.ConnectionError) and "NewConnectionError" in repr(exc.args)
    ):
        return SendResult.retry(ErrorCode.CONNECTION_ERROR, f"{provider} unreachable: {exc}", provider_fault=True)
    if isinstance(exc, requests.Timeout):
        return SendResult.unknown(ErrorCode.TIMEOUT, f"{provider} took the request but did not answer in time: {exc}")
    return SendResult.unknown(ErrorCode.CONNECTION_LOST, f"The connection to {provider} broke before it answered: {exc}")


def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date), if any."""
    value = (headers or {}).get("Retry-After") or (headers or {}).get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max(email.utils.parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError):
        return None


def merge_push_results(results: list[SendResult]) -> SendResult:
    """One result for a push to several devices (or several platforms' providers).

    Sent if any device took it (dead tokens listed for deactivation); invalid recipient if every
    token was refused; otherwise the worst failure: an unknown outcome may have reached a
    device, so it outranks a plain retry, which outranks a failure.
    """
    dead = tuple(address for r in results for address in r.invalid_addresses)
    sent = [r.provider_message_id for r in results if r.outcome == Outcome.SENT]
    if sent:
        return SendResult.sent(",".join(sent), invalid_addresses=dead)
    if all(r.outcome == Outcome.INVALID_RECIPIENT for r in results):
        return SendResult.invalid_recipient(results[0].error_code, "Every device token was refused.", dead)
    worst = next(r for outcome in (Outcome.UNKNOWN, Outcome.RETRY, Outcome.FAILED) for r in results if r.outcome == outcome)
    return SendResult(**{**worst.__dict__, "invalid_addresses": dead})
