"""A small HTTP/1.1 load generator: N connections, each sending its requests one after another.

Written here (one line why: the machine has no wrk, and the bench must run with only Python)
on asyncio streams, so that the client costs far less CPU than the servers it measures;
the same generator measures Herald and its reference in the same run.
"""

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass
class LoadResult:
    requests: int
    seconds: float
    latencies: list[float]
    statuses: Counter

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds

    def percentile(self, pct: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))]

    def line(self) -> str:
        return (f"{self.per_second:.0f} req/s, p50 {self.percentile(50) * 1000:.1f} ms, p99 {self.percentile(99) * 1000:.1f} ms "
                f"({self.requests} requests, {dict(self.statuses)})")


async def _connection(host, port, path, headers, body_for: Callable[[int], dict], numbers, result: LoadResult):
    reader = writer = None
    for n in numbers:
        body = json.dumps(body_for(n)).encode()
        request = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
                   f"Content-Length: {len(body)}\r\n{headers}\r\n").encode() + body
        started = time.perf_counter()
        for _ in range(3):
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            try:
                writer.write(request)
                status_line = await reader.readline()
                if not status_line:
                    raise ConnectionResetError
                length, close = 0, False
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                    elif name.lower() == "connection" and value.strip().lower() == "close":
                        close = True
                await reader.readexactly(length)
                break
            except (ConnectionError, asyncio.IncompleteReadError):
                writer.close()
                reader = writer = None
        else:
            raise RuntimeError("the server kept closing the connection")
        result.latencies.append(time.perf_counter() - started)
        result.statuses[int(status_line.split()[1])] += 1
        if close:
            writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()


def post_load(url: str, body_for: Callable[[int], dict], total: int, connections: int, headers: dict | None = None) -> LoadResult:
    """POST `total` JSON bodies (`body_for(n)`, so every one differs) over `connections` connections."""
    parts = urlsplit(url)
    header_text = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    result = LoadResult(total, 0.0, [], Counter())

    async def run():
        tasks = [
            _connection(parts.hostname, parts.port, parts.path, header_text, body_for, range(c, total, connections), result)
            for c in range(connections)
        ]
        await asyncio.gather(*tasks)

    started = time.perf_counter()
    asyncio.run(run())
    result.seconds = time.perf_counter() - started
    return result
