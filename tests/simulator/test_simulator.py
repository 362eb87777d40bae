"""The provider simulator, driven by the real SendGrid, Twilio, firebase-admin and aioapns SDKs."""

import asyncio
import base64
import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl

import firebase_admin
import google.auth.credentials
import jwt
import pytest
import requests
from aioapns import APNs, NotificationRequest, PushType
from aioapns.connection import APNsDevelopmentClientProtocol
from firebase_admin import _http_client, credentials, messaging
from python_http_client.exceptions import (
    BadRequestsError,
    InternalServerError,
    ServiceUnavailableError,
    TooManyRequestsError,
    UnauthorizedError,
)
from sendgrid import SendGridAPIClient
from sendgrid.helpers.eventwebhook import EventWebhook
from sendgrid.helpers.mail import CustomArg, Mail
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client as TwilioClient

from simulator import Simulator, SimulatorClient, SimulatorError
from simulator.credentials import apns_signing_key, fcm_service_account, sendgrid_event_keypair
from simulator.receipts import sendgrid_event_request, twilio_status_request
from simulator.twilio_api import count_segments
from tests.services import wait_for

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT_SID = "AC" + "a1" * 16
AUTH_TOKEN = "simulated-auth-token"
TOPIC = "com.herald.app"


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def simulator():
    with Simulator() as running:
        yield running


@pytest.fixture
def control(simulator) -> SimulatorClient:
    client = simulator.client()
    client.reset()
    yield client
    client.reset()


@pytest.fixture
def sendgrid(simulator) -> SendGridAPIClient:
    client = SendGridAPIClient(api_key="SG.simulated-key", host=simulator.http_url)
    client.client.timeout = 5
    return client


def twilio_client(simulator, timeout: float = 5) -> TwilioClient:
    client = TwilioClient(ACCOUNT_SID, AUTH_TOKEN, environment={}, http_client=TwilioHttpClient(timeout=timeout))
    client.api.base_url = simulator.http_url
    return client


@pytest.fixture
def twilio(simulator) -> TwilioClient:
    return twilio_client(simulator)


@pytest.fixture
def fcm_app(simulator, monkeypatch):
    monkeypatch.setattr(messaging._MessagingService, "FCM_URL",
                        simulator.http_url + "/v1/projects/{0}/messages:send")
    monkeypatch.setattr(_http_client.DEFAULT_RETRY_CONFIG, "backoff_factor", 0)
    # After its first token google-auth looks up a "regional access boundary" at iamcredentials.googleapis.com
    # in a background thread; no setting points that at the simulator, so keep the tests off the internet.
    monkeypatch.setattr(google.auth.credentials.CredentialsWithRegionalAccessBoundary,
                        "_is_regional_access_boundary_lookup_required", lambda self: False)
    service_account = fcm_service_account(simulator.http_url + "/token")
    app = firebase_admin.initialize_app(credentials.Certificate(service_account), {"httpTimeout": 5},
                                        name=f"simulator-test-{uuid.uuid4()}")
    yield app
    firebase_admin.delete_app(app)


class Receiver:
    """A tiny HTTP server that stores what webhooks post to it and answers 200."""

    def __init__(self):
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                received.append({"path": self.path, "headers": dict(self.headers), "body": body})
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def receiver():
    running = Receiver()
    yield running
    running.stop()


def send_mail(client: SendGridAPIClient, to: str = "ada@example.com", **custom_args):
    mail = Mail(from_email="herald@example.com", to_emails=to, subject="Hello", plain_text_content="Hi Ada")
    for key, value in custom_args.items():
        mail.custom_arg = CustomArg(key, value)
    return client.send(mail)


def run_apns(simulator, *notifications: NotificationRequest):
    """Send with a real aioapns client pointed at the simulator's cleartext HTTP/2 port."""

    class LocalAPNs(APNsDevelopmentClientProtocol):
        APNS_SERVER = simulator.apns_host
        APNS_PORT = simulator.apns_port

    async def send_all():
        key, key_id, team_id = apns_signing_key()
        client = APNs(key=key, key_id=key_id, team_id=team_id, topic=TOPIC, use_sandbox=True)
        client.pool.protocol_class = LocalAPNs
        client.pool.ssl_context = None
        try:
            return await asyncio.gather(*(client.send_notification(n) for n in notifications))
        finally:
            client.pool.close()

    return asyncio.run(asyncio.wait_for(send_all(), 10))


