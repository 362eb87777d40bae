"""SQL statements per notification, counted in this process over the whole path (sandbox provider):
one notification accepted, routed and sent, and a 1,000-person campaign fanned out, routed and sent.
Each stage runs inline (no worker), so every statement is seen.
"""

import os
import sys
import time
from collections import Counter
from concurrent.futures import Executor, Future
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.harness import Stack  # noqa: E402

CAMPAIGN = 1000


class Inline(Executor):
    """Runs what a chunk hands its sender threads in this thread, so that this connection sees every statement."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future = Future()
        future.set_result(fn(*args, **kwargs))
        return future


def main() -> None:
    with Stack(start_worker=False) as stack:
        os.environ.update(stack.env)
        import django

        django.setup()
        from contextlib import contextmanager

        from django.db import connection

        from campaigns import fanout
        from campaigns.models import Campaign
        from delivery.chunks import attempt_chunk, claim_chunk
        from notifications import routing
        from notifications.accept import accept_notification
        from preferences.models import Recipient
        from templates_app.models import Template

        Template.objects.create(name="bench", channel="email", subject="Hi", body="Hello {{ name }}")
        Recipient.objects.bulk_create([Recipient(external_id=f"p{n}", email=f"p{n}@example.com") for n in range(CAMPAIGN)])

        @contextmanager
        def counting():
            seen = []

            def count(execute, sql, params, many, context):
                seen.append(sql)
                return execute(sql, params, many, context)

            with connection.execute_wrapper(count):
                yield seen

        def route_and_send(priority: str) -> None:
            while routing.route_lane(priority):
                pass
            lane = ["critical", "high"] if priority in ("critical", "high") else ["medium", "low"]
            while True:
                ids, claimed_at = claim_chunk("email", lane, 200)
                if not ids:
                    return
                attempt_chunk(ids, claimed_at, time.monotonic(), Inline())

        accept_notification({"user_id": "p0", "type": "transaction", "template": "bench", "variables": {"name": "warm"},
                             "channels": ["email"]}, raw_payload={}, api_key=None, idempotency_key=None)
        route_and_send("high")  # warm: caches, render processes
        with counting() as single:
            accept_notification({"user_id": "p1", "type": "transaction", "template": "bench", "variables": {"name": "one"},
                                 "channels": ["email"]}, raw_payload={}, api_key=None, idempotency_key=None)
            route_and_send("high")
        print(f"one notification accepted, routed and sent: {len(single)} SQL statements "
              f"(API key cached; the sandbox's own record of the message and the empty claims that end each lane included)")

        campaign = Campaign.objects.create(type="transaction", priority="low", template_name="bench", variables={"name": "all"},
                                           channels=["email"], audience={"user_ids": [f"p{n}" for n in range(CAMPAIGN)]},
                                           targeted=CAMPAIGN)
        with counting() as many:
            fanout.fan_out(campaign.pk)
            route_and_send("low")
        print(f"a {CAMPAIGN}-person campaign fanned out, routed and sent: {len(many)} SQL statements = "
              f"{len(many) / CAMPAIGN:.2f} per notification (target <= 1)")
        if os.environ.get("HERALD_BENCH_SQL_DETAIL"):
            for sql, times in Counter(" ".join(sql.split())[:110] for sql in many).most_common(12):
                print(f"{times:6d}  {sql}")


if __name__ == "__main__":
    main()
