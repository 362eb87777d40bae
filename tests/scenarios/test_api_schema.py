"""/api/schema/ tells the truth: every operation, fuzzed in-process, answers as it documents.

Schemathesis loads the schema from the WSGI app and drives each operation with generated and
boundary requests (valid and invalid), authenticated like a real client. Every answer must be a
non-5xx whose status code, content type, headers and body the schema documents.
"""

import base64
import json
import uuid

import pytest
import schemathesis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.core.management import call_command
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import override_settings
from hypothesis import HealthCheck, settings
from rest_framework.test import APIClient

from config.wsgi import application
from core.states import Status
from delivery.models import DeadLetter, Delivery
from inbox import items
from inbox.models import InboxItem
from inbox.tokens import issue_token
from notifications.auth import _recent_keys
from notifications.models import SCOPES, ApiKey, Notification, hash_api_key
from tests.factories import make_recipient, make_templates

API_KEY = "hk_schemath_every-scope-for-the-schema-tests"
# Fixed ids, so that the generator can pick existing resources as well as unknown ones.
# The user and template are those of the documented example of POST /api/v1/notifications.
USER_ID = "ada"
TEMPLATE = "welcome"
NOTIFICATION_ID = uuid.UUID("00000000-0000-4000-8000-00000000a11c")
INBOX_ITEM_ID = 900_000_001
DEAD_LETTER_ID = 900_000_001

EXISTING = 0.7  # how often a parameter names a seeded resource rather than a generated value

CONFIG = schemathesis.Config.from_dict({
    "seed": 20260101,
    "generation": {"max-examples": 25, "deterministic": True, "database": "none"},
    "checks": {
        "enabled": False,
        "not_a_server_error": {"enabled": True},
        "status_code_conformance": {"enabled": True},
        "content_type_conformance": {"enabled": True},
        "response_headers_conformance": {"enabled": True},
        "response_schema_conformance": {"enabled": True},
    },
    "dictionaries": {
        "users": {"values": [USER_ID]},
        "templates": {"values": [TEMPLATE]},
        "notifications": {"values": [str(NOTIFICATION_ID)]},
        "inbox_items": {"values": [str(INBOX_ITEM_ID)]},
        "dead_letters": {"values": [DEAD_LETTER_ID]},
        "devices": {"values": [f"token-{USER_ID}"]},
    },
    "parameters": {
        "path.user_id": {"dictionary": "users", "probability": EXISTING},
        "body.user_id": {"dictionary": "users", "probability": EXISTING},
        "path.name": {"dictionary": "templates", "probability": EXISTING},
        "body.template": {"dictionary": "templates", "probability": EXISTING},
        "path.notification_id": {"dictionary": "notifications", "probability": EXISTING},
        "path.item_id": {"dictionary": "inbox_items", "probability": EXISTING},
        "path.dead_letter_id": {"dictionary": "dead_letters", "probability": EXISTING},
        "path.token": {"dictionary": "devices", "probability": EXISTING},
    },
})

schema = schemathesis.openapi.from_wsgi("/api/schema/", application, config=CONFIG)


@pytest.fixture
def requests_keep_the_test_connection():
    """Requests run inside the test's transaction, so they must not close its connection.

    The WSGI app closes "old" connections at the start and end of every request; django.test.Client
    turns that off the same way.
    """
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def webhook_secrets():
    """Configured provider secrets, so generated webhooks reach their signature checks."""
    public_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    with override_settings(SENDGRID_WEBHOOK_PUBLIC_KEY=base64.b64encode(der).decode(), TWILIO_AUTH_TOKEN="twilio-token"):
        yield


@pytest.fixture
def credentials(db, broker, requests_keep_the_test_connection, webhook_secrets) -> dict[str, str]:
    """Seed what the fixed ids name; the Authorization header for each security scheme."""
    # Every example recreates the same key under a new id; a real key is never recreated.
    _recent_keys.clear()
    ApiKey.objects.create(name="schema tests", prefix=API_KEY[:16], key_hash=hash_api_key(API_KEY), scopes=SCOPES)
    ada = make_recipient(USER_ID)
    make_templates(TEMPLATE)
    notification = Notification.objects.create(
        pk=NOTIFICATION_ID, recipient=ada, type="social", priority="medium", template_name=TEMPLATE,
    )
    delivery = Delivery.objects.create(notification=notification, channel="in_app", status=Status.FAILED, attempts=4)
    item, _ = items.add_item(ada.pk, delivery_id=str(delivery.pk), notification_id=str(notification.pk), fields={
        "title": "Hello", "body": "Hello body", "category": "social", "icon": "https://example.com/icon.png",
        "image": "", "action_url": "https://example.com/go", "group_key": "greetings",
    })
    InboxItem.objects.filter(pk=item.pk).update(id=INBOX_ITEM_ID)
    DeadLetter.objects.create(pk=DEAD_LETTER_ID, delivery=delivery, reason="max_attempts_exceeded", error_code="http_503")
    inbox_token, _ = issue_token(ada.pk, USER_ID, 3600)
    return {"apiKey": f"Bearer {API_KEY}", "inboxToken": f"Bearer {inbox_token}"}


@schema.parametrize()
@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_every_operation_answers_as_documented(case, credentials):
    # The webhooks have no security scheme: providers sign them instead.
    schemes = [name for requirement in case.operation.definition.raw.get("security", []) for name in requirement]
    headers = {"Authorization": credentials[schemes[0]]} if schemes else None

    case.call_and_validate(headers=headers)


def test_the_schema_is_valid_and_generated_without_warnings(tmp_path):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))


def test_the_served_status_vocabulary_is_the_one_the_code_uses(tmp_path):
    call_command("spectacular", "--format", "openapi-json", "--file", str(tmp_path / "schema.json"))

    served = json.loads((tmp_path / "schema.json").read_text())["components"]["schemas"]["StatusEnum"]["enum"]
    assert served == Status.values and "deduplicated" in served


@pytest.mark.django_db
@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=2048)
@pytest.mark.parametrize(("path", "content_type"), [
    ("/api/v1/webhooks/sendgrid", "application/json"),
    ("/api/v1/webhooks/twilio", "application/x-www-form-urlencoded"),
])
def test_an_oversized_webhook_is_413_naming_the_webhook_limit(path, content_type):
    response = APIClient().post(path, "x" * 4096, content_type=content_type)

    assert response.status_code == 413
    assert response.json()["error"]["message"] == "Request body exceeds 2 KiB."


@pytest.mark.django_db
def test_an_oversized_api_request_is_413_naming_the_api_limit(api):
    response = api.post("/api/v1/templates", "x" * (65 * 1024), content_type="application/json")

    assert response.status_code == 413
    assert response.json()["error"]["message"] == "Request body exceeds 64 KiB."
