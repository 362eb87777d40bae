"""The bounded process: runs jobs for its parent (core/bounded.py), one JSON line in, one out.

    python -m core.bounded_child MEMORY_BYTES MAX_CHARS

A request names a job as `package.module:function`, the job's payload and the seconds it may
take. The process caps its own address space and stack, so a job that builds a gigabyte gets a
MemoryError here, and it stops a job at its time limit with an alarm. What an alarm cannot stop
(one long C-level operation such as `3**100000000`) or a crash in native code (css-inline
segfaults on deeply nested HTML) ends this process, never its parent: the parent kills and
replaces it, and the request that caused it fails alone. Jobs import nothing from Django, so a
new process is ready in a fraction of a second. It exits when its parent closes the pipe.
"""

import importlib
import json
import resource
import signal
import sys
import time
from contextlib import contextmanager

# What a job may produce: set from the command line, read by jobs that build output.
limits = {"max_chars": 262144, "seconds": 0.0}


class JobFailed(Exception):
    """A job's refusal: `field` names the part of the input at fault, `bound` the limit it broke (or "")."""

    bound = ""

    def __init__(self, message: str, field: str = "", bound: str = ""):
        super().__init__(message)
        self.field = field
        if bound:
            self.bound = bound


class TimeLimitReached(BaseException):
    """Raised by the alarm; a BaseException so that no `except Exception` inside a job swallows it."""


def on_alarm(signum, frame):
    raise TimeLimitReached


class ShareSpent(Exception):
    """Raised by `time_share` when its piece of the work ran out of its time."""


def seconds_left() -> float:
    """What remains of the running job's time limit (0 outside a job)."""
    return signal.getitimer(signal.ITIMER_REAL)[0]


@contextmanager
def time_share(seconds: float | None):
    """Give the work inside at most `seconds` of the job's time (ShareSpent past it), so that one
    costly item of a batch does not cost the others their answers; the job keeps what is left."""
    left = seconds_left()
    if not seconds or not left or left <= seconds:
        yield
        return
    started = time.monotonic()
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    except TimeLimitReached:
        raise ShareSpent(f"took more than {seconds:g} s") from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, max(left - (time.monotonic() - started), 0.001))


_jobs: dict = {}


def job_function(name: str):
    if name not in _jobs:
        module, _, function = name.partition(":")
        _jobs[name] = getattr(importlib.import_module(module), function)
    return _jobs[name]


def handle(request: dict) -> dict:
    seconds = limits["seconds"] = float(request["seconds"])
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.001))
    try:
        return {"ok": job_function(request["job"])(request["payload"])}
    except TimeLimitReached:
        return {"error": f"took longer than the limit of {seconds:g} s", "bound": "time"}
    except MemoryError:
        return {"error": "needed more memory than the limit allows", "bound": "memory", "restart": True}
    except JobFailed as exc:
        return {"error": str(exc)[:2000], "field": exc.field, "bound": exc.bound, "restart": exc.bound == "memory"}
    except RecursionError:
        return {"error": "recursed too deeply", "bound": "recursion"}
    except OverflowError as exc:  # a range limit, or a number too big to handle
        return {"error": f"went past a size limit: {exc}"[:500], "bound": "size"}
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"[:2000]}
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def main(argv: list[str]) -> None:
    memory_bytes, limits["max_chars"] = int(argv[0]), int(argv[1])
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the parent; it closes our pipe
    sys.setrecursionlimit(2000)
    for module in argv[2:]:  # the parent's usual jobs, imported before "ready" so no job pays for it
        importlib.import_module(module)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    for line in sys.stdin.buffer:
        try:
            answer = handle(json.loads(line))
        except MemoryError:
            answer = {"error": "the request did not fit the memory limit", "bound": "memory", "restart": True}
        except (ValueError, KeyError, TypeError) as exc:  # not a request this parent would send: say so, go on
            answer = {"error": f"unreadable request: {exc}"[:500]}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
        if answer.get("restart"):
            return


if __name__ == "__main__":
    # Run the importable module's main, not this __main__ copy: jobs import JobFailed and `limits`
    # from core.bounded_child, and must see the same ones the loop uses.
    from core.bounded_child import main as main_of_the_module

    main_of_the_module(sys.argv[1:])
