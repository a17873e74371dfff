"""Benchmark: program evaluation time under mocks and the longest remote-command chain.

    python -m tools.benchmark            # 2 and 60 workers
    python -m tools.benchmark 5 20       # other worker counts

Not a timed test: numbers vary with the machine. The chain length must not grow with the
number of workers (tests/test_speed.py asserts that part).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from tools.graph import command_chain
from tools.mock_engine import run_program

STACK = "bench"
GCP = {"gcp:project": "bench-project", "gcp:region": "europe-west1", "gcp:zone": "europe-west1-b"}


def stack(workers: int) -> dict[str, object]:
    return {
        **GCP,
        "adminCidrs": ["203.0.113.7/32"],
        "workerPools": [{"name": "general", "count": workers, "storageDiskSizeGb": 50}],
    }


def measure(workers: int, runs: int = 3) -> tuple[float, int, int, list[str]]:
    """Median evaluation time, resources registered, and the longest chain (node step names,
    without the stack's prefix, as the README shows them)."""
    times, plan = [], None
    for _ in range(runs):
        start = time.perf_counter()
        plan = run_program(stack(workers), stack=STACK)
        times.append(time.perf_counter() - start)
        if plan.error:
            raise SystemExit(plan.error)
    assert plan is not None
    chain = [name.removeprefix(f"{STACK}-") for name in command_chain(plan)]
    return statistics.median(times), len(plan.resources), len(chain), chain


def row(workers: int, runs: int = 3) -> str:
    """One row of the README's table (Speed)."""
    seconds, resources, length, chain = measure(workers, runs)
    return f"| {workers} | {resources} | {seconds:.2f} s | {length}: {' → '.join(chain)} |"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.benchmark", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("workers", nargs="*", type=int, help="worker counts to measure (default: 2 60)")
    counts = parser.parse_args(argv).workers or [2, 60]
    if any(count < 0 for count in counts):
        parser.error("worker counts are 0 or more")
    print("| workers | resources | evaluation under mocks (median of 3) | longest remote-command chain |")
    print("|---:|---:|---:|---|")
    for workers in counts:
        print(row(workers), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
