"""Seeing Herald work: metrics scraped from a real gunicorn and a real worker after a known mixed run,
analytics that agree with the deliveries, series that do not grow with people, and logs without
personal data."""

import os
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
import requests
from django.db.models import Count, Q

from delivery.models import Delivery
from notifications.models import ApiKey
from preferences.models import Recipient
from tests.factories import make_recipient, make_templates, notification_body
from tests.services import ROOT, port_open, stop_process_group, subprocess_env, wait_for

TOKEN = "metrics-test-token"
FINAL = ("sent", "delivered", "read", "failed", "bounced", "canceled", "deduplicated")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def metrics_port():
    return free_port()


@pytest.fixture
def metered(workers, broker, transactional_db, metrics_port):
    """A sandbox worker serving its metrics on an internal port."""
    if broker.process.poll() is not None:
        broker.start()
    worker = workers.use("metered", {"HERALD_METRICS_PORT": str(metrics_port), "HERALD_GAUGES_INTERVAL_SECONDS": "1"})
    wait_for(lambda: port_open(metrics_port), 20, message="the worker's metrics port")
    return worker


@pytest.fixture
def web(metered, tmp_path):
    """gunicorn with two sync workers, as production runs the API: metrics in multiprocess mode."""
    port = free_port()
    log = (tmp_path / "web.log").open("w")
    env = subprocess_env(application_name="herald-test-web", HOST="127.0.0.1", PORT=str(port), WEB_CONCURRENCY="2",
                         HERALD_METRICS_TOKEN=TOKEN, PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prometheus"))
    process = subprocess.Popen([str(Path(sys.executable).parent / "gunicorn"), "-c", "config/gunicorn.py", "config.wsgi:application"],
                               cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: _answers(url + "/health"), 30, message="gunicorn")
    yield {"url": url, "log": tmp_path / "web.log"}
    stop_process_group(process)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


def scrape(url: str, headers: dict | None = None) -> dict[tuple, float]:
    """{(name, frozenset(labels)): value} of an exposition."""
    response = requests.get(url, headers=headers or {}, timeout=5)
    response.raise_for_status()
    samples = {}
    for line in response.text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = re.match(r'^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$', line)
        name, labels, value = match.groups()
        pairs = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', labels or ""))
        samples[(name, pairs)] = float(value)
    return samples


def total(samples: dict, name: str, **labels) -> float:
    wanted = set(labels.items())
    return sum(value for (n, pairs), value in samples.items() if n == name and wanted <= set(pairs))


def scrape_all(web: dict, metrics_port: int) -> tuple[dict, dict]:
    return (scrape(web["url"] + "/metrics", {"Authorization": f"Bearer {TOKEN}"}),
            scrape(f"http://127.0.0.1:{metrics_port}/metrics"))


def post(web: dict, key: str, body: dict, **headers) -> requests.Response:
    return requests.post(web["url"] + "/api/v1/notifications", json=body, timeout=10,
                         headers={"Authorization": f"Bearer {key}", **headers})


def test_the_web_metrics_answer_only_the_bearer_token(web):
    assert requests.get(web["url"] + "/metrics", timeout=5).status_code == 404
    assert requests.get(web["url"] + "/metrics", headers={"Authorization": "Bearer wrong"}, timeout=5).status_code == 404
    assert requests.get(web["url"] + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5).status_code == 200


def test_counters_move_by_exactly_what_a_mixed_run_did_and_analytics_agree(web, metrics_port):
    # given
    make_templates()
    make_recipient("u1")
    make_recipient("u2")
    _, key = ApiKey.issue("metrics")
    web_before, worker_before = scrape_all(web, metrics_port)

    # when: 3 sent, 1 failed, 1 sent after a retry, 1 deduplicated, 1 replayed, 1 refused, 1 critical sent
    ids = [post(web, key, notification_body(channels=["email"], variables={"name": f"n{n}"})).json()["id"] for n in range(3)]
    ids.append(post(web, key, notification_body(channels=["sms"], variables={"name": "f"}, metadata={"sandbox": {"fail": "failed"}})).json()["id"])
    ids.append(post(web, key, notification_body(channels=["sms"], variables={"name": "r"},
                                                metadata={"sandbox": {"fail": "retry", "fail_attempts": 1}})).json()["id"])
    ids.append(post(web, key, notification_body(channels=["email"], type="security", variables={"name": "s"})).json()["id"])
    wait_for(lambda: all(_status(i) in FINAL for i in ids), 60, message="the first notifications to finish")
    ids.append(post(web, key, notification_body(channels=["email"], type="security", variables={"name": "s"})).json()["id"])
    replayed = post(web, key, notification_body(user_id="u2", channels=["push"]), **{"Idempotency-Key": "k1"})
    ids.append(replayed.json()["id"])
    assert post(web, key, notification_body(user_id="u2", channels=["push"]), **{"Idempotency-Key": "k1"}).status_code == 202
    assert post(web, key, notification_body(template="nope")).status_code == 400
    wait_for(lambda: all(_status(i) in FINAL for i in ids), 60, message="every notification to finish")
    wait_for(lambda: _moved(web, metrics_port, worker_before, 6), 20, message="the worker's counters")
    web_after, worker_after = scrape_all(web, metrics_port)

    # then: the web counted the accept decisions, the worker the routing and delivery ones
    def web_delta(name, **labels):
        return total(web_after, name, **labels) - total(web_before, name, **labels)

    def worker_delta(name, **labels):
        return total(worker_after, name, **labels) - total(worker_before, name, **labels)

    assert web_delta("herald_notifications_accepted_total", outcome="accepted") == 8
    assert web_delta("herald_notifications_accepted_total", outcome="accepted", priority="critical") == 2
    assert web_delta("herald_notifications_accepted_total", outcome="idempotent_replay") == 1
    assert web_delta("herald_notifications_accepted_total", outcome="refused") == 1
    assert worker_delta("herald_notifications_accepted_total", outcome="deduplicated", priority="critical") == 1
    assert worker_delta("herald_deliveries_finished_total", status="sent") == 6
    assert worker_delta("herald_deliveries_finished_total", status="sent", channel="email") == 4
    assert worker_delta("herald_deliveries_finished_total", status="failed", channel="sms") == 1
    assert worker_delta("herald_delivery_retries_total", kind="retry", channel="sms") == 1
    assert worker_delta("herald_dead_letters_total", channel="sms") == 1
    assert worker_delta("herald_accept_to_sent_seconds_count") == 6
    for priority in ("high", "critical"):
        assert worker_delta("herald_accept_to_sent_seconds_count", priority=priority) >= 1
    assert worker_delta("herald_provider_call_duration_seconds_count", provider="sandbox") >= 5  # calls: batches vary with timing

    # and the installation's gauges are on the web's /metrics, measured by one collector
    wait_for(lambda: total(scrape_all(web, metrics_port)[0], "herald_dead_letters") >= 1, 20, message="the dead-letter gauge")
    assert ("herald_lane_depth", frozenset({("lane", "email.urgent")})) in scrape_all(web, metrics_port)[0]

    # and the analytics API says what the deliveries' final states say, per group
    response = requests.get(web["url"] + "/api/v1/analytics/deliveries", params={"group_by": "channel,template,category"},
                            headers={"Authorization": f"Bearer {key}"}, timeout=5)
    assert response.status_code == 200, response.text
    totals = {(t["group"]["channel"], t["group"]["template"], t["group"]["category"]): t for t in response.json()["totals"]}
    expected = defaultdict(dict)
    for row in (Delivery.objects.values("channel", "notification__template_name", "notification__type")
                .annotate(sent=Count("pk", filter=Q(sent_at__isnull=False)), failed=Count("pk", filter=Q(status="failed")),
                          delivered=Count("pk", filter=Q(delivered_at__isnull=False)))):
        group = (row["channel"], row["notification__template_name"], row["notification__type"])
        expected[group] = {"sent": row["sent"], "failed": row["failed"], "delivered": row["delivered"]}
    assert {g: {k: totals[g][k] for k in ("sent", "failed", "delivered")} for g in totals} == dict(expected)
    assert totals[("email", "welcome", "security")]["latency_p95_seconds"] is not None


def _status(notification_id: str) -> str:
    from notifications.models import Notification

    return Notification.objects.get(pk=notification_id).status


def _moved(web, metrics_port, before, sent) -> bool:
    after = scrape_all(web, metrics_port)[1]
    return total(after, "herald_deliveries_finished_total", status="sent") - total(before, "herald_deliveries_finished_total", status="sent") >= sent


def series(samples: dict) -> int:
    return len([key for key in samples if not key[0].startswith(("process_", "python_"))])


def test_the_number_of_series_stays_the_same_after_a_thousand_people(web, metrics_port):
    # given: one of each kind of notification already counted
    make_templates()
    _, key = ApiKey.issue("series")
    people = [Recipient(external_id=f"person-{n}", email=f"person-{n}@example.com", phone=f"+1415555{n:04d}") for n in range(1001)]
    Recipient.objects.bulk_create(people)
    first = post(web, key, notification_body(user_id="person-1000", channels=["email"]))
    wait_for(lambda: _status(first.json()["id"]) == "sent", 30, message="the first notification")
    web_before, worker_before = scrape_all(web, metrics_port)

    # when
    batch = [notification_body(user_id=f"person-{n}", channels=["email"], variables={"name": f"P{n}"}) for n in range(1000)]
    response = requests.post(web["url"] + "/api/v1/notifications/batch", json={"notifications": batch},
                             headers={"Authorization": f"Bearer {key}"}, timeout=60)
    assert response.json()["accepted"] == 1000
    wait_for(lambda: Delivery.objects.filter(status="sent").count() == 1001, 120, message="a thousand sends")
    wait_for(lambda: total(scrape_all(web, metrics_port)[1], "herald_deliveries_finished_total")
             - total(worker_before, "herald_deliveries_finished_total") == 1000, 10, message="a thousand sends counted")
    web_after, worker_after = scrape_all(web, metrics_port)

    # then
    assert series(web_after) == series(web_before)
    assert series(worker_after) == series(worker_before)


PERSONAL = {"email": "ada.lovelace@example.org", "phone": "+14155550199", "body": "Rosebud-7731 secret body"}


def test_no_log_line_of_any_process_holds_the_persons_address_phone_or_message(providers, workers, caplog):
    # given
    import logging

    caplog.set_level(logging.DEBUG)
    from templates_app.models import Template

    for channel in ("email", "sms"):
        Template.objects.create(name="private", channel=channel, locale="en", subject="Note" if channel == "email" else "",
                                body=PERSONAL["body"] + " {{ name }}", html_body="<p>" + PERSONAL["body"] + "</p>" if channel == "email" else "",
                                variables_schema={"type": "object"})
    make_recipient("ada", email=PERSONAL["email"], phone=PERSONAL["phone"])
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {ApiKey.issue('logs')[1]}")

    # when
    response = client.post("/api/v1/notifications", {"user_id": "ada", "type": "transaction", "template": "private",
                                                      "channels": ["email", "sms"], "variables": {"name": "Ada"}}, format="json")
    assert response.status_code == 202, response.content
    wait_for(lambda: Delivery.objects.filter(status__in=["sent", "delivered"]).count() == 2, 60, message="both messages sent")
    wait_for(lambda: "delivery sent" in workers.workers["providers"].log_text(), 10, message="the worker's log line")

    # then
    worker_log = workers.workers["providers"].log_text()
    lines = worker_log.splitlines() + [caplog.handler.format(record) for record in caplog.records]
    assert any('"event": "delivery_sent"' in line for line in worker_log.splitlines())
    for line in lines:
        for kind, value in PERSONAL.items():
            assert value not in line, f"{kind} in a log line: {line[:300]}"
        assert "Rosebud" not in line and "lovelace" not in line


@pytest.fixture(autouse=True)
def _no_stray_multiproc_env():
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    yield


def test_one_trace_follows_a_notification_from_accept_through_routing_to_its_provider_call(
        providers, provider_env, workers, person, monkeypatch, tmp_path):
    # given: a worker exporting spans to a file, and tracing on in this process (the web's side)
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
    from rest_framework.test import APIClient

    from core import tracing

    spans_file = tmp_path / "spans.jsonl"
    workers.use("traced", {**provider_env, "OTEL_TRACES_EXPORTER": "console", "HERALD_TRACES_FILE": str(spans_file),
                           "OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_SERVICE_NAME": "herald-worker"})
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "ENABLED", True)
    monkeypatch.setattr(tracing, "_tracer", provider.get_tracer("test"))
    monkeypatch.setattr(tracing, "_propagator", TraceContextTextMapPropagator())
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {ApiKey.issue('traces')[1]}")

    # when
    with tracing._tracer.start_as_current_span("POST /api/v1/notifications") as request_span:
        response = client.post("/api/v1/notifications", notification_body(user_id="p1", channels=["sms"]), format="json")
    assert response.status_code == 202, response.content
    trace_id = f"0x{request_span.get_span_context().trace_id:032x}"

    # then: the worker's spans of this notification are in the accept's trace
    def spans_of_trace() -> list[dict]:
        if not spans_file.exists():
            return []
        found = [json.loads(line) for line in spans_file.read_text().splitlines() if line.strip()]
        return [span for span in found if span["context"]["trace_id"] == trace_id]

    import json

    names = lambda: {span["name"] for span in spans_of_trace()}  # noqa: E731
    wait_for(lambda: {"herald.route", "herald.provider_call"} <= names(), 40, message="routing and provider spans in the trace")
    call = next(span for span in spans_of_trace() if span["name"] == "herald.provider_call")
    wait_for(lambda: any(span["parent_id"] == call["context"]["span_id"] for span in spans_of_trace()), 20,
             message="the SDK's HTTP request under the provider call")
    http = [span for span in spans_of_trace() if span["parent_id"] == call["context"]["span_id"]]
    assert any(span["attributes"].get("http.request.method") == "POST" or span["attributes"].get("http.method") == "POST"
               for span in http), http
    notification_id = response.json()["id"]
    assert any(span["attributes"].get("herald.notification_id") == notification_id for span in spans_of_trace())
