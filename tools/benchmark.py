"""Benchmark under the mock engine: what a new stack registers and runs, and what a day-two change
runs (two program runs compared).

    venv/bin/python -m tools.benchmark            # 2 and 60 workers
    venv/bin/python -m tools.benchmark 5 20       # other worker counts

For each worker count: resources registered, the size of their inputs (what the state keeps, and
pulumi-command keeps its inputs again in its outputs), the longest chain of remote steps of a new
stack, and the steps run with their longest chain (sequential SSH steps) for a release that touches
every node script and for a change of ``upgrade.drainTimeout``. Evaluation time varies with the
machine and is not a measure of the design; the counts are (tests/test_speed.py asserts the goals).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.graph import change_cost, command_chain
from tools.mock_engine import Plan, run_program

STACK = "bench"
GCP = {"gcp:project": "bench-project", "gcp:region": "europe-west1", "gcp:zone": "europe-west1-b"}


def stack(workers: int, **extra: Any) -> dict[str, object]:
    return {
        **GCP,
        "adminCidrs": ["203.0.113.7/32"],
        "workerPools": [{"name": "general", "count": workers, "storageDiskSizeGb": 50}],
        **extra,
    }


def input_bytes(plan: Plan) -> int:
    """The resources' inputs as JSON: what the state records of them (secrets counted as text)."""
    return sum(len(json.dumps(resource.inputs, sort_keys=True, default=str)) for resource in plan.resources)


@contextmanager
def release_touching_every_script() -> Iterator[None]:
    """The program as of a release that adds a comment line to every node script."""
    from components.bootstrap import scripts

    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "release" / "scripts"
        shutil.copytree(scripts.SCRIPTS_DIR, copy)
        for path in sorted(copy.glob("*.sh")):
            path.write_text(path.read_text(encoding="utf-8") + "# a new release\n", encoding="utf-8")
        with scripts.scripts_from(copy):
            yield


def _strip(chain: list[str]) -> list[str]:
    return [name.removeprefix(f"{STACK}-") for name in chain]


def node_of(name: str, nodes: list[str]) -> str:
    """The node a step is named after (``<stack>-<node>-<step>``): the longest node name it starts
    with. Steps that run on the first control plane for another node (its token, its drain) count
    for that node, whose work they are."""
    found = [node for node in nodes if name.startswith(f"{node}-")]
    return max(found, key=len) if found else ""


def steps_per_node(before: Plan, after: Plan) -> dict[str, int]:
    """The steps a change runs, counted by the node they are for."""
    nodes = list((after.outputs.get("nodes") or {}).keys())
    run, _ = change_cost(before, after)
    counts: dict[str, int] = {}
    for name in run:
        node = node_of(name, nodes)
        counts[node] = counts.get(node, 0) + 1
    return counts


@dataclass
class Measure:
    workers: int
    resources: int
    input_bytes: int
    seconds: float
    create_chain: list[str]
    release: tuple[int, int, list[str]]  # steps run, most on one node, longest chain
    drain_timeout: tuple[int, int, list[str]]


def measure(workers: int, runs: int = 1) -> Measure:
    times, plan = [], None
    for _ in range(runs):
        start = time.perf_counter()
        plan = run_program(stack(workers), stack=STACK)
        times.append(time.perf_counter() - start)
        if plan.error:
            raise SystemExit(plan.error)
    assert plan is not None
    with release_touching_every_script():
        previous = run_program(stack(workers), stack=STACK)
    longer = run_program(stack(workers, upgrade={"drainTimeout": "15m"}), stack=STACK)
    for other in (previous, longer):
        if other.error:
            raise SystemExit(other.error)

    def cost(before: Plan, after: Plan) -> tuple[int, int, list[str]]:
        run, chain = change_cost(before, after)
        return len(run), max(steps_per_node(before, after).values(), default=0), _strip(chain)

    return Measure(
        workers=workers,
        resources=len(plan.resources),
        input_bytes=input_bytes(plan),
        seconds=statistics.median(times),
        create_chain=_strip(command_chain(plan)),
        release=cost(previous, plan),
        drain_timeout=cost(plan, longer),
    )


def _chain(chain: list[str]) -> str:
    shown = chain if len(chain) <= 6 else [*chain[:3], "…", *chain[-2:]]
    return f"{len(chain)}" + (f" ({' → '.join(shown)})" if chain else "")


def row(workers: int, runs: int = 1) -> str:
    """One row of the README's table (Speed)."""
    m = measure(workers, runs)
    release, drain = m.release, m.drain_timeout
    return (
        f"| {m.workers} | {m.resources} | {m.input_bytes / 1e6:.2f} MB | {_chain(m.create_chain)} "
        f"| {release[0]} steps, ≤ {release[1]} per node, chain {_chain(release[2])} "
        f"| {drain[0]} steps, chain {len(drain[2])} | {m.seconds:.2f} s |"
    )


def main(argv: list[str]) -> int:
    # The whole docstring, as written: its first sentence alone spans two lines.
    parser = argparse.ArgumentParser(
        prog="python -m tools.benchmark", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("workers", nargs="*", type=int, help="worker counts to measure (default: 2 60)")
    counts = parser.parse_args(argv).workers or [2, 60]
    if any(count < 0 for count in counts):
        parser.error("worker counts are 0 or more")
    print(
        "| workers | resources | resource inputs | new stack: longest remote chain "
        "| release touching every script | drainTimeout change | evaluation under mocks |"
    )
    print("|---:|---:|---:|---|---|---|---:|")
    for workers in counts:
        print(row(workers), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
