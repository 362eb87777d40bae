"""The processes a chaos run drives: its own embedded servers, the provider simulator and Herald itself.

Everything lives under var/chaos: PostgreSQL and Redis (never the machine's or the dev ones, since the
scenarios stop and freeze them), the simulator's env file, and each Herald stack's var dir and log.
Herald runs as `scripts/run.py`, exactly what `make run` starts.
"""

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import psycopg
import redis
import requests

from bench.harness import ROOT, free_port, fresh_database, wait_until
from simulator import SimulatorClient

sys.path.insert(0, str(ROOT / "scripts"))
import services  # noqa: E402  (scripts/services.py: the embedded servers)

VAR = ROOT / "var" / "chaos"
PYTHON = sys.executable

# Short clocks so that retries, breakers and stall sweeps play out within a scenario. Not the lease: a dead
# worker's claims must move because it is dead (its liveness key expired), not because a short lease ran out.
SHORT_CLOCKS = {
    "HERALD_RETRY_BASE_SECONDS": "1",
    "HERALD_RETRY_MAX_SECONDS": "10",
    "HERALD_BREAKER_RESET_SECONDS": "10",
    "HERALD_STALL_SECONDS": "30",
    "HERALD_OUTBOX_GRACE_SECONDS": "5",
}
# Production's, pinned: the lease and the task time limit it covers, the attempt budget inside the lease, and
# the provider timeout that decides how long a hanging call holds its thread.
PRODUCTION_CLOCKS = {
    "HERALD_DELIVERY_LEASE_SECONDS": "120",
    "HERALD_TASK_TIME_LIMIT": "90",
    "HERALD_ATTEMPT_BUDGET_SECONDS": "60",
    "HERALD_PROVIDER_TIMEOUT": "5",
}
WORKERS = {"worker-urgent": "urgent@", "worker-bulk": "bulk@"}
CATEGORY_CACHE_KEY = "herald:1:preferences:categories:v1"  # preferences.store.CATEGORIES_KEY in Django's cache


