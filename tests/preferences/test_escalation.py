"""Escalation steps as ops and senders write them: what is refused, and by which field."""

import pytest

from preferences.escalation import Step, parse, problems
from preferences.models import CategorySetting


def test_good_steps_parse_with_not_read_as_the_default_condition():
    assert parse([{"channels": ["sms"], "wait_seconds": 300}, {"channels": ["email"], "wait_seconds": 0, "if": "not_delivered"}]) == (
        Step(("sms",), 300, "not_read"), Step(("email",), 0, "not_delivered"))
    assert problems([]) == []


@pytest.mark.parametrize(("steps", "field"), [
    ({"channels": ["sms"]}, ""),
    ([{"channels": [], "wait_seconds": 1}], "0.channels"),
    ([{"channels": ["sms", "sms"], "wait_seconds": 1}], "0.channels"),
    ([{"channels": ["fax"], "wait_seconds": 1}], "0.channels"),
    ([{"channels": ["sms"], "wait_seconds": -1}], "0.wait_seconds"),
    ([{"channels": ["sms"], "wait_seconds": True}], "0.wait_seconds"),
    ([{"channels": ["sms"], "wait_seconds": 7 * 86400 + 1}], "0.wait_seconds"),
    ([{"channels": ["sms"], "wait_seconds": 1}, {"channels": ["email"], "wait_seconds": 1, "if": "unread"}], "1.if"),
    ([{"channels": ["sms"], "wait_seconds": 1}] * 11, ""),
    ([{"channels": ["sms"], "wait_seconds": 1, "if": ["not_read"]}], "0.if"),
])
def test_steps_that_cannot_run_are_named(steps, field):
    assert problems(steps)[0][0] == field


def test_a_channel_the_template_lacks_is_named_when_the_template_is_known():
    assert problems([{"channels": ["sms"], "wait_seconds": 1}], {"push", "email"}) == [
        ("0.channels", "The template has no sms variant.")]


@pytest.mark.django_db
def test_ops_cannot_save_a_category_escalation_that_cannot_run(admin_client):
    setting, _ = CategorySetting.objects.update_or_create(category="security", defaults={"required": True})
    form = {"category": "security", "channels": ["push"], "quiet_hours_held_channels": ["push"], "required": "on",
            "dedup_window_seconds": "3600", "batch_window_seconds": "0", "default_send_hour": "10"}

    bad = admin_client.post(f"/admin/preferences/categorysetting/{setting.pk}/change/",
                            {**form, "escalation": '[{"channels": ["sms"], "wait_seconds": 999999999}]'})
    good = admin_client.post(f"/admin/preferences/categorysetting/{setting.pk}/change/",
                             {**form, "escalation": '[{"channels": ["sms"], "wait_seconds": 300, "if": "not_read"}]'})

    assert bad.status_code == 200 and "wait_seconds" in bad.content.decode()
    assert good.status_code == 302, good.content.decode()[:3000]
    assert CategorySetting.objects.get(pk=setting.pk).escalation == [{"channels": ["sms"], "wait_seconds": 300, "if": "not_read"}]
