"""A password reset goes out in under two seconds while content, callers and strangers do their worst at once."""

import socket
import threading
import time
from pathlib import Path

import requests

from notifications.models import ApiKey
from templates_app.models import Template
from tests.factories import delivery_of, make_recipient, make_templates, notification_body, status_of
from tests.scenarios.test_front import SLOW_HEAD, FrontStack
from tests.services import wait_for
from tests.templates_app.test_content_jobs import CRASHING_HTML

SLOW_CONTENT = "{% for x in range(100000) %}{% for y in range(300) %}{% endfor %}{% endfor %}"


def test_a_critical_notification_goes_out_within_two_seconds_through_a_poison_message_a_heavy_publish_and_slow_clients(
        live, tmp_path: Path):
    # given the production web command behind make run's front, a worker, and a person
    front = FrontStack("python", tmp_path)
    front.start()
    slow_sockets: list[socket.socket] = []
    try:
        make_templates()
        Template.objects.create(name="crashing", channel="email", locale="en", subject="s", html_body=CRASHING_HTML)
        make_recipient("u1")
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {ApiKey.issue('load')[1]}"

        # when two strangers hold slow sockets open, an author publishes a version whose contents
        # take the whole render budget, and a poisonous email (its HTML crashes the CSS inliner) is sent
        for _ in range(2):
            sock = socket.create_connection(("127.0.0.1", front.port), timeout=10)
            sock.sendall(SLOW_HEAD)
            slow_sockets.append(sock)
        heavy = {}
        publishing = threading.Thread(target=lambda: heavy.setdefault("answer", session.post(
            f"{front.url}/api/v1/templates/heavy/versions", timeout=30,
            json={"contents": [{"channel": "sms", "locale": f"l{i}", "body": SLOW_CONTENT} for i in range(12)]})))
        publishing.start()
        poison = session.post(f"{front.url}/api/v1/notifications", timeout=10, json=notification_body(
            template="crashing", channels=["email"], priority="critical")).json()["id"]

        # then a password reset sent meanwhile is accepted and sent within two seconds
        started = time.monotonic()
        reset = session.post(f"{front.url}/api/v1/notifications", timeout=10, json=notification_body(
            type="security", channels=["sms"], variables={"name": "reset"}))
        assert reset.status_code == 202, reset.content
        wait_for(lambda: status_of(reset.json()["id"]) == "sent", 10, 0.02, message="the password reset")
        took = time.monotonic() - started
        delivery = delivery_of(reset.json()["id"], "sms")
        assert took < 2 and (delivery.sent_at - delivery.notification.created_at).total_seconds() < 2, took

        # and the poison failed alone with its reason, the heavy publish was refused within its budget
        wait_for(lambda: status_of(poison) == "failed", 15, message="the poisonous email to fail")
        assert delivery_of(poison, "email").error_code == "render_error"
        publishing.join(30)
        assert heavy["answer"].status_code in (400, 503), heavy["answer"].content
        assert live.process.poll() is None
    finally:
        for sock in slow_sockets:
            sock.close()
        front.stop()
