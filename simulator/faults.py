"""Faults injected on demand, and token-bucket rate limits, per provider."""

import itertools
import time
from dataclasses import asdict, dataclass

PROVIDERS = ("sendgrid", "twilio", "fcm", "fcm_oauth", "apns")


@dataclass
class Fault:
    id: str
    provider: str
    status: int | None = None
    error: str | None = None
    retry_after: float | None = None
    latency_ms: float | None = None
    timeout: bool = False
    malformed: bool = False
    answer_lost: bool = False  # handled as usual (the provider keeps what it accepted), but never answered
    count: int | None = None  # how many more requests it applies to; None while it is active
    match: str | None = None  # a substring of the recipient, or None for every request
    applied: int = 0

    def applies_to(self, provider: str, recipients: list[str]) -> bool:
        if provider != self.provider or self.count == 0:
            return False
        return self.match is None or any(self.match in recipient for recipient in recipients)

    def as_dict(self) -> dict:
        return asdict(self)


class FaultBook:
    """Active faults in the order they were added; the oldest matching one wins."""

    def __init__(self):
        self._faults: dict[str, Fault] = {}
        self._ids = itertools.count(1)

    def add(self, **settings) -> Fault:
        fault = Fault(id=f"fault-{next(self._ids)}", **settings)
        self._faults[fault.id] = fault
        return fault

    def remove(self, fault_id: str) -> bool:
        return self._faults.pop(fault_id, None) is not None

    def take(self, provider: str, recipients: list[str]) -> Fault | None:
        """The fault this request gets, counting it as used."""
        for fault in self._faults.values():
            if fault.applies_to(provider, recipients):
                fault.applied += 1
                if fault.count is not None:
                    fault.count -= 1
                return fault
        return None

    def hang_begun(self, provider: str, recipients: list[str], taken: Fault) -> Fault | None:
        """A lasting `timeout` fault added after `taken` that applies to this request, counted as used: a
        provider that hangs also stops answering the requests it was already working on."""
        added_later = list(self._faults.values())
        added_later = added_later[added_later.index(taken) + 1:] if taken in added_later else added_later
        for fault in added_later:
            if fault.timeout and fault.count is None and fault.applies_to(provider, recipients):
                fault.applied += 1
                return fault
        return None

    def all(self) -> list[dict]:
        return [fault.as_dict() for fault in self._faults.values()]

    def clear(self) -> None:
        self._faults.clear()


class TokenBucket:
    """Holds one second's worth of requests and refills continuously."""

    def __init__(self, per_second: float):
        self.per_second = per_second
        self.capacity = max(per_second, 1.0)
        self.tokens = self.capacity
        self.updated = time.monotonic()

    def take(self) -> float | None:
        """None if the request may pass, else the seconds until it would have."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.per_second)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return None
        return (1 - self.tokens) / self.per_second


class RateLimits:
    def __init__(self):
        self._buckets: dict[str, TokenBucket] = {}

    def set(self, provider: str, per_second: float | None) -> None:
        if per_second is None:
            self._buckets.pop(provider, None)
        else:
            self._buckets[provider] = TokenBucket(per_second)

    def take(self, provider: str) -> tuple[float, float] | None:
        """None if the request may pass, else (the limit per second, seconds to wait)."""
        bucket = self._buckets.get(provider)
        if bucket is None:
            return None
        wait = bucket.take()
        return None if wait is None else (bucket.per_second, wait)

    def all(self) -> dict[str, float]:
        return {provider: bucket.per_second for provider, bucket in self._buckets.items()}

    def clear(self) -> None:
        self._buckets.clear()
