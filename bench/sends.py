"""Sends per second by one worker process when the provider takes 100 ms to answer every request.

SMS through the real Twilio SDK (no batch API: many calls in flight) and email through the
real SendGrid SDK (batches of personalizations), both to the simulator with 100 ms of added
latency. The rows are queued already routed, so the send stage alone sets the pace.

Reference, same run and simulator: the same SDK called from HERALD_SENDS_IN_FLIGHT threads
with nothing else around it (no database, no journal), one message per request.
"""

import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.harness import BULK_QUEUES, Stack, wait_until  # noqa: E402
from simulator import Simulator  # noqa: E402

LATENCY_MS = 100
SMS = int(os.environ.get("HERALD_BENCH_SMS", "3000"))
EMAILS = int(os.environ.get("HERALD_BENCH_EMAILS", "10000"))
THREADS = 64
TWILIO_SID = "AC" + "0" * 32


def main() -> None:
    with Simulator() as simulator:
        control = simulator.client()
        env = {
            "TWILIO_ACCOUNT_SID": TWILIO_SID, "TWILIO_AUTH_TOKEN": "bench-token", "TWILIO_FROM_NUMBER": "+15005550006",
            "TWILIO_API_HOST": simulator.http_url, "SENDGRID_API_KEY": "SG.bench", "SENDGRID_API_HOST": simulator.http_url,
            "HERALD_SENDS_IN_FLIGHT": str(THREADS), "HERALD_WORKER_POOL": "threads",
        }
        reference = {name: reference_rate(simulator, name, control) for name in ("twilio", "sendgrid")}
        with Stack(env, start_worker=False) as stack:
            stack.manage("shell", "-c", PEOPLE.format(count=max(SMS, EMAILS)))
            stack.start_worker(pool="threads", queues=[BULK_QUEUES])
            for channel, provider, count in (("sms", "twilio", SMS), ("email", "sendgrid", EMAILS)):
                control.reset()
                control.add_fault(provider, latency_ms=LATENCY_MS)
                started = time.perf_counter()
                stack.manage("shell", "-c", QUEUE_ROUTED.format(channel=channel, count=count))
                wait_for_sent(stack, channel, count)
                seconds = time.perf_counter() - started
                requests = [r for r in control.requests(provider) if r["status"] in (200, 201, 202)]
                rate = count / seconds
                target = 300 if channel == "sms" else 1000
                print(f"{channel} via {provider} at {LATENCY_MS} ms a request: {count} sent by one worker process in "
                      f"{seconds:.1f}s = {rate:.0f}/s (target >= {target}) in {len(requests)} requests; bare SDK from "
                      f"{THREADS} threads, one message a request: {reference[provider]:.0f}/s; "
                      f"ratio {rate / reference[provider]:.2f}x; one call at a time would be {1000 / LATENCY_MS:.0f}/s")


def wait_for_sent(stack: Stack, channel: str, count: int) -> None:
    with stack.database() as db:
        wait_until(lambda: db.execute("SELECT count(*) FROM delivery_delivery WHERE channel = %s AND status = 'sent'",
                                      [channel]).fetchone()[0] >= count, 900, f"{count} {channel} sent")


def reference_rate(simulator, provider: str, control, count: int = 1500) -> float:
    """Messages/s the bare SDK gets through the simulator from THREADS threads, one message per request."""
    control.reset()
    control.add_fault(provider, latency_ms=LATENCY_MS)
    if provider == "twilio":
        from twilio.http.http_client import TwilioHttpClient
        from twilio.rest import Client

        client = Client(TWILIO_SID, "bench-token", http_client=TwilioHttpClient(timeout=10))
        client.api.base_url = simulator.http_url  # the same seam Herald's provider uses

        def send(n: int) -> None:
            client.messages.create(to=f"+1415555{n % 10000:04d}", from_="+15005550006", body=f"Code {n}")
    else:
        from sendgrid import SendGridAPIClient
        from sendgrid.helpers.mail import Mail

        client = SendGridAPIClient(api_key="SG.bench", host=simulator.http_url)

        def send(n: int) -> None:
            client.send(Mail(from_email="bench@example.com", to_emails=f"person-{n}@example.com", subject="News",
                             plain_text_content="Hello"))
    started = time.perf_counter()
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(send, range(count)))
    return count / (time.perf_counter() - started)


PEOPLE = """
from preferences.models import Recipient
Recipient.objects.bulk_create([
    Recipient(external_id=f"person-{{n}}", email=f"person-{{n}}@example.com", phone=f"+1415{{n:07d}}")
    for n in range({count})
], batch_size=5000)
"""

QUEUE_ROUTED = """
from django.utils import timezone
from delivery.models import Delivery
from delivery.publishing import wake_deliveries
from notifications.models import Notification
from preferences.models import Recipient
from templates_app.models import Template
Template.objects.get_or_create(name="news-{channel}", channel="{channel}", defaults={{"subject": "News", "body": "Hello {{{{ name }}}}"}})
recipients = list(Recipient.objects.order_by("pk")[:{count}])
now = timezone.now()
notifications = Notification.objects.bulk_create([
    Notification(recipient=r, type="transaction", priority="low", template_name="news-{channel}",
                 variables={{"name": "all"}}, requested_channels=["{channel}"], status="sending")
    for r in recipients
], batch_size=5000)
Delivery.objects.bulk_create([
    Delivery(notification=n, channel="{channel}", priority="low", status="queued", available_at=now, created_at=now)
    for n in notifications
], batch_size=5000)
wake_deliveries("{channel}", "low")
"""


if __name__ == "__main__":
    main()
