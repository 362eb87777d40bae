"""Which claimers are alive, against real Redis."""

import time

import pytest
import redis
from django.conf import settings

from core import claimers, redis_client

pytestmark = pytest.mark.services


@pytest.fixture(autouse=True)
def quick_clocks(settings):
    settings.HERALD_CLAIMER_TTL_SECONDS = 0.3
    settings.HERALD_CLAIMER_INTERVAL_SECONDS = 0.1


def keys_kept_for_a_while() -> None:
    redis_client.shared().set(claimers.KEPT_SINCE, time.time() - 60)


def test_a_claimer_whose_key_expired_is_dead_and_a_fresh_one_is_not():
    keys_kept_for_a_while()
    redis_client.shared().set("herald:claimer:alive-one", 1, px=10_000)

    assert claimers.dead_among({"alive-one", "gone-one", ""}) == ["gone-one"]


def test_this_process_is_never_dead_to_itself():
    keys_kept_for_a_while()
    me = claimers.this_process()
    redis_client.shared().delete(f"herald:claimer:{me}")

    assert claimers.dead_among({me}) == []


def test_right_after_redis_lost_its_keys_nobody_is_dead():
    redis.Redis.from_url(settings.REDIS_URL).flushdb()  # a restart without persistence

    assert claimers.dead_among({"gone-one"}) == []
    redis_client.shared().set(claimers.KEPT_SINCE, time.time() - 1)  # the live ones have re-registered since
    assert claimers.dead_among({"gone-one"}) == ["gone-one"]
