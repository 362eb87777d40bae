"""`make bench`: every benchmark in turn, each in its own process on a fresh stack; prints the figures."""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = ["accept.py", "statements.py", "campaign.py", "sends.py", "sms.py", "inbox.py", "digests.py", "schedules.py",
              "analytics.py", "metrics_overhead.py"]

if __name__ == "__main__":
    failed = []
    for name in sys.argv[1:] or BENCHMARKS:
        print(f"== {name}", flush=True)
        # Its own interpreter: a benchmark that set Django up keeps connections to a database the next one drops.
        if subprocess.run([sys.executable, str(HERE / name)]).returncode:
            failed.append(name)
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")
