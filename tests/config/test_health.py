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