def kill_group(pid: int, sig: int = signal.SIGKILL) -> None:
    """Signal a process and, when it leads its own group (as every child of run.py does), the whole group."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


class Servers:
    """Embedded PostgreSQL and Redis under var/chaos, started by this run and stopped at its end."""

    def start(self) -> None:
        # Never the machine's servers or the dev ones: scenarios stop PostgreSQL and freeze Redis.
        os.environ.pop("DATABASE_URL", None)
        os.environ.pop("REDIS_URL", None)
        found = services.ensure_services(VAR)
        self.server_url, self.redis_url = found.database_url, found.redis_url
        self.redis_frozen = False

    def database(self, name: str) -> str:
        """A fresh database on the chaos server."""
        return fresh_database(self.server_url, name)

    def redis_db(self, index: int) -> str:
        url = self.redis_url.rsplit("/", 1)[0] + f"/{index}"
        redis.Redis.from_url(url).flushdb()
        return url

    def stop_postgres(self) -> None:
        services._stop_postgres(VAR / "pg")  # pg_ctl stop: fast mode, every connection is cut

    def start_postgres(self) -> None:
        """Start PostgreSQL again on the same data and socket. From a fresh process: pgserver keeps a handle
        per data dir in the process that started it, which still believes the server runs."""
        subprocess.run([PYTHON, "-c", "import pathlib, sys, services; services.ensure_services(pathlib.Path(sys.argv[1]))",
                        str(VAR)], cwd=ROOT / "scripts", check=True, timeout=60, capture_output=True)

    def redis_pid(self) -> int:
        pid = int((VAR / "redis" / "redis.pid").read_text())
        if "redis" not in psutil.Process(pid).name():
            raise RuntimeError(f"pid {pid} in var/chaos/redis/redis.pid is not redis-server")
        return pid

    def freeze_redis(self) -> None:
        os.kill(self.redis_pid(), signal.SIGSTOP)
        self.redis_frozen = True

    def thaw_redis(self) -> None:
        if self.redis_frozen:
            os.kill(self.redis_pid(), signal.SIGCONT)
            self.redis_frozen = False

    def stop(self) -> None:
        self.thaw_redis()
        services.stop_embedded(VAR)


class SimulatorProcess:
    """`python -m simulator`, writing the env file that points Herald's SDKs at it."""

    def __init__(self, receipts_to: str):
        self.env_file = VAR / "simulator.env"
        self.env_file.unlink(missing_ok=True)
        self.http_url = f"http://127.0.0.1:{free_port()}"
        log = (VAR / "simulator.log").open("w")
        self.process = subprocess.Popen(
            [PYTHON, "-m", "simulator", "--http-port", self.http_url.rsplit(":", 1)[1], "--apns-port", str(free_port()),
             "--env-file", str(self.env_file), "--receipts-to", receipts_to],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.control = SimulatorClient(self.http_url)
        wait_until(lambda: self.env_file.exists() or self.process.poll() is not None, 30, "the simulator")
        if self.process.poll() is not None:
            raise RuntimeError(f"the simulator exited; see {VAR / 'simulator.log'}")

    def settings(self) -> dict[str, str]:
        return dict(shlex.split(line)[0].split("=", 1) for line in self.env_file.read_text().splitlines() if line)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                kill_group(self.process.pid)
                self.process.wait(5)


@dataclass
class KilledWorker:
    name: str  # worker-urgent or worker-bulk
    pid: int
    group: list[int]  # the worker and its children, any of which may have made claims
    command: list[str]
    env: dict[str, str]
    cwd: str
    killed_at: float = field(default_factory=time.time)
    restarted_at: float | None = None  # when its replacement process started


def _started_at(pid: int | None) -> float | None:
    try:
        return psutil.Process(pid).create_time() if pid else None
    except psutil.Error:
        return None


class Herald:
    """One Herald stack: `scripts/run.py` (web, workers, beat) in a database and Redis db of its own."""

    def __init__(self, name: str, env: dict[str, str]):
        self.name = name
        self.port = int(env["PORT"])
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.var_dir = Path(env["HERALD_VAR_DIR"])
        self.var_dir.mkdir(parents=True, exist_ok=True)
        self.env = env
        self.log_path = VAR / f"{name}.log"
        self.log_path.write_text("")
        self.process: subprocess.Popen | None = None
        self.own_workers: list[subprocess.Popen] = []  # replacements the harness started itself
        self.seen: dict[int, float] = {}  # pid -> create_time of every child seen, for cleanup

    def start(self, timeout: float = 120) -> None:
        offset = self.log_path.stat().st_size
        with self.log_path.open("a") as log:
            self.process = subprocess.Popen([PYTHON, "scripts/run.py"], cwd=ROOT, env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)

        def ready() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name}: scripts/run.py exited with {self.process.returncode}; see {self.log_path}")
            with self.log_path.open(errors="replace") as log:
                log.seek(offset)
                workers_ready = log.read().count(" ready.") >= len(WORKERS)
            return workers_ready and self.health("/health")[0] == 200

        wait_until(ready, timeout, f"{self.name} (web and workers)")
        self.worker_pids()  # remember the children for cleanup

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def health(self, path: str = "/health/ready", timeout: float = 5) -> tuple[int, float]:
        """(status or 0 when no answer, seconds taken)."""
        started = time.monotonic()
        try:
            status = requests.get(self.base_url + path, timeout=timeout).status_code
        except requests.RequestException:
            status = 0
        return status, time.monotonic() - started

    def manage(self, *args: str) -> str:
        return subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True,
                              check=True, timeout=120).stdout

    def database(self) -> psycopg.Connection:
        return psycopg.connect(self.env["DATABASE_URL"], autocommit=True, connect_timeout=3)

    def worker_pids(self) -> dict[str, int]:
        """The delivery workers' pids: from run-pids.json when run.py writes it, else by command line."""
        children = self._children()
        pids_file = self.var_dir / "run-pids.json"
        if pids_file.exists():
            try:
                written = json.loads(pids_file.read_text())
                found = {name: written[name] for name in WORKERS if written.get(name) in children}
                if len(found) == len(WORKERS):
                    return found
            except (ValueError, OSError):
                pass
        found = {}
        for pid, process in children.items():
            try:
                command = process.cmdline()
            except psutil.Error:
                continue
            for name, node in WORKERS.items():
                if "worker" in command and any(arg.startswith(node) for arg in command):
                    found[name] = pid
        return found

    def kill_workers(self) -> list["KilledWorker"]:
        """SIGKILL both delivery workers, each with its process group; returns what is needed to find their
        claims and to start a replacement by hand."""
        killed = []
        for name, pid in self.worker_pids().items():
            try:
                process = psutil.Process(pid)
                group = [pid] + [child.pid for child in process.children(recursive=True)]
                killed.append(KilledWorker(name, pid, group, process.cmdline(), process.environ(), process.cwd()))
            except psutil.Error:
                continue
            kill_group(pid)
        return killed

    def restore_workers(self, killed: list["KilledWorker"], timeout: float = 65) -> str:
        """Wait for the supervisor to replace killed workers, noting when each replacement started. Returns who
        brought them back: "supervisor", "harness" (run.py lives but did not restart them: started by hand), or
        "stack restart" (run.py stopped everything when a child died: the harness ran it again).
        The wait covers run.py's longest backoff (30 s) for each of the two workers in turn."""
        deadline = time.monotonic() + timeout
        while self.alive() and time.monotonic() < deadline:
            current = self.worker_pids()
            for worker in killed:
                if worker.restarted_at is None and current.get(worker.name) not in (None, worker.pid):
                    worker.restarted_at = _started_at(current[worker.name])
            if all(worker.restarted_at is not None for worker in killed):
                return "supervisor"
            time.sleep(0.1)
        if not self.alive():
            self.stop()
            self.start()
            for worker in killed:
                worker.restarted_at = _started_at(self.worker_pids().get(worker.name))
            return "stack restart"
        for worker in killed:
            if worker.restarted_at is None:
                with self.log_path.open("a") as log:
                    replacement = subprocess.Popen(worker.command, cwd=worker.cwd, env=worker.env, stdout=log,
                                                   stderr=subprocess.STDOUT, start_new_session=True)
                self.own_workers.append(replacement)
                worker.restarted_at = _started_at(replacement.pid)
        return "harness"

    def stop(self) -> None:
        """SIGTERM run.py (it stops its children), then SIGKILL anything of this stack still running."""
        self._children()
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                kill_group(self.process.pid)
                self.process.wait(5)
        for worker in self.own_workers:
            if worker.poll() is None:
                kill_group(worker.pid)
                worker.wait(5)
        self.own_workers.clear()
        for pid, created in self.seen.items():
            try:
                if psutil.Process(pid).create_time() == created:
                    kill_group(pid)
            except psutil.Error:
                pass
        self.seen.clear()

    def _children(self) -> dict[int, psutil.Process]:
        if not self.alive():
            return {}
        try:
            children = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.Error:
            return {}
        found = {}
        for child in children:
            try:
                self.seen.setdefault(child.pid, child.create_time())
                found[child.pid] = child
            except psutil.Error:
                pass
        for worker in self.own_workers:
            if worker.poll() is None:
                found[worker.pid] = psutil.Process(worker.pid)
        return found


