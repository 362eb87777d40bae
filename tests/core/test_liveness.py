"""Liveness files: fresh while a worker or beat runs, stale when it freezes, gone when a worker stops."""

import os
import signal
import subprocess
import sys
import time

from core import liveness
from tests.services import ROOT, stop_process_group, subprocess_env, wait_for


def check(path, max_age: float) -> int:
    return subprocess.run([sys.executable, "-m", "core.liveness", "check", str(path), str(max_age)], cwd=ROOT,
                          capture_output=True, timeout=30).returncode


def test_the_check_passes_a_fresh_file_and_fails_a_stale_or_missing_one(tmp_path):
    path = tmp_path / "alive"
    assert liveness.check(path, 5) == 1

    liveness.touch(path)
    assert liveness.check(path, 5) == 0

    os.utime(path, (time.time() - 60, time.time() - 60))
    assert liveness.check(path, 5) == 1
    assert liveness.main(["check", str(path)]) == 2


def test_a_worker_keeps_its_file_fresh_until_it_freezes_and_removes_it_when_it_stops(workers, tmp_path):
    path = tmp_path / "worker-alive"
    worker = workers.use("liveness", {"HERALD_LIVENESS_FILE": str(path)})
    try:
        wait_for(path.exists, 30, message="the worker's liveness file")
        first = path.stat().st_mtime
        wait_for(lambda: path.stat().st_mtime > first, 5, message="the file to be touched again")
        assert check(path, 3) == 0

        os.killpg(worker.process.pid, signal.SIGSTOP)  # a wedged process: its heartbeat stops too
        try:
            wait_for(lambda: check(path, 2) == 1, 10, 0.5, message="the frozen worker's file to go stale")
        finally:
            os.killpg(worker.process.pid, signal.SIGCONT)

        worker.stop()
        assert not path.exists()
    finally:
        worker.stop()


def test_beat_touches_its_file_after_each_tick(django_db_setup, tmp_path):
    path = tmp_path / "beat-alive"
    env = subprocess_env(application_name="herald-test-beat", HERALD_LIVENESS_FILE=str(path))
    beat = subprocess.Popen([sys.executable, "-m", "celery", "-A", "config", "beat", "-s", str(tmp_path / "schedule")],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(path.exists, 30, message="beat's liveness file")
        first = path.stat().st_mtime
        wait_for(lambda: path.stat().st_mtime > first, 10, message="beat to tick again")
        assert check(path, 5) == 0

        os.killpg(beat.pid, signal.SIGSTOP)
        try:
            wait_for(lambda: check(path, 2) == 1, 10, 0.5, message="the frozen beat's file to go stale")
        finally:
            os.killpg(beat.pid, signal.SIGCONT)
    finally:
        stop_process_group(beat, grace=10)
