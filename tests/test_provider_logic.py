"""Pure provider logic: SMS encoding, error classification, Retry-After, push result merging."""

import pytest
from python_http_client import exceptions as http_errors

from delivery import sms_text
from delivery.providers import apns, sendgrid
from delivery.providers.base import Outcome, SendResult, merge_push_results, retry_after_seconds
from delivery.receipts import sendgrid_effect, twilio_effect


def test_plain_ascii_is_gsm7_and_160_characters_fit_one_segment():
    sms = sms_text.prepare("x" * 160)
    assert (sms.encoding, sms.segments, sms.shortened) == ("GSM-7", 1, False)
    assert sms_text.prepare("x" * 161).segments == 2
    assert sms_text.prepare("x" * 306).segments == 2
    assert sms_text.prepare("x" * 307).segments == 3


def test_extended_gsm_characters_cost_two_septets():
    assert sms_text.units("€[]", "GSM-7") == 6
    assert sms_text.prepare("€" * 80).segments == 1
    assert sms_text.prepare("€" * 81).segments == 2


def test_one_non_gsm_character_switches_to_ucs2_with_70_per_segment():
    assert sms_text.prepare("Привет" + "x" * 64).segments == 1
    sms = sms_text.prepare("Привет" + "x" * 65)
    assert (sms.encoding, sms.segments) == ("UCS-2", 2)


def test_lookalike_punctuation_is_replaced_so_it_stays_gsm7():
    sms = sms_text.prepare("It\u2019s\u00a0\u201cready\u201d \u2014 go\u2026")
    assert sms.text == 'It\'s "ready" - go...'
    assert sms.encoding == "GSM-7"


def test_emoji_count_as_two_ucs2_units_and_are_never_split():
    sms = sms_text.prepare("😀" * 200, max_segments=2)
    assert sms.shortened and sms.encoding == "UCS-2"
    assert sms.segments <= 2
    assert sms.text.endswith("\u2026")
    sms.text.encode("utf-16-le")  # no lone surrogate


def test_a_long_body_is_shortened_at_a_word_boundary_within_the_budget():
    sms = sms_text.prepare("word " * 400, max_segments=2)
    assert sms.shortened and sms.segments == 2
    assert sms.text.endswith("word...")


@pytest.mark.parametrize(
    ("headers", "expected"), [({"Retry-After": "7"}, 7.0), ({"retry-after": "0"}, 0.0), ({}, None), ({"Retry-After": "soon"}, None)]
)
def test_retry_after_reads_seconds(headers, expected):
    assert retry_after_seconds(headers) == expected


def test_retry_after_reads_an_http_date():
    import time
    from email.utils import formatdate

    assert 8 <= retry_after_seconds({"Retry-After": formatdate(time.time() + 10, usegmt=True)}) <= 10


def sendgrid_error(cls, status, body=b"", headers=None):
    return cls(status, "reason", body, headers or {})


def test_sendgrid_errors_are_classified():
    assert sendgrid.classify_error(sendgrid_error(http_errors.TooManyRequestsError, 429, headers={"Retry-After": "3"})).retry_after == 3
    down = sendgrid.classify_error(sendgrid_error(http_errors.ServiceUnavailableError, 503, b"<html>"))
    assert (down.outcome, down.provider_fault) == (Outcome.RETRY, True)
    auth = sendgrid.classify_error(sendgrid_error(http_errors.UnauthorizedError, 401))
    assert (auth.outcome, auth.error_code, auth.provider_fault) == (Outcome.FAILED, "auth_failed", True)
    bad_address = sendgrid.classify_error(sendgrid_error(
        http_errors.BadRequestsError, 400,
        b'{"errors":[{"message":"Does not contain a valid address.","field":"personalizations.0.to.0.email"}]}',
    ))
    assert bad_address.outcome == Outcome.INVALID_RECIPIENT
    bad_message = sendgrid.classify_error(sendgrid_error(http_errors.PayloadTooLargeError, 413))
    assert (bad_message.outcome, bad_message.provider_fault) == (Outcome.FAILED, False)


def test_apns_reasons_are_classified():
    assert apns.classify("429", "TooManyRequests").outcome == Outcome.RETRY
    assert apns.classify("503", "ServiceUnavailable").provider_fault
    assert apns.classify("403", "InvalidProviderToken").error_code == "auth_failed"
    assert apns.classify("403", "ExpiredProviderToken").outcome == Outcome.RETRY
    assert apns.classify("413", "PayloadTooLarge").outcome == Outcome.FAILED


def test_push_results_merge_to_sent_if_any_device_got_it():
    merged = merge_push_results([
        SendResult.sent("a"), SendResult.invalid_recipient("unregistered", "x", ("dead",)),
    ])
    assert merged.outcome == Outcome.SENT
    assert merged.invalid_addresses == ("dead",)


def test_push_results_merge_to_invalid_only_when_every_platform_refused():
    merged = merge_push_results([
        SendResult.invalid_recipient("unregistered", "x", ("a",)), SendResult.invalid_recipient("unregistered", "y", ("b",)),
    ])
    assert merged.outcome == Outcome.INVALID_RECIPIENT
    assert merged.invalid_addresses == ("a", "b")
    assert merge_push_results([SendResult.invalid_recipient("u", "x", ("a",)), SendResult.retry("http_503", "y")]).outcome == Outcome.RETRY


def test_receipt_effects():
    assert sendgrid_effect({"event": "delivered"}).status == "delivered"
    assert sendgrid_effect({"event": "open"}).status == "read"
    hard = sendgrid_effect({"event": "bounce", "type": "bounce", "reason": "550 no such user"})
    assert (hard.status, hard.suppress) == ("bounced", True)
    assert sendgrid_effect({"event": "bounce", "type": "blocked"}).status is None
    assert sendgrid_effect({"event": "deferred"}).status is None
    assert twilio_effect({"MessageStatus": "delivered"}).status == "delivered"
    landline = twilio_effect({"MessageStatus": "undelivered", "ErrorCode": "30006"})
    assert (landline.status, landline.suppress, landline.error_code) == ("failed", True, "twilio_30006")
    assert twilio_effect({"MessageStatus": "failed", "ErrorCode": "30003"}).suppress is False
    assert twilio_effect({"MessageStatus": "sent"}).status is None


@pytest.mark.parametrize("url, reason", [
    ("http://127.0.0.1:8000/hook", "non-public"),
    ("http://169.254.169.254/latest/meta-data", "non-public"),
    ("http://10.1.2.3/x", "non-public"),
    ("http://[::1]/x", "non-public"),
    ("http://[::ffff:127.0.0.1]/x", "non-public"),
    ("http://0.0.0.0/x", "non-public"),
    ("file:///etc/passwd", r"http\(s\)"),
])
def test_webhooks_to_this_network_are_refused_unless_allowed(url, reason):
    from core.network import UnsafeDestination, resolve

    with pytest.raises(UnsafeDestination, match=reason):
        resolve(url)
    if reason == "non-public":
        assert resolve(url, allow_private=True).addresses