def alert(token: str, **options) -> NotificationRequest:
    return NotificationRequest(device_token=token, message={"aps": {"alert": "Hello"}}, **options)


# ---------------------------------------------------------------- SendGrid

def test_sendgrid_accepts_mail_and_answers_with_a_message_id(control, sendgrid):
    # when
    response = send_mail(sendgrid, delivery_id="d-1")

    # then
    assert response.status_code == 202
    assert response.body == b""
    message_id = response.headers["X-Message-Id"]
    [recorded] = control.requests("sendgrid")
    assert recorded["path"] == "/v3/mail/send"
    assert recorded["headers"]["authorization"] == "Bearer SG.simulated-key"
    assert recorded["recipient"] == "ada@example.com"
    assert recorded["body"]["custom_args"] == {"delivery_id": "d-1"}
    assert recorded["status"] == 202
    assert recorded["message_id"] == message_id


def test_sendgrid_rejects_mail_without_sender_or_content_in_its_error_shape(control, sendgrid):
    # when
    with pytest.raises(BadRequestsError) as raised:
        sendgrid.client.mail.send.post(request_body={"personalizations": [{"to": [{"email": "ada@example.com"}]}],
                                                     "subject": "Hi"})

    # then
    errors = raised.value.to_dict["errors"]
    assert {error["field"] for error in errors} == {"from.email", "content"}
    assert all(error["message"] and error["help"] for error in errors)


def test_sendgrid_refuses_a_request_without_an_api_key(control, simulator):
    # given
    client = SendGridAPIClient(api_key="", host=simulator.http_url)

    # when / then
    with pytest.raises(UnauthorizedError):
        send_mail(client)


def test_sendgrid_429_fault_raises_too_many_requests_with_rate_limit_headers(control, sendgrid):
    # given
    control.add_fault("sendgrid", status=429, retry_after=30, count=1)

    # when
    with pytest.raises(TooManyRequestsError) as raised:
        send_mail(sendgrid)

    # then
    headers = raised.value.headers
    assert headers["X-RateLimit-Remaining"] == "0"
    assert int(headers["X-RateLimit-Reset"]) >= time.time() + 29
    assert "Retry-After" not in headers
    assert raised.value.to_dict["errors"][0]["message"] == "too many requests"
    # and the fault was used up
    assert send_mail(sendgrid).status_code == 202


def test_sendgrid_503_fault_raises_service_unavailable_with_an_html_body(control, sendgrid):
    # given
    control.add_fault("sendgrid", status=503, count=1)

    # when
    with pytest.raises(ServiceUnavailableError) as raised:
        send_mail(sendgrid)

    # then
    assert raised.value.status_code == 503
    with pytest.raises(ValueError):
        raised.value.to_dict  # noqa: B018 - SendGrid's 5xx bodies are not JSON


def test_sendgrid_malformed_fault_answers_2xx_that_cannot_be_read(control, sendgrid):
    # given
    control.add_fault("sendgrid", malformed=True, count=1)

    # when
    response = send_mail(sendgrid)

    # then
    assert 200 <= response.status_code < 300
    assert "X-Message-Id" not in response.headers
    with pytest.raises(ValueError):
        response.to_dict  # noqa: B018


# ---------------------------------------------------------------- Twilio

def test_twilio_creates_a_queued_message_with_a_sid_and_its_segments(control, twilio):
    # when
    short = twilio.messages.create(to="+14155550100", from_="+15005550006", body="Hello Ada")
    long = twilio.messages.create(to="+14155550100", from_="+15005550006", body="x" * 161)
    unicode = twilio.messages.create(to="+14155550100", from_="+15005550006", body="Привет " * 10 + "!")

    # then
    assert short.sid.startswith("SM") and len(short.sid) == 34
    assert short.status == "queued"
    assert (short.num_segments, long.num_segments, unicode.num_segments) == ("1", "2", "2")
    recorded = control.requests("twilio")
    assert [r["recipient"] for r in recorded] == ["+14155550100"] * 3
    assert recorded[0]["path"] == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    assert recorded[0]["body"] == {"To": "+14155550100", "From": "+15005550006", "Body": "Hello Ada"}
    assert recorded[0]["message_id"] == short.sid


