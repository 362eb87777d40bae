"""Delivery analytics: a 30-day read over 1,000,000 delivery rows, beside a bare count(*) of those rows.

The rows are made with SQL (30 days, 5 channels, 20 templates, 3 categories, 4 priorities, 2 arms)
and their hourly rollups built from them by `manage.py backfill_delivery_rollups` (what an existing
installation runs once); the read then goes through the API, which reads only the rollups.
"""

import os
import sys
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.harness import Stack, percentile  # noqa: E402

ROWS = int(os.environ.get("HERALD_BENCH_ANALYTICS_ROWS", "1000000"))
MAKE_ROWS = """
INSERT INTO preferences_recipient (external_id, email, phone, webhook_url, locale, timezone, is_active, created_at, updated_at)
VALUES ('bench', 'bench@example.com', '', '', 'en', 'UTC', true, now(), now());
INSERT INTO notifications_notification (id, recipient_id, type, priority, template_name, variables, requested_channels,
    request_hash, metadata, created_at, status, status_changed_at, status_history, skipped_channels, batch_key, claimed_by, takeovers, traceparent)
SELECT md5('n' || n)::uuid, (SELECT id FROM preferences_recipient LIMIT 1), (ARRAY['transaction','marketing','social'])[1 + n % 3],
       (ARRAY['critical','high','medium','low'])[1 + n % 4], 'template-' || (n % 20), '{}', '[]', '', '{}',
       now() - (n % 720) * interval '1 hour' - interval '2 seconds', 'sent', now(), '[]', '[]', '', '', 0, ''
FROM generate_series(1, %(rows)s) AS n;
INSERT INTO delivery_delivery (id, notification_id, channel, priority, status, status_changed_at, status_history, provider,
    provider_message_id, content, template_locale, locale_fallback, experiment_arm, attempts, available_at, claimed_by, takeovers,
    unknown_outcome_action, created_at, sent_at, delivered_at, failed_at, error_code, error_message)
SELECT md5('d' || n)::uuid, md5('n' || n)::uuid, (ARRAY['email','sms','push','in_app','webhook'])[1 + n % 5],
       (ARRAY['critical','high','medium','low'])[1 + n % 4],
       CASE WHEN n % 50 = 0 THEN 'failed' WHEN n % 3 = 0 THEN 'delivered' ELSE 'sent' END, now(), '[]', 'sandbox', '', '{}', '', '',
       (ARRAY['', 'A', 'B'])[1 + n % 3], 1, now(), '', 0, '',
       now() - (n % 720) * interval '1 hour' - interval '2 seconds',
       CASE WHEN n % 50 = 0 THEN NULL ELSE now() - (n % 720) * interval '1 hour' - interval '2 seconds' + (n % 7) * interval '100 ms' END,
       CASE WHEN n % 3 = 0 AND n % 50 <> 0 THEN now() - (n % 720) * interval '1 hour' END,
       CASE WHEN n % 50 = 0 THEN now() - (n % 720) * interval '1 hour' END, '', ''
FROM generate_series(1, %(rows)s) AS n;
ANALYZE;
"""


def main() -> None:
    with Stack(start_worker=False) as stack:
        key = stack.api_key()
        started = time.perf_counter()
        with stack.database() as db:
            db.execute(MAKE_ROWS.replace("%(rows)s", str(ROWS)))
        made = time.perf_counter() - started
        started = time.perf_counter()
        stack.manage("backfill_delivery_rollups")
        backfilled = time.perf_counter() - started
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {key}"
        url = f"{stack.base_url}/api/v1/analytics/deliveries"
        params = {"from": _days_ago(30), "interval": "day", "group_by": "channel,template"}
        http.get(url, params=params).raise_for_status()  # warm: connections, imports
        reads, counts = [], []
        with stack.database() as db:
            for _ in range(10):
                started = time.perf_counter()
                response = http.get(url, params=params)
                reads.append(time.perf_counter() - started)
                started = time.perf_counter()
                db.execute("SELECT count(*) FROM delivery_delivery").fetchone()
                counts.append(time.perf_counter() - started)
            (rollup_rows,) = db.execute("SELECT count(*) FROM analytics_deliveryrollup").fetchone()
        response.raise_for_status()
        sent = sum(total["sent"] for total in response.json()["totals"])
        print(f"{ROWS} delivery rows made in {made:.0f}s; {rollup_rows} rollup rows backfilled in {backfilled:.0f}s")
        print(f"30-day analytics read (by day, channel and template; {len(response.json()['points'])} points, {sent} sent) "
              f"through the API: median {percentile(reads, 50) * 1000:.0f} ms, slowest {max(reads) * 1000:.0f} ms (target < 200 ms); "
              f"bare SELECT count(*) FROM delivery_delivery: median {percentile(counts, 50) * 1000:.0f} ms")


def _days_ago(days: int) -> str:
    from datetime import UTC, datetime, timedelta

    return (datetime.now(UTC) - timedelta(days=days)).isoformat()


if __name__ == "__main__":
    main()
