"""Benchmark the in-app inbox end to end, and print the figures.

1. Latency: notifications sent one after another through the HTTP API (paced), each timed
   from the API's 202 answer to the item frame arriving on the user's open WebSocket. The
   path is the real one: uvicorn (config.asgi) → routing and delivery tasks on the Celery
   workers → the inbox provider → the Redis channel layer → the socket.
2. Idle connections: how many idle inbox WebSockets one ASGI (uvicorn) process holds, its
   RSS before and after, and whether a push still arrives with all of them open.

    .venv/bin/python bench/inbox.py [--notifications 300] [--rate 5] [--connections 10000]

Runs on a fresh stack from bench/harness.py (its own database and Redis database). PostgreSQL
and Redis come from DATABASE_URL / REDIS_URL, or else from the embedded servers
(scripts/services.py), which this script then starts and stops itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

import httpx  # noqa: E402
import websockets  # noqa: E402

from bench.harness import Stack, percentile  # noqa: E402


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


# --- services and data ----------------------------------------------------------------------


@contextmanager
def services():
    """DATABASE_URL and REDIS_URL from the environment (make bench), or the embedded servers."""
    if os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL"):
        yield
        return
    from services import VAR_DIR, ensure_services, stop_services

    started = ensure_services(VAR_DIR)
    os.environ.update(DATABASE_URL=started.database_url, REDIS_URL=started.redis_url)
    try:
        yield
    finally:
        stop_services(started)


def make_data(connections: int) -> tuple[str, list[tuple[int, str]]]:
    """An API key, the in-app template, and one recipient per idle connection plus the latency user."""
    import django

    django.setup()
    from notifications.models import ApiKey
    from preferences.models import Recipient
    from templates_app.models import Template

    _, raw_key = ApiKey.issue("bench")
    Template.objects.create(
        name="bench", channel="in_app", locale="en", title="Bench {{ n }}", body="Notification {{ n }}",
        variables_schema={"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}},
    )
    Recipient.objects.bulk_create([Recipient(external_id=f"bench-{i}") for i in range(connections + 1)], batch_size=2000)
    recipients = list(Recipient.objects.order_by("id").values_list("id", "external_id"))
    return raw_key, recipients


def token(recipient: tuple[int, str]) -> str:
    from inbox.tokens import issue_token

    return issue_token(recipient[0], recipient[1], ttl_seconds=6 * 3600)[0]


# --- measurements ---------------------------------------------------------------------------


async def measure_latency(http_url: str, ws_url: str, api_key: str, user: tuple[int, str], count: int, rate: float) -> dict:
    accepted: dict[str, float] = {}
    requested: dict[str, float] = {}
    received: dict[str, float] = {}
    async with websockets.connect(f"{ws_url}/ws/inbox?token={token(user)}", ping_interval=None, max_size=None) as ws:
        init = json.loads(await ws.recv())
        assert init["type"] == "init", init
        done = asyncio.Event()

        async def read():
            async for raw in ws:
                frame = json.loads(raw)
                if frame["type"] == "item":
                    received[frame["item"]["notification_id"]] = time.perf_counter()
                    if len(received) == count:
                        done.set()
                        return

        reader = asyncio.create_task(read())
        async with httpx.AsyncClient(base_url=http_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=30) as client:
            started = time.perf_counter()
            for n in range(count):
                sent_at = time.perf_counter()
                response = await client.post("/api/v1/notifications", json={
                    "user_id": user[1], "type": "transaction", "template": "bench", "channels": ["in_app"], "variables": {"n": n},
                })
                response.raise_for_status()
                notification_id = response.json()["id"]
                accepted[notification_id] = time.perf_counter()
                requested[notification_id] = sent_at
                await asyncio.sleep(max(0.0, started + (n + 1) / rate - time.perf_counter()))
        try:
            await asyncio.wait_for(done.wait(), 60)
        except TimeoutError:
            log(f"{count - len(received)} notifications never reached the socket; reporting them as missing")
        finally:
            reader.cancel()
    missing = set(accepted) - set(received)
    latencies = [(received[i] - accepted[i]) * 1000 for i in accepted if i in received]
    from_request = [(received[i] - requested[i]) * 1000 for i in accepted if i in received]
    api = [(accepted[i] - requested[i]) * 1000 for i in accepted]
    return {"count": count, "received": len(latencies), "missing": len(missing), "latencies": latencies,
            "from_request": from_request, "api": api}


async def hold_idle_connections(ws_url: str, http_url: str, api_key: str, users: list[tuple[int, str]],
                                server_pid: int, idle_seconds: float, concurrency: int) -> dict:
    tokens = [(user, token(user)) for user in users]
    baseline = rss_mib(server_pid)
    gate = asyncio.Semaphore(concurrency)
    sockets: list = []
    owners: list[tuple[int, str]] = []
    failures: list[str] = []

    async def open_one(user: tuple[int, str], raw: str):
        async with gate:
            try:
                ws = await websockets.connect(f"{ws_url}/ws/inbox?token={raw}", ping_interval=None,
                                              open_timeout=60, max_size=2**20)
                frame = json.loads(await asyncio.wait_for(ws.recv(), 60))
                if frame["type"] != "init":
                    raise RuntimeError(f"first frame {frame['type']}")
                sockets.append(ws)
                owners.append(user)
                if len(sockets) % 1000 == 0:
                    log(f"{len(sockets)} sockets open, server RSS {rss_mib(server_pid):.0f} MiB")
            except Exception as exc:  # counted and reported: this is what we measure
                failures.append(f"{type(exc).__name__}: {exc}")

    started = time.perf_counter()
    await asyncio.gather(*(open_one(user, raw) for user, raw in tokens))
    opening = time.perf_counter() - started
    opened = len(sockets)
    log(f"{opened} sockets open in {opening:.1f}s; holding them idle for {idle_seconds:.0f}s")
    await asyncio.sleep(idle_seconds)  # the point of this phase: the server holds them idle
    loaded = rss_mib(server_pid)

    # Are they all still alive? Each answers a ping (after any heartbeats queued meanwhile).
    async def alive(ws) -> bool:
        try:
            async with asyncio.timeout(60):
                await ws.send(json.dumps({"type": "ping", "ref": "alive"}))
                while json.loads(await ws.recv())["type"] != "pong":
                    pass
            return True
        except Exception:
            return False

    alive_count = sum(await asyncio.gather(*(alive(ws) for ws in sockets)))

    # And a push still arrives on one of them with all the others open.
    target_index = len(sockets) // 2
    target = sockets[target_index]
    async with httpx.AsyncClient(base_url=http_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=30) as client:
        response = await client.post("/api/v1/notifications", json={
            "user_id": owners[target_index][1], "type": "transaction", "template": "bench", "channels": ["in_app"],
            "variables": {"n": 1},
        })
        response.raise_for_status()
        accepted = time.perf_counter()
    push_ms = None
    try:
        async with asyncio.timeout(60):
            while push_ms is None:
                if json.loads(await target.recv())["type"] == "item":
                    push_ms = (time.perf_counter() - accepted) * 1000
    except TimeoutError:
        log("the push to an idle socket did not arrive within 60 s")
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    return {"requested": len(users), "opened": opened, "alive": alive_count, "failures": failures,
            "opening_seconds": opening, "rss_baseline": baseline, "rss_loaded": loaded, "push_ms": push_ms}


# --- main -----------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--notifications", type=int, default=300, help="notifications timed for latency")
    parser.add_argument("--rate", type=float, default=5.0, help="notifications per second while timing latency")
    parser.add_argument("--connections", type=int, default=10000, help="idle WebSockets to open on one ASGI process")
    parser.add_argument("--idle-seconds", type=float, default=30.0, help="how long to hold them idle")
    parser.add_argument("--concurrency", type=int, default=100, help="handshakes in flight at once")
    args = parser.parse_args(sys.argv[1:] if Path(sys.argv[0]).name == "inbox.py" else [])
    # Stopped from outside, still stop the servers (the with blocks below).
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # both ends of every socket; the servers inherit it
    if hard < args.connections + 1000:
        log(f"the open-file limit ({hard}) is below {args.connections} sockets; fewer will open")

    with services(), Stack(log_dir=ROOT / "var" / "bench" / "inbox") as stack:
        os.environ.update(stack.env)
        api_key, recipients = make_data(args.connections)
        latency_user, idle_users = recipients[0], recipients[1:]
        server_pid = stack.processes[1].pid  # the socket process: uvicorn, one process
        ws_url = stack.socket_url.replace("http://", "ws://", 1)
        log(f"timing {args.notifications} notifications at {args.rate:g}/s")
        latency = asyncio.run(measure_latency(stack.base_url, ws_url, api_key, latency_user, args.notifications, args.rate))
        log(f"opening {args.connections} idle sockets on one uvicorn process (pid {server_pid})")
        idle = asyncio.run(hold_idle_connections(ws_url, stack.base_url, api_key, idle_users, server_pid,
                                                 args.idle_seconds, args.concurrency))
    report(args, latency, idle)
    return 0 if latency["missing"] == 0 and idle["push_ms"] is not None and idle["opened"] == idle["alive"] == args.connections else 1


def report(args, latency: dict, idle: dict) -> None:
    lat, req, api = latency["latencies"], latency["from_request"], latency["api"]
    print()
    print(f"In-app inbox benchmark ({os.cpu_count()} CPUs; one uvicorn process, two Celery worker processes)")
    print(f"  API accept → WebSocket receipt, {latency['received']}/{latency['count']} notifications at {args.rate:g}/s:")
    if lat:
        print(f"    p50 {percentile(lat, 50):.1f} ms   p90 {percentile(lat, 90):.1f} ms   p99 {percentile(lat, 99):.1f} ms"
              f"   max {max(lat):.1f} ms   mean {statistics.mean(lat):.1f} ms")
        print(f"    from request start: p50 {percentile(req, 50):.1f} ms   p99 {percentile(req, 99):.1f} ms"
              f"   (API answer alone: p50 {percentile(api, 50):.1f} ms, p99 {percentile(api, 99):.1f} ms)")
    print(f"    missing: {latency['missing']}")
    per_conn = (idle["rss_loaded"] - idle["rss_baseline"]) * 1024 / max(idle["opened"], 1)
    print(f"  Idle WebSockets on one ASGI process: {idle['opened']}/{idle['requested']} opened in "
          f"{idle['opening_seconds']:.1f}s ({idle['opened'] / max(idle['opening_seconds'], 1e-9):.0f}/s), "
          f"{idle['alive']} alive after {args.idle_seconds:g}s idle")
    print(f"    server RSS {idle['rss_baseline']:.0f} MiB → {idle['rss_loaded']:.0f} MiB (≈ {per_conn:.1f} KiB per connection)")
    push = f"{idle['push_ms']:.1f} ms from accept to receipt" if idle["push_ms"] is not None else "NOT RECEIVED within 60 s"
    print(f"    a push with all of them open: {push}")
    if idle["failures"]:
        print(f"    failures: {len(idle['failures'])}, e.g. {idle['failures'][0]}")


if __name__ == "__main__":
    if main():
        raise SystemExit(1)
