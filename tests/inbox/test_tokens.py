"""Inbox tokens: who they name, until when, and what they refuse."""

import time

import pytest
from django.core import signing

from inbox.tokens import SALT, TokenError, issue_token, read_token


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
