"""The worker's prefetch accounting survives acks that cannot reach the broker (see config/celery.py)."""

from contextlib import contextmanager

import pytest
import redis
from kombu.transport import redis as kombu_redis

import config.celery  # noqa: F401  (installs the fix)


class UnreachableBroker:
    """Just enough of a kombu Redis channel for its QoS, with every Redis call failing."""

    unacked_key = "unacked"
    unacked_index_key = "unacked_index"
    do_restore = False

    @contextmanager
    def conn_or_acquire(self, client=None):
        raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
        yield


@pytest.fixture
def full_qos():
    qos = kombu_redis.QoS(UnreachableBroker(), prefetch_count=1)
    qos._delivered["tag-1"] = object()
    assert not qos.can_consume()
    return qos


def test_a_failed_ack_still_frees_the_prefetch_slot(full_qos):
    with pytest.raises(redis.ConnectionError):
        full_qos.ack("tag-1")

    assert full_qos.can_consume()


@pytest.mark.parametrize("requeue", [False, True])
def test_a_failed_reject_still_frees_the_prefetch_slot(full_qos, requeue):
    with pytest.raises(redis.ConnectionError):
        full_qos.reject("tag-1", requeue=requeue)

    assert full_qos.can_consume()
