from core import metrics


def test_a_label_outside_its_set_is_recorded_as_other():
    assert metrics.closed("sms", metrics.CHANNELS) == "sms"
    assert metrics.closed("person@example.com", metrics.CHANNELS) == "other"


def test_provider_error_detail_is_labelled_by_its_class_and_herald_codes_as_they_are():
    assert metrics.error_label("rate_limited") == "rate_limited"
    assert metrics.error_label("http_503") == "http_5xx"
    assert metrics.error_label("smtp_550") == "smtp_5xx"
    assert metrics.error_label("twilio_30005") == "other"
    assert metrics.error_label("") == ""


def test_push_providers_named_together_keep_their_label_and_unknown_ones_do_not():
    assert metrics.provider_label("apns,fcm") == "apns,fcm"
    assert metrics.provider_label("evil.example.com") == "other"


def test_a_lane_is_its_channel_and_urgency():
    assert metrics.lane_of("sms", "critical") == "sms.urgent"
    assert metrics.lane_of("email", "low") == "email.bulk"
