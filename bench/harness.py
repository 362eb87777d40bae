"""A whole Herald stack for benchmarks: fresh database, web server and Celery worker processes.

Runs on the servers `scripts/with_services.py` provides (embedded or from DATABASE_URL /
REDIS_URL), in a database of its own (`herald_bench`, recreated each run) and Redis
database 12, so benchmarks never touch development or test data.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import redis
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.queues import BULK_QUEUES, URGENT_QUEUES, WORKER_FLAGS  # noqa: E402,F401

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.05)
    raise RuntimeError(f"timed out after {timeout}s waiting for {what}")


def fresh_database(server_url: str, name: str) -> str:
    parts = urlsplit(server_url)
    admin_url = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return parts._replace(path=f"/{name}").geturl()


class Stack:
    """`with Stack(extra_env) as stack:` gives a migrated database, a web server and a worker."""

    def __init__(self, extra_env: dict[str, str] | None = None, worker_concurrency: int = 2, log_dir: Path | None = None,
                 start_worker: bool = True, web_workers: int = 1):
        self.extra_env = extra_env or {}
        self.web_workers = web_workers
        self.start_worker_now = start_worker
        self.worker_concurrency = worker_concurrency
        self.log_dir = log_dir or ROOT / "var" / "bench"
        self.processes: list[subprocess.Popen] = []
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.socket_port = free_port()
        self.socket_url = f"http://127.0.0.1:{self.socket_port}"

    def __enter__(self) -> "Stack":
        self.log_dir.mkdir(parents=True, exist_ok=True)
        redis_url = urlsplit(os.environ["REDIS_URL"])._replace(path=f"/{os.environ.get('HERALD_BENCH_REDIS_DB', '12')}").geturl()
        redis.Redis.from_url(redis_url).flushdb()
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DJANGO_SECRET_KEY": "benchmark-only-secret",
            "DATABASE_URL": fresh_database(os.environ["DATABASE_URL"], os.environ.get("HERALD_BENCH_DATABASE", "herald_bench")),
            "REDIS_URL": redis_url,
            "CELERY_BROKER_URL": redis_url,
            "PUBLIC_BASE_URL": self.base_url,
            "HERALD_BEAT_SCHEDULER": "celery.beat:PersistentScheduler",
            "LOG_LEVEL": "WARNING",
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "WEB_CONCURRENCY": str(self.web_workers),
            **self.extra_env,
        }
        self.manage("migrate", "--noinput")
        try:
            # Served as in production: REST under gunicorn (config/gunicorn.py), the socket under uvicorn.
            self.start("web", [str(BIN / "gunicorn"), "-c", "config/gunicorn.py", "config.wsgi:application"])
            self.start("socket", [str(BIN / "uvicorn"), "config.asgi:application", "--host", "127.0.0.1",
                                  "--port", str(self.socket_port), "--log-level", "warning", "--no-access-log"])
            wait_until(self._web_ready, 60, "the web server")
            if self.start_worker_now:
                self.start_worker()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def start_worker(self, pool: str = "solo", queues: list[list[str]] | None = None) -> None:
        """`worker_concurrency` worker processes (solo pool: no prefork pipes), the first also running beat.

        With `queues`, one process per list of queues instead (the production layout: urgent and bulk lanes apart).
        """
        if queues:
            self.worker_concurrency = len(queues)
        for n in range(self.worker_concurrency):
            beat = ["-B", "-s", str(self.log_dir / "beat-schedule")] if n == 0 else []
            only = ["-Q", ",".join(queues[n])] if queues else []
            self.start(f"worker-{n}", [str(BIN / "celery"), "-A", "config", "worker", *beat, "--pool", pool, *only,
                                       "--loglevel", "INFO", *WORKER_FLAGS, "-n", f"bench{n}@%h"])
        for n in range(self.worker_concurrency):
            log = self.log_dir / f"worker-{n}.log"
            wait_until(lambda log=log: " ready." in log.read_text(errors="replace"), 60, f"worker {n}")

    def worker_pids(self) -> list[int]:
        return [p.pid for p in self.processes if Path(p.args[0]).name == "celery"]

    def _web_ready(self) -> bool:
        try:
            return requests.get(self.base_url + "/health", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def start(self, name: str, command: list[str], env: dict | None = None) -> subprocess.Popen:
        log = (self.log_dir / f"{name}.log").open("w")
        process = subprocess.Popen(command, cwd=ROOT, env=env or self.env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        self.processes.append(process)
        return process

    def stop(self, process: subprocess.Popen) -> None:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(20)
        self.processes.remove(process)

    def start_reference_web(self, workers: int = 2) -> str:
        """The bare DRF validate+insert endpoint (bench/reference) under gunicorn sync workers; its URL."""
        with self.database() as db:
            from bench.reference import TABLE_SQL
            db.execute(TABLE_SQL)
        port = free_port()
        self.start("reference-web", [str(BIN / "gunicorn"), "-w", str(workers), "-b", f"127.0.0.1:{port}",
                                     "--log-level", "warning", "bench.reference.wsgi:application"])
        url = f"http://127.0.0.1:{port}/insert"
        wait_until(lambda: _answers(url), 60, "the reference web server")
        return url

    def reference_task_rate(self, count: int = 5000) -> float:
        """No-op tasks per second through one solo Celery worker (acks_late, prefetch 1) on the same broker."""
        broker = self.env["CELERY_BROKER_URL"].rsplit("/", 1)[0] + "/13"
        env = {**self.env, "CELERY_BROKER_URL": broker}
        client = redis.Redis.from_url(broker)
        client.flushdb()
        code = ("from bench.reference.tasks import app, noop\n"
                "with app.producer_or_acquire() as producer:\n"
                f"    [noop.apply_async((n,), producer=producer) for n in range({count})]")
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True)
        worker = self.start("reference-worker", [str(BIN / "celery"), "-A", "bench.reference.tasks", "worker", "--pool", "solo",
                                                 "--loglevel", "WARNING", *WORKER_FLAGS, "-Q", "reference", "-n", "reference@%h"], env)
        wait_until(lambda: client.llen("reference") < count, 60, "the reference worker to start consuming")
        started = time.perf_counter()
        left = client.llen("reference")
        wait_until(lambda: client.llen("reference") == 0 and not client.hlen("unacked"), 300, "the no-op tasks")
        rate = left / (time.perf_counter() - started)
        self.stop(worker)
        return rate

    def manage(self, *args: str) -> str:
        result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env,
                                capture_output=True, text=True, check=True)
        return result.stdout

    def api_key(self) -> str:
        return self.manage("create_api_key", "--name", "bench").strip().splitlines()[-1]

    def database(self) -> psycopg.Connection:
        return psycopg.connect(self.env["DATABASE_URL"], autocommit=True)

    def __exit__(self, *exc) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
        self.processes.clear()


def _answers(url: str) -> bool:
    try:
        requests.post(url, json={}, timeout=1)
        return True
    except requests.RequestException:
        return False


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
    return ordered[index]
