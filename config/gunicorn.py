"""The production web server for the REST API, admin and static files: gunicorn's sync workers.

Sync workers run Django's sync views on the thread that took the request; under ASGI each
one pays a hop to a thread pool (measured here: the same insert endpoint ran ~2x slower).
WebSockets (the inbox) are served apart by uvicorn with config.asgi.
"""

import os
import tempfile

# A request waits at most this long for a database connection: with one request per process at a
# time a connection is always free, so a longer wait only ever means PostgreSQL is away, and the
# answer (503, core/database_outage.py) should come at once. Workers keep the longer default.
os.environ.setdefault("DATABASE_WAIT_SECONDS", "0.3")

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "sync"
# A request may wait on PostgreSQL or Redis for at most a few seconds (their own timeouts);
# a worker stuck far longer than that is killed and replaced.
timeout = int(os.environ.get("WEB_TIMEOUT", "30"))
graceful_timeout = 10
# Stray slow clients should not hold a sync worker: read the request within this many seconds.
keepalive = 2
accesslog = os.environ.get("WEB_ACCESS_LOG") or None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# Connections and the render pool belong to each worker, so load the app after the fork.
preload_app = False
# gunicorn 27's control socket defaults to one path per user ($HOME/.gunicorn/gunicorn.ctl),
# which a second gunicorn on the machine (make run beside the tests) takes over; Herald uses none.
control_socket_disable = True

# Metrics (core/metrics.py): every worker writes its values under PROMETHEUS_MULTIPROC_DIR, and
# /metrics adds them up (config/metrics_http.py). The directory is emptied when gunicorn starts,
# so values of an earlier run are never added in; a dead worker's gauges are dropped. By default
# one directory per gunicorn (its master's pid), so two on one machine never share one.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", os.path.join(tempfile.gettempdir(), f"herald-metrics-web-{os.getpid()}"))


def on_starting(server) -> None:
    import shutil

    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory, exist_ok=True)


def child_exit(server, worker) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