@pytest.mark.parametrize("body, segments", [
    ("a" * 160, 1), ("a" * 161, 2), ("a" * 306, 2), ("a" * 307, 3),
    ("€" * 80, 1), ("€" * 81, 2),  # extension characters take two septets
    ("é" * 160, 1),  # é is in the GSM-7 basic set
    ("ł" * 70, 1), ("ł" * 71, 2), ("ł" * 134, 2), ("ł" * 135, 3),
    ("😀" * 35, 1), ("😀" * 36, 2),  # a surrogate pair is two UCS-2 units
])
def test_sms_segments_follow_gsm7_and_ucs2_limits(body, segments):
    assert count_segments(body) == segments


@pytest.mark.parametrize("number, code", [("+15005550001", 21211), ("+15005550009", 21614),
                                          ("+15005550004", 21610)])
def test_twilio_magic_numbers_raise_their_error_codes(control, twilio, number, code):
    # when
    with pytest.raises(TwilioRestException) as raised:
        twilio.messages.create(to=number, from_="+15005550006", body="Hi")

    # then
    assert raised.value.status == 400
    assert raised.value.code == code
    [recorded] = control.requests("twilio")
    assert (recorded["status"], recorded["error"]) == (400, str(code))


def test_twilio_429_fault_raises_20429_and_can_target_one_recipient(control, twilio):
    # given
    control.add_fault("twilio", status=429, match="+1415555", count=1)

    # when
    other = twilio.messages.create(to="+442071838750", from_="+15005550006", body="Hi")
    with pytest.raises(TwilioRestException) as raised:
        twilio.messages.create(to="+14155550100", from_="+15005550006", body="Hi")
    again = twilio.messages.create(to="+14155550100", from_="+15005550006", body="Hi")

    # then
    assert (raised.value.status, raised.value.code) == (429, 20429)
    assert other.sid and again.sid
    [fault] = control.faults()
    assert (fault["count"], fault["applied"]) == (0, 1)


def test_twilio_timeout_fault_raises_within_the_client_timeout(control, simulator):
    # given
    control.add_fault("twilio", timeout=True, count=1)
    client = twilio_client(simulator, timeout=1)

    # when
    started = time.monotonic()
    with pytest.raises(requests.exceptions.Timeout):
        client.messages.create(to="+14155550100", from_="+15005550006", body="Hi")

    # then
    assert time.monotonic() - started < 5
    [recorded] = control.requests("twilio")
    assert recorded["timed_out"] and recorded["status"] is None


def test_twilio_rejects_a_request_without_credentials(control, simulator):
    # when
    response = requests.post(f"{simulator.http_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json",
                             data={"To": "+14155550100", "From": "+15005550006", "Body": "Hi"}, timeout=5)

    # then
    assert response.status_code == 401
    assert response.json()["code"] == 20003
    assert response.json()["more_info"] == "https://www.twilio.com/docs/errors/20003"


# ---------------------------------------------------------------- lost answers and Twilio's message list

def test_an_answer_lost_twilio_send_is_kept_and_called_back_but_never_answered(control, simulator, receiver):
    # given
    control.configure_receipts(twilio_auth_token=AUTH_TOKEN)
    control.add_fault("twilio", answer_lost=True, count=1)
    callback = f"{receiver.url}/hooks/twilio?delivery=d-9"

    # when
    started = time.monotonic()
    with pytest.raises(requests.exceptions.Timeout):
        twilio_client(simulator, timeout=1).messages.create(
            to="+14155550100", from_="+15005550006", body="Your code is 123456", status_callback=callback)

    # then
    assert time.monotonic() - started < 5
    [recorded] = control.requests("twilio")
    assert (recorded["status"], recorded["answer_lost"], recorded["timed_out"]) == (201, True, True)
    assert recorded["message_id"].startswith("SM")
    posts = wait_for(lambda: len(receiver.received) == 2 and receiver.received, 10, message="two status callbacks")
    assert [dict(parse_qsl(post["body"]))["MessageSid"] for post in posts] == [recorded["message_id"]] * 2


