"""APNs' refusal reasons."""

from delivery.providers import apns
from delivery.providers.base import Outcome


def test_apns_reasons_are_classified():
    assert apns.classify("429", "TooManyRequests").outcome == Outcome.RETRY
    assert apns.classify("503", "ServiceUnavailable").provider_fault
    assert apns.classify("403", "InvalidProviderToken").error_code == "auth_failed"
    assert apns.classify("403", "ExpiredProviderToken").outcome == Outcome.RETRY
    assert apns.classify("413", "PayloadTooLarge").outcome == Outcome.FAILED
