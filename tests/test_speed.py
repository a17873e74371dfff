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
    assert len(two) <= 4, f"more sequential SSH steps than prepare -> init -> token -> join: {two}"


def test_ha_chain_grows_by_two_steps_per_extra_control_plane_only() -> None:
    """Control planes join one at a time (token + cert upload, then join); workers do not wait."""
    three = run_program(stack_config(controlPlane={"count": 3}))
    assert three.error is None, three.error
    chain = command_chain(three)
    assert chain == [
        "dev-cp-0-prepare", "dev-cp-0-init",
        "dev-cp-1-join-token", "dev-cp-1-join",
        "dev-cp-2-join-token", "dev-cp-2-join",
    ], chain


def test_chain_measure_sees_a_sequential_dependency() -> None:
    """The measure itself can fail: a serial chain of joins would be reported as long."""
    chain = _chain(3)
    assert any(step.endswith("-join") for step in chain), chain