def test_an_answer_lost_sendgrid_send_still_posts_its_events(control, simulator, receiver):
    # given
    control.configure_receipts(sendgrid_webhook_url=receiver.url, sendgrid_private_key_pem=sendgrid_event_keypair()[0])
    control.add_fault("sendgrid", answer_lost=True, count=1)
    client = SendGridAPIClient(api_key="SG.simulated-key", host=simulator.http_url)
    client.client.timeout = 1

    # when
    with pytest.raises((TimeoutError, urllib.error.URLError)):
        send_mail(client, delivery_id="d-10")

    # then
    [recorded] = control.requests("sendgrid")
    assert (recorded["status"], recorded["answer_lost"]) == (202, True)
    [post] = wait_for(lambda: receiver.received, 10, message="the SendGrid event webhook")
    assert {event["delivery_id"] for event in json.loads(post["body"])} == {"d-10"}
    assert send_mail(client).status_code == 202  # the fault was used up


def test_an_answer_lost_fault_takes_no_status(control):
    with pytest.raises(SimulatorError) as raised:
        control.add_fault("twilio", answer_lost=True, status=500)
    assert (raised.value.status, raised.value.field) == (400, "fault")


def test_the_twilio_sdk_lists_sent_messages_newest_first_by_recipient_and_date(control, twilio):
    # given
    since = datetime.now(UTC) - timedelta(seconds=1)
    first = twilio.messages.create(to="+14155550100", from_="+15005550006", body="first")
    twilio.messages.create(to="+14155550199", from_="+15005550006", body="someone else")
    second = twilio.messages.create(to="+14155550100", from_="+15005550006", body="second")

    # when
    listed = twilio.messages.list(to="+14155550100", date_sent_after=since)

    # then
    assert [(m.sid, m.body, m.to, m.from_) for m in listed] == [
        (second.sid, "second", "+14155550100", "+15005550006"), (first.sid, "first", "+14155550100", "+15005550006")]
    assert all(m.status == "delivered" and m.date_sent and m.date_created for m in listed)
    assert twilio.messages.list(to="+14155550100", date_sent_after=datetime.now(UTC) + timedelta(days=2)) == []
    lookups = [r for r in control.requests("twilio") if r["method"] == "GET"]
    assert lookups[0]["body"]["To"] == "+14155550100" and lookups[0]["status"] == 200


def test_the_message_list_pages_and_ignores_faults(control, twilio):
    # given
    for n in range(5):
        twilio.messages.create(to="+14155550100", from_="+15005550006", body=f"message {n}")
    control.add_fault("twilio", timeout=True)

    # when
    listed = twilio.messages.list(to="+14155550100", page_size=2)

    # then
    assert [m.body for m in listed] == [f"message {n}" for n in (4, 3, 2, 1, 0)]
    assert len([r for r in control.requests("twilio") if r["method"] == "GET"]) == 3


def test_the_message_list_needs_credentials_and_a_valid_date(control, simulator):
    url = f"{simulator.http_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    assert requests.get(url, timeout=5).json()["code"] == 20003
    refused = requests.get(url, params={"DateSent>": "yesterday"}, auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5)
    assert (refused.status_code, refused.json()["code"]) == (400, 20001)


# ---------------------------------------------------------------- FCM

def test_fcm_sends_after_one_oauth_exchange_and_reuses_the_token(control, fcm_app):
    # when
    names = [messaging.send(messaging.Message(token=f"token-{i}", data={"n": str(i)}), app=fcm_app)
             for i in range(3)]

    # then
    assert all(name.startswith("projects/herald-test/messages/") for name in names)
    [oauth] = control.requests("fcm_oauth")
    assert oauth["body"]["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    assert oauth["jwt"]["header"]["alg"] == "RS256"
    assert oauth["jwt"]["claims"]["aud"].endswith("/token")
    access_token = oauth["response_body"]["access_token"]
    sends = control.requests("fcm")
    assert [r["recipient"] for r in sends] == ["token-0", "token-1", "token-2"]
    assert {r["headers"]["authorization"] for r in sends} == {f"Bearer {access_token}"}
    assert [r["message_id"] for r in sends] == names


def test_fcm_unregistered_token_raises_unregistered_error(control, fcm_app):
    # when
    with pytest.raises(messaging.UnregisteredError) as raised:
        messaging.send(messaging.Message(token="invalid-device"), app=fcm_app)

    # then
    assert raised.value.http_response.status_code == 404
    details = raised.value.http_response.json()["error"]["details"]
    assert details == [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "UNREGISTERED"}]


