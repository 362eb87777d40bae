"""Helpers for the inbox tests: an ASGI server process (uvicorn) and in-app deliveries.

Import the `asgi_server` fixture into a test module to use it. There are no tests here.
"""

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from delivery.models import Delivery
from notifications.models import Notification
from tests.services import ROOT, port_open, stop_process_group, subprocess_env, wait_for


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class AsgiServer:
    """`uvicorn config.asgi:application` in its own process group, like production's web process."""

    def __init__(self, env: dict[str, str], logdir: Path):
        self.env = env
        self.port = free_port()
        self.log_path = logdir / "uvicorn.log"
        self.process: subprocess.Popen | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1",
             "--port", str(self.port), "--log-level", "warning"],
            cwd=ROOT, env=self.env, stdout=self.log_path.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
        )
        wait_for(self._ready, 30, 0.1, message=f"uvicorn on port {self.port} (log: {self.log_path})")

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"uvicorn exited with {self.process.returncode}:\n{self.log_text()[-3000:]}")
        return port_open(self.port)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        stop_process_group(self.process, grace=15)


_server: AsgiServer | None = None


@pytest.fixture(scope="session")
def asgi_server(django_db_setup, tmp_path_factory):
    """One uvicorn process for the session, on the test database and the test Redis."""
    global _server
    if _server is None:
        env = subprocess_env(HERALD_INBOX_DEMO="1")
        _server = AsgiServer(env, tmp_path_factory.mktemp("asgi"))
        _server.start()
    yield _server
    _server.stop()


def make_in_app_delivery(recipient, type: str = "social", metadata: dict | None = None) -> Delivery:
    """A notification with its in-app delivery row, as routing would have made them."""
    notification = Notification.objects.create(
        recipient=recipient, type=type, priority="medium", template_name="welcome", metadata=metadata or {},
    )
    return Delivery.objects.create(notification=notification, channel="in_app", status="sending")
