"""The render process: renders templates for its parent, one JSON line in, one JSON line out.

    python -m templates_app.render_child TIME_LIMIT_SECONDS MEMORY_BYTES MAX_CHARS

It caps its own address space, so a template that tries to build a gigabyte gets a MemoryError
here instead of swelling a worker, and it stops a render at the time limit with an alarm. An
alarm cannot interrupt one long C-level operation (`3**100000000`): the parent then kills this
process and starts another (`rendering.py`). It exits when its parent closes the pipe.
"""

import json
import resource
import signal
import sys

from templates_app import jinja_sandbox


class TimeLimitReached(BaseException):
    """Raised by the alarm; a BaseException so no `except Exception` inside Jinja2 swallows it."""


def on_alarm(signum, frame):
    raise TimeLimitReached


def handle(request: dict, time_limit: float, max_chars: int) -> dict:
    checking = request.get("mode") == "check"
    field = ""
    signal.setitimer(signal.ITIMER_REAL, time_limit)
    jinja_sandbox.for_reader(request.get("locale") or "en", request.get("timezone") or "UTC")
    try:
        rendered = {}
        for field, source in request["parts"]:
            html = field in jinja_sandbox.HTML_FIELDS
            if checking:
                problem = jinja_sandbox.syntax_error(source, html)
                if problem:
                    return {"error": f"Template syntax error: {problem}", "field": field}
                probe(field, source, max_chars)
            else:
                rendered[field] = jinja_sandbox.render_part(field, source, request["variables"], max_chars)
        return {"ok": rendered}
    except TimeLimitReached:
        return {"error": f"rendering took longer than the limit of {time_limit:g} s", "field": field, "bound": "time"}
    except MemoryError:
        return {"error": "rendering needed more memory than the render limit allows", "field": field, "bound": "memory", "restart": True}
    except jinja_sandbox.OutputTooLarge as exc:
        return {"error": f"rendered {exc}", "field": field, "bound": "output"}
    except RecursionError:
        return {"error": "rendering recursed too deeply", "field": field, "bound": "recursion"}
    except OverflowError as exc:  # the sandbox's range limit, or a number too big to handle
        return {"error": f"rendering went past a size limit: {exc}"[:500], "field": field, "bound": "size"}
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"[:500], "field": field}
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def probe(field: str, source: str, max_chars: int) -> None:
    """Render with every variable undefined, so constant expressions show their cost at creation.

    Errors other than a broken bound (an undefined variable used in arithmetic, say) are the
    real variables' business and are ignored here.
    """
    try:
        jinja_sandbox.render_part(field, source, {}, max_chars, strict=False)
    except (MemoryError, RecursionError, OverflowError, jinja_sandbox.OutputTooLarge):
        raise
    except Exception:
        pass


def main(argv: list[str]) -> None:
    time_limit, memory_bytes, max_chars = float(argv[0]), int(argv[1]), int(argv[2])
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the parent; it closes our pipe
    sys.setrecursionlimit(2000)
    sys.stdout.write("ready\n")  # the parent's time limit starts only now, not during our imports
    sys.stdout.flush()
    for line in sys.stdin.buffer:
        try:
            answer = handle(json.loads(line), time_limit, max_chars)
        except MemoryError:
            answer = {"error": "the render request did not fit the render memory limit", "bound": "memory", "restart": True}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
        if answer.get("restart"):
            return


if __name__ == "__main__":
    main(sys.argv[1:])