def test_fcm_send_each_reports_each_message(control, fcm_app):
    # given
    control.add_fault("fcm", error="QUOTA_EXCEEDED", match="throttled")
    batch = [messaging.Message(token=token) for token in ("ok-1", "invalid-2", "throttled-3", "ok-4")]

    # when
    response = messaging.send_each(batch, app=fcm_app)

    # then
    assert (response.success_count, response.failure_count) == (2, 2)
    outcomes = [r.message_id is not None or type(r.exception) for r in response.responses]
    assert outcomes == [True, messaging.UnregisteredError, messaging.QuotaExceededError, True]


def test_fcm_unavailable_fault_is_retried_by_the_sdk_until_it_clears(control, fcm_app):
    # given two 503s, which firebase-admin retries by itself
    control.add_fault("fcm", error="UNAVAILABLE", count=2)

    # when
    name = messaging.send(messaging.Message(token="token-1"), app=fcm_app)

    # then
    assert name
    assert [r["status"] for r in control.requests("fcm")] == [503, 503, 200]


def test_fcm_refuses_a_token_it_did_not_issue(control, simulator):
    # when
    response = requests.post(f"{simulator.http_url}/v1/projects/p/messages:send",
                             json={"message": {"token": "t"}}, headers={"Authorization": "Bearer made-up"},
                             timeout=5)

    # then
    assert response.status_code == 401
    assert response.json()["error"]["status"] == "UNAUTHENTICATED"


def test_fcm_token_endpoint_rejects_a_garbage_assertion(control, simulator):
    # when
    response = requests.post(f"{simulator.http_url}/token", timeout=5, data={
        "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": "not-a-jwt"})

    # then
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


# ---------------------------------------------------------------- APNs

def test_apns_delivers_over_cleartext_http2_and_records_the_headers(control, simulator):
    # given
    notification = alert("a1b2c3", priority=5, collapse_key="inbox", time_to_live=3600,
                         push_type=PushType.ALERT)

    # when
    [result] = run_apns(simulator, notification)

    # then
    assert result.is_successful
    assert result.notification_id == notification.notification_id
    [recorded] = control.requests("apns")
    assert recorded["path"] == "/3/device/a1b2c3"
    assert recorded["recipient"] == "a1b2c3"
    assert recorded["body"] == {"aps": {"alert": "Hello"}}
    headers = recorded["headers"]
    assert headers["apns-id"] == notification.notification_id
    assert headers["apns-topic"] == TOPIC
    assert headers["apns-priority"] == "5"
    assert headers["apns-collapse-id"] == "inbox"
    assert headers["apns-push-type"] == "alert"
    assert int(headers["apns-expiration"]) >= time.time() + 3500
    assert headers["authorization"].startswith("bearer ")
    assert recorded["jwt"]["header"]["alg"] == "ES256"
    assert recorded["status"] == 200


def test_apns_answers_bad_and_gone_tokens_with_their_reasons(control, simulator):
    # when
    ok, bad, gone = run_apns(simulator, alert("a1b2c3"), alert("bad-token"), alert("gone-token"))

    # then
    assert (ok.status, ok.description) == ("200", None)
    assert (bad.status, bad.description) == ("400", "BadDeviceToken")
    assert (gone.status, gone.description) == ("410", "Unregistered")
    assert gone.timestamp <= time.time() * 1000
    assert {r["headers"]["apns-id"] for r in control.requests("apns")} == {
        ok.notification_id, bad.notification_id, gone.notification_id}


