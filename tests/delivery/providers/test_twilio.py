"""Twilio's status callbacks, read without a network."""

from delivery.providers.twilio import TwilioProvider


def test_twilio_callbacks_say_what_they_do_to_the_delivery():
    effect = TwilioProvider.receipt_effect
    assert effect({"MessageStatus": "delivered"}).status == "delivered"
    landline = effect({"MessageStatus": "undelivered", "ErrorCode": "30006"})
    assert (landline.status, landline.suppress, landline.error_code) == ("failed", True, "twilio_30006")
    assert effect({"MessageStatus": "failed", "ErrorCode": "30003"}).suppress is False
    assert effect({"MessageStatus": "sent"}).status is None
