"""Optimisation throughput: trials per minute on the expo with 1 and with 2 workers.

    python bench/bench_optimize.py [--avatars 2000] [--trials 12] [--seeds 2] [--repeats 3]

Each configuration runs a fresh study (its own SQLite file) of the default expo search
space with GPT avatars, ``--trials`` trials of ``--seeds`` runs each; the two
configurations alternate, ``--repeats`` times, and the medians are reported with the
spread. The speed-up is the ratio of the medians, measured in one invocation.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from twin import Scenario  # noqa: E402
from twin.optimize import optimize  # noqa: E402


def one_study(scenario: Scenario, trials: int, seeds: int, workers: int) -> float:
    """Minutes per trial for a fresh study: returns trials per minute."""
    with tempfile.TemporaryDirectory(prefix="bench-optimize-") as tmp:
        started = time.perf_counter()
        optimize(scenario, trials=trials, seeds=seeds, workers=workers, out=tmp, progress=False)
        elapsed = time.perf_counter() - started
    return trials / (elapsed / 60.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--avatars", type=int, default=2000)
    parser.add_argument("--hours", type=float, default=4.0)
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    scenario = Scenario(name="bench", venue="expo", avatars=args.avatars, hours=args.hours)
    rates: dict[int, list[float]] = {1: [], 2: []}
    for r in range(args.repeats):
        for workers in (1, 2):
            rate = one_study(scenario, args.trials, args.seeds, workers)
            rates[workers].append(rate)
            print(f"repeat {r + 1}: {workers} worker(s): {rate:.2f} trials/min", flush=True)
    print(
        f"\nexpo, {args.avatars} GPT avatars, {args.hours:g} h, {args.trials} trials x "
        f"{args.seeds} seeds, medians of {args.repeats}:"
    )
    for workers, values in rates.items():
        median = statistics.median(values)
        spread = (max(values) - min(values)) / median
        print(f"  {workers} worker(s): {median:6.2f} trials/min (spread {spread:.0%})")
    speedup = statistics.median(rates[2]) / statistics.median(rates[1])
    print(f"  speed-up with 2 workers: {speedup:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
