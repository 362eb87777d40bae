"""The provider breaker, against real Redis: what opens it, what does not, and how it closes."""

import threading
import time

import pytest

from core.vocabulary import ErrorCode
from delivery import breaker
from delivery.providers.base import SendResult

pytestmark = pytest.mark.services

OK = SendResult.sent("id")
FAULT = SendResult.retry("http_503", "down", provider_fault=True)
UNSENT = SendResult.retry(ErrorCode.CONNECTION_ERROR, "refused", provider_fault=True)
OURS = SendResult.retry(ErrorCode.PROVIDER_ERROR, "our bug")


@pytest.fixture(autouse=True)
def clocks(settings):
    settings.HERALD_BREAKER_FAILURES = 3
    settings.HERALD_BREAKER_RESET_SECONDS = 30
    settings.HERALD_BREAKER_PROBE_SECONDS = 0.2
    settings.HERALD_BREAKER_STALL_MIN_SECONDS = 0.3
    settings.HERALD_BREAKER_STALL_FACTOR = 4
    settings.HERALD_BREAKER_UNSENT_SECONDS = 1.0
    settings.HERALD_PROVIDER_TIMEOUT = 5


def call(result: SendResult, provider: str = "p", **kwargs):
    return breaker.call_through_breaker(provider, lambda: result, **kwargs)


@pytest.mark.parametrize("failure", [FAULT, SendResult.unknown(ErrorCode.TIMEOUT, "no answer")])
def test_failures_of_the_provider_in_a_row_open_it(failure):
    for _ in range(3):
        assert call(failure) == failure
    assert isinstance(call(OK), breaker.Refused)
    assert breaker.state_of("p") == "open"


def test_a_success_between_failures_keeps_it_closed():
    for result in (FAULT, FAULT, OK, FAULT, FAULT):
        call(result)
    assert breaker.state_of("p") == "closed"


def test_a_burst_of_connection_failures_before_sending_does_not_open_it():
    for _ in range(25):  # a local blip: resets right after a reconnect
        call(UNSENT)
    assert breaker.state_of("p") == "closed"
    assert call(OK) == OK


def test_connections_refused_for_longer_than_the_grace_open_it():
    call(UNSENT)
    time.sleep(1.1)  # the grace is a duration: nothing else can show it passed
    call(UNSENT)
    assert breaker.state_of("p") == "open"


def test_errors_of_our_own_never_count():
    for _ in range(10):
        call(OURS)
    assert breaker.state_of("p") == "closed"


def test_a_call_that_hangs_holds_new_calls_and_opens_it_when_it_fails():
    call(OK)  # the provider's usual latency: about nothing, so the minimum of 0.3 s applies
    entered, finish = threading.Event(), threading.Event()

    def hanging():
        entered.set()
        finish.wait(10)
        return SendResult.unknown(ErrorCode.TIMEOUT, "no answer")

    thread = threading.Thread(target=lambda: breaker.call_through_breaker("p", hanging))
    thread.start()
    assert entered.wait(5)
    time.sleep(0.4)  # past the stall threshold: only time shows a call overran
    held = call(OK)
    finish.set()
    thread.join(10)

    assert isinstance(held, breaker.Refused) and held.wait == 0.3
    assert breaker.state_of("p") == "open"


def test_a_slow_call_that_succeeds_only_pauses_the_others():
    call(OK)
    release = threading.Event()
    thread = threading.Thread(target=lambda: breaker.call_through_breaker("p", lambda: release.wait(10) and OK))
    thread.start()
    time.sleep(0.4)
    assert isinstance(call(OK), breaker.Refused)
    release.set()
    thread.join(10)

    assert breaker.state_of("p") == "closed"
    assert call(OK) == OK


def test_a_provider_with_a_health_check_is_probed_without_risking_a_message_and_released_when_it_answers():
    for _ in range(3):
        call(FAULT, provider="q")
    sent, recovered = [], []
    send = lambda: sent.append(1) or OK  # noqa: E731

    time.sleep(0.25)  # past the probe interval
    failed_probe = breaker.call_through_breaker("q", send, probe=lambda: FAULT, on_recovery=lambda: recovered.append(1))
    time.sleep(0.25)
    answered = breaker.call_through_breaker("q", send, probe=lambda: OK, on_recovery=lambda: recovered.append(1))

    assert isinstance(failed_probe, breaker.Refused) and answered == OK
    assert sent == [1] and recovered == [1]
    assert breaker.state_of("q") == "closed"


def test_a_stalled_call_whose_worker_died_is_forgotten(settings):
    settings.HERALD_PROVIDER_TIMEOUT = 0.2
    allow, _ = breaker._scripts()
    breaker._allow(allow, breaker._keys("p"), 30, True)  # a call started and never recorded: its worker died
    time.sleep(0.8)  # past its stall time plus twice the provider timeout
    assert call(OK) == OK
