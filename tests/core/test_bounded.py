"""Bounded processes: what a job costs is capped, and a job that crashes or overruns fails alone."""

import os
import threading
import time

import pytest

from core import bounded

JOBS = "tests.core.bounded_jobs"


@pytest.fixture(autouse=True)
def own_slots(settings, tmp_path):
    settings.HERALD_BOUNDED_SLOT_DIR = str(tmp_path / "slots")
    settings.HERALD_RENDER_TIME_LIMIT_SECONDS = 1.0


def test_a_job_answers_with_its_result():
    assert bounded.run(f"{JOBS}:echo", {"a": [1, 2]}) == {"a": [1, 2]}


def test_a_job_that_segfaults_fails_alone_and_the_next_job_runs():
    with pytest.raises(bounded.BoundBroken) as raised:
        bounded.run(f"{JOBS}:segfault", {})
    assert raised.value.bound == "crash"
    assert "SIGSEGV" in str(raised.value)
    assert bounded.run(f"{JOBS}:echo", "still here") == "still here"


def test_a_job_that_overruns_is_stopped_at_the_time_limit():
    started = time.monotonic()
    with pytest.raises(bounded.BoundBroken) as raised:
        bounded.run(f"{JOBS}:sleep", {"seconds": 5})
    assert raised.value.bound == "time"
    assert time.monotonic() - started < 2.5


def test_a_job_that_wants_more_memory_than_the_limit_gets_a_memory_error(settings):
    settings.HERALD_RENDER_MEMORY_MB = 128
    with pytest.raises(bounded.BoundBroken) as raised:
        bounded.run(f"{JOBS}:allocate", {"bytes": 512 * 1024 * 1024})
    assert raised.value.bound == "memory"
    assert bounded.run(f"{JOBS}:allocate", {"bytes": 1024}) == 1024


def test_a_job_refusal_names_the_field():
    with pytest.raises(bounded.BoundBroken) as raised:
        bounded.run(f"{JOBS}:refuse", {"field": "rrule"})
    assert (raised.value.field, raised.value.bound, str(raised.value)) == ("rrule", "", "not this one")


def test_an_input_over_the_limit_is_refused_before_it_reaches_a_process(settings):
    settings.HERALD_BOUNDED_MAX_INPUT_BYTES = 1000
    with pytest.raises(bounded.BoundBroken) as raised:
        bounded.run(f"{JOBS}:echo", "x" * 2000, field="body")
    assert (raised.value.bound, raised.value.field) == ("size", "body")


def test_a_budget_is_shared_by_every_job_inside_it_not_given_to_each():
    started = time.monotonic()
    with bounded.budget(1.2):
        assert bounded.run(f"{JOBS}:sleep", {"seconds": 0.7}) == "slept"
        with pytest.raises(bounded.BoundBroken) as raised:
            bounded.run(f"{JOBS}:sleep", {"seconds": 0.7})
        assert raised.value.bound == "budget"
        with pytest.raises(bounded.BoundBroken) as raised:
            bounded.run(f"{JOBS}:echo", 1)
        assert raised.value.bound == "budget"
    assert time.monotonic() - started < 2.5


def test_heavy_web_requests_beyond_the_hosts_slots_are_told_busy_at_once(settings):
    settings.HERALD_BOUNDED_WEB_SLOTS = 1
    holding, release = threading.Event(), threading.Event()

    def heavy_request():
        with bounded.budget(5, web=True):
            bounded.run(f"{JOBS}:echo", 1)
            holding.set()
            release.wait(10)

    first = threading.Thread(target=heavy_request)
    first.start()
    try:
        assert holding.wait(10)
        started = time.monotonic()
        with pytest.raises(bounded.Busy), bounded.budget(5, web=True):
            bounded.run(f"{JOBS}:echo", 2)
        assert time.monotonic() - started < 1.5
    finally:
        release.set()
        first.join(10)
    with bounded.budget(5, web=True):  # the slot came back when the first request ended
        assert bounded.run(f"{JOBS}:echo", 3) == 3


def test_a_slot_held_by_a_process_that_died_is_free_again(settings):
    settings.HERALD_BOUNDED_WEB_SLOTS = 1
    taken, told = os.pipe()
    child = os.fork()
    if child == 0:  # a web worker that takes the slot and is killed holding it
        slot = bounded.take_slot()  # noqa: F841 (held until the process dies)
        os.write(told, b"1")
        time.sleep(60)
        os._exit(0)
    try:
        assert os.read(taken, 1) == b"1"
        with pytest.raises(bounded.Busy), bounded.budget(5, web=True):
            bounded.run(f"{JOBS}:echo", 1)
    finally:
        os.kill(child, 9)
        os.waitpid(child, 0)
    with bounded.budget(5, web=True):
        assert bounded.run(f"{JOBS}:echo", 4) == 4
