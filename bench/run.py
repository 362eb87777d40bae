"""`make bench`: every benchmark in turn, each on a fresh stack; prints the figures."""

import runpy
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = ["accept.py", "statements.py", "campaign.py", "sms.py", "inbox.py"]

if __name__ == "__main__":
    for name in sys.argv[1:] or BENCHMARKS:
        print(f"== {name}", flush=True)
        runpy.run_path(str(HERE / name), run_name="__main__")
