"""Campaigns through the sandbox, with the urgent and the bulk lanes on worker processes of their own.

1. A 10,000-recipient campaign from the API call to every message sent: seconds, notifications/s
   by the bulk worker beside the no-op Celery reference of the same run, and the worker's peak RSS.
2. A 100,000-recipient campaign draining (HERALD_BENCH_DRAIN people, for up to
   HERALD_BENCH_DRAIN_SECONDS): critical-priority notifications sent meanwhile, one at a time,
   with accept→sent taken from the server's own timestamps (created → the delivery's sent_at).
   The campaign is then canceled, which ends the run.
"""

import os
import sys
import time
from datetime import datetime
from pathlib import Path

import psutil
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.harness import BULK_QUEUES, URGENT_QUEUES, Stack, percentile, wait_until  # noqa: E402

PEOPLE = int(os.environ.get("HERALD_BENCH_CAMPAIGN", "10000"))
DRAIN = int(os.environ.get("HERALD_BENCH_DRAIN", "100000"))
DRAIN_SECONDS = float(os.environ.get("HERALD_BENCH_DRAIN_SECONDS", "60"))


def main() -> None:
    env = {"HERALD_WORKER_POOL": "threads", "HERALD_WORKER_CONCURRENCY": "8"}
    with Stack(env, web_workers=2, worker_concurrency=1, start_worker=False) as stack:
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {stack.api_key()}"
        base = stack.base_url + "/api/v1"
        http.post(f"{base}/templates", json={"name": "launch", "channel": "email", "subject": "News", "body": "Hello {{ name }}"}).raise_for_status()
        http.post(f"{base}/templates", json={"name": "code", "channel": "sms", "body": "Code {{ code }}"}).raise_for_status()
        with stack.database() as db, db.cursor() as cursor:
            cursor.execute(
                "INSERT INTO preferences_recipient (external_id, email, phone, webhook_url, locale, timezone, is_active, created_at, updated_at) "
                "SELECT 'person-' || n, 'person-' || n || '@example.com', '', '', 'en', 'UTC', true, now(), now() "
                "FROM generate_series(1, %s) AS n", [max(PEOPLE, DRAIN)])
        http.put(f"{base}/users/oncall", json={"phone": "+14155550100"}).raise_for_status()
        noop_rate = stack.reference_task_rate()
        print(f"reference no-op Celery task, one solo worker: {noop_rate:.0f} tasks/s")

        # As in production: the urgent lanes and the bulk lanes each have their own worker process.
        stack.start_worker(pool="threads", queues=[URGENT_QUEUES, BULK_QUEUES])
        worker = psutil.Process(stack.worker_pids()[1])  # the bulk worker, which does the campaign
        peak = 0

        def campaign_status(campaign: str) -> str:
            nonlocal peak
            peak = max(peak, worker.memory_info().rss)
            return http.get(f"{base}/campaigns/{campaign}").json()["status"]

        started = time.perf_counter()
        campaign, answered_in = start_campaign(http, base, PEOPLE)
        wait_until(lambda: campaign_status(campaign) == "completed", 1800, "the campaign to complete")
        seconds = time.perf_counter() - started
        detail = http.get(f"{base}/campaigns/{campaign}").json()
        rate = PEOPLE / seconds
        print(f"campaign of {PEOPLE}: POST answered in {answered_in * 1000:.0f} ms; all sent in {seconds:.1f}s (target < 10 s) "
              f"= {rate:.0f} notifications/s by the bulk worker = {rate / noop_rate:.2f}x the no-op task rate (target >= 1.0); "
              f"sent {detail['notifications']['sent']}, failed {detail['notifications']['failed']}")

        if DRAIN:
            campaign, answered_in = start_campaign(http, base, DRAIN)
            latencies, probes = [], []
            deadline = time.perf_counter() + DRAIN_SECONDS
            while time.perf_counter() < deadline and campaign_status(campaign) != "completed":
                probe, seconds = critical_probe(http, base, len(probes))
                latencies.append(seconds)
                probes.append(probe)
                time.sleep(0.2)
            detail = http.get(f"{base}/campaigns/{campaign}").json()
            http.post(f"{base}/campaigns/{campaign}/cancel").raise_for_status()
            print(f"critical accept→sent while a {DRAIN}-recipient campaign drained (POST answered in {answered_in * 1000:.0f} ms; "
                  f"{detail['notifications']['sent']} of it sent during the {len(probes)} probes): "
                  f"p50 {percentile(latencies, 50) * 1000:.0f} ms, p99 {percentile(latencies, 99) * 1000:.0f} ms (target p99 < 300 ms)")
            slowest = probes[max(range(len(latencies)), key=latencies.__getitem__)]
            detail = http.get(f"{base}/notifications/{slowest}").json()
            steps = [(s["status"], s["at"][11:23]) for s in detail["status_history"]]
            steps += [(f"{d['channel']}:{name}", (d[name] or "")[11:23]) for d in detail["deliveries"] for name in ("queued_at", "sent_at")]
            print("slowest critical probe's steps:", ", ".join(f"{name} {at}" for name, at in steps))
        print(f"bulk worker peak RSS {peak / 2**20:.0f} MiB (target < 200 MiB)")


def start_campaign(http: requests.Session, base: str, people: int) -> tuple[str, float]:
    started = time.perf_counter()
    response = http.post(f"{base}/campaigns", json={
        "type": "transaction", "template": "launch", "variables": {"name": "all"}, "channels": ["email"],
        "audience": {"user_ids": [f"person-{n}" for n in range(1, people + 1)]},
    })
    response.raise_for_status()
    return response.json()["id"], time.perf_counter() - started


def critical_probe(http: requests.Session, base: str, n: int) -> tuple[str, float]:
    """Send one critical SMS and wait for it; its accept→sent by the server's clock."""
    probe = http.post(f"{base}/notifications", json={"user_id": "oncall", "type": "security", "template": "code",
                                                     "variables": {"code": str(n)}, "channels": ["sms"]}).json()["id"]
    detail = wait_until(lambda: (d := http.get(f"{base}/notifications/{probe}").json())["status"] in ("sent", "delivered", "failed") and d,
                        60, "a critical probe to be sent")
    [delivery] = detail["deliveries"]
    if not delivery["sent_at"]:
        raise RuntimeError(f"critical probe {probe} was not sent: {delivery}")
    sent = datetime.fromisoformat(delivery["sent_at"].replace("Z", "+00:00"))
    created = datetime.fromisoformat(detail["created_at"].replace("Z", "+00:00"))
    return probe, (sent - created).total_seconds()


if __name__ == "__main__":
    main()
