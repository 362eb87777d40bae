"""Inbox logic without a database: tokens and how delivery content becomes an item."""

import time

import pytest
from django.core import signing

from delivery.providers.base import OutgoingMessage
from inbox.provider import item_fields
from inbox.tokens import SALT, TokenError, issue_token, read_token


def message(**overrides) -> OutgoingMessage:
    fields = dict(
        delivery_id="d1", channel="in_app", to=["u1"], content={"title": "Hi", "body": "Hello Ada"},
        priority="medium", attempt=1, notification_id="n1", notification_type="social", metadata={},
    )
    fields.update(overrides)
    return OutgoingMessage(**fields)


def test_a_token_names_its_recipient_until_it_expires():
    # given
    raw, issued = issue_token(7, "ada", ttl_seconds=60)

    # when
    token = read_token(raw)

    # then
    assert (token.recipient_id, token.user_id) == (7, "ada")
    assert token.expires_at == issued.expires_at
    assert 55 < token.seconds_left() <= 60


def test_an_expired_token_is_refused_as_expired():
    raw, _ = issue_token(7, "ada", ttl_seconds=10, now=time.time() - 11)

    with pytest.raises(TokenError) as refused:
        read_token(raw)

    assert refused.value.code == "token_expired"


@pytest.mark.parametrize("tamper", [
    lambda raw: raw[:-2] + ("AA" if not raw.endswith("AA") else "BB"),
    lambda raw: raw.replace(raw.split(":")[0], signing.dumps({"r": 8, "u": "bob", "exp": time.time() + 60}, salt=SALT).split(":")[0]),
    lambda raw: "",
    lambda raw: "x" * 2000,
])
def test_a_tampered_or_malformed_token_is_refused_as_invalid(tamper):
    raw, _ = issue_token(7, "ada", ttl_seconds=60)

    with pytest.raises(TokenError) as refused:
        read_token(tamper(raw))

    assert refused.value.code == "invalid_token"


def test_a_value_signed_for_another_purpose_is_not_an_inbox_token():
    other = signing.dumps({"r": 7, "u": "ada", "exp": time.time() + 60})

    with pytest.raises(TokenError) as refused:
        read_token(other)

    assert refused.value.code == "invalid_token"


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
