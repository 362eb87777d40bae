"""With PostgreSQL away, the production web server refuses at once and takes requests again when it returns."""

import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import psycopg
import pytest
import requests
from django.conf import settings
from django.db import connection

from tests.factories import make_recipient, make_templates, notification_body
from tests.scenarios.test_faults import free_port
from tests.services import ROOT, port_open, stop_process_group, subprocess_env, wait_for

APP = "herald-test-web"


@pytest.fixture
def gunicorn(transactional_db, api_key):
    """The production web command, two sync workers, on the test database."""
    import subprocess

    port = free_port()
    env = subprocess_env(application_name=APP, PORT=str(port), HOST="127.0.0.1", WEB_CONCURRENCY="2")
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.py", "config.wsgi:application"],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: port_open(port), 30, message="gunicorn to start")
        yield f"http://127.0.0.1:{port}", api_key[1]
    finally:
        stop_process_group(server, 10)


class Outage:
    """The test database refuses new connections and the web server's are cut, as when PostgreSQL stops."""

    def __init__(self):
        name = connection.settings_dict["NAME"]
        self.admin = psycopg.connect(urlsplit(settings.DATABASE_URL)._replace(path="/postgres").geturl(), autocommit=True)
        self.name = name

    def begin(self) -> None:
        self.admin.execute(f'ALTER DATABASE "{self.name}" WITH ALLOW_CONNECTIONS false')
        self.admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s", [APP])

    def end(self) -> None:
        self.admin.execute(f'ALTER DATABASE "{self.name}" WITH ALLOW_CONNECTIONS true')
        self.admin.close()


def post(base: str, key: str, n: int) -> tuple[int, float, str | None]:
    started = time.monotonic()
    try:
        response = requests.post(f"{base}/api/v1/notifications", json=notification_body(variables={"name": f"n{n}"}),
                                 headers={"Authorization": f"Bearer {key}"}, timeout=10)
        return response.status_code, time.monotonic() - started, response.headers.get("Retry-After")
    except requests.RequestException:
        return 0, time.monotonic() - started, None


def test_with_postgresql_away_every_request_is_refused_within_two_seconds_and_the_first_after_it_returns_succeeds(gunicorn, broker):
    base, key = gunicorn
    make_templates()
    make_recipient("u1")
    assert post(base, key, 0)[0] == 202  # warm: the pool holds connections that the outage will cut

    outage = Outage()
    outage.begin()
    answers, ready, stop = [], [], threading.Event()
    try:
        def keep_posting(client: int) -> None:
            n = 0
            while not stop.is_set():
                n += 1
                answers.append(post(base, key, client * 1000 + n))

        def keep_asking_ready() -> None:
            while not stop.is_set():
                started = time.monotonic()
                status = requests.get(f"{base}/health/ready", timeout=10).status_code
                ready.append((status, time.monotonic() - started))
                time.sleep(0.2)  # a probe's own pace

        with ThreadPoolExecutor(9) as pool:
            for client in range(8):
                pool.submit(keep_posting, client)
            pool.submit(keep_asking_ready)
            time.sleep(6)  # the outage's length: what is measured is every answer during it
            stop.set()
    finally:
        outage.end()

    # every request during the outage: a 503 with Retry-After, answered within 2 s at the web port
    assert answers and all(status == 503 and retry_after for status, _, retry_after in answers), set(answers)
    assert max(seconds for _, seconds, _ in answers) < 2, sorted(seconds for _, seconds, _ in answers)[-5:]
    assert ready and all(status == 503 and seconds < 1 for status, seconds in ready), ready

    # and once it is back, requests are taken again at once (within the web process's probe interval)
    back = time.monotonic()
    first = wait_for(lambda: (answer := post(base, key, 99_999))[0] == 202 and answer, 5, message="a request to be accepted")
    assert time.monotonic() - back < 0.25 + first[1] + 0.5