@pytest.mark.parametrize("fault, status, reason", [
    ({"status": 403}, "403", "ExpiredProviderToken"),
    ({"error": "TooManyRequests"}, "429", "TooManyRequests"),
    ({"status": 503}, "503", "ServiceUnavailable"),
])
def test_apns_faults_answer_in_apples_error_shape(control, simulator, fault, status, reason):
    # given
    control.add_fault("apns", count=1, **fault)

    # when
    failed, recovered = run_apns(simulator, alert("a1b2c3"))[0], run_apns(simulator, alert("a1b2c3"))[0]

    # then
    assert (failed.status, failed.description) == (status, reason)
    assert recovered.is_successful


# ---------------------------------------------------------------- rate limits

def test_a_rate_limit_rejects_part_of_a_burst_but_admits_a_paced_sender(control, simulator):
    # given a limit of 20 a second, so the bucket holds 20
    control.set_rate_limit("twilio", 20)
    clients = threading.local()

    def send(_):
        if not hasattr(clients, "twilio"):
            clients.twilio = twilio_client(simulator)
        try:
            clients.twilio.messages.create(to="+14155550100", from_="+15005550006", body="Hi")
            return "sent"
        except TwilioRestException as error:
            return error.code

    # when a burst of 100 arrives at once
    with ThreadPoolExecutor(8) as pool:
        burst = list(pool.map(send, range(100)))

    # then some are refused with Twilio's 429, and the simulator counted each refusal
    assert 20 <= burst.count("sent") < 100
    assert set(burst) == {"sent", 20429}
    refused = [r for r in control.requests("twilio") if r["status"] == 429]
    assert len(refused) == burst.count(20429) and all(r["rate_limited"] for r in refused)

    # when, with a full bucket, a sender never goes faster than 15 a second, for more than a bucketful
    control.reset()
    control.set_rate_limit("twilio", 20)
    paced = []
    for i in range(25):
        paced.append(send(i))
        time.sleep(1 / 15)

    # then nothing is refused
    assert paced == ["sent"] * 25


def test_clearing_a_rate_limit_admits_everything_again(control, sendgrid):
    # given
    control.set_rate_limit("sendgrid", 1)
    send_mail(sendgrid)
    with pytest.raises(TooManyRequestsError) as raised:
        send_mail(sendgrid)
    assert raised.value.headers["X-RateLimit-Limit"] == "1"

    # when
    control.set_rate_limit("sendgrid", None)

    # then
    assert [send_mail(sendgrid).status_code for _ in range(3)] == [202] * 3


# ---------------------------------------------------------------- receipts

def test_a_sendgrid_send_posts_signed_processed_and_delivered_events(control, sendgrid, receiver):
    # given
    private_pem, public_key = sendgrid_event_keypair()
    control.configure_receipts(sendgrid_webhook_url=f"{receiver.url}/hooks/sendgrid",
                               sendgrid_private_key_pem=private_pem)

    # when
    message_id = send_mail(sendgrid, delivery_id="d-42").headers["X-Message-Id"]

    # then
    [post] = wait_for(lambda: receiver.received, 10, message="the SendGrid event webhook")
    headers = post["headers"]
    assert EventWebhook(public_key).verify_signature(
        post["body"], headers["X-Twilio-Email-Event-Webhook-Signature"],
        headers["X-Twilio-Email-Event-Webhook-Timestamp"])
    events = json.loads(post["body"])
    assert [event["event"] for event in events] == ["processed", "delivered"]
    assert all(event["email"] == "ada@example.com" for event in events)
    assert all(event["delivery_id"] == "d-42" for event in events)
    assert all(event["sg_message_id"].startswith(message_id + ".") for event in events)
    assert post["path"] == "/hooks/sendgrid"
    [logged] = control.receipts()
    assert logged["ok"] and logged["message_id"] == message_id


