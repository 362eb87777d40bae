"""Hostile input gets a 4xx naming the field, never a 500; webhooks never reach this network."""

import base64
import http.server
import json
import socket
import threading
import time

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from django.test import override_settings
from rest_framework.test import APIClient

from delivery.models import DeliveryEvent
from delivery.providers.base import OutgoingMessage
from delivery.providers.webhook import WebhookProvider
from preferences.models import Recipient
from tests.delivery.test_receipts import PRIVATE_KEY, post_sendgrid, post_twilio, receipt_settings, sent_delivery, sg_event  # noqa: F401
from tests.factories import make_recipient, make_templates

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("receipt_settings")]


def error_of(response) -> dict:
    assert 400 <= response.status_code < 500, (response.status_code, response.content[:300])
    return response.json()["error"]


@pytest.mark.parametrize("method, path", [
    ("get", "/api/v1/users/a%00b"),
    ("put", "/api/v1/users/a%00b"),
    ("delete", "/api/v1/users/a%00b"),
    ("get", "/api/v1/users/a%00b/export"),
    ("get", "/api/v1/users/a%00b/preferences"),
    ("get", "/api/v1/users/a%00b/devices"),
    ("get", "/api/v1/users/a%00b/notifications"),
    ("get", "/api/v1/templates/a%00b"),
    ("get", "/api/v1/templates?channel=a%00b"),
])
def test_a_nul_in_the_url_is_a_400_not_a_500(api, method, path):
    response = getattr(api, method)(path, {} if method == "put" else None, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "invalid_url"


@pytest.mark.parametrize("field, value", [
    ("variables", {"name": "a\u0000b"}),
    ("variables", {"name": "\ud800"}),
    ("metadata", {"note": "\u0000"}),
    ("variables", {"k\u0000ey": "x"}),
])
def test_unstorable_strings_in_a_notification_are_refused_naming_the_field(api, field, value):
    make_templates()
    make_recipient("u1")
    body = {"user_id": "u1", "type": "transaction", "template": "welcome", "variables": {"name": "Ada"}, field: value}

    # json.dumps escapes a lone surrogate as \ud800, as a hostile client would send it
    error = error_of(api.post("/api/v1/notifications", json.dumps(body), content_type="application/json"))

    assert error["field"].startswith(field)


def test_an_unstorable_variables_schema_is_refused_naming_the_field(api):
    body = {"name": "t", "channel": "sms", "body": "hi", "variables_schema": {"type": "object", "description": "\u0000"}}
    assert error_of(api.post("/api/v1/templates", body, format="json"))["field"].startswith("variables_schema")


@pytest.mark.parametrize("raw", [
    '{"user_id": "u1", "variables": ' + "[" * 1000 + "]" * 1000 + "}",
    '{"user_id": "u1", "variables": {"x": NaN}}',
    '{"user_id": "u1", "variables": {"x": 1e400}}',
    '{"user_id": "u1", "variables": {"x": "\\ud800"}}',
])
def test_deep_nesting_nan_and_raw_surrogates_are_400s(api, raw):
    response = api.post("/api/v1/notifications", raw, content_type="application/json")
    assert response.status_code == 400, response.content


def test_an_email_address_longer_than_254_characters_is_refused(api):
    response = api.put("/api/v1/users/u1", {"email": "a" * 250 + "@example.com"}, format="json")
    assert error_of(response)["field"] == "email"


def test_a_user_id_with_a_trailing_newline_is_not_a_second_user(api):
    assert api.put("/api/v1/users/demo-user", {}, format="json").status_code in (200, 201)
    response = api.put("/api/v1/users/demo-user%0A", {}, format="json")
    assert response.status_code == 400
    assert list(Recipient.objects.values_list("external_id", flat=True)) == ["demo-user"]


@pytest.mark.parametrize("zone", ["localtime", "posixrules", "Factory"])
def test_timezones_that_are_not_places_are_refused(api, zone):
    assert error_of(api.put("/api/v1/users/u1", {"timezone": zone}, format="json"))["field"] == "timezone"


@pytest.mark.parametrize("url", [
    "http://169.254.169.254/latest/meta-data/",
    "http://127.0.0.1:8000/hook",
    "http://[::1]/hook",
    "http://10.0.0.5/hook",
    "http://localhost/hook",
    "http://metadata.google.internal/computeMetadata/v1/",
])
def test_webhook_urls_into_this_network_are_refused_when_saved(api, url):
    with override_settings(HERALD_WEBHOOK_ALLOW_PRIVATE=False):
        error = error_of(api.put("/api/v1/users/u1", {"webhook_url": url}, format="json"))
    assert error["field"] == "webhook_url"


def test_a_public_webhook_url_is_accepted(api):
    with override_settings(HERALD_WEBHOOK_ALLOW_PRIVATE=False):
        response = api.put("/api/v1/users/u1", {"webhook_url": "https://hooks.example.com/herald"}, format="json")
    assert response.status_code in (200, 201), response.content


class Listener(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_POST(self):  # noqa: N802
        Listener.hits.append(self.path)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_name_that_rebinds_to_loopback_after_the_check_is_never_connected_to(monkeypatch):
    # given a loopback listener, and a name that answers a public address first and loopback after
    server = http.server.HTTPServer(("127.0.0.1", 0), Listener)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    Listener.hits.clear()
    real_getaddrinfo = socket.getaddrinfo
    lookups = []

    def rebinding_getaddrinfo(host, *args, **kwargs):
        if host == "rebind.example":
            lookups.append(host)
            address = "93.184.216.34" if len(lookups) == 1 else "127.0.0.1"
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]
        return real_getaddrinfo(host, *args, **kwargs)

    connected = []
    real_connect = socket.socket.connect

    def loopback_only_connect(sock, address):
        connected.append(address[0])
        if not str(address[0]).startswith("127."):
            raise ConnectionRefusedError("tests never leave this machine")
        return real_connect(sock, address)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding_getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", loopback_only_connect)
    message = OutgoingMessage(
        delivery_id="d1", channel="webhook", to=[f"http://rebind.example:{port}/hook"], content={"body": "x"},
        priority="high", attempt=1, notification_id="n1", notification_type="transaction", metadata={}, headers={},
    )

    # when the webhook is sent
    with override_settings(HERALD_WEBHOOK_ALLOW_PRIVATE=False, HERALD_WEBHOOK_SECRET="whsec_" + "A" * 32):
        result = WebhookProvider().send(message)
    server.shutdown()

    # then the name was looked up once and only the checked address was dialled
    assert lookups == ["rebind.example"]
    assert connected == ["93.184.216.34"]
    assert Listener.hits == []
    assert result.outcome == "retry" and result.error_code == "connection_error"


def test_signed_sendgrid_events_with_unstorable_characters_are_kept_scrubbed():
    delivery = sent_delivery()
    event = sg_event(delivery, "delivered", "e\u0000", reason="bad\ud800", extra={"x": "\u0000"})

    response = post_sendgrid([event])

    assert response.status_code == 200, response.content
    stored = DeliveryEvent.objects.get(delivery=delivery)
    assert stored.payload["reason"] == "bad\ufffd"


def test_a_signed_sendgrid_body_nested_50000_levels_is_a_400():
    body = "[" * 50000 + "]" * 50000 + "\r\n"
    timestamp = str(int(time.time()))
    signature = PRIVATE_KEY.sign((timestamp + body).encode(), ec.ECDSA(hashes.SHA256()))

    response = APIClient().post(
        "/api/v1/webhooks/sendgrid", body, content_type="application/json",
        HTTP_X_TWILIO_EMAIL_EVENT_WEBHOOK_SIGNATURE=base64.b64encode(signature).decode(),
        HTTP_X_TWILIO_EMAIL_EVENT_WEBHOOK_TIMESTAMP=timestamp,
    )

    assert response.status_code == 400, response.content


def test_signed_twilio_callbacks_with_a_nul_are_not_500s():
    delivery = sent_delivery(channel="sms", provider="twilio", message_id="SM1")
    response = post_twilio({"MessageSid": "SM1\u0000", "MessageStatus": "delivered\u0000"})
    assert response.status_code < 500, response.content
    response = post_twilio({"MessageSid": "SM1", "MessageStatus": "delivered", "Extra": "\u0000"})
    assert response.status_code == 200, response.content
    delivery.refresh_from_db()
    assert delivery.status == "delivered"


def test_the_deploy_check_is_clean_when_served_over_https():
    import os
    import subprocess
    import sys

    from tests.services import ROOT, subprocess_env

    env = {
        **subprocess_env(), "DJANGO_SETTINGS_MODULE": "config.settings", "PUBLIC_BASE_URL": "https://herald.example.com",
        "DJANGO_SECRET_KEY": "k" + os.urandom(40).hex(), "DJANGO_ALLOWED_HOSTS": "herald.example.com",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    warnings = [line for line in (result.stdout + result.stderr).splitlines() if "security." in line]
    # W021 asks for HSTS preload, an opt-in to browsers' lists that the README explains.
    assert [w for w in warnings if "security.W021" not in w] == []


def test_https_settings_follow_the_public_url():
    import os
    import subprocess
    import sys

    from tests.services import ROOT, subprocess_env

    code = (
        "from django.conf import settings as s; "
        "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS > 0)"
    )
    for url, expected in (("https://h.example.com", "True True True True"), ("http://127.0.0.1:8000", "False False False False")):
        env = {**subprocess_env(), "DJANGO_SETTINGS_MODULE": "config.settings", "PUBLIC_BASE_URL": url,
               "DJANGO_SECRET_KEY": "k" + os.urandom(40).hex()}
        out = subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=120)
        assert out.stdout.strip().splitlines()[-1] == expected, out.stderr


def test_a_catastrophic_pattern_in_a_variables_schema_cannot_stall_an_accept(api):
    # given a template whose schema has a pattern that backtracks exponentially in Python's re
    from templates_app.models import Template

    Template.objects.create(name="redos", channel="sms", body="{{ code }}",
                            variables_schema={"type": "object", "properties": {"code": {"type": "string", "pattern": "^(a+)+$"}}})
    make_recipient("u1")

    started = time.monotonic()
    response = api.post("/api/v1/notifications", {"user_id": "u1", "type": "transaction", "template": "redos",
                                                  "variables": {"code": "a" * 5000 + "!"}}, format="json")

    assert response.status_code == 400 and response.json()["error"]["field"] == "variables.code"
    assert time.monotonic() - started < 1.0


def test_patterns_that_need_backtracking_are_refused_when_the_schema_is_saved(api):
    schema = {"type": "object", "properties": {"code": {"type": "string", "pattern": r"^(a)\1$"}}}
    response = api.post("/api/v1/templates", {"name": "t", "channel": "sms", "body": "x", "variables_schema": schema}, format="json")
    assert response.status_code == 400 and response.json()["error"]["field"] == "variables_schema"


def test_behind_a_proxy_the_client_is_the_last_forwarded_hop_not_one_the_client_wrote(rf):
    from core.throttle import client_address

    request = rf.get("/", HTTP_X_FORWARDED_FOR="1.2.3.4, 203.0.113.7", REMOTE_ADDR="10.0.0.1")
    with override_settings(HERALD_CLIENT_IP_HEADER="HTTP_X_FORWARDED_FOR"):
        assert client_address(request) == "203.0.113.7"
    assert client_address(request) == "10.0.0.1"
