"""The inbox socket server: uvicorn serving config.asgi, as `make run` and docker-compose.yml start it.

    python -m config.socket_server --host 0.0.0.0 --port 8001
    python -m config.socket_server --uds var/run/socket.sock

One entry point so that every set-up gets the same limits: a WebSocket frame or message larger
than HERALD_INBOX_MAX_CLIENT_MESSAGE_BYTES is refused from its header (close code 1009) before
its payload is read. uvicorn's default (16 MiB) let 48 sockets take it to 1.6 GB.
"""

import argparse
import os

import uvicorn


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m config.socket_server", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("SOCKET_PORT", "8001")))
    parser.add_argument("--uds", help="listen on this unix socket instead of host and port")
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.conf import settings

    uvicorn.run(
        "config.asgi:application",
        host=args.host, port=args.port, uds=args.uds,
        workers=1,  # not WEB_CONCURRENCY, which uvicorn would read; run more processes to scale
        ws="websockets-sansio",  # checks a frame's announced length against ws_max_size before reading it
        ws_max_size=settings.HERALD_INBOX_MAX_CLIENT_MESSAGE_BYTES,
        # The inbox sends its own heartbeats (HERALD_INBOX_HEARTBEAT_SECONDS); pings on top keep
        # a connection the client has silently dropped from lingering.
        ws_ping_interval=20.0, ws_ping_timeout=20.0,
        access_log=False,
        log_level=os.environ.get("LOG_LEVEL", "info").lower(),
    )


if __name__ == "__main__":
    main()