def test_a_bounce_test_address_gets_a_bounce_event_instead_of_delivered(control, sendgrid, receiver):
    # given
    control.configure_receipts(sendgrid_webhook_url=receiver.url, sendgrid_private_key_pem=sendgrid_event_keypair()[0])

    # when
    response = send_mail(sendgrid, to="nobody@bounce.test")

    # then
    assert response.status_code == 202
    [post] = wait_for(lambda: receiver.received, 10, message="the SendGrid bounce")
    events = json.loads(post["body"])
    assert [(event["event"], event["email"]) for event in events] == [
        ("processed", "nobody@bounce.test"), ("bounce", "nobody@bounce.test")]
    assert events[1]["type"] == "bounce" and events[1]["reason"]


def test_a_twilio_send_posts_signed_sent_then_delivered_callbacks(control, twilio, receiver):
    # given
    control.configure_receipts(twilio_auth_token=AUTH_TOKEN)
    callback = f"{receiver.url}/hooks/twilio?delivery=d-7"

    # when
    message = twilio.messages.create(to="+14155550100", from_="+15005550006", body="Hi", status_callback=callback)

    # then
    posts = wait_for(lambda: len(receiver.received) == 2 and receiver.received, 10, message="two status callbacks")
    validator = RequestValidator(AUTH_TOKEN)
    statuses = []
    for post in posts:
        params = dict(parse_qsl(post["body"]))
        assert validator.validate(callback, params, post["headers"]["X-Twilio-Signature"])
        assert (params["MessageSid"], params["To"], params["From"], params["AccountSid"]) == (
            message.sid, "+14155550100", "+15005550006", ACCOUNT_SID)
        assert "ErrorCode" not in params
        statuses.append(params["MessageStatus"])
    assert statuses == ["sent", "delivered"]


def test_an_unreachable_handset_gets_an_undelivered_callback_with_its_error_code(control, twilio, receiver):
    # given
    control.configure_receipts(twilio_auth_token=AUTH_TOKEN)

    # when
    twilio.messages.create(to="+15005550030", from_="+15005550006", body="Hi", status_callback=receiver.url)

    # then
    posts = wait_for(lambda: len(receiver.received) == 2 and receiver.received, 10, message="two status callbacks")
    final = dict(parse_qsl(posts[1]["body"]))
    assert (final["MessageStatus"], final["ErrorCode"]) == ("undelivered", "30003")


def test_a_receipt_that_cannot_be_posted_is_logged_and_the_send_still_succeeds(control, sendgrid):
    # given a webhook URL where nothing listens
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    control.configure_receipts(sendgrid_webhook_url=f"http://127.0.0.1:{closed_port}/hook")

    # when
    response = send_mail(sendgrid)

    # then
    assert response.status_code == 202
    [logged] = wait_for(lambda: [r for r in control.receipts() if r["error"]], 10, message="the failed post")
    assert not logged["ok"] and "Connect" in logged["error"]


def test_the_receipt_helpers_sign_what_the_sdks_verify():
    # given
    private_pem, public_key = sendgrid_event_keypair()

    # when
    body, headers = sendgrid_event_request([{"event": "delivered", "email": "ada@example.com"}], private_pem)
    twilio_headers = twilio_status_request("https://herald.example/hooks", {"MessageStatus": "sent"}, AUTH_TOKEN)

    # then
    verifier = EventWebhook(public_key)
    signature = headers["X-Twilio-Email-Event-Webhook-Signature"]
    stamp = headers["X-Twilio-Email-Event-Webhook-Timestamp"]
    assert body.endswith("\r\n")
    assert verifier.verify_signature(body, signature, stamp)
    assert not verifier.verify_signature(body.replace("delivered", "bounce"), signature, stamp)
    validator = RequestValidator(AUTH_TOKEN)
    assert validator.validate("https://herald.example/hooks", {"MessageStatus": "sent"},
                              twilio_headers["X-Twilio-Signature"])
    assert not validator.validate("https://herald.example/hooks", {"MessageStatus": "delivered"},
                                  twilio_headers["X-Twilio-Signature"])


# ---------------------------------------------------------------- control, credentials, lifecycle

def test_the_control_api_names_the_field_of_a_bad_fault(control):
    with pytest.raises(SimulatorError) as raised:
        control.add_fault("twilio", status=99)
    assert (raised.value.status, raised.value.field) == (400, "status")

    with pytest.raises(SimulatorError) as raised:
        control.add_fault("pigeon", status=500)
    assert raised.value.field == "provider"

    with pytest.raises(SimulatorError) as raised:
        control.add_fault("fcm", error="NOT_A_CODE")
    assert "UNREGISTERED" in str(raised.value)


