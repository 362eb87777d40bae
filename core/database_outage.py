"""While PostgreSQL cannot be reached, web requests are refused at once instead of each waiting for it.

Measured before this existed: with PostgreSQL stopped, every request waited out the connection
pool's timeout before its 503 (3–4 s at the web port, queueing included), and refusals went on
for ~8 s after it was back, while the pool sat in its reconnection backoff. Now the first request
that finds the database away opens this process's circuit: from then on requests are answered
503 before they touch the database, while a background thread asks PostgreSQL directly (not
through the pool) every HERALD_DATABASE_PROBE_SECONDS. When it answers, the pool is replaced by
a fresh one, which connects at once, and the circuit closes: the next request goes through.
"""

import logging
import threading
import time

import psycopg
from django.conf import settings
from django.db import connections

log = logging.getLogger(__name__)

_lock = threading.Lock()
_state = {"down_since": None}


def refusing() -> bool:
    """Whether this process knows the database to be away (requests should be refused without trying)."""
    return _state["down_since"] is not None


def down_for() -> float:
    """Seconds since this process found the database away (0 when it is not)."""
    since = _state["down_since"]
    return 0.0 if since is None else time.monotonic() - since


def went_away(error: Exception) -> None:
    """A request could not reach the database: refuse the next ones until a probe gets through."""
    with _lock:
        if _state["down_since"] is not None:
            return
        _state["down_since"] = time.monotonic()
    log.warning("database unreachable (%s): refusing requests until it answers again", error)
    threading.Thread(target=_probe_until_back, name="herald-database-probe", daemon=True).start()


def _probe_until_back() -> None:
    while not _answers():
        time.sleep(settings.HERALD_DATABASE_PROBE_SECONDS)
    try:
        connections["default"].close_pool()  # its connections are dead and its reconnection backs off
    except Exception:  # a pool already closed, or none: the next request makes a fresh one either way
        log.debug("closing the connection pool after the outage failed", exc_info=True)
    with _lock:
        down_for = time.monotonic() - _state["down_since"]
        _state["down_since"] = None
    log.warning("database answers again after %.1f s: accepting requests", down_for)


def _answers() -> bool:
    params = connections["default"].get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    try:
        with psycopg.connect(**{**params, "connect_timeout": 2}, autocommit=True) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error:
        return False
    return True
