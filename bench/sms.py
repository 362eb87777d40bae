"""1,000 SMS through the real Twilio SDK to a simulator capped at 100 messages a second.

Prints how many 429s the provider answered (the shared rate limit should keep it at zero),
how long the provider saw the sends take, and the end-to-end time from the first accept to
the last SMS sent.
"""

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.harness import Stack, wait_until  # noqa: E402
from simulator import Simulator  # noqa: E402

COUNT = 1000
CAP = 100


def main() -> None:
    with Simulator() as simulator:
        control = simulator.client()
        control.set_rate_limit("twilio", CAP)
        env = {
            "TWILIO_ACCOUNT_SID": "AC" + "0" * 32, "TWILIO_AUTH_TOKEN": "bench-token",
            "TWILIO_FROM_NUMBER": "+15005550006", "TWILIO_API_HOST": simulator.http_url,
            "HERALD_RATE_LIMITS": f"twilio={CAP}",
        }
        with Stack(env, worker_concurrency=4) as stack:
            key = stack.api_key()
            http = requests.Session()
            http.headers["Authorization"] = f"Bearer {key}"
            http.post(f"{stack.base_url}/api/v1/templates", json={
                "name": "code", "channel": "sms", "body": "Your code is {{ code }}",
            }).raise_for_status()
            for n in range(10):
                http.put(f"{stack.base_url}/api/v1/users/sms-{n}", json={"phone": f"+1415555{n:04d}"}).raise_for_status()

            def send(n: int) -> int:
                return http.post(f"{stack.base_url}/api/v1/notifications", json={
                    "user_id": f"sms-{n % 10}", "type": "security", "template": "code",
                    "variables": {"code": f"{n:06d}"}, "channels": ["sms"],
                }).status_code

            started = time.perf_counter()
            with ThreadPoolExecutor(16) as pool:
                statuses = list(pool.map(send, range(COUNT)))
            accepted = statuses.count(202)
            wait_for_sent_sms(stack, accepted)
            total = time.perf_counter() - started
            sent, rejected, window = provider_view(control)
            print(f"sms end-to-end: {accepted} SMS accepted through the API, {rejected} answered 429 by a provider "
                  f"capped at {CAP}/s; the provider saw them over {window:.1f}s ({sent / window:.0f}/s); "
                  f"first accept to last sent {total:.1f}s")

            # Second phase: 1,000 SMS already routed and queued at once, so the send stage alone
            # (rate limit, Twilio SDK, recording) sets the pace.
            control.reset()
            control.set_rate_limit("twilio", CAP)
            started = time.perf_counter()
            stack.manage("shell", "-c", QUEUE_ROUTED_SMS.format(count=COUNT))
            wait_for_sent_sms(stack, accepted + COUNT)
            total = time.perf_counter() - started
            sent, rejected, window = provider_view(control)
            print(f"sms send stage: {sent} SMS queued at once, {rejected} answered 429; the provider saw them "
                  f"over {window:.1f}s ({sent / window:.0f}/s); queued to last sent {total:.1f}s")


def wait_for_sent_sms(stack: Stack, count: int) -> None:
    with stack.database() as db:
        wait_until(lambda: db.execute(
            "SELECT count(*) FROM delivery_delivery WHERE channel = 'sms' AND status = 'sent'").fetchone()[0] >= count,
            600, f"{count} SMS to be sent")


def provider_view(control) -> tuple[int, int, float]:
    """Sends the simulator accepted, how many it refused with 429, and the seconds between first and last."""
    recorded = control.requests("twilio")
    times = sorted(r["time"] for r in recorded if r["status"] == 201)
    return len(times), sum(1 for r in recorded if r["status"] == 429), times[-1] - times[0]


QUEUE_ROUTED_SMS = """
from django.utils import timezone
from delivery.models import Delivery
from delivery.publishing import wake_deliveries
from notifications.models import Notification
from preferences.models import Recipient
recipients = list(Recipient.objects.filter(external_id__startswith="sms-"))
now = timezone.now()
notifications = Notification.objects.bulk_create([
    Notification(recipient=recipients[n % len(recipients)], type="security", priority="critical", template_name="code",
                 variables={{"code": f"q{{n:05d}}"}}, requested_channels=["sms"], status="sending")
    for n in range({count})
])
deliveries = Delivery.objects.bulk_create([
    Delivery(notification=n, channel="sms", priority="critical", status="queued", available_at=now, created_at=now)
    for n in notifications
])
wake_deliveries("sms", "critical")
"""


if __name__ == "__main__":
    main()
