"""The program's own bundles, run in the node sandbox: the Python side and the scripts agree.

The mock run of an HA stack gives the exact stdin each remote step would receive; running it
with ``bash -s`` in the sandbox of tests/test_scripts.py checks that every variable the program
sends is one the scripts read, and that the endpoint name resolves as designed on a joining
control plane: to the first control plane while it joins, to itself once joined.
"""

from __future__ import annotations

import shlex
import shutil
from functools import cache

from tests.conftest import stack_config
from tests.test_scripts import Sandbox, _explain, node, sandbox  # noqa: F401  (pytest fixtures)
from tools.mock_engine import Plan, run_program

HOSTS_MARK = "# kubeadm-cluster API endpoint"


@cache
def _plan() -> Plan:
    plan = run_program(stack_config(controlPlane={"count": 3}, workerPools=[{"name": "general", "count": 1}],
                                    rook={"enabled": False}), stack="dev")
    assert plan.error is None, plan.error
    return plan


def _stdin(name: str) -> str:
    return str(_plan().named(name).input("stdin"))


def _ip(name: str) -> str:
    return str(_plan().named(name).outputs["networkInterfaces"][0]["networkIp"])


def _hosts_line(box: Sandbox) -> str:
    lines = [line for line in box.path("/etc/hosts").read_text().splitlines() if "api.dev.internal" in line]
    assert len(lines) == 1, f"expected one hosts entry for the endpoint name: {lines}"
    return lines[0]


def test_a_joining_control_plane_resolves_the_endpoint_to_the_first_then_to_itself(node: Sandbox) -> None:  # noqa: F811
    prepare = node.run([], bundle=_stdin("dev-cp-1-prepare"))
    assert prepare.rc == 0, f"the program's prepare bundle failed in the sandbox:\n{_explain(prepare)}"
    assert _hosts_line(node).split()[:2] == [_ip("dev-cp-0"), "api.dev.internal"], _hosts_line(node)
    join = node.run([], bundle=_stdin("dev-cp-1-join"))
    assert join.rc == 0, f"the program's join bundle failed in the sandbox:\n{_explain(join)}"
    assert any(call.startswith("kubeadm join --config") for call in join.calls), join.calls
    assert _hosts_line(node).split()[:2] == [_ip("dev-cp-1"), "api.dev.internal"], _hosts_line(node)
    assert HOSTS_MARK in _hosts_line(node)
    key = str(_plan().named("dev-certificate-key").outputs["hex"])
    assert key not in join.stdout + join.stderr, "the join printed the certificate key"


def test_a_worker_resolves_the_endpoint_to_the_internal_load_balancer(node: Sandbox) -> None:  # noqa: F811
    lb = str(_plan().named("dev-api-lb-internal").outputs["address"])
    for step in ("dev-general-0-prepare", "dev-general-0-join"):
        result = node.run([], bundle=_stdin(step))
        assert result.rc == 0, f"{step} failed in the sandbox:\n{_explain(result)}"
        assert _hosts_line(node).split()[:2] == [lb, "api.dev.internal"], (step, _hosts_line(node))


def test_the_first_control_plane_inits_with_the_certificate_upload_and_keeps_the_key_quiet(sandbox: Sandbox) -> None:  # noqa: F811
    result = sandbox.run([], bundle=_stdin("dev-cp-0-init"))
    assert result.rc == 0, f"the program's init bundle failed in the sandbox:\n{_explain(result)}"
    init = [c for c in result.calls if c.startswith("kubeadm init")]
    assert init and "--upload-certs" in init[0] and "--skip-certificate-key-print" in init[0], init
    key = str(_plan().named("dev-certificate-key").outputs["hex"])
    assert key not in result.stdout + result.stderr + "\n".join(result.calls), "the certificate key leaked"


def test_a_bundle_names_its_scripts_and_fails_clearly_without_the_nodes_copy(node: Sandbox) -> None:  # noqa: F811
    """A step's stdin sources its scripts from the node's copy (kubeadm-cluster/scripts under the
    directory its session starts in); without that copy it stops at once and says why."""
    stdin = _stdin("dev-general-0-prepare")
    assert ". \"$KC_SCRIPTS_DIR/prepare-node.sh\"" in stdin and "#!/usr/bin/env bash" not in stdin, stdin[:500]
    assert len(stdin) < 4_000, f"the prepare bundle carries {len(stdin)} characters: scripts inline?"
    shutil.rmtree(node.base / "kubeadm-cluster")
    result = node.run([], bundle=stdin)
    assert result.rc != 0 and "no node scripts in" in result.stderr and "-scripts copy has not run" in result.stderr, _explain(result)
    assert result.calls == [], f"a step ran without its scripts: {result.calls}"


def test_a_leaving_nodes_delete_finds_its_scripts_in_the_first_control_planes_copy(node: Sandbox) -> None:  # noqa: F811
    """The membership step's delete (``sudo bash -c '<bundle>'`` on the first control plane) sources
    remove-node.sh from that node's copy, which a copy's deletion never removes."""
    delete = str(_plan().named("dev-general-0-membership").input("delete"))
    assert delete.startswith("sudo bash -c ") and "$KC_SCRIPTS_DIR/remove-node.sh" in delete, delete
    result = node.run([], bundle=shlex.split(delete)[-1])
    assert result.rc == 0, _explain(result)
    assert "[kubeadm-cluster remove-node]" in result.stderr and "no admin kubeconfig at" in result.stderr, _explain(result)


def test_the_first_control_planes_resize_drain_skips_on_a_node_without_the_copy_yet(node: Sandbox) -> None:  # noqa: F811
    """The one step that runs before its node's copy can exist (the first control plane's resize
    drain: before its VM changes) runs on the first `up` of a stack made before the copies (its
    stdin changed): with no copy yet it does nothing and says so, instead of failing the `up`. Any
    other step without its copy fails."""
    shutil.rmtree(node.base / "kubeadm-cluster")
    first = node.run([], bundle=_stdin("dev-cp-0-resize-drain"))
    assert first.rc == 0 and "has not run yet): nothing done" in first.stderr and first.calls == [], _explain(first)
    other = node.run([], bundle=_stdin("dev-cp-1-resize-drain"))
    assert other.rc != 0 and "-scripts copy has not run)" in other.stderr, _explain(other)
