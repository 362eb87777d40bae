"""Strangers cannot take the API down: the front before gunicorn, in both set-ups.

`python`: make run's front (scripts/front.py), started as scripts/run.py starts it. `nginx`:
docker-compose.yml's deploy/nginx.conf under Debian's nginx (skipped where nginx is not
installed), its upstreams pointed at this test's sockets. gunicorn's two sync workers and the
inbox socket server listen on unix sockets; the front is the only port. These tests attack it
the way the outside test did, and time the API while they do.
"""

import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import requests
from websockets.sync.client import connect as ws_connect

from inbox.tokens import issue_token
from notifications.models import ApiKey
from tests.factories import make_recipient
from tests.inbox.support import free_port
from tests.services import ROOT, stop_process_group, subprocess_env, wait_for

BIN = Path(sys.executable).parent
HEADER_TIMEOUT, BODY_TIMEOUT = 3, 5
FAILURE_LIMIT = 3


class FrontStack:
    """A front (`python` or `nginx`) before gunicorn (2 sync workers) and the inbox socket server, each in its own process group."""

    def __init__(self, kind: str, workdir: Path):
        self.kind = kind
        self.workdir = workdir
        self.port = free_port()
        self.web_socket = workdir / "web.sock"
        self.inbox_socket = workdir / "socket.sock"
        self.env = subprocess_env(
            application_name="herald-test-front",
            WEB_CONCURRENCY="2", HERALD_CLIENT_IP_HEADER="HTTP_X_FORWARDED_FOR",
            HERALD_AUTH_FAILURE_LIMIT=str(FAILURE_LIMIT),
        )
        self.processes: dict[str, subprocess.Popen] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        # The same commands as scripts/run.py.
        self._start("web", [str(BIN / "gunicorn"), "-c", "config/gunicorn.py", "--bind", f"unix:{self.web_socket}",
                            "config.wsgi:application"])
        self._start("socket", [sys.executable, "-m", "config.socket_server", "--uds", str(self.inbox_socket)])
        if self.kind == "python":
            self._start("front", [sys.executable, "scripts/front.py", "--listen", f"127.0.0.1:{self.port}",
                                  "--web", f"unix:{self.web_socket}", "--socket", f"unix:{self.inbox_socket}",
                                  "--head-timeout", str(HEADER_TIMEOUT), "--body-timeout", str(BODY_TIMEOUT)])
        else:
            self._start("front", ["nginx", "-c", str(self.nginx_config()), "-e", str(self.workdir / "nginx-error.log")])
        wait_for(self._answers, 60, 0.2, message=f"the front on port {self.port} (logs in {self.workdir})")

    def nginx_config(self) -> Path:
        """deploy/nginx.conf as the image includes it, in a main config of its own, pointed at this stack."""
        site = (ROOT / "deploy" / "nginx.conf").read_text()
        for shipped, here in {
            "server web:8000;": f"server unix:{self.web_socket};",
            "server socket:8001;": f"server unix:{self.inbox_socket};",
            "listen 80 default_server;": f"listen 127.0.0.1:{self.port} default_server;",
            "client_header_timeout 10s;": f"client_header_timeout {HEADER_TIMEOUT}s;",
            "client_body_timeout 20s;": f"client_body_timeout {BODY_TIMEOUT}s;",
        }.items():
            assert shipped in site, f"deploy/nginx.conf no longer says {shipped!r}"
            site = site.replace(shipped, here)
        (self.workdir / "herald.conf").write_text(site)
        temp = {name: self.workdir / name for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
        for path in temp.values():
            path.mkdir(exist_ok=True)
        main = self.workdir / "nginx.conf"
        main.write_text(f"""
            daemon off;
            worker_processes 1;
            {"user root;" if os.geteuid() == 0 else ""}
            pid {self.workdir}/nginx.pid;
            error_log {self.workdir}/nginx-error.log warn;
            events {{ worker_connections 4096; }}
            http {{
                access_log off;
                client_body_temp_path {temp["body"]};
                proxy_temp_path {temp["proxy"]};
                fastcgi_temp_path {temp["fastcgi"]};
                uwsgi_temp_path {temp["uwsgi"]};
                scgi_temp_path {temp["scgi"]};
                include {self.workdir}/herald.conf;
            }}
        """)
        return main

    def _start(self, name: str, argv: list[str]) -> None:
        log = (self.workdir / f"{name}.log").open("w")
        self.processes[name] = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                                start_new_session=True)

    def _answers(self) -> bool:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise AssertionError(f"{name} exited: {(self.workdir / f'{name}.log').read_text()[-2000:]}")
        try:
            return requests.get(self.url + "/health", timeout=1).status_code == 200 and self.inbox_socket.exists()
        except requests.RequestException:
            return False

    def stop(self) -> None:
        for process in self.processes.values():
            stop_process_group(process, grace=10)


