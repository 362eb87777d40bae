"""Drain rate against the size of the backlog: is the cost per notification flat as the backlog grows?

Accepted notifications (pending, each with its outbox row, as accept leaves them) are loaded
straight into the database with `generate_series`, then one worker process as shipped (the threads
pool, HERALD_WORKER_CONCURRENCY threads) routes and sends them through the sandbox provider.
Printed for a small and a large backlog in the same run, each beside the same-run reference (a
bare Celery no-op task, one solo worker), with the ratio of the two drain rates.
"""

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.harness import Stack, wait_until  # noqa: E402

SMALL = int(os.environ.get("HERALD_BENCH_BACKLOG_SMALL", "5000"))
LARGE = int(os.environ.get("HERALD_BENCH_BACKLOG_LARGE", "200000"))

LOAD_SQL = """
INSERT INTO preferences_recipient (external_id, email, phone, locale, timezone, is_active, webhook_url, created_at, updated_at)
SELECT 'backlog-' || n, 'backlog-' || n || '@example.com', '', 'en', 'UTC', true, '', now(), now()
FROM generate_series(1, %(people)s) AS n ON CONFLICT DO NOTHING;
WITH people AS (SELECT id, row_number() OVER (ORDER BY id) AS n FROM preferences_recipient WHERE external_id LIKE 'backlog-%%'),
inserted AS (
    INSERT INTO notifications_notification (id, recipient_id, type, priority, template_name, variables, requested_channels,
        request_hash, metadata, created_at, status, status_changed_at, status_history, skipped_channels, batch_key)
    SELECT gen_random_uuid(), p.id, 'transaction', 'low', 'backlog', jsonb_build_object('n', g), '["email"]', '', '{}',
           now() - interval '1 second' * (%(count)s - g) / 1000, 'pending', now(),
           jsonb_build_array(jsonb_build_object('status', 'pending', 'at', now())), '[]', ''
    FROM generate_series(1, %(count)s) AS g JOIN people AS p ON p.n = 1 + g %% %(people)s
    RETURNING id
)
INSERT INTO notifications_outbox (notification_id, available_at, relay_count) SELECT id, now() + interval '10 seconds', 0 FROM inserted;
"""


def drain(count: int) -> tuple[float, float]:
    """(notifications routed and sent per second by one worker process, the no-op reference in the same stack)."""
    with Stack({"HERALD_WORKER_POOL": "threads"}, start_worker=False) as stack:
        stack.manage("shell", "-c", "from templates_app.models import Template; "
                     "Template.objects.create(name='backlog', channel='email', subject='Hi', body='Message {{ n }}')")
        with stack.database() as db:
            db.execute(LOAD_SQL, {"count": count, "people": min(count, 50_000)})
            db.execute("VACUUM ANALYZE")
        noop = stack.reference_task_rate()
        started = time.perf_counter()
        stack.start_worker(pool="threads", queues=[["critical", "high", "medium", "low", "email.urgent", "email.bulk"]])
        with stack.database() as db:
            stack.manage("shell", "-c", "from notifications.routing import wake_routing; wake_routing('low')")
            wait_until(lambda: db.execute("SELECT count(*) FROM delivery_delivery WHERE status = 'sent'").fetchone()[0] >= count,
                       3600, f"{count} notifications sent")
        return count / (time.perf_counter() - started), noop


def main() -> None:
    print(f"one worker process (threads pool, HERALD_WORKER_CONCURRENCY={os.environ.get('HERALD_WORKER_CONCURRENCY', '8')}) "
          f"draining a backlog of accepted notifications through the sandbox; web not involved")
    small, small_noop = drain(SMALL)
    print(f"backlog {SMALL}: {small:.0f} notifications/s, no-op reference {small_noop:.0f} tasks/s, "
          f"{small / small_noop:.2f}x")
    large, large_noop = drain(LARGE)
    print(f"backlog {LARGE}: {large:.0f} notifications/s, no-op reference {large_noop:.0f} tasks/s, "
          f"{large / large_noop:.2f}x")
    print(f"  drain at {LARGE} / drain at {SMALL}: {(large / large_noop) / (small / small_noop):.2f} "
          f"(each against its own run's reference; target >= 0.9)")


if __name__ == "__main__":
    main()
