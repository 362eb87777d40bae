"""`make run`: embedded services, migrations, demo data, then proxy + web + socket + workers + beat, supervised.

Clients reach one port (PORT, 8000): the front (scripts/front.py), which reads each request
whole before gunicorn gets it and pipes /ws/ to the socket server. gunicorn and uvicorn listen
on unix sockets under var/run/, so no slow client can reach them directly.

A process that dies is restarted after a backoff (1 s, doubling to MAX_BACKOFF while it
keeps dying within STABLE_SECONDS of its start), and the restart is logged; the others run
on. Their pids are kept in var/run-pids.json. Ctrl-C or SIGTERM stops them all (SIGTERM,
then SIGKILL after STOP_TIMEOUT) and then the embedded servers this run started.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import IO

from services import ROOT, VAR_DIR, Services, ensure_services, stop_services

sys.path.insert(0, str(ROOT))

BIN = Path(sys.executable).parent
STOP_TIMEOUT = 10.0
MAX_BACKOFF = 30.0
STABLE_SECONDS = 60.0
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

Exits = queue.Queue[tuple[str, int]]
_output_lock = threading.Lock()


class Stop(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise Stop(signum)


def _ignore(signum: int, frame: FrameType | None) -> None:
    pass


def _say(message: str) -> None:
    with _output_lock:
        print(f"run.py: {message}", file=sys.stderr, flush=True)


def _manage(args: list[str], env: dict[str, str]) -> None:
    returncode = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env).returncode
    if returncode != 0:
        raise SystemExit(f"run.py: manage.py {' '.join(args)} failed with exit code {returncode}")


def _pump(name: str, stream: IO[str]) -> None:
    prefix = f"{name:<6} | "
    for line in stream:
        with _output_lock:
            sys.stdout.write(prefix + line)
            sys.stdout.flush()


def _start(name: str, argv: list[str], env: dict[str, str], exits: Exits) -> subprocess.Popen[str]:
    # Own session: Ctrl-C reaches only this script, which then stops the children in order,
    # and SIGKILL can take a whole group (celery's pool processes included).
    proc = subprocess.Popen(
        argv,
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=True,
    )
    assert proc.stdout is not None
    threading.Thread(target=_pump, args=(name, proc.stdout), daemon=True).start()
    threading.Thread(target=lambda: exits.put((name, proc.wait())), daemon=True).start()
    return proc


def _stop_children(children: dict[str, subprocess.Popen[str]], exits: Exits) -> None:
    running = {name for name, proc in children.items() if proc.poll() is None}
    for name in running:
        children[name].send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while running:
        try:
            name, _ = exits.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            break
        running.discard(name)
    for name in sorted(running):
        _say(f"{name} did not stop within {STOP_TIMEOUT:.0f}s; killing it")
    for proc in children.values():
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the stragglers, and anything they left behind
        except ProcessLookupError:
            pass
        proc.wait()


def _write_pids(children: dict[str, subprocess.Popen[str]]) -> None:
    path = Path(os.environ.get("HERALD_VAR_DIR", VAR_DIR)) / "run-pids.json"
    path.write_text(json.dumps({name: proc.pid for name, proc in children.items()}))


def _supervise(children: dict[str, subprocess.Popen[str]], commands: dict[str, list[str]], env: dict[str, str], exits: Exits) -> None:
    """Restart whichever child exits, each on its own backoff, so one that keeps dying delays no other."""
    started = {name: time.monotonic() for name in children}
    backoff = {name: 1.0 for name in children}
    due: dict[str, float] = {}  # restarts waiting for their backoff to pass
    while True:
        timeout = max(0.0, min(due.values()) - time.monotonic()) if due else None
        try:
            name, returncode = exits.get(timeout=timeout)
        except queue.Empty:
            name = None
        if name is not None and children[name].poll() is not None and name not in due:
            if time.monotonic() - started[name] > STABLE_SECONDS:
                backoff[name] = 1.0
            _say(f"{name} (pid {children[name].pid}) exited with code {returncode}; restarting it in {backoff[name]:.0f}s")
            due[name] = time.monotonic() + backoff[name]
            backoff[name] = min(MAX_BACKOFF, backoff[name] * 2)
        for name in [n for n, at in due.items() if at <= time.monotonic()]:
            del due[name]
            children[name] = _start(name, commands[name], env, exits)
            started[name] = time.monotonic()
            _write_pids(children)
            _say(f"{name} restarted as pid {children[name].pid}")


def main() -> int:
    for signum in SIGNALS:
        signal.signal(signum, _raise_stop)

    services: Services | None = None
    children: dict[str, subprocess.Popen[str]] = {}
    exits: Exits = queue.Queue()
    try:
        services = ensure_services(VAR_DIR)
        port = os.environ.get("PORT", "8000")
        host = os.environ.get("HOST", "127.0.0.1")
        sockets = Path(os.environ.get("HERALD_VAR_DIR", VAR_DIR)) / "run"
        sockets.mkdir(parents=True, exist_ok=True)
        web_socket, inbox_socket = sockets / "web.sock", sockets / "socket.sock"
        env = {
            **os.environ,
            "DATABASE_URL": services.database_url,
            "REDIS_URL": services.redis_url,
            "PUBLIC_BASE_URL": os.environ.get("PUBLIC_BASE_URL", f"http://127.0.0.1:{port}"),
            "PYTHONUNBUFFERED": "1",
            # The inbox demo page is a local-development convenience (off in production).
            "HERALD_INBOX_DEMO": os.environ.get("HERALD_INBOX_DEMO", "1"),
            # Every request reaches Django through the front, which replaces X-Forwarded-For with the client's address.
            "HERALD_CLIENT_IP_HEADER": os.environ.get("HERALD_CLIENT_IP_HEADER", "HTTP_X_FORWARDED_FOR"),
        }
        _manage(["migrate", "--noinput"], env)
        _manage(["bootstrap_demo"], env)

        python = sys.executable
        commands = {
            # As in production (docker-compose.yml): a buffering proxy in front, REST under gunicorn, the inbox socket under uvicorn.
            "front": [python, str(ROOT / "scripts" / "front.py"), "--listen", f"{host}:{port}",
                      "--web", f"unix:{web_socket}", "--socket", f"unix:{inbox_socket}"],
            "web": [str(BIN / "gunicorn"), "-c", "config/gunicorn.py", "--bind", f"unix:{web_socket}", "config.wsgi:application"],
            "socket": [python, "-m", "config.socket_server", "--uds", str(inbox_socket)],
            # One process per lane, so a marketing backlog never delays a password reset; each
            # runs a pool of threads (CELERY_WORKER_POOL), shared fairly between providers.
            "worker-urgent": [python, "-m", "config.worker", "urgent"],
            "worker-bulk": [python, "-m", "config.worker", "bulk"],
            "beat": [python, "-m", "celery", "-A", "config", "beat", "--loglevel", "INFO",
                     "-S", "django_celery_beat.schedulers:DatabaseScheduler"],
        }
        for name, argv in commands.items():
            children[name] = _start(name, argv, env, exits)
        _write_pids(children)
        _say(f"Herald on http://{host}:{port}/ (web and inbox socket behind one proxy) with workers and beat; Ctrl-C stops everything")
        _supervise(children, commands, env, exits)
        return 1  # not reached: _supervise returns only through Stop
    except Stop as stop:
        _say(f"{stop}: stopping everything")
        return 128 + stop.signum
    finally:
        # Cleanup is bounded by deadlines; further signals must not cut it short.
        for signum in SIGNALS:
            signal.signal(signum, _ignore)
        _stop_children(children, exits)
        if services is not None:
            stop_services(services)


if __name__ == "__main__":
    sys.exit(main())
