"""A Celery worker for one kind of lane, as `make run` and docker-compose.yml start them.

    python -m config.worker urgent [more celery worker options]
    python -m config.worker bulk

The queue list comes from core/queues.py (with HERALD_QUEUE_PREFIX), so no command line
repeats it; the process becomes `celery worker` itself (exec), so it receives the signals
its supervisor sends.
"""

import os
import sys

from core.queues import WORKER_FLAGS, WORKER_QUEUES


def worker_argv(lane: str, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "config", "worker", "--loglevel", os.environ.get("LOG_LEVEL", "INFO"),
            "-Q", ",".join(WORKER_QUEUES[lane]), "-n", f"{lane}@%h", *WORKER_FLAGS, *extra]


def main(argv: list[str]) -> None:
    if not argv or argv[0] not in WORKER_QUEUES:
        raise SystemExit(f"usage: python -m config.worker {{{'|'.join(WORKER_QUEUES)}}} [celery worker options]")
    command = worker_argv(argv[0], argv[1:])
    os.execv(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
