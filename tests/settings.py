"""Settings for the test run: production settings with short clocks and an isolated broker.

The pytest process and the Celery worker subprocess both load this module, so they agree
on every timing below.
"""

import os
import socket
from urllib.parse import urlsplit


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _with_db_index(url: str, index: int) -> str:
    return urlsplit(url)._replace(path=f"/{index}").geturl()


# The broker is a redis-server of the test session's own (tests/services.py), so a test can
# stop it to cause a real broker outage, and a running `make run` worker never takes test tasks.
os.environ.setdefault("HERALD_TEST_BROKER_PORT", str(_free_port()))
# A worker a test starts on another broker (tests/scenarios/test_rabbitmq.py) names it in HERALD_TEST_CELERY_BROKER_URL.
os.environ["CELERY_BROKER_URL"] = os.environ.get("HERALD_TEST_CELERY_BROKER_URL") or f"redis://127.0.0.1:{os.environ['HERALD_TEST_BROKER_PORT']}/0"
# Tests flush their Redis database, so they never use the one `make run` keeps its data in.
if os.environ.get("REDIS_URL"):
    os.environ["REDIS_URL"] = _with_db_index(os.environ["REDIS_URL"], int(os.environ.get("HERALD_TEST_REDIS_DB", 9)))

for name, value in {
    "HERALD_MAX_ATTEMPTS": "4",
    "HERALD_TTL_SECONDS": "reminder=12",
    "HERALD_RETRY_BASE_SECONDS": "0.2",
    "HERALD_RETRY_MAX_SECONDS": "2",
    "HERALD_TASK_TIME_LIMIT": "12",
    "HERALD_ATTEMPT_BUDGET_SECONDS": "10",
    # Short enough for the worker-killed test to finish soon, long enough that a slow attempt
    # on a loaded CI machine is never mistaken for a dead worker.
    "HERALD_DELIVERY_LEASE_SECONDS": "15",
    "HERALD_STALL_SECONDS": "3",
    "HERALD_OUTBOX_GRACE_SECONDS": "1",
    "HERALD_RELAY_INTERVAL": "0.5",
    "HERALD_DISPATCH_INTERVAL": "0.5",
    "HERALD_RELEASE_INTERVAL": "0.5",
    "HERALD_FAN_OUT_RESUME_INTERVAL": "1",
    "HERALD_FAN_OUT_STALL_SECONDS": "3",
    "HERALD_VISIBILITY_TIMEOUT": "60",
    "HERALD_BEAT_SCHEDULER": "celery.beat:PersistentScheduler",
    "HERALD_RENDER_TIME_LIMIT_SECONDS": "1",
    # Production bounds are 0.5 s (Redis) and 0.1 s (publish); CI runs everything on two
    # shared cores, where a healthy call can take longer than that. The stall tests still
    # show that a stalled server costs a request about this much and no more.
    "HERALD_REDIS_TIMEOUT_SECONDS": "1",
    "HERALD_PUBLISH_TIMEOUT_SECONDS": "0.5",
    "DJANGO_SECRET_KEY": "test-secret-key-not-for-production",
}.items():
    os.environ.setdefault(name, value)

from config.settings import *  # noqa: E402,F403