def test_a_removed_fault_stops_applying_and_reset_clears_everything(control, sendgrid):
    # given
    fault_id = control.add_fault("sendgrid", status=500)
    with pytest.raises(InternalServerError):
        send_mail(sendgrid)

    # when
    control.remove_fault(fault_id)

    # then
    assert send_mail(sendgrid).status_code == 202
    assert control.stats()["sendgrid"] == {"requests": 2, "500": 1, "202": 1}
    control.reset()
    assert control.requests() == [] and control.faults() == [] and control.stats() == {}


def test_latency_fault_delays_the_answer_but_still_succeeds(control, sendgrid):
    # given
    control.add_fault("sendgrid", latency_ms=300, count=1)

    # when
    started = time.monotonic()
    response = send_mail(sendgrid)

    # then
    assert response.status_code == 202
    assert time.monotonic() - started >= 0.3


def test_a_lasting_timeout_fault_also_hangs_the_requests_still_waiting_out_a_latency(control, simulator):
    # given a request in progress, slowed by a latency fault
    control.add_fault("sendgrid", latency_ms=1000)
    client = SendGridAPIClient(api_key="SG.simulated-key", host=simulator.http_url)
    client.client.timeout = 3
    in_flight = threading.Thread(target=_swallow, args=(lambda: send_mail(client),), daemon=True)
    in_flight.start()
    wait_for(lambda: control.requests("sendgrid"), 5, message="the request in progress")

    # when the provider hangs
    hang = control.add_fault("sendgrid", timeout=True)
    in_flight.join(5)

    # then the request it was working on is never answered either
    [recorded] = control.requests("sendgrid")
    assert recorded["timed_out"] and recorded["status"] is None and recorded["fault"] == hang


def test_generated_credentials_have_the_shapes_the_sdks_expect():
    # when
    pem, key_id, team_id = apns_signing_key()
    account = fcm_service_account("http://127.0.0.1:1/token")

    # then
    token = jwt.encode({"iss": team_id, "iat": int(time.time())}, pem, algorithm="ES256", headers={"kid": key_id})
    assert jwt.get_unverified_header(token)["kid"] == key_id and len(key_id) == len(team_id) == 10
    certificate = credentials.Certificate(account)
    assert certificate.project_id == "herald-test"
    assert certificate.get_credential()._token_uri == "http://127.0.0.1:1/token"
    assert base64.b64decode(sendgrid_event_keypair()[1])


def test_a_stopped_simulator_leaves_no_thread_or_listener_behind():
    # given a running simulator holding a request with a `timeout` fault
    simulator = Simulator().start()
    thread_name = f"simulator-{simulator.http_port}"
    simulator.client().add_fault("sendgrid", timeout=True)
    stuck = threading.Thread(target=_swallow, args=(lambda: send_mail(
        SendGridAPIClient(api_key="SG.x", host=simulator.http_url)),), daemon=True)
    stuck.start()
    wait_for(lambda: simulator.client().requests("sendgrid"), 5, message="the hung request")

    # when
    simulator.stop()

    # then the held client is let go, the thread is gone, and nothing listens any more
    stuck.join(5)
    assert not stuck.is_alive()
    assert thread_name not in {thread.name for thread in threading.enumerate()}
    for port in (simulator.http_port, simulator.apns_port):
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0
    simulator.stop()  # a second stop is harmless


def test_the_command_line_serves_until_sigterm():
    # given
    process = subprocess.Popen([sys.executable, "-m", "simulator", "--http-port", "0", "--apns-port", "0"],
                               cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        http_line = process.stdout.readline()
        apns_line = process.stdout.readline()
        url = http_line.split(" on ")[1].strip()

        # when
        healthy = SimulatorClient(url).healthy()
        process.send_signal(signal.SIGTERM)

        # then
        assert healthy
        assert "APNs" in apns_line
        assert process.wait(10) == 0
        assert "stopped" in process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _swallow(call):
    try:
        call()
    except Exception:
        pass
