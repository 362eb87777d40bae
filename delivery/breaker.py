"""Per-provider circuit breakers shared by every worker (state kept in Redis by pybreaker)."""

from functools import cache

import pybreaker
from django.conf import settings

from core import redis_client
from delivery.providers.base import SendResult


class ProviderFault(Exception):
    """Raised inside the breaker so that a provider-side failure counts against it."""

    def __init__(self, result: SendResult):
        super().__init__(result.error_code)
        self.result = result


@cache
def breaker_for(provider: str) -> pybreaker.CircuitBreaker:
    storage = pybreaker.CircuitRedisStorage(
        pybreaker.STATE_CLOSED,
        redis_client.shared(),
        namespace=f"herald:breaker:{provider}",
    )
    return pybreaker.CircuitBreaker(
        fail_max=settings.HERALD_BREAKER_FAILURES,
        reset_timeout=settings.HERALD_BREAKER_RESET_SECONDS,
        state_storage=storage,
        throw_new_error_on_trip=False,
        name=provider,
    )


def state_of(provider: str) -> str:
    return breaker_for(provider).current_state


def call_through_breaker(provider_name: str, send) -> SendResult | None:
    """Run `send()` under the provider's breaker; None when the breaker is open and it was not called."""
    breaker = breaker_for(provider_name)

    def guarded() -> SendResult:
        result = send()
        if result.provider_fault:
            raise ProviderFault(result)
        return result

    try:
        return breaker.call(guarded)
    except ProviderFault as fault:
        return fault.result
    except pybreaker.CircuitBreakerError:
        return None
