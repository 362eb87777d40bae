"""Digests due for many people at the same local minute, and how late batches close.

1. HERALD_BENCH_DIGESTS people (default 100,000) whose social notifications go to a daily digest
   due at the same minute: each gets one notification, then the digest run is timed from its
   due minute to the last digest sent (sandbox email), through the chunked pipeline.
2. How late batches close against their window: every batch's closed_at minus closes_at, p50
   and p99, for the digest run (all due at once) and for 1,000 two-second batches under no load.
"""

import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.harness import BULK_QUEUES, URGENT_QUEUES, Stack, percentile, wait_until  # noqa: E402

PEOPLE = int(os.environ.get("HERALD_BENCH_DIGESTS", "100000"))
QUIET_BATCHES = 1000


def main() -> None:
    env = {"HERALD_WORKER_POOL": "threads", "HERALD_WORKER_CONCURRENCY": "8"}
    with Stack(env, web_workers=2, start_worker=False) as stack:
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {stack.api_key()}"
        base = stack.base_url + "/api/v1"
        http.post(f"{base}/templates", json={"name": "liked", "channel": "email", "subject": "Like",
                                             "body": "{{ actor }} liked your post"}).raise_for_status()
        http.post(f"{base}/templates", json={"name": "social_digest", "channel": "email", "subject": "Your day",
                                             "body": "{{ digest.count }} things happened"}).raise_for_status()
        with stack.database() as db, db.cursor() as cursor:
            cursor.execute(
                "INSERT INTO preferences_recipient (external_id, email, phone, webhook_url, locale, timezone, is_active, created_at, updated_at) "
                "SELECT 'person-' || n, 'person-' || n || '@example.com', '', '', 'en', 'UTC', true, now(), now() "
                "FROM generate_series(1, %s) AS n", [PEOPLE])
        stack.start_worker(pool="threads", queues=[URGENT_QUEUES, BULK_QUEUES])

        # Everyone's social notifications go to a daily digest due a few minutes from now.
        due = (datetime.now(UTC) + timedelta(minutes=2 + PEOPLE // 40000)).replace(second=0, microsecond=0)
        stack.manage("shell", "-c", "from preferences.models import CategorySetting; from preferences import store; "
                     f"CategorySetting.objects.update_or_create(category='social', defaults={{'digest': "
                     f"{{'frequency': 'daily', 'time': '{due:%H:%M}'}}}}); store.forget_category_policies()")
        started = time.perf_counter()
        for first in range(1, PEOPLE + 1, 1000):
            items = [{"user_id": f"person-{n}", "type": "social", "template": "liked", "variables": {"actor": "ada"},
                      "channels": ["email"]} for n in range(first, min(first + 1000, PEOPLE + 1))]
            http.post(f"{base}/notifications/batch", json={"notifications": items}).raise_for_status()
        with stack.database() as db:
            wait_until(lambda: db.execute("SELECT count(*) FROM notifications_notification WHERE status = 'batched'"
                                          ).fetchone()[0] >= PEOPLE, 1800, "every notification held for its digest")
            held_in = time.perf_counter() - started
            if datetime.now(UTC) > due:
                print(f"digests: holding {PEOPLE} took {held_in:.0f}s, past the due minute; rerun with fewer people")
            wait_until(lambda: db.execute("SELECT count(*) FROM delivery_delivery d JOIN notifications_notification n "
                                          "ON n.id = d.notification_id WHERE n.batch_id IS NOT NULL AND d.status = 'sent'"
                                          ).fetchone()[0] >= PEOPLE, 3600, "every digest sent")
            last_sent = db.execute("SELECT max(d.sent_at) FROM delivery_delivery d JOIN notifications_notification n "
                                   "ON n.id = d.notification_id WHERE n.batch_id IS NOT NULL").fetchone()[0]
            lateness = [row[0] for row in db.execute(
                "SELECT extract(epoch FROM closed_at - closes_at) FROM notifications_batch WHERE state = 'closed'")]
        print(f"digests for {PEOPLE} people due at {due:%H:%M} UTC: {PEOPLE} notifications held in {held_in:.0f}s; "
              f"the last digest was sent {(last_sent - due).total_seconds():.1f}s after its due minute")
        print(f"  batch close lateness (closed_at - closes_at) in that run: p50 {percentile(lateness, 50):.2f}s, "
              f"p99 {percentile(lateness, 99):.2f}s, max {max(lateness):.2f}s")

        # Quiet: 1,000 people each get one like batched for two seconds.
        stack.manage("shell", "-c", "from preferences.models import CategorySetting; from preferences import store; "
                     "CategorySetting.objects.filter(category='social').update(digest=None); store.forget_category_policies()")
        time.sleep(1)
        items = [{"user_id": f"person-{n}", "type": "social", "template": "liked", "variables": {"actor": "grace"},
                  "channels": ["email"], "batch_key": "post", "batch": {"window_seconds": 2}} for n in range(1, QUIET_BATCHES + 1)]
        http.post(f"{base}/notifications/batch", json={"notifications": items}).raise_for_status()
        with stack.database() as db:
            wait_until(lambda: db.execute("SELECT count(*) FROM notifications_batch WHERE key LIKE 'social:liked:post' "
                                          "AND state = 'closed'").fetchone()[0] >= QUIET_BATCHES, 300, "the quiet batches")
            quiet = [row[0] for row in db.execute("SELECT extract(epoch FROM closed_at - closes_at) FROM notifications_batch "
                                                   "WHERE key LIKE 'social:liked:post'")]
        print(f"  {QUIET_BATCHES} two-second batches under no other load: close lateness p50 {percentile(quiet, 50):.2f}s, "
              f"p99 {percentile(quiet, 99):.2f}s (the close sweep runs every HERALD_BATCH_CLOSE_INTERVAL, 1 s)")


if __name__ == "__main__":
    main()
