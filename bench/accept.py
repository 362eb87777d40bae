"""Accept throughput and end-to-end time through the sandbox providers.

Prints: accepted notifications per second at N concurrent clients with p50/p99 latency,
and how long the worker took to route and send all of them.
"""

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.harness import Stack, percentile, wait_until  # noqa: E402

COUNT = 2000
CLIENTS = 32


def main() -> None:
    with Stack(web_workers=2) as stack:
        key = stack.api_key()
        session_headers = {"Authorization": f"Bearer {key}"}
        http = requests.Session()
        http.headers.update(session_headers)
        http.put(f"{stack.base_url}/api/v1/users/bench-user", json={"email": "bench@example.com"}).raise_for_status()
        http.post(f"{stack.base_url}/api/v1/templates", json={
            "name": "bench", "channel": "email", "subject": "Hi {{ n }}", "body": "Message {{ n }}",
        }).raise_for_status()

        latencies: list[float] = []

        def send(n: int) -> int:
            session = sessions[n % CLIENTS]
            started = time.perf_counter()
            response = session.post(f"{stack.base_url}/api/v1/notifications", json={
                "user_id": "bench-user", "type": "transaction", "template": "bench", "variables": {"n": n},
                "channels": ["email"],
            })
            latencies.append(time.perf_counter() - started)
            return response.status_code

        sessions = []
        for _ in range(CLIENTS):
            session = requests.Session()
            session.headers.update(session_headers)
            sessions.append(session)
        started = time.perf_counter()
        with ThreadPoolExecutor(CLIENTS) as pool:
            statuses = list(pool.map(send, range(COUNT)))
        accept_seconds = time.perf_counter() - started
        accepted = statuses.count(202)

        with stack.database() as db:
            def all_sent():
                (sent,) = db.execute("SELECT count(*) FROM delivery_delivery WHERE status = 'sent'").fetchone()
                return sent >= accepted
            wait_until(all_sent, 600, "every notification to be sent")
        total_seconds = time.perf_counter() - started

        print(f"accept: {accepted}/{COUNT} accepted in {accept_seconds:.1f}s = {accepted / accept_seconds:.0f} req/s "
              f"at {CLIENTS} clients, workers draining meanwhile "
              f"(p50 {percentile(latencies, 50) * 1000:.0f} ms, p99 {percentile(latencies, 99) * 1000:.0f} ms)")
        print(f"end-to-end: all {accepted} routed and sent through the sandbox in {total_seconds:.1f}s "
              f"= {accepted / total_seconds:.0f} notifications/s (2 web processes, 2 solo workers, sharing 2 cores)")


if __name__ == "__main__":
    main()
