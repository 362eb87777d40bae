from datetime import UTC, datetime

import pytest

from analytics import rollups
from analytics.models import DeliveryRollup
from core.metrics import LATENCY_BUCKETS


def test_a_latency_falls_in_the_first_bucket_whose_bound_holds_it():
    assert rollups.bucket_of(0.05) == 0
    assert rollups.bucket_of(0.06) == 1
    assert rollups.bucket_of(10 ** 6) == len(LATENCY_BUCKETS)


def test_quantiles_interpolate_within_a_bucket_as_prometheus_does():
    buckets = [0] * rollups.BUCKETS
    buckets[rollups.bucket_of(0.3)] = 10  # ten sends between 0.25 and 0.5 s
    assert rollups.quantile(0.5, buckets) == pytest.approx(0.375)
    assert rollups.quantile(0.95, buckets) == pytest.approx(0.4875)
    assert rollups.quantile(0.5, [0] * rollups.BUCKETS) is None


@pytest.mark.django_db
def test_counting_twice_in_one_hour_adds_to_one_row_per_group():
    # given
    at = datetime(2026, 5, 1, 10, 15, tzinfo=UTC)
    email = rollups.Group("email", "sendgrid", "welcome", "transaction", "high", "")

    # when
    rollups.count([(email, "sent", 0.3), (email, "sent", 2.0), (rollups.Group("sms"), "failed", None)], at)
    rollups.count([(email, "delivered", None), (email, "sent", 0.4)], at.replace(minute=59))

    # then
    row = DeliveryRollup.objects.get(channel="email")
    assert (row.hour, row.sent, row.delivered, row.latency_count) == (datetime(2026, 5, 1, 10, tzinfo=UTC), 3, 1, 3)
    assert row.latency_buckets[rollups.bucket_of(0.3)] == 2 and row.latency_buckets[rollups.bucket_of(2.0)] == 1
    assert DeliveryRollup.objects.get(channel="sms").failed == 1
    [day] = rollups.read(datetime(2026, 5, 1, tzinfo=UTC), datetime(2026, 5, 2, tzinfo=UTC), "day", ["channel"])[:1]
    assert day["group"] == {"channel": "email"} and day["events"]["sent"] == 3
