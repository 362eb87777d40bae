"""API keys: a web process trusts a key it checked for a few seconds, and never longer."""

import time

import pytest
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from notifications.models import ApiKey
from tests.factories import make_recipient, make_templates, notification_body


@pytest.fixture
def ready(transactional_db):
    make_templates()
    make_recipient("u1")


def client_for(raw_key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return client


def post(client):
    return client.post("/api/v1/notifications", notification_body(), format="json")


@override_settings(HERALD_API_KEY_CACHE_SECONDS=0.5)
def test_a_revoked_key_stops_working_within_the_cache_period(ready, broker):
    # given a key that was just used, so this process trusts it
    key, raw = ApiKey.issue("soon revoked")
    client = client_for(raw)
    assert post(client).status_code == 202

    # when it is revoked
    key.revoked_at = timezone.now()
    key.save()

    # then within the cache period it is refused
    deadline = time.monotonic() + 5
    while post(client).status_code == 202:
        assert time.monotonic() < deadline, "a revoked key was still accepted after the cache period"
        time.sleep(0.05)
    assert post(client).json()["error"]["code"] == "unauthorized"


def test_a_key_deleted_while_trusted_is_a_401_not_a_500(ready, broker):
    # given a trusted key
    key, raw = ApiKey.issue("soon deleted")
    client = client_for(raw)
    assert post(client).status_code == 202

    # when its row is deleted (not revoked) and it is used at once
    key.delete()
    response = post(client)

    # then the insert's foreign key is caught: 401, and the key is forgotten
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert post(client).status_code == 401


def guess_from(address: str, raw_key: str):
    return APIClient().get("/api/v1/templates", HTTP_AUTHORIZATION=f"Bearer {raw_key}", REMOTE_ADDR=address)


@override_settings(HERALD_AUTH_FAILURE_LIMIT=5, HERALD_API_KEY_CACHE_SECONDS=0)
def test_a_valid_key_authenticates_from_an_address_that_strangers_have_locked_out(api_key):
    # given a stranger behind the customer's NAT who has used up the address's failures
    guesses = [guess_from("198.51.100.7", f"hk_guess-{i}").status_code for i in range(7)]
    assert guesses == [401] * 5 + [429] * 2

    # when the customer's backend calls from the same address with its valid key (not cached in this process)
    response = guess_from("198.51.100.7", api_key[1])

    # then it is served
    assert response.status_code == 200, response.content


@override_settings(HERALD_AUTH_FAILURE_LIMIT=5)
def test_an_invalid_key_over_the_limit_gets_429_with_retry_after_and_other_addresses_do_not(api_key):
    for i in range(5):
        assert guess_from("198.51.100.7", f"hk_guess-{i}").status_code == 401

    blocked = guess_from("198.51.100.7", "hk_guess-again")
    elsewhere = guess_from("203.0.113.9", "hk_guess-again")

    assert blocked.status_code == 429 and int(blocked["Retry-After"]) > 0
    assert blocked.json()["error"]["code"] == "throttled"
    assert elsewhere.status_code == 401


@override_settings(HERALD_AUTH_FAILURE_LIMIT=2)
def test_a_revoked_key_counts_as_a_failure_and_is_throttled_like_one(api_key):
    key, raw = ApiKey.issue("revoked")
    key.revoked_at = timezone.now()
    key.save()

    answers = [guess_from("198.51.100.7", raw).status_code for _ in range(3)]

    assert answers == [401, 401, 429]
