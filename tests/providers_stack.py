"""The provider stack for integration tests: the simulator, an SMTP server, a webhook receiver,
and a worker whose real provider SDKs point at them. A plugin (see conftest.py), so every test
module shares one of each: a fixture imported into two modules would start two simulators.
"""

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller
from django.test import override_settings

from preferences.models import Device
from simulator import Simulator
from simulator.credentials import apns_signing_key, fcm_service_account, sendgrid_event_keypair
from tests.factories import make_recipient, make_templates

TWILIO_SID = "AC" + "1" * 32
TWILIO_TOKEN = "twilio-auth-token"
WEBHOOK_SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SG_PRIVATE_KEY, SG_PUBLIC_KEY = sendgrid_event_keypair()


class SmtpRecorder:
    """An SMTP server that keeps what it receives and refuses addresses containing "reject"."""

    def __init__(self):
        self.messages: list[dict] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if "reject" in address:
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append({"to": envelope.rcpt_tos, "data": envelope.content.decode("utf-8", "replace")})
        return "250 Message accepted"


class WebhookReceiver(ThreadingHTTPServer):
    """Collects outgoing webhooks; answers with `status` (200 unless a test changes it)."""

    def __init__(self):
        self.received: list[dict] = []
        self.status = 200
        super().__init__(("127.0.0.1", 0), self._handler())

    def _handler(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                receiver.received.append({"headers": dict(self.headers), "body": body})
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args):
                pass

        return Handler

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hooks/herald"


@pytest.fixture(scope="session")
def simulator():
    with Simulator() as running:
        yield running


@pytest.fixture(scope="session")
def smtp():
    recorder = SmtpRecorder()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        recorder.port = probe.getsockname()[1]
    controller = Controller(recorder, hostname="127.0.0.1", port=recorder.port)
    controller.start()
    yield recorder
    controller.stop()


@pytest.fixture(scope="session")
def webhook_receiver():
    receiver = WebhookReceiver()
    thread = threading.Thread(target=receiver.serve_forever, daemon=True)
    thread.start()
    yield receiver
    receiver.shutdown()


@pytest.fixture(scope="session")
def provider_env(simulator, smtp, live_server, tmp_path_factory):
    folder = tmp_path_factory.mktemp("credentials")
    (folder / "fcm.json").write_text(json.dumps(fcm_service_account(simulator.http_url + "/token")))
    apns_pem, apns_key_id, apns_team_id = apns_signing_key()
    (folder / "apns.p8").write_text(apns_pem)
    return {
        "PUBLIC_BASE_URL": live_server.url,
        "SENDGRID_API_KEY": "SG.test-key",
        "SENDGRID_API_HOST": simulator.http_url,
        "SMTP_URL": f"smtp://127.0.0.1:{smtp.port}",
        "TWILIO_ACCOUNT_SID": TWILIO_SID,
        "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "TWILIO_FROM_NUMBER": "+15005550006",
        "TWILIO_API_HOST": simulator.http_url,
        "FCM_CREDENTIALS_FILE": str(folder / "fcm.json"),
        "FCM_API_HOST": simulator.http_url,
        "APNS_KEY_FILE": str(folder / "apns.p8"),
        "APNS_KEY_ID": apns_key_id,
        "APNS_TEAM_ID": apns_team_id,
        "APNS_TOPIC": "com.example.herald",
        "APNS_USE_SANDBOX": "1",
        "APNS_HOST": f"http://127.0.0.1:{simulator.apns_port}",
        "HERALD_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "HERALD_WEBHOOK_ALLOW_PRIVATE": "1",  # the receiver is on loopback
        "HERALD_PROVIDER_TIMEOUT": "3",
        "HERALD_BREAKER_FAILURES": "3",
        "HERALD_BREAKER_RESET_SECONDS": "2",
        "HERALD_RATE_LIMITS": "twilio=40",
    }


@pytest.fixture
def providers(workers, broker, transactional_db, provider_env, simulator, smtp, webhook_receiver, live_server):
    """A worker using the real providers; the live server checks receipts with the same secrets."""
    if broker.process.poll() is not None:
        broker.start()
    control = simulator.client()
    control.reset()
    smtp.messages.clear()
    webhook_receiver.received.clear()
    webhook_receiver.status = 200
    with override_settings(
        SENDGRID_WEBHOOK_PUBLIC_KEY=SG_PUBLIC_KEY, TWILIO_AUTH_TOKEN=TWILIO_TOKEN, PUBLIC_BASE_URL=live_server.url,
    ):
        workers.use("providers", provider_env)
        yield control


@pytest.fixture
def person(providers, webhook_receiver):
    make_templates()
    recipient = make_recipient("p1", email="p1@example.com", phone="+14155550101", webhook_url=webhook_receiver.url)
    Device.objects.filter(recipient=recipient).delete()
    return recipient
