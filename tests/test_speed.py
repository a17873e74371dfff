"""Speed by construction: the remote critical path does not grow with the number of workers, and
day-two changes run only what they must (issue 12's goals, measured as tools/benchmark.py does:
two runs of the program under the mock engine compared)."""

from __future__ import annotations

from functools import cache

import pytest

from tests.conftest import stack_config
from tools import benchmark
from tools.graph import change_cost, command_chain
from tools.mock_engine import Plan, run_program

#: Issue 12's goals.
MAX_STEPS_PER_NODE = 2
MAX_RELEASE_CHAIN = 3
MAX_INPUT_BYTES = 2_000_000
#: The steps that run once in a node's life (and again only for a new machine or a new cluster).
ONE_SHOT = ("-init", "-join-token", "-join", "-kubeconfig", "-join-command", "-sshd", "-reachable", "-maintenance")


def _chain(workers: int) -> list[str]:
    plan = run_program(stack_config(workerPools=[{"name": "general", "count": workers, "storageDiskSizeGb": 50}]))
    assert plan.error is None, plan.error
    return command_chain(plan)


def test_longest_remote_chain_is_fixed_whatever_the_worker_count() -> None:
    two, twenty = _chain(2), _chain(20)
    assert len(two) == len(twenty), f"the chain grew with workers: {two} vs {twenty}"
    assert [step.rsplit("-", 1)[-1] for step in two[:3]] == ["scripts", "prepare", "init"], two
    assert two[-1].endswith(("-join", "-membership", "-kubeconfig", "-join-command")), two
    assert len(two) <= 5, f"more sequential SSH steps than copy -> prepare -> init -> token -> join: {two}"


def test_ha_chain_grows_by_two_steps_per_extra_control_plane_only() -> None:
    """Control planes join one at a time (token + cert upload, then join); workers do not wait."""
    three = run_program(stack_config(controlPlane={"count": 3}))
    assert three.error is None, three.error
    chain = command_chain(three)
    assert chain == [
        "dev-cp-0-scripts", "dev-cp-0-prepare", "dev-cp-0-init",
        "dev-cp-1-join-token", "dev-cp-1-join",
        "dev-cp-2-join-token", "dev-cp-2-join",
    ], chain


def test_chain_measure_sees_a_sequential_dependency() -> None:
    """The measure itself can fail: a serial chain of joins would be reported as long."""
    chain = _chain(3)
    assert any(step.endswith("-join") for step in chain), chain


# --- day two at 2 and 60 workers (issue 12) ----------------------------------------------------


@cache
def _plans(workers: int) -> tuple[Plan, Plan, Plan]:
    """The stack of ``workers`` workers as of the previous release (every script one line
    different), as of this one, and with another upgrade.drainTimeout."""
    with benchmark.release_touching_every_script():
        previous = run_program(benchmark.stack(workers), stack=benchmark.STACK)
    current = run_program(benchmark.stack(workers), stack=benchmark.STACK)
    longer = run_program(benchmark.stack(workers, upgrade={"drainTimeout": "15m"}), stack=benchmark.STACK)
    for plan in (previous, current, longer):
        assert plan.error is None, plan.error
    return previous, current, longer


@pytest.mark.parametrize("workers", [2, 60])
def test_a_release_touching_every_script_runs_at_most_two_steps_per_node_in_a_short_chain(workers: int) -> None:
    previous, current, _ = _plans(workers)
    run, chain = change_cost(previous, current)
    per_node = benchmark.steps_per_node(previous, current)
    assert max(per_node.values()) <= MAX_STEPS_PER_NODE and "" not in per_node, (
        f"a release runs more than {MAX_STEPS_PER_NODE} steps on a node: {per_node}"
    )
    assert len(chain) <= MAX_RELEASE_CHAIN, f"a release runs {len(chain)} SSH steps one after the other: {chain}"
    assert not [name for name in run if name.endswith(ONE_SHOT)], f"one-shot steps run again on a release: {run}"
    assert sorted(name.rsplit("-", 1)[-1] for name in run) == sorted(
        ["prepare", "scripts"] * (workers + 1)
    ), f"a release runs more than each node's copy and prep: {run}"


@pytest.mark.parametrize("workers", [2, 60])
def test_a_drain_timeout_change_runs_nothing_on_the_nodes(workers: int) -> None:
    _, current, longer = _plans(workers)
    assert change_cost(current, longer) == ([], [])


def test_the_inputs_of_a_60_worker_stack_stay_small() -> None:
    """Each script is stored once per node as the copy's path and hash, not in every step."""
    _, current, _ = _plans(60)
    size = benchmark.input_bytes(current)
    assert size <= MAX_INPUT_BYTES, f"the resource inputs of 60 workers hold {size} bytes"
    largest = max(current.resources, key=lambda r: len(str(r.inputs)))
    assert len(str(largest.inputs)) < 100_000, f"{largest.name} carries {len(str(largest.inputs))} characters"


def test_prep_runs_again_only_when_what_it_installs_changed() -> None:
    """A release that changes only a one-shot script (the join, the token) or an upgrade script
    copies the scripts and runs nothing else; one that changes what node prep runs
    (prepare-node.sh, or lib.sh, whose helpers write its files) also runs node prep."""
    import shutil
    import tempfile
    from pathlib import Path

    from components.bootstrap import scripts

    def release(touched: str) -> Plan:
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / "scripts"
            shutil.copytree(scripts.SCRIPTS_DIR, copy)
            (copy / touched).write_text((copy / touched).read_text() + "# another release\n")
            with scripts.scripts_from(copy):
                plan = run_program(benchmark.stack(2), stack=benchmark.STACK)
        assert plan.error is None, plan.error
        return plan

    current = _plans(2)[1]
    for touched, runs in (
        ("kubeadm-join.sh", {"scripts"}),
        ("mint-token.sh", {"scripts"}),
        ("upgrade-node.sh", {"scripts"}),
        ("prepare-node.sh", {"scripts", "prepare"}),
        ("lib.sh", {"scripts", "prepare"}),
    ):
        run, _ = change_cost(release(touched), current)
        assert {name.rsplit("-", 1)[-1] for name in run} == runs, f"a release touching {touched} runs {run}"
