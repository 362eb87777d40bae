"""What recording metrics costs: bench/accept.py twice in one run, metrics off (HERALD_METRICS=0) then on.

Each run's accept and drain rates are taken as ratios to their own references (the bare insert
endpoint, the no-op task) measured in the same stack, so the two runs compare although the
machine's speed drifts; the on/off ratios should be within 5 % of each other.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import accept  # noqa: E402


def main() -> None:
    print("-- metrics off (HERALD_METRICS=0)")
    off = accept.main({"HERALD_METRICS": "0"})
    print("-- metrics on")
    on = accept.main({"HERALD_METRICS": "1"})
    for name, a, b in (("accept", off[0], on[0]), ("drain", off[1], on[1])):
        print(f"{name} ratio: metrics off {a:.2f}x, on {b:.2f}x its reference: on/off {b / a:.3f} (target within 5 %: 0.95-1.05)")


if __name__ == "__main__":
    main()
