"""Work on author or caller content, done in bounded child processes (core/bounded_child.py).

Templates, their CSS and HTML, diffs of drafts, samples from variables' schemas and recurrence
rules are written by ops staff or API callers, so what they cost is the author's choice:
`{{ 3**10**8 }}` ran for 76 s, `{{ 'a' * 10**9 }}` took a gigabyte, css-inline segfaulted on
10,000 nested elements, a diff of two 20 KB drafts took 30 s. Such work runs only here: each
child caps its memory and output and stops at a time limit; one that overruns, runs out of
memory or dies by a signal is killed and replaced, and only the request that asked fails
(`BoundBroken`). The caller waits on a pipe, so its other threads and event loop run on.

Limits add up per request, not per part (`budget`): a web request shares one budget among all
its bounded work, and heavy requests hold one of a few host-wide slots (`HERALD_BOUNDED_WEB_SLOTS`),
so they can never occupy every web worker at once; one that finds no free slot is `Busy` (503).
"""

import fcntl
import hashlib
import json
import os
import queue
import selectors
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from django.conf import settings

# Killing and restarting a process that overran its time limit: this much grace for the alarm first.
KILL_GRACE_SECONDS = 0.5
# A new process must be ready within this (imports on a busy machine); not the content's fault.
START_TIMEOUT_SECONDS = 15
# How long a heavy web request waits for a free slot before it is told to come back.
SLOT_WAIT_SECONDS = 0.5


class BoundBroken(Exception):
    """The work was refused or stopped: `bound` names the limit (time, memory, output, size, recursion,
    budget, crash, start) or is "" for the content's own error; `field` names the part at fault."""

    def __init__(self, message: str, field: str = "", bound: str = ""):
        super().__init__(message)
        self.field = field
        self.bound = bound

    @property
    def ours(self) -> bool:
        """Whether the failure is Herald's (no process could start), not the content's."""
        return self.bound == "start"


class Busy(BoundBroken):
    """Every slot for heavy web requests is taken: come back in `retry_after` seconds."""

    retry_after = 2

    def __init__(self):
        super().__init__("The server is busy with other heavy requests; retry shortly.", bound="busy")


@dataclass(frozen=True)
class Limits:
    time_seconds: float
    memory_bytes: int
    max_chars: int

    @classmethod
    def from_settings(cls) -> "Limits":
        return cls(settings.HERALD_RENDER_TIME_LIMIT_SECONDS, settings.HERALD_RENDER_MEMORY_MB * 1024 * 1024,
                   settings.HERALD_RENDER_MAX_CHARS)


@dataclass
class Budget:
    seconds: float
    deadline: float
    web: bool
    slot: IO | None = field(default=None)


_budget: ContextVar[Budget | None] = ContextVar("herald_bounded_budget", default=None)


@contextmanager
def budget(seconds: float, *, web: bool = False):
    """Share `seconds` among all bounded work done inside (one request, one message). With `web`,
    the first piece of work also takes a host-wide slot for heavy requests, held until the end."""
    spent = Budget(seconds, time.monotonic() + seconds, web)
    token = _budget.set(spent)
    try:
        yield spent
    finally:
        _budget.reset(token)
        if spent.slot is not None:
            spent.slot.close()  # closing the file drops its lock


def run(job: str, payload: Any, *, field: str = "") -> Any:
    """Run `job` ("package.module:function") on `payload` in a bounded process; its JSON result.

    BoundBroken if it fails, breaks a limit, or the current budget is spent; `field` names the
    input at fault when the job does not say.
    """
    limit = settings.HERALD_RENDER_TIME_LIMIT_SECONDS
    current = _budget.get()
    if current is not None:
        remaining = current.deadline - time.monotonic()
        if remaining < 0.05:
            raise BoundBroken(f"the request's work budget of {current.seconds:g} s is spent", field, "budget")
        if current.web and current.slot is None:
            current.slot = take_slot()
        limit = min(limit, remaining)
    request = json.dumps({"job": job, "payload": payload, "seconds": limit})
    if len(request) > settings.HERALD_BOUNDED_MAX_INPUT_BYTES:
        raise BoundBroken(f"the input is {len(request)} bytes, over the limit of "
                          f"{settings.HERALD_BOUNDED_MAX_INPUT_BYTES}", field, "size")
    answer = _pool.ask(request.encode(), limit)
    if "error" in answer:
        bound = answer.get("bound", "")
        message = answer["error"]
        if bound == "time" and current is not None and limit < settings.HERALD_RENDER_TIME_LIMIT_SECONDS:
            bound, message = "budget", f"the request's work budget of {current.seconds:g} s ran out"
        raise BoundBroken(message, answer.get("field") or field, bound)
    return answer["ok"]


