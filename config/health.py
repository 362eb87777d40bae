"""Liveness and readiness endpoints for load balancers and orchestrators."""

import redis
from django.conf import settings
from django.db import connection
from django.http import JsonResponse

from config.celery import app
from config.queues import ALL_QUEUES


def live(request):
    return JsonResponse({"status": "ok"})


def ready(request):
    checks: dict[str, dict] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = {"ok": True}
    except Exception as exc:
        checks["database"] = {"ok": False, "error": str(exc)}

    try:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
        client.ping()
        checks["redis"] = {"ok": True}
    except Exception as exc:
        checks["redis"] = {"ok": False, "error": str(exc)}

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
            broker = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=2, socket_connect_timeout=2)
            depths = {name: broker.llen(name) for name in ALL_QUEUES}
            # Messages taken by a worker but not acknowledged yet (running, or waiting for their retry time).
            unacked = broker.hlen("unacked")
        checks["broker"] = {"ok": True, "queues": depths, "unacked": unacked}
    except Exception as exc:
        checks["broker"] = {"ok": False, "error": str(exc)}

    ok = all(check["ok"] for check in checks.values())
    return JsonResponse({"status": "ok" if ok else "unavailable", "checks": checks}, status=200 if ok else 503)
