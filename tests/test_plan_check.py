"""The offline plan check: committed stacks through the mock engine and the real policy pack."""

from __future__ import annotations

import copy
from pathlib import Path

from tools import plan_check
from tools.mock_engine import iter_stack_files, run_program
from tools.policy_client import analyze_resources
from tests.conftest import stack_config


def test_every_committed_stack_passes_with_zero_mandatory_violations(capsys) -> None:
    stacks = list(iter_stack_files())
    assert [name for name, _ in stacks] == ["dev", "local", "prod"], stacks
    assert plan_check.main([]) == 0, capsys.readouterr().out
    out = capsys.readouterr().out
    assert "== stack dev:" in out and "== stack local:" in out and "== stack prod:" in out, out
    assert out.count("0 mandatory") == 3 and "plan check: passed" in out, out
    # The HA example really is HA: its load balancers went through the policy pack too.
    assert "gcp:compute/forwardingRule:ForwardingRule" in out and "prod-cp-2" in out, out


def test_the_programs_own_resources_would_be_blocked_if_under_spec() -> None:
    """The chain can fail: the program's instance with a shared-core type is MANDATORY-blocked."""
    plan = run_program(stack_config())
    resources = plan_check._resources(plan)
    tampered = copy.deepcopy(resources)
    instance = next(r for r in tampered if r["type"] == "gcp:compute/instance:Instance")
    instance["props"]["machineType"] = "e2-small"
    violations = analyze_resources(tampered)
    blocking = [v for v in violations if v.mandatory]
    assert blocking and blocking[0].policy == "node-machine-type-minimums", violations


def test_an_invalid_stack_file_fails_the_check(tmp_path: Path) -> None:
    bad = tmp_path / "Pulumi.bad.yaml"
    bad.write_text("config:\n  gcp:project: p\n  gcp:zone: europe-west1-b\n  kubeadm-cluster:adminCidrs: [203.0.113.7/32]\n"
                   "  kubeadm-cluster:cni: cilium\n")
    passed, report = plan_check.check_stack("bad", bad)
    assert not passed and "kubeadm-cluster:cni" in report, report


def test_the_pack_reads_the_stacks_own_config_as_under_the_engine(tmp_path: Path) -> None:
    """The engine hands the pack the stack's config (ConfigureStack, PULUMI_CONFIG): a stack that
    explicitly opens admin access to the internet passes the program and so must pass the pack
    too, while the same firewall without the setting is blocked."""
    base = ("config:\n  gcp:project: my-gcp-project\n  gcp:region: europe-west1\n  gcp:zone: europe-west1-b\n"
            "  kubeadm-cluster:adminCidrs: [0.0.0.0/1, 128.0.0.0/1]\n")
    allowed = tmp_path / "Pulumi.open.yaml"
    allowed.write_text(base + "  kubeadm-cluster:allowAdminFromInternet: true\n")
    passed, report = plan_check.check_stack("open", allowed)
    assert passed, f"the pack did not see allowAdminFromInternet: true from the stack's config:\n{report}"
    plan = run_program({"gcp:project": "my-gcp-project", "gcp:region": "europe-west1", "gcp:zone": "europe-west1-b",
                        "adminCidrs": ["0.0.0.0/1", "128.0.0.0/1"], "allowAdminFromInternet": True})
    assert plan.error is None, plan.error
    blocked = [v for v in analyze_resources(plan_check._resources(plan)) if v.mandatory]
    assert blocked, "without the stack's config the same firewall must be blocked (the test would prove nothing)"