class BoundedProcess:
    """One child process; used by one thread at a time (see `_Pool`)."""

    def __init__(self, limits: Limits):
        self.limits = limits
        self.owner_pid = os.getpid()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "core.bounded_child", str(limits.memory_bytes), str(limits.max_chars),
             *settings.HERALD_BOUNDED_PRELOAD],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            cwd=settings.BASE_DIR, env={**os.environ, "PYTHONPATH": str(settings.BASE_DIR)},
        )
        self.buffer = b""
        self.selector = selectors.DefaultSelector()  # select() fails on descriptors past 1024
        self.selector.register(self.process.stdout, selectors.EVENT_READ)
        try:
            ready = self._read_line(START_TIMEOUT_SECONDS)
        except BoundBroken:
            ready = None
        if ready != b"ready":
            self.kill()
            raise BoundBroken("the bounded process did not start", bound="start")

    @property
    def usable(self) -> bool:
        return self.owner_pid == os.getpid() and self.process.poll() is None

    def ask(self, request: bytes, seconds: float) -> dict:
        """Send one request and wait for its answer; BoundBroken(bound="time") if none comes in time."""
        try:
            self.process.stdin.write(request + b"\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            self.kill()
            raise BoundBroken(self._death("before it took the request"), bound="crash") from None
        line = self._read_line(seconds + KILL_GRACE_SECONDS)
        if line is None:
            self.kill()
            raise BoundBroken(f"took longer than the limit of {seconds:g} s", bound="time")
        answer = json.loads(line)
        if answer.get("restart"):
            self.kill()
        return answer

    def _read_line(self, timeout: float) -> bytes | None:
        """The next line from the process, None if none came within `timeout`; BoundBroken if it died."""
        deadline = time.monotonic() + timeout
        fd = self.process.stdout.fileno()
        while b"\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self.selector.select(remaining):
                return None
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                self.kill()
                raise BoundBroken(self._death("while working"), bound="crash")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line

    def _death(self, when: str) -> str:
        try:
            code = self.process.wait(timeout=1)
        except subprocess.TimeoutExpired:
            code = None
        how = f" (killed by {signal.Signals(-code).name})" if code is not None and code < 0 else ""
        return f"the bounded process stopped {when}{how}"

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.selector.close()
        for pipe in (self.process.stdin, self.process.stdout):
            try:
                pipe.close()
            except OSError:
                pass


class _Pool:
    """Idle bounded processes, so concurrent threads (web requests, sender threads) never share a pipe."""

    def __init__(self, keep: int = 4):
        self.idle: queue.LifoQueue[BoundedProcess] = queue.LifoQueue()
        self.keep = keep

    def ask(self, request: bytes, seconds: float) -> dict:
        process = self._take(Limits.from_settings())
        try:
            answer = process.ask(request, seconds)
        except BaseException:
            process.kill()
            raise
        if process.usable and self.idle.qsize() < self.keep:
            self.idle.put(process)
        else:
            process.kill()
        return answer

    def _take(self, limits: Limits) -> BoundedProcess:
        while True:
            try:
                process = self.idle.get_nowait()
            except queue.Empty:
                return BoundedProcess(limits)
            if process.usable and process.limits == limits:
                return process
            process.kill()

    def close(self) -> None:
        while True:
            try:
                self.idle.get_nowait().kill()
            except queue.Empty:
                return


_pool = _Pool()


def slot_dir() -> Path:
    """Where this installation's web processes on this host keep their slot files."""
    if settings.HERALD_BOUNDED_SLOT_DIR:
        return Path(settings.HERALD_BOUNDED_SLOT_DIR)
    installation = hashlib.sha256(f"{settings.BASE_DIR}|{settings.DATABASE_URL}".encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"herald-slots-{installation}"


_slot_lock = threading.Lock()


def take_slot() -> IO:
    """One of the host's slots for heavy web requests (a file lock: freed when its process dies), or Busy."""
    directory = slot_dir()
    directory.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + SLOT_WAIT_SECONDS
    while True:
        with _slot_lock:
            for number in range(max(1, settings.HERALD_BOUNDED_WEB_SLOTS)):
                handle = open(directory / f"slot-{number}", "a")  # noqa: SIM115 (held until the budget ends)
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    handle.close()
                    continue
                return handle
        if time.monotonic() >= deadline:
            raise Busy()
        time.sleep(0.05)
