"""How delivery content becomes an inbox item."""

import pytest

from delivery.providers.base import OutgoingMessage
from inbox.provider import item_fields


def message(**overrides) -> OutgoingMessage:
    fields = dict(
        delivery_id="d1", channel="in_app", to=["u1"], content={"title": "Hi", "body": "Hello Ada"},
        priority="medium", attempt=1, notification_id="n1", notification_type="social", metadata={},
    )
    fields.update(overrides)
    return OutgoingMessage(**fields)


def test_an_item_takes_its_text_from_the_template_and_its_look_from_metadata():
    fields = item_fields(message(metadata={
        "icon": "https://cdn.example.com/i.png", "image": "https://cdn.example.com/big.png",
        "action_url": "/orders/42", "group_key": "orders:42", "sandbox": {"ignored": True},
    }))

    assert fields == {
        "title": "Hi", "body": "Hello Ada", "category": "social",
        "icon": "https://cdn.example.com/i.png", "image": "https://cdn.example.com/big.png",
        "action_url": "/orders/42", "group_key": "orders:42",
    }


@pytest.mark.parametrize("action_url", ["javascript:alert(1)", "data:text/html,<b>x</b>", "//evil.example.com/x", 42, "ftp://x/y"])
def test_an_action_url_that_could_run_script_or_leave_the_site_oddly_is_left_out(action_url):
    fields = item_fields(message(metadata={"action_url": action_url, "icon": "javascript:alert(1)"}))

    assert fields["action_url"] == ""
    assert fields["icon"] == ""


def test_an_email_style_subject_serves_as_title_when_there_is_no_title():
    fields = item_fields(message(content={"subject": "Your order", "body": "Shipped"}))

    assert (fields["title"], fields["body"]) == ("Your order", "Shipped")
