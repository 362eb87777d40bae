"""Which channels a notification goes to, and why the others are skipped."""

from notifications.policy import choose_channels, unreachable_reason

ALL_REACHABLE = dict.fromkeys(["email", "sms", "push", "in_app", "webhook"])


ALL_TEMPLATES = {"email", "sms", "push", "in_app", "webhook"}


def test_reachable_channels_with_templates_are_chosen_in_order():
    chosen, skipped = choose_channels(["sms", "email"], ALL_TEMPLATES, ALL_REACHABLE)
    assert (chosen, skipped) == (["sms", "email"], [])


def test_unreachable_channels_and_missing_templates_are_skipped_with_reasons():
    unreachable = {**ALL_REACHABLE, "push": "no_device"}
    chosen, skipped = choose_channels(["push", "sms", "email"], {"push", "email"}, unreachable)
    assert chosen == ["email"]
    assert skipped == [{"channel": "push", "reason": "no_device"}, {"channel": "sms", "reason": "no_template"}]


def test_reachability_needs_the_matching_contact():
    contact = {"email": "", "phone": "", "webhook_url": "", "active_devices": 0}
    assert unreachable_reason("email", **contact) == "no_email"
    assert unreachable_reason("sms", **contact) == "no_phone"
    assert unreachable_reason("push", **contact) == "no_device"
    assert unreachable_reason("webhook", **contact) == "no_webhook_url"
    assert unreachable_reason("in_app", **contact) is None
    assert unreachable_reason("push", **{**contact, "active_devices": 1}) is None
