"""Run a command with DATABASE_URL and REDIS_URL pointing at (embedded) services.

    python scripts/with_services.py CMD [ARGS...]

Services that this call starts are stopped when CMD ends, also on Ctrl-C or
SIGTERM. Exits with CMD's exit code (128 + N if CMD died from signal N).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from types import FrameType

from services import VAR_DIR, ensure_services, stop_services


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: with_services.py CMD [ARGS...]", file=sys.stderr)
        return 2

    child: subprocess.Popen[bytes] | None = None

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if child is None:
            # Still starting services: unwind so that whatever was started gets stopped.
            raise KeyboardInterrupt
        # Ctrl-C already reached the child through the terminal's process group.
        if signum != signal.SIGINT:
            child.send_signal(signum)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, on_signal)

    services = ensure_services(VAR_DIR)
    try:
        env = {**os.environ, "DATABASE_URL": services.database_url, "REDIS_URL": services.redis_url}
        try:
            child = subprocess.Popen(argv, env=env)
        except FileNotFoundError:
            print(f"with_services.py: command not found: {argv[0]}", file=sys.stderr)
            return 127
        returncode = child.wait()
    finally:
        stop_services(services)
    return 128 - returncode if returncode < 0 else returncode


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        sys.exit(128 + signal.SIGINT)
