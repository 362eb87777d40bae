"""Backoff between attempts."""

from django.test import override_settings

from delivery.outcomes import retry_delay


@override_settings(HERALD_RETRY_BASE_SECONDS=4, HERALD_RETRY_MAX_SECONDS=60)
def test_retry_delay_grows_exponentially_with_bounded_jitter_and_a_cap():
    for attempt, ceiling in [(1, 4), (2, 8), (3, 16), (4, 32), (5, 60), (9, 60)]:
        delays = [retry_delay(attempt) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1  # jittered
