import pytest
from rest_framework.test import APIClient

from analytics import rollups
from notifications.models import ApiKey


@pytest.fixture
def reader(db):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {ApiKey.issue('analytics', ['analytics:read'])[1]}")
    return client


@pytest.mark.parametrize(("query", "field"), [
    ({"interval": "week"}, "interval"),
    ({"group_by": "channel,recipient"}, "group_by"),
    ({"group_by": "channel,channel"}, "group_by"),
    ({"from": "yesterday"}, "from"),
    ({"from": "2026-05-02T00:00:00Z", "to": "2026-05-01T00:00:00Z"}, "from"),
    ({"from": "2025-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z", "interval": "day"}, "from"),
    ({"from": "2026-01-01T00:00:00Z", "to": "2026-03-01T00:00:00Z"}, "interval"),
    ({"limit": "5"}, "limit"),
])
def test_a_bad_query_is_a_400_naming_its_field(reader, query, field):
    response = reader.get("/api/v1/analytics/deliveries", query)

    assert response.status_code == 400
    assert response.json()["error"]["field"] == field


def test_reading_analytics_needs_its_scope(db):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {ApiKey.issue('other', ['notifications:read'])[1]}")

    assert client.get("/api/v1/analytics/deliveries").status_code == 403


def test_totals_per_group_come_from_the_rollups(reader):
    from django.utils import timezone

    now = timezone.now()
    rollups.count([(rollups.Group("email", template="welcome"), "sent", 0.2), (rollups.Group("email", template="welcome"), "clicked", None),
                   (rollups.Group("sms", template="code"), "sent", 0.7)], now)

    body = reader.get("/api/v1/analytics/deliveries", {"group_by": "channel", "interval": "day"}).json()

    totals = {t["group"]["channel"]: t for t in body["totals"]}
    assert totals["email"]["sent"] == 1 and totals["email"]["clicked"] == 1 and totals["sms"]["sent"] == 1
    assert 0.1 < totals["email"]["latency_p50_seconds"] <= 0.25
