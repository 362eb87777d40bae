"""`make chaos` (python -m chaos [C1 C3 …]): run the fault-injection scenarios against a real Herald stack.

Exits 1 on a violation: a promise of the README broken (see chaos/promises.py, chaos/report.py and each
scenario). Exits 2 if the harness could not run (a scenario, or the whole run).
"""

import signal
import sys
import time
import traceback

from bench.harness import free_port
from chaos.report import TABLE_HEADER, Scenario, details, table_line
from chaos.scenarios import SCENARIOS, Run, start_api
from chaos.stack import VAR, Herald, Servers, SimulatorProcess, herald_env
from chaos.traffic import forget_breakers

READY_BETWEEN_SCENARIOS_SECONDS = 60  # a scenario starts on a stack that is ready again, or says it did not


def main(argv: list[str]) -> int:
    chosen = [key.upper() for key in argv] or list(SCENARIOS)
    unknown = [key for key in chosen if key not in SCENARIOS]
    if unknown:
        print(f"unknown scenario(s) {' '.join(unknown)}; choose from {' '.join(SCENARIOS)}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored (`cmd &`)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    VAR.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    servers, simulator, herald = Servers(), None, None
    results: list[Scenario] = []
    crashed = 0
    try:
        servers.start()
        port = free_port()
        simulator = SimulatorProcess(receipts_to=f"http://127.0.0.1:{port}")
        herald = Herald("main", herald_env("main", servers, simulator, port, 0))
        say(f"starting Herald (scripts/run.py) on {herald.base_url}, simulator on {simulator.http_url}; logs in {VAR}")
        herald.start()
        run = Run(servers, simulator, herald, start_api(herald))
        say(f"stack ready after {time.monotonic() - began:.0f}s\n\n{TABLE_HEADER}")
        for key in sorted(chosen, key=list(SCENARIOS).index):
            prepare(herald)
            started = time.monotonic()
            try:
                scenario = SCENARIOS[key](run)
            except Exception as error:  # the next scenarios may still run; the exit code says this one did not
                traceback.print_exc()
                scenario = Scenario(key, SCENARIOS[key].__name__, "", skipped=f"HARNESS ERROR {error!r}"[:200])
                crashed += 1
            scenario.seconds = time.monotonic() - started
            results.append(scenario)
            say(table_line(scenario))
            for line in details(scenario):
                say(line)
    except (Exception, KeyboardInterrupt):
        traceback.print_exc()
        say("the chaos run did not complete")
        return 2
    finally:
        say("stopping the stack, the simulator and the embedded servers")
        for stop in (herald and herald.stop, simulator and simulator.stop, servers.stop):
            if stop:
                try:
                    stop()
                except Exception:
                    traceback.print_exc()
    return summary(results, time.monotonic() - began, crashed)


def prepare(herald: Herald) -> None:
    """Start the next scenario on a running, ready stack, with every breaker closed."""
    if not herald.alive():
        say(f"scripts/run.py had exited ({herald.process.returncode}); starting the stack again")
        herald.stop()
        herald.start()
    deadline = time.monotonic() + READY_BETWEEN_SCENARIOS_SECONDS
    while herald.health()[0] != 200:
        if time.monotonic() > deadline:
            say(f"/health/ready is still not 200 after {READY_BETWEEN_SCENARIOS_SECONDS}s; the next scenario starts anyway")
            break
        time.sleep(0.5)
    forget_breakers(herald.env["REDIS_URL"])


def summary(results: list[Scenario], seconds: float, crashed: int) -> int:
    say(f"\n{TABLE_HEADER}")
    for scenario in results:
        say(table_line(scenario))
    violations = sum(len(scenario.violations) for scenario in results)
    say(f"\n{len(results)} scenarios in {seconds:.0f}s: {violations} violations, {crashed} could not run")
    return 1 if violations else 2 if crashed else 0


def say(text: str) -> None:
    print(text, flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
