"""Liveness and readiness endpoints for load balancers and orchestrators.

Readiness answers within READY_DEADLINE_SECONDS whatever is down or stalled: each check runs
in its own thread with its own timeouts, and a check still running at the deadline is
reported as timed out (its thread finishes on its own; every call in it is bounded too).
"""

from concurrent.futures import ThreadPoolExecutor, wait
from urllib.parse import urlsplit

import psycopg
from django.conf import settings
from django.http import JsonResponse
from kombu import Connection

from core import database_outage, redis_client
from core.queues import ALL_QUEUES, broker_queue

READY_DEADLINE_SECONDS = 0.5
CHECK_TIMEOUT_SECONDS = 0.4
_checks = ThreadPoolExecutor(max_workers=6, thread_name_prefix="ready")


def live(request):
    return JsonResponse({"status": "ok"})


def check_database() -> dict:
    if database_outage.refusing():  # known: this process's probe keeps asking, so need not wait here
        return {"ok": False, "error": f"unreachable for {database_outage.down_for():.1f} s"}
    # A connection of its own: the request pool may be exhausted exactly when this matters.
    db = settings.DATABASES["default"]
    with psycopg.connect(
        dbname=db["NAME"], user=db.get("USER") or None, password=db.get("PASSWORD") or None,
        host=db.get("HOST") or None, port=db.get("PORT") or None, connect_timeout=2,  # libpq's least; the deadline cuts it
        options=f"-c statement_timeout={int(CHECK_TIMEOUT_SECONDS * 1000)}",
    ) as connection:
        connection.execute("SELECT 1")
    return {"ok": True}


def check_redis() -> dict:
    redis_client.shared().ping()
    return {"ok": True}


def check_broker() -> dict:
    """The configured broker, Redis or RabbitMQ, with the depth of every Herald queue."""
    url = settings.CELERY_BROKER_URL
    if urlsplit(url).scheme in ("redis", "rediss", "unix"):
        import redis

        broker = redis.Redis.from_url(url, socket_timeout=CHECK_TIMEOUT_SECONDS, socket_connect_timeout=CHECK_TIMEOUT_SECONDS)
        pipe = broker.pipeline(transaction=False)
        for name in ALL_QUEUES:
            pipe.llen(broker_queue(name))
        pipe.hlen("unacked")
        *depths, unacked = pipe.execute()
        # Unacked: taken by a worker and not acknowledged yet (running, or lost with its worker).
        return {"ok": True, "kind": "redis", "queues": dict(zip(ALL_QUEUES, depths, strict=True)), "unacked": unacked}
    with Connection(url, connect_timeout=CHECK_TIMEOUT_SECONDS,
                    transport_options={"read_timeout": CHECK_TIMEOUT_SECONDS, "write_timeout": CHECK_TIMEOUT_SECONDS}) as connection:
        connection.ensure_connection(max_retries=0)
        channel = connection.channel()
        depths = {}
        for name in ALL_QUEUES:
            try:
                depths[name] = channel.queue_declare(broker_queue(name), passive=True).message_count
            except Exception:  # not declared yet: no worker has consumed it; RabbitMQ closes the channel
                depths[name] = 0
                channel = connection.channel()
        return {"ok": True, "kind": urlsplit(url).scheme, "queues": depths}


CHECKS = {"database": check_database, "redis": check_redis, "broker": check_broker}


def ready(request):
    futures = {name: _checks.submit(check) for name, check in CHECKS.items()}
    wait(futures.values(), timeout=READY_DEADLINE_SECONDS)
    results: dict[str, dict] = {}
    for name, future in futures.items():
        if not future.done():
            results[name] = {"ok": False, "error": f"no answer within {READY_DEADLINE_SECONDS} s"}
        elif future.exception() is not None:
            results[name] = {"ok": False, "error": f"{type(future.exception()).__name__}: {future.exception()}"[:300]}
        else:
            results[name] = future.result()
    ok = all(check["ok"] for check in results.values())
    return JsonResponse({"status": "ok" if ok else "unavailable", "checks": results}, status=200 if ok else 503)
