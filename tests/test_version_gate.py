"""The preview-time kubernetesVersion gate: a dynamic resource whose provider refuses a skip or a downgrade.

The provider is taken from the program's registration (the serialized ``__provider`` input the
engine stores) and run in a separate interpreter that cannot import this project, the way the
engine's Python dynamic-provider host runs it.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

from tests.conftest import stack_config
from tools.mock_engine import Plan, run_program

DYNAMIC = "pulumi-python:dynamic:Resource"

HOST = r"""
import base64, importlib.util, json, sys
import dill
assert importlib.util.find_spec("components") is None, "the provider host must not see the project"
provider = dill.loads(base64.b64decode(sys.argv[1]))
results = []
for old, new in json.loads(sys.argv[2]):
    olds = {"kubernetesVersion": old} if old else {}
    result = provider.check(olds, {"kubernetesVersion": new})
    diff = provider.diff("id", olds, {"kubernetesVersion": new})
    results.append({"failures": [[f.property, f.reason] for f in result.failures], "changes": diff.changes,
                    "replaces": diff.replaces, "inputs": result.inputs})
print(json.dumps(results))
"""


@cache
def _plan() -> Plan:
    plan = run_program(stack_config(), stack="dev")
    assert plan.error is None, plan.error
    return plan


def _check(tmp_path: Path, cases: list[tuple[str | None, str]]) -> list[dict]:
    gate = _plan().named("dev-kubernetes-version")
    provider = gate.input("__provider")
    assert isinstance(provider, str) and provider, "the dynamic resource carries no serialized provider"
    result = subprocess.run(
        [sys.executable, "-I", "-c", HOST, provider, json.dumps(cases)],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, f"the provider does not load outside the project:\n{result.stderr}"
    return json.loads(result.stdout)


def test_the_gate_is_registered_with_the_configured_version_and_guards_the_nodes() -> None:
    plan = _plan()
    gate = plan.named("dev-kubernetes-version")
    assert gate.type == DYNAMIC and gate.input("kubernetesVersion") == "1.36.4"
    check = plan.named("dev-cp-0-version-check")
    for node in ("dev-cp-0", "dev-general-0", "dev-general-1"):
        assert check.urn in plan.ancestors_depend(plan.named(f"{node}-prepare")), (
            f"{node}: no node may be touched before the first control plane checked the version"
        )


def test_the_version_is_recorded_only_after_every_upgrade_step() -> None:
    """The engine updates a resource only once what it depends on succeeded: a record registered
    after every upgrade step keeps the version that was running when one of them fails, so the
    next `up` resumes the upgrade, and setting the version back to the recorded one is accepted
    (the gate's check compares with the record). Registered first, as before, it recorded the
    new version at the start of the failed `up` and refused the way back as a downgrade."""
    plan = _plan()
    gate = plan.named("dev-kubernetes-version")
    waits_for = plan.ancestors_depend(gate)
    steps = ["dev-cp-0-version-check", "dev-cp-0-upgrade"] + [
        f"dev-general-{i}{suffix}" for i in range(2) for suffix in ("-upgrade-drain", "-upgrade", "-upgrade-uncordon")
    ]
    missing = [name for name in steps if plan.named(name).urn not in waits_for]
    assert not missing, f"the version would be recorded before these upgrade steps succeeded: {missing}"
    ha = run_program(stack_config(controlPlane={"count": 3}), stack="dev")
    assert ha.error is None, ha.error
    record = ha.named("dev-kubernetes-version")
    for node in ("dev-cp-1", "dev-cp-2"):
        assert ha.named(f"{node}-upgrade").urn in ha.ancestors_depend(record), f"{node}'s upgrade is not waited for"


def test_after_a_failed_upgrade_the_way_back_and_the_retry_both_pass(tmp_path: Path) -> None:
    """1.36.4 recorded, 1.36.5 failed half-way (nothing new recorded): both the retry and the
    way back to 1.36.4 pass the gate; a way back below the recorded version does not."""
    back, retry, below = _check(tmp_path, [("1.36.4", "1.36.4"), ("1.36.4", "1.36.5"), ("1.36.4", "1.36.3")])
    assert back["failures"] == [] and retry["failures"] == [], (back, retry)
    assert below["failures"] and "older than 1.36.4" in below["failures"][0][1], below


@pytest.mark.parametrize(
    "old,new",
    [(None, "1.36.4"), ("1.36.4", "1.36.4"), ("1.36.4", "1.36.5"), ("1.35.2", "1.36.0"), ("1.35.9", "1.36.4")],
    ids=["first deployment", "unchanged", "patch", "next minor", "next minor, lower patch"],
)
def test_the_gate_lets_kubeadm_upgrades_through(tmp_path: Path, old: str | None, new: str) -> None:
    (result,) = _check(tmp_path, [(old, new)])
    assert result["failures"] == [], result
    assert result["replaces"] == [], "the gate is updated in place, never replaced"
    assert result["changes"] == (old != new)


@pytest.mark.parametrize(
    "old,new,expected",
    [
        ("1.35.2", "1.37.0", ["skips a minor version", "runs 1.35.2", "1.36.x release first"]),
        ("1.36.4", "1.36.3", ["older than 1.36.4", "cannot downgrade", "back to 1.36.4"]),
        ("1.36.4", "1.35.9", ["older than 1.36.4", "cannot downgrade"]),
        ("1.36.4", "2.0.0", ["skips a minor version"]),
    ],
    ids=["minor skipped", "patch downgrade", "minor downgrade", "major jump"],
)
def test_the_gate_refuses_a_skip_or_a_downgrade_naming_the_field(
    tmp_path: Path, old: str, new: str, expected: list[str]
) -> None:
    (result,) = _check(tmp_path, [(old, new)])
    assert len(result["failures"]) == 1, f"{old} -> {new} was not refused: {result}"
    field, reason = result["failures"][0]
    assert field == "kubernetesVersion"
    assert "kubeadm-cluster:kubernetesVersion" in reason and new in reason, reason
    for text in expected:
        assert text in reason, f"{text!r} missing from: {reason}"


def test_the_serialized_provider_is_the_same_from_any_checkout(tmp_path: Path) -> None:
    """The provider is an input in the state: a checkout elsewhere (CI, another laptop) must not
    make the gate look changed, or a second `pulumi up` from there would not be a no-op."""
    root = Path(__file__).resolve().parent.parent
    copy = tmp_path / "elsewhere"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns(".venv", "venv", ".git", "node_modules", "__pycache__"))
    program = (
        "import sys; sys.path.insert(0, '.')\n"
        "from tests.conftest import stack_config\n"
        "from tools.mock_engine import run_program\n"
        "plan = run_program(stack_config(), stack='dev')\n"
        "print(plan.named('dev-kubernetes-version').input('__provider'))\n"
    )
    elsewhere = subprocess.run([sys.executable, "-c", program], cwd=copy, capture_output=True, text=True, timeout=120)
    assert elsewhere.returncode == 0, elsewhere.stderr
    here = _plan().named("dev-kubernetes-version").input("__provider")
    assert elsewhere.stdout.strip() == here, "the serialized provider depends on where the project is checked out"
    assert str(root).encode() not in base64.b64decode(here), "the checkout path is in the serialized provider"
