"""The create_api_key command."""

import io

import pytest
from django.core.management import call_command

from notifications.models import ApiKey
from tests.factories import make_recipient


@pytest.mark.django_db
def test_create_api_key_prints_a_working_key_as_its_last_line(client):
    out = io.StringIO()

    call_command("create_api_key", "--name", "ci", "--scopes", "users:read", stdout=out, stderr=io.StringIO())

    raw_key = out.getvalue().strip().splitlines()[-1]
    assert ApiKey.objects.get(name="ci").scopes == ["users:read"]
    make_recipient("a")
    response = client.get("/api/v1/users/a", HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    assert response.status_code == 200
    assert client.get("/api/v1/templates", HTTP_AUTHORIZATION=f"Bearer {raw_key}").status_code == 403
