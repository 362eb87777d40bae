"""Liveness files for processes with no HTTP port: Celery workers and beat.

A worker starts a daemon thread (on `worker_ready`) that touches HERALD_LIVENESS_FILE every
second, and removes the file when it shuts down; beat touches it after each scheduler tick.
A container's healthcheck then asks how old the file is:

    python -m core.liveness check /tmp/herald-alive 30

which exits 0 when the file was touched within 30 seconds, 1 otherwise. The check imports
nothing of Django, so it costs a healthcheck a few milliseconds.
"""

import os
import sys
import threading
import time
from pathlib import Path

TOUCH_INTERVAL_SECONDS = 1.0


def touch(path: Path) -> None:
    path.touch()
    os.utime(path)  # touch() leaves the time alone on some filesystems when the file exists


def age_seconds(path: Path) -> float | None:
    """Seconds since the file was last touched; None when it does not exist."""
    try:
        return max(0.0, time.time() - path.stat().st_mtime)
    except FileNotFoundError:
        return None


class Heartbeat:
    """A daemon thread touching `path` every second until stopped; the process is alive while it beats."""

    def __init__(self, path: Path):
        self.path = path
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._beat, name="liveness", daemon=True)

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        touch(self.path)
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()
        self.path.unlink(missing_ok=True)

    def _beat(self) -> None:
        while not self.stopped.wait(TOUCH_INTERVAL_SECONDS):
            touch(self.path)


_heartbeat: Heartbeat | None = None


def liveness_file() -> Path | None:
    from django.conf import settings

    return Path(settings.HERALD_LIVENESS_FILE) if settings.HERALD_LIVENESS_FILE else None


def on_worker_ready(**kwargs) -> None:
    global _heartbeat
    path = liveness_file()
    if path is not None and _heartbeat is None:
        _heartbeat = Heartbeat(path)
        _heartbeat.start()


def on_worker_shutdown(**kwargs) -> None:
    global _heartbeat
    if _heartbeat is not None:
        _heartbeat.stop()
        _heartbeat = None


def on_beat_init(sender, **kwargs) -> None:
    """Touch the file after each of beat's ticks: its age is how long ago beat last looked at its schedule."""
    path = liveness_file()
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    scheduler = sender.scheduler
    tick = scheduler.tick

    def tick_and_touch(*args, **kwargs):
        interval = tick(*args, **kwargs)
        touch(path)
        return interval

    scheduler.tick = tick_and_touch
    touch(path)


def connect() -> None:
    """Hook the liveness file to Celery's signals (config/celery.py calls this once)."""
    from celery import signals

    signals.worker_ready.connect(on_worker_ready, weak=False, dispatch_uid="herald-liveness-ready")
    signals.worker_shutdown.connect(on_worker_shutdown, weak=False, dispatch_uid="herald-liveness-shutdown")
    signals.beat_init.connect(on_beat_init, weak=False, dispatch_uid="herald-liveness-beat")


def check(path: Path, max_age_seconds: float) -> int:
    age = age_seconds(path)
    if age is None:
        print(f"{path}: missing", file=sys.stderr)
        return 1
    if age > max_age_seconds:
        print(f"{path}: last touched {age:.1f}s ago (more than {max_age_seconds:g}s)", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[0] != "check":
        print("usage: python -m core.liveness check FILE MAX_AGE_SECONDS", file=sys.stderr)
        return 2
    return check(Path(argv[1]), float(argv[2]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
