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
