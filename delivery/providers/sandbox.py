"""A provider that sends nothing and records what it would have sent (visible in admin).

It is the default for every channel without credentials, so `make run` is useful offline.
A notification's `metadata.sandbox` can ask it to misbehave, the way payment sandboxes
offer magic card numbers: {"latency_ms": 2000, "fail": "retry" | "invalid_recipient" |
"failed", "fail_attempts": 2} fails the first two attempts (omit it to fail every attempt).
With HERALD_SANDBOX_CRASH_WORKER on (tests, `make chaos`; never in production), {"crash_worker":
true} kills the worker process mid-send, as a poisonous message would.
"""

import os
import signal
import time

from django.conf import settings

from delivery.models import SandboxMessage
from delivery.providers.base import OutgoingMessage, SendResult

FAULTS = {
    "retry": lambda: SendResult.retry("sandbox_unavailable", "Sandbox fault: provider unavailable."),
    "invalid_recipient": lambda: SendResult.invalid_recipient("sandbox_invalid_recipient", "Sandbox fault: recipient invalid."),
    "failed": lambda: SendResult.failed("sandbox_rejected", "Sandbox fault: provider rejected the message."),
}


class SandboxProvider:
    name = "sandbox"
    watch_stalls = False

    def send(self, message: OutgoingMessage) -> SendResult:
        faults = message.metadata.get("sandbox") or {}
        if not isinstance(faults, dict):
            faults = {}
        if faults.get("crash_worker") is True and settings.HERALD_SANDBOX_CRASH_WORKER:
            os.kill(os.getpid(), signal.SIGKILL)
        latency_ms = faults.get("latency_ms")
        if isinstance(latency_ms, (int, float)) and latency_ms > 0:
            time.sleep(min(latency_ms, 30_000) / 1000)
        fault = FAULTS.get(faults.get("fail"))
        fail_attempts = faults.get("fail_attempts")
        if fault and (not isinstance(fail_attempts, int) or message.attempt <= fail_attempts):
            return fault()
        return self.record([message])[0]

    max_batch = 1000

    def batch_key(self, message: OutgoingMessage) -> str:
        # A message asking for a fault or latency goes alone, so it slows or fails only itself.
        return message.delivery_id if message.metadata.get("sandbox") else "plain"

    def send_batch(self, messages: list[OutgoingMessage]) -> list[SendResult]:
        if any(message.metadata.get("sandbox") for message in messages):
            return [self.send(message) for message in messages]
        return self.record(messages)

    @staticmethod
    def record(messages: list[OutgoingMessage]) -> list[SendResult]:
        # One record per delivery however often it is retried or redelivered.
        SandboxMessage.objects.bulk_create(
            [SandboxMessage(delivery_id=m.delivery_id, channel=m.channel, to=m.to, content=m.content, headers=m.headers)
             for m in messages],
            ignore_conflicts=True,
        )
        return [SendResult.sent(f"sandbox-{m.delivery_id}") for m in messages]
