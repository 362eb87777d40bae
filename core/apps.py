import sys

from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Herald kernel"

    def ready(self) -> None:
        from core import tracing

        tracing.setup(service_name())


def service_name() -> str:
    """herald-web, herald-worker, herald-beat or herald-socket: what this process is, for its traces."""
    argv = " ".join(sys.argv)
    for word, name in (("beat", "beat"), ("worker", "worker"), ("gunicorn", "web"), ("socket_server", "socket"), ("uvicorn", "socket")):
        if word in argv:
            return f"herald-{name}"
    return "herald"
