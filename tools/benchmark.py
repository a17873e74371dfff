"""Benchmark: program evaluation time under mocks and the longest remote-command chain.

    python -m tools.benchmark            # 2 and 60 workers

Not a timed test: numbers vary with the machine. The chain length must not grow with the
number of workers (tests/test_speed.py asserts that part).
"""

from __future__ import annotations

import statistics
import sys
import time

from tools.graph import command_chain
from tools.mock_engine import run_program

GCP = {"gcp:project": "bench", "gcp:region": "europe-west1", "gcp:zone": "europe-west1-b"}


def stack(workers: int) -> dict[str, object]:
    return {
        **GCP,
        "adminCidrs": ["203.0.113.7/32"],
        "workerPools": [{"name": "general", "count": workers, "storageDiskSizeGb": 50}],
    }


def measure(workers: int, runs: int = 3) -> tuple[float, int, int, list[str]]:
    times, plan = [], None
    for _ in range(runs):
        start = time.perf_counter()
        plan = run_program(stack(workers), stack="bench")
        times.append(time.perf_counter() - start)
        if plan.error:
            raise SystemExit(plan.error)
    assert plan is not None
    chain = command_chain(plan)
    return statistics.median(times), len(plan.resources), len(chain), chain


def main(argv: list[str]) -> int:
    counts = [int(a) for a in argv] or [2, 60]
    print("| workers | resources | evaluation under mocks (median of 3) | longest remote-command chain |")
    print("|---:|---:|---:|---|")
    for workers in counts:
        seconds, resources, length, chain = measure(workers)
        print(f"| {workers} | {resources} | {seconds:.2f} s | {length}: {' -> '.join(chain)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