@pytest.fixture(scope="module", params=["python", "nginx"])
def front(request, django_db_setup, tmp_path_factory):
    if request.param == "nginx" and shutil.which("nginx") is None:
        pytest.skip("nginx is not installed (apt-get install nginx-light): docker-compose.yml's front is not run here")
    stack = FrontStack(request.param, Path(tmp_path_factory.mktemp(f"front-{request.param}")))
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


def slowest_answer_seconds(url: str, count: int = 6, timeout: float = 10) -> float:
    """The longest of `count` GETs, one after another; `timeout` if one never answered."""
    slowest = 0.0
    for _ in range(count):
        started = time.monotonic()
        try:
            assert requests.get(url, timeout=timeout).status_code == 200
        except requests.Timeout:
            return timeout
        slowest = max(slowest, time.monotonic() - started)
    return slowest


def open_tcp(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def open_unix(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(10)
    sock.connect(str(path))
    return sock


def closed_by_peer(sock: socket.socket, within: float) -> bytes | None:
    """What the server sent before closing the socket, or None if it was still open after `within` seconds."""
    sock.settimeout(0.2)
    received, deadline = b"", time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk
    return None


def close_all(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        sock.close()


def test_requests_reach_django_whole_through_the_front_also_chunked_and_kept_alive(front, transactional_db):
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {ApiKey.issue('front')[1]}"
    body = json.dumps({"email": "ada@example.com", "timezone": "Europe/London"}).encode()

    # a chunked body (no Content-Length from the client) is re-framed for gunicorn
    created = session.put(front.url + "/api/v1/users/ada", data=iter([body[:10], body[10:]]),
                          headers={"Content-Type": "application/json"}, timeout=10)
    read = session.get(front.url + "/api/v1/users/ada", timeout=10)

    assert created.status_code in (200, 201), created.content
    assert (read.status_code, read.reason, read.json()["email"]) == (200, "OK", "ada@example.com")


SLOW_HEAD = b"GET /health HTTP/1.1\r\nHost: herald\r\nX-Slow: "


def test_slowloris_sockets_stall_bare_gunicorn_which_is_why_the_front_exists(front):
    # given two connections straight to gunicorn's socket, each trickling a request head (one per sync worker)
    slow = [open_unix(front.web_socket) for _ in range(2)]
    for sock in slow:
        sock.sendall(SLOW_HEAD)
    try:
        time.sleep(0.5)  # both workers have accepted and sit in their reads
        # when a real client asks gunicorn directly
        client = open_unix(front.web_socket)
        client.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        # then it gets no answer while the slow heads are open
        assert closed_by_peer(client, within=2) is None
        client.close()
    finally:
        close_all(slow)


def test_slowloris_sockets_on_the_front_do_not_stall_the_api_and_are_cut_at_the_header_timeout(front):
    # given 50 connections trickling request heads (25 times gunicorn's workers)
    slow = [open_tcp(front.port) for _ in range(50)]
    for sock in slow:
        sock.sendall(SLOW_HEAD)
    try:
        # when they keep trickling, the API still answers at once
        for sock in slow:
            sock.sendall(b"a")
        assert slowest_answer_seconds(front.url + "/health") < 1.0

        # then each is cut once its head has taken HEADER_TIMEOUT
        assert closed_by_peer(slow[0], within=HEADER_TIMEOUT + 3) is not None
    finally:
        close_all(slow)


def test_slow_bodies_do_not_stall_the_api_and_are_cut_at_the_body_timeout(front):
    # given 50 POSTs announcing 1,000 bytes and sending 10
    head = (b"POST /api/v1/notifications HTTP/1.1\r\nHost: herald\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer hk_whoever\r\nContent-Length: 1000\r\n\r\n")
    slow = [open_tcp(front.port) for _ in range(50)]
    for sock in slow:
        sock.sendall(head + b'{"user_id"')
    try:
        # then the API still answers at once while they trickle
        assert slowest_answer_seconds(front.url + "/health") < 1.0
        # and each is cut once its request has taken BODY_TIMEOUT
        assert closed_by_peer(slow[0], within=BODY_TIMEOUT + 3) is not None
    finally:
        close_all(slow)


def test_a_thousand_idle_connections_do_not_stall_the_api(front):
    idle = [open_tcp(front.port) for _ in range(1000)]
    try:
        assert slowest_answer_seconds(front.url + "/health") < 1.0
    finally:
        close_all(idle)


def test_a_huge_request_head_is_refused(front):
    response = requests.get(front.url + "/health", headers={"X-Padding": "a" * 64 * 1024}, timeout=10)

    assert response.status_code == {"python": 431, "nginx": 400}[front.kind]  # nginx: "Request Header Too Large"


def test_a_body_over_the_largest_any_endpoint_takes_is_refused_with_413(front):
    body = b"x" * (8 * 1024 * 1024 + 1)

    response = requests.post(front.url + "/api/v1/webhooks/sendgrid", data=body, timeout=30,
                             headers={"Content-Type": "application/json"})

    assert response.status_code == 413


def test_invalid_keys_are_counted_against_the_clients_address_whatever_x_forwarded_for_it_sends(front, transactional_db):
    # given a client that forges a new X-Forwarded-For with each bad key
    answers = [
        requests.get(front.url + "/api/v1/templates", timeout=10, headers={
            "Authorization": f"Bearer hk_guess-{i}", "X-Forwarded-For": f"203.0.113.{i}",
        }).status_code
        for i in range(FAILURE_LIMIT + 1)
    ]

    # then every guess was charged to its one real address
    assert answers == [401] * FAILURE_LIMIT + [429]


@pytest.fixture
def inbox_token(transactional_db) -> str:
    recipient = make_recipient("ada")
    raw, _ = issue_token(recipient.pk, recipient.external_id, 300)
    return raw


def test_the_inbox_socket_is_served_on_the_same_origin_and_outlives_the_body_timeout(front, inbox_token):
    with ws_connect(f"ws://127.0.0.1:{front.port}/ws/inbox?token={inbox_token}", open_timeout=10) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "init"
        time.sleep(BODY_TIMEOUT + 1)  # the socket must not be cut like a slow request body
        ws.send(json.dumps({"type": "ping", "ref": 1}))
        assert json.loads(ws.recv(timeout=10)) == {"type": "pong", "ref": 1}


def upgraded_inbox_socket(port: int, token: str) -> socket.socket:
    sock = open_tcp(port)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /ws/inbox?token={token} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def test_a_frame_over_the_message_limit_is_refused_from_its_header_before_its_payload_is_sent(front, inbox_token):
    # given 20 upgraded sockets
    sockets = [upgraded_inbox_socket(front.port, inbox_token) for _ in range(20)]
    server = psutil.Process(front.processes["socket"].pid)
    memory_before = server.memory_info().rss
    try:
        # when each announces a 15 MB text frame and sends only its first KB
        header = bytes([0x81, 0x80 | 127]) + struct.pack("!Q", 15_000_000) + os.urandom(4)
        for sock in sockets:
            sock.sendall(header + b"x" * 1024)

        # then the server closes each (1009: message too big) without waiting for the rest
        for sock in sockets:
            answer = closed_by_peer(sock, within=5)
            assert answer is not None, "the server kept reading a frame over the limit"
            assert struct.pack("!H", 1009) in answer
        assert server.memory_info().rss - memory_before < 20 * 1024 * 1024
    finally:
        close_all(sockets)
