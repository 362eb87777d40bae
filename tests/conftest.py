import os
import time

import pytest
import redis
from django.conf import settings
from rest_framework.test import APIClient

from notifications.models import ApiKey
from tests.services import BrokerServer, CeleryWorker, subprocess_env

pytest_plugins = ["tests.providers_stack"]

# A test that asks for none of these (directly or through other fixtures) and is not marked
# django_db runs without PostgreSQL, Redis, a broker or a subprocess: it is marked `unit`.
SERVICE_FIXTURES = {
    "django_db_setup", "broker", "simulator", "smtp", "webhook_receiver", "live_server", "asgi_server",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        needs_services = (
            item.get_closest_marker("django_db") or item.get_closest_marker("services")
            or SERVICE_FIXTURES & set(getattr(item, "fixturenames", ()))
        )
        if not needs_services:
            item.add_marker(pytest.mark.unit)


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    server = BrokerServer(int(os.environ["HERALD_TEST_BROKER_PORT"]), tmp_path_factory.mktemp("broker"))
    server.start()
    yield server
    server.stop()


class Workers:
    """The session's Celery workers: one per configuration, at most one running at a time,
    so a test knows exactly which settings processed its messages."""

    def __init__(self, base_env: dict[str, str], tmp_path_factory):
        self.base_env = base_env
        self.tmp_path_factory = tmp_path_factory
        self.workers: dict[str, CeleryWorker] = {}

    def use(self, name: str, extra_env: dict[str, str] | None = None) -> CeleryWorker:
        for other_name, other in self.workers.items():
            if other_name != name:
                other.stop()
        if name not in self.workers:
            env = {**self.base_env, **(extra_env or {})}
            self.workers[name] = CeleryWorker(env, self.tmp_path_factory.mktemp(f"worker-{name}"))
        worker = self.workers[name]
        worker.ensure_running()
        return worker

    def stop_all(self) -> None:
        for worker in self.workers.values():
            worker.stop()


@pytest.fixture(scope="session")
def workers(django_db_setup, django_db_blocker, broker, tmp_path_factory):
    pool = Workers(subprocess_env(application_name="herald-test-worker"), tmp_path_factory)
    yield pool
    pool.stop_all()


@pytest.fixture
def live(workers, broker, transactional_db):
    """An integration test: committed data and a running worker whose providers are the sandbox."""
    if broker.process.poll() is not None:
        broker.start()
    yield workers.use("sandbox")


@pytest.fixture(autouse=True)
def clean_redis(request):
    if request.node.get_closest_marker("unit") is None:
        redis.Redis.from_url(settings.REDIS_URL).flushdb()


@pytest.fixture
def api_key(db):
    return ApiKey.issue("tests")


@pytest.fixture
def api(api_key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key[1]}")
    return client


@pytest.fixture
def no_worker(workers, broker):
    """No worker running: for tests that route and send in-process, which a worker would race."""
    workers.stop_all()


@pytest.fixture
def worker(workers, broker):
    """The running sandbox worker, for tests that stop or kill it."""
    return workers.use("sandbox")


@pytest.fixture(scope="session", autouse=True)
def flush_despite_the_worker():
    """Retry the between-tests TRUNCATE when it deadlocks with the running worker.

    Integration tests share the database with a real worker (and its beat sweeps), whose
    transactions can take table locks in the opposite order to TRUNCATE; PostgreSQL then
    aborts one of them. The worker's side retries by itself; this gives the cleanup the same.
    """
    from django.db import OperationalError
    from django.db.backends.postgresql.operations import DatabaseOperations

    original = DatabaseOperations.execute_sql_flush

    def execute_sql_flush(self, sql_list):
        for attempt in range(5):
            try:
                return original(self, sql_list)
            except OperationalError as exc:
                if "deadlock" not in str(exc) or attempt == 4:
                    raise
                time.sleep(0.1 * (attempt + 1))

    DatabaseOperations.execute_sql_flush = execute_sql_flush
    yield
    DatabaseOperations.execute_sql_flush = original
