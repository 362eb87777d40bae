"""Where a scraper reaches each process's metrics (README, "Metrics").

- The web server: `GET /metrics` with `Authorization: Bearer $HERALD_METRICS_TOKEN` (404 while no
  token is set; the compose front does not route /metrics at all). gunicorn's workers are one
  registry through prometheus-client's multiprocess mode; the installation's gauges
  (config/gauges.py) are served here only, so they are counted once.
- The socket server answers `/metrics` the same way, for its own process (open connections).
- Each Celery worker and beat: an HTTP server of their own on HERALD_METRICS_PORT (off when 0),
  an internal port that compose does not publish.
"""

import hmac
import logging
import os
import threading

from django.conf import settings
from django.http import HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, start_http_server

from config.gauges import InstallationGauges
from core.logs import fields

log = logging.getLogger(__name__)
_installation = CollectorRegistry(auto_describe=False)
_installation.register(InstallationGauges())


def registry() -> CollectorRegistry:
    """This process's metrics; under gunicorn, every worker's (multiprocess mode)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        combined = CollectorRegistry()
        multiprocess.MultiProcessCollector(combined)
        return combined
    return REGISTRY


def metrics(request):
    token = settings.HERALD_METRICS_TOKEN
    offered = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if not token or not hmac.compare_digest(offered.encode(), token.encode()):
        return HttpResponse(status=404)
    body = generate_latest(registry())
    if request.GET.get("installation", "1") != "0":
        body += generate_latest(_installation)
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)


_served = threading.Lock()
_serving = False


def serve_process_metrics() -> None:
    """Start this process's metrics server on HERALD_METRICS_PORT (a worker's or beat's), once
    (config/celery.py calls it when a worker is ready and when beat starts)."""
    global _serving
    port = settings.HERALD_METRICS_PORT
    with _served:
        if _serving or not port or not settings.HERALD_METRICS:
            return
        start_http_server(port, addr=settings.HERALD_METRICS_ADDR)
        _serving = True
    log.info("metrics served", extra=fields(event="metrics_served", port=port))
