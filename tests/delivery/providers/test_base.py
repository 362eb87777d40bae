"""What every provider shares: Retry-After, and one result for a push to many devices."""

import pytest

from delivery.providers.base import Outcome, SendResult, merge_push_results, retry_after_seconds


@pytest.mark.parametrize(
    ("headers", "expected"), [({"Retry-After": "7"}, 7.0), ({"retry-after": "0"}, 0.0), ({}, None), ({"Retry-After": "soon"}, None)]
)
def test_retry_after_reads_seconds(headers, expected):
    assert retry_after_seconds(headers) == expected


def test_retry_after_reads_an_http_date():
    import time
    from email.utils import formatdate

    assert 8 <= retry_after_seconds({"Retry-After": formatdate(time.time() + 10, usegmt=True)}) <= 10


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
