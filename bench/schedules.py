"""Schedules and escalation steps due at the same moment: how late they fire, and how fast.

1. HERALD_BENCH_SCHEDULES (default 10,000) one-person daily schedules due at the same minute:
   firing lateness (run fired_at minus the occurrence's instant) p50/p99, occurrences fired per
   second, and the time until every occurrence's email is sent (sandbox).
2. The same number of notifications whose one escalation step (email, 20 s after an in-app first
   send) comes due as fast as they are accepted: step lateness p50/p99 against that arrival rate.
Each rate is printed beside the no-op Celery task rate of the same run.
"""

import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.harness import BULK_QUEUES, URGENT_QUEUES, Stack, percentile, wait_until  # noqa: E402

COUNT = int(os.environ.get("HERALD_BENCH_SCHEDULES", "10000"))


def main() -> None:
    with Stack({"HERALD_WORKER_POOL": "threads", "HERALD_WORKER_CONCURRENCY": "8"}, web_workers=2, start_worker=False) as stack:
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {stack.api_key()}"
        base = stack.base_url + "/api/v1"
        for channel in ("email", "in_app"):
            http.post(f"{base}/templates", json={"name": "daily", "channel": channel, "subject": "Daily", "title": "Daily",
                                                 "body": "Your day, {{ name }}"}).raise_for_status()
        with stack.database() as db, db.cursor() as cursor:
            cursor.execute(
                "INSERT INTO preferences_recipient (external_id, email, phone, webhook_url, locale, timezone, is_active, created_at, updated_at) "
                "SELECT 'person-' || n, 'person-' || n || '@example.com', '', '', 'en', 'UTC', true, now(), now() "
                "FROM generate_series(1, %s) AS n", [COUNT])
        noop_rate = stack.reference_task_rate()
        print(f"reference no-op Celery task, one solo worker: {noop_rate:.0f} tasks/s")

        due = (datetime.now(UTC) + timedelta(minutes=1, seconds=30)).replace(second=0, microsecond=0)
        with stack.database() as db, db.cursor() as cursor:
            payload = {"type": "reminder", "template": "daily", "variables": {"name": "you"}, "channels": ["email"],
                       "metadata": {}, "batch_key": ""}
            cursor.execute(
                "INSERT INTO schedules_schedule (id, name, kind, payload, rrule, cron, timezone, starts_at, missed, state, "
                "next_occurrence, next_run_at, upcoming, parked_reason, last_occurrence, fired, skipped, created_at, updated_at) "
                "SELECT gen_random_uuid(), '', 'notification', %s::jsonb || jsonb_build_object('user_id', 'person-' || n), '', "
                "%s, 'UTC', now(), 'fire_latest', 'active', %s, %s, '[]', '', '', 0, 0, now(), now() FROM generate_series(1, %s) AS n",
                [json.dumps(payload), f"{due.minute} {due.hour} * * *", due.strftime("%Y-%m-%dT%H:%M"), due, COUNT])
        stack.start_worker(pool="threads", queues=[URGENT_QUEUES, BULK_QUEUES])
        with stack.database() as db:
            wait_until(lambda: db.execute("SELECT count(*) FROM schedules_schedulerun").fetchone()[0] >= COUNT, 1800,
                       "every occurrence fired")
            fired = [row[0] for row in db.execute("SELECT extract(epoch FROM fired_at - due_at) FROM schedules_schedulerun")]
            span = db.execute("SELECT extract(epoch FROM max(fired_at) - min(fired_at)) FROM schedules_schedulerun").fetchone()[0]
            wait_until(lambda: db.execute("SELECT count(*) FROM delivery_delivery WHERE status = 'sent'").fetchone()[0] >= COUNT,
                       3600, "every occurrence's email sent")
            all_sent = (datetime.now(UTC) - due).total_seconds()
        rate = COUNT / max(float(span), 0.001)
        print(f"schedules: {COUNT} occurrences due at {due:%H:%M}: fired late by p50 {percentile(fired, 50):.2f}s, "
              f"p99 {percentile(fired, 99):.2f}s, last {max(fired):.1f}s; {rate:.0f} occurrences/s while firing "
              f"= {rate / noop_rate:.2f}x the no-op task rate; every email sent {all_sent:.1f}s after the due minute")

        started = time.perf_counter()
        for first in range(1, COUNT + 1, 1000):
            items = [{"user_id": f"person-{n}", "type": "reminder", "template": "daily", "variables": {"name": f"n{n}"},
                      "channels": ["in_app"], "escalation": [{"channels": ["email"], "wait_seconds": 20}]}
                     for n in range(first, min(first + 1000, COUNT + 1))]
            http.post(f"{base}/notifications/batch", json={"notifications": items}).raise_for_status()
        accepted_in = time.perf_counter() - started
        with stack.database() as db:
            wait_until(lambda: db.execute("SELECT count(*) FROM notifications_workflowstep WHERE position = 1 AND state = 'done'"
                                          ).fetchone()[0] >= COUNT, 1800, "every escalation step fired")
            late = [row[0] for row in db.execute("SELECT extract(epoch FROM finished_at - due_at) FROM notifications_workflowstep "
                                                 "WHERE position = 1")]
            spread = db.execute("SELECT extract(epoch FROM max(due_at) - min(due_at)) FROM notifications_workflowstep "
                                "WHERE position = 1").fetchone()[0]
        # The steps come due as fast as they were accepted, so the sweep's pace is that arrival rate
        # whenever it keeps up (lateness stays near the beat interval); the lateness says whether it did.
        arrival = COUNT / max(float(spread), 0.001)
        print(f"escalation: {COUNT} steps came due over {float(spread):.1f}s ({arrival:.0f}/s = {arrival / noop_rate:.2f}x the "
              f"no-op task rate; accepted in {accepted_in:.1f}s): fired late by p50 {percentile(late, 50):.2f}s, "
              f"p99 {percentile(late, 99):.2f}s, last {max(late):.2f}s")


if __name__ == "__main__":
    main()