def herald_env(name: str, servers: Servers, simulator: SimulatorProcess, port: int, redis_index: int,
               **extra: str) -> dict[str, str]:
    """The environment of one stack: its own database and Redis db, the simulator, the clocks above."""
    env = {name: value for name, value in os.environ.items() if name not in ("DATABASE_URL", "REDIS_URL")}
    return {
        **env,
        **simulator.settings(),
        "DATABASE_URL": servers.database(f"herald_chaos_{name}"),
        "REDIS_URL": servers.redis_db(redis_index),
        "PORT": str(port),
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "HERALD_VAR_DIR": str(VAR / name),
        "DJANGO_SECRET_KEY": "chaos-only-secret",
        # INFO: the harness waits for each worker's "ready." line (python -m config.worker logs at LOG_LEVEL).
        "LOG_LEVEL": "INFO",
        **SHORT_CLOCKS,
        **PRODUCTION_CLOCKS,
        **extra,
    }


def open_marketing(herald: Herald) -> None:
    """Marketing is opt-in and capped at 2 an hour per person; the chaos database lifts both so that a few
    people can receive many. The cached category settings are dropped so every worker reads the change."""
    with herald.database() as db:
        db.execute("UPDATE preferences_categorysetting SET opt_in = false, hourly_cap = NULL, daily_cap = NULL "
                   "WHERE category = 'marketing'")
    redis.Redis.from_url(herald.env["REDIS_URL"]).delete(CATEGORY_CACHE_KEY)
