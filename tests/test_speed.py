"""Speed by construction: the remote critical path does not grow with the number of workers."""

from __future__ import annotations

from tests.conftest import stack_config
from tools.graph import command_chain
from tools.mock_engine import run_program


def _chain(workers: int) -> list[str]:
    plan = run_program(stack_config(workerPools=[{"name": "general", "count": workers, "storageDiskSizeGb": 50}]))
    assert plan.error is None, plan.error
    return command_chain(plan)


def test_longest_remote_chain_is_fixed_whatever_the_worker_count() -> None:
    two, twenty = _chain(2), _chain(20)
    assert len(two) == len(twenty), f"the chain grew with workers: {two} vs {twenty}"
    assert [step.rsplit("-", 1)[-1] for step in two[:2]] == ["prepare", "init"], two
    assert two[-1].endswith(("-join", "-membership", "-kubeconfig", "-join-command")), two
    assert len(two) <= 5, f"more sequential SSH steps than prepare -> init -> token -> join -> membership: {two}"


def test_chain_measure_sees_a_sequential_dependency() -> None:
    """The measure itself can fail: a serial chain of joins would be reported as long."""
    chain = _chain(3)
    assert any(step.endswith("-join") for step in chain), chain
