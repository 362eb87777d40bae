"""Liveness, readiness and the served API schema."""

import pytest


def test_liveness_and_readiness_report_every_dependency_and_queue(client, broker, db):
    assert client.get("/health").json() == {"status": "ok"}

    ready = client.get("/health/ready")

    assert ready.status_code == 200
    checks = ready.json()["checks"]
    assert checks["database"]["ok"] and checks["redis"]["ok"] and checks["broker"]["ok"]
    assert {"critical", "high", "medium", "low", "email.urgent", "sms.bulk"} <= set(checks["broker"]["queues"])


def test_readiness_is_503_when_the_broker_is_down(client, broker, db):
    broker.stop()
    try:
        response = client.get("/health/ready")
    finally:
        broker.start()

    assert response.status_code == 503
    assert response.json()["checks"]["broker"]["ok"] is False


@pytest.mark.django_db
def test_the_openapi_schema_and_docs_are_served(client):
    schema = client.get("/api/schema/")
    docs = client.get("/api/docs/")

    assert schema.status_code == 200
    assert b"/api/v1/notifications" in schema.content
    assert docs.status_code == 200


def test_liveness_answers_a_probe_by_any_host_name_while_other_paths_still_check_the_host(client, settings):
    settings.ALLOWED_HOSTS = ["herald.example.com"]

    probe = client.get("/health", HTTP_HOST="172.18.0.5:8000")
    other = client.get("/api/schema/", HTTP_HOST="172.18.0.5:8000")

    assert probe.status_code == 200 and probe.json() == {"status": "ok"}
    assert other.status_code == 400
