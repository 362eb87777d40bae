"""Accept throughput against the bare DRF insert endpoint, then one worker draining what was accepted.

Prints, each beside its reference from the same run on the same PostgreSQL and Redis:
- accepted/s and p50/p99 at 50 connections, every body unique (reference: bench/reference, a DRF
  validate+insert endpoint, both under gunicorn with 2 sync workers);
- notifications routed and sent per second by one solo worker process through the sandbox
  (reference: a no-op Celery task, solo, acks_late, prefetch 1);
- the worker's peak RSS.
"""

import sys
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.harness import Stack, wait_until  # noqa: E402
from bench.load import post_load  # noqa: E402

REQUESTS = 4000
CONNECTIONS = 50


def notification(n: int) -> dict:
    return {"user_id": "bench-user", "type": "transaction", "template": "bench", "variables": {"n": n}, "channels": ["email"]}


def main(env: dict | None = None) -> tuple[float, float]:
    """Run the benchmark (with `env` over the stack's); (accept ratio, drain ratio) against their references."""
    with Stack(env, web_workers=2, worker_concurrency=1, start_worker=False) as stack:
        key = stack.api_key()
        headers = {"Authorization": f"Bearer {key}"}
        import requests
        requests.put(f"{stack.base_url}/api/v1/users/bench-user", json={"email": "bench@example.com"}, headers=headers).raise_for_status()
        requests.post(f"{stack.base_url}/api/v1/templates", headers=headers, json={
            "name": "bench", "channel": "email", "subject": "Hi {{ n }}", "body": "Message {{ n }}",
        }).raise_for_status()
        reference_url = stack.start_reference_web(workers=2)
        url = f"{stack.base_url}/api/v1/notifications"

        post_load(reference_url, notification, 300, CONNECTIONS)  # warm both: connections, imports, caches
        post_load(url, lambda n: notification(-1 - n), 300, CONNECTIONS, headers)
        reference = post_load(reference_url, lambda n: notification(10**6 + n), REQUESTS, CONNECTIONS)
        herald = post_load(url, notification, REQUESTS, CONNECTIONS, headers)
        reference_again = post_load(reference_url, lambda n: notification(2 * 10**6 + n), REQUESTS, CONNECTIONS)
        ref_rate = (reference.per_second + reference_again.per_second) / 2
        ref_p99 = (reference.percentile(99) + reference_again.percentile(99)) / 2
        print(f"reference insert endpoint: {reference.line()}; again after Herald: {reference_again.line()}")
        print(f"herald accept:             {herald.line()}")
        print(f"  accept ratio {herald.per_second / ref_rate:.2f}x the reference's req/s (target >= 0.5); "
              f"p99 {herald.percentile(99) / ref_p99:.2f}x the reference's p99 (target <= 2)")

        accepted = herald.statuses[202] + 300
        noop_rate = stack.reference_task_rate()
        print(f"reference no-op Celery task, one solo worker: {noop_rate:.0f} tasks/s")
        started = time.perf_counter()
        stack.start_worker()
        worker = psutil.Process(stack.worker_pids()[0])
        peak = 0
        with stack.database() as db:
            def all_sent():
                nonlocal peak
                peak = max(peak, worker.memory_info().rss)
                (sent,) = db.execute("SELECT count(*) FROM delivery_delivery WHERE status = 'sent'").fetchone()
                return sent >= accepted
            wait_until(all_sent, 1800, "every accepted notification to be sent")
        seconds = time.perf_counter() - started
        rate = accepted / seconds
        print(f"one worker process routed and sent {accepted} notifications in {seconds:.1f}s = {rate:.0f}/s "
              f"= {rate / noop_rate:.2f}x the no-op task rate (target >= 1.0); peak RSS {peak / 2**20:.0f} MiB (target < 200)")
        return herald.per_second / ref_rate, rate / noop_rate


if __name__ == "__main__":
    main()
