"""A 10,000-recipient campaign from the API call to every message sent, through the sandbox.

Prints, beside the no-op Celery reference of the same run: seconds from POST /api/v1/campaigns
to the last delivery sent, notifications/s per worker process, the worker's peak RSS, and the
critical-priority accept→sent p99 measured while the campaign drains.
"""

import os
import sys
import threading
import time
from pathlib import Path

import psutil
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.harness import BULK_QUEUES, URGENT_QUEUES, Stack, percentile, wait_until  # noqa: E402

PEOPLE = int(os.environ.get("HERALD_BENCH_CAMPAIGN", "10000"))
CRITICAL_PROBES = 40


def main() -> None:
    env = {"HERALD_WORKER_POOL": "threads", "HERALD_WORKER_CONCURRENCY": "8"}
    with Stack(env, web_workers=2, worker_concurrency=1, start_worker=False) as stack:
        key = stack.api_key()
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {key}"
        base = stack.base_url + "/api/v1"
        http.post(f"{base}/templates", json={"name": "launch", "channel": "email", "subject": "News", "body": "Hello {{ name }}"}).raise_for_status()
        http.post(f"{base}/templates", json={"name": "code", "channel": "sms", "body": "Code {{ code }}"}).raise_for_status()
        with stack.database() as db:
            with db.cursor() as cursor:
                cursor.execute(
                    "INSERT INTO preferences_recipient (external_id, email, phone, webhook_url, locale, timezone, is_active, created_at, updated_at) "
                    "SELECT 'person-' || n, 'person-' || n || '@example.com', '', '', 'en', 'UTC', true, now(), now() "
                    "FROM generate_series(1, %s) AS n", [PEOPLE])
        http.put(f"{base}/users/oncall", json={"phone": "+14155550100"}).raise_for_status()
        noop_rate = stack.reference_task_rate()
        print(f"reference no-op Celery task, one solo worker: {noop_rate:.0f} tasks/s")

        # As in production: the urgent lanes and the bulk lanes each have their own worker process.
        stack.start_worker(pool="threads", queues=[URGENT_QUEUES, BULK_QUEUES])
        worker = psutil.Process(stack.worker_pids()[1])  # the bulk worker, which does the campaign
        started = time.perf_counter()
        response = http.post(f"{base}/campaigns", json={
            "type": "transaction", "template": "launch", "variables": {"name": "all"}, "channels": ["email"],
            "audience": {"user_ids": [f"person-{n}" for n in range(1, PEOPLE + 1)]},
        })
        response.raise_for_status()
        campaign = response.json()["id"]
        accepted_in = time.perf_counter() - started

        latencies: list[float] = []
        probes: list[str] = []
        stop = threading.Event()

        def probe():
            # Critical notifications sent while the campaign drains: accept → sent, one at a time.
            while not stop.is_set() and len(latencies) < CRITICAL_PROBES:
                sent_at = time.perf_counter()
                n = http.post(f"{base}/notifications", json={"user_id": "oncall", "type": "security", "template": "code",
                                                              "variables": {"code": str(len(latencies))}, "channels": ["sms"]}).json()["id"]
                while http.get(f"{base}/notifications/{n}").json()["status"] not in ("sent", "delivered", "failed"):
                    time.sleep(0.01)
                latencies.append(time.perf_counter() - sent_at)
                probes.append(n)
                time.sleep(0.2)

        prober = threading.Thread(target=probe)
        prober.start()
        peak = 0

        def done():
            nonlocal peak
            peak = max(peak, worker.memory_info().rss)
            return http.get(f"{base}/campaigns/{campaign}").json()["status"] == "completed"

        wait_until(done, 1800, "the campaign to complete")
        seconds = time.perf_counter() - started
        stop.set()
        prober.join()
        detail = http.get(f"{base}/campaigns/{campaign}").json()
        rate = PEOPLE / seconds
        print(f"campaign of {PEOPLE}: POST answered in {accepted_in * 1000:.0f} ms; all sent in {seconds:.1f}s (target < 10 s) "
              f"= {rate:.0f} notifications/s by the bulk worker = {rate / noop_rate:.2f}x the no-op task rate (target >= 1.0); "
              f"sent {detail['notifications']['sent']}, failed {detail['notifications']['failed']}")
        print(f"critical accept→sent while it drained: p50 {percentile(latencies, 50) * 1000:.0f} ms, "
              f"p99 {percentile(latencies, 99) * 1000:.0f} ms over {len(latencies)} (target p99 < 300 ms)")
        print(f"worker peak RSS {peak / 2**20:.0f} MiB (target < 200 MiB)")
        if probes:
            slowest = probes[max(range(len(latencies)), key=latencies.__getitem__)]
            detail = http.get(f"{base}/notifications/{slowest}").json()
            steps = [(s["status"], s["at"][11:23]) for s in detail["status_history"]]
            steps += [(f"{d['channel']}:{name}", (d[name] or "")[11:23]) for d in detail["deliveries"] for name in ("queued_at", "sent_at")]
            print("slowest critical probe's steps:", ", ".join(f"{name} {at}" for name, at in steps))


if __name__ == "__main__":
    main()
