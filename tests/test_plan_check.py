"""The offline plan check: committed stacks through the mock engine and the real policy pack."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from tools import plan_check
from tools.mock_engine import Plan, iter_stack_files, run_program
from tools.policy_client import Violation, analyze_resources
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


def _run(argv: list[str], capsys) -> tuple[int, str]:
    """``plan_check.main(argv)``: its exit code and stdout; a crash fails the test with what it raised."""
    try:
        code = plan_check.main(argv)
    except Exception as error:  # the defect is exactly that it raised
        pytest.fail(f"plan_check {argv} crashed with {type(error).__name__}: {error} (no message naming the file, no verdict)")
    return code, capsys.readouterr().out


STACK = "config:\n  gcp:project: my-gcp-project\n  gcp:zone: europe-west1-b\n  kubeadm-cluster:adminCidrs: [203.0.113.7/32]\n"


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("Pulumi.broken.yaml", "config:\n  gcp:project: [p\n  gcp:zone: z\n", "line 3, column 11: not valid YAML"),
        ("Pulumi.tabs.yaml", "config:\n  gcp:project: p\n\tgcp:zone: z\n", "line 3, column 1: not valid YAML"),
        ("Pulumi.list.yaml", "- config\n", "not a stack file"),
        ("Pulumi.flat.yaml", "config: dev\n", "config: must be a mapping"),
    ],
)
def test_a_stack_file_that_is_not_a_stack_files_yaml_is_named_with_the_verdict_last(
    tmp_path: Path, capsys, name: str, text: str, expected: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    code, out = _run([str(path)], capsys)
    assert code == 1, out
    assert f"{path}, {expected}" in out or f"{path}: {expected}" in out, f"the message does not name {path} and {expected!r}:\n{out}"
    assert out.rstrip("\n").splitlines()[-1] == "plan check: FAILED", f"the verdict is not the last line:\n{out}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, "cannot be read: No such file or directory"),
        ('{"node-boot-disk-minimum": {"minDiskGb": 100},\n}', "line 2, column 1: not valid JSON"),
        ('[{"node-boot-disk-minimum": {"minDiskGb": 100}}]', "a policy pack config is a JSON object"),
        ('{"node-boot-disk-minimum": 100}', "node-boot-disk-minimum: expected an enforcement level"),
        # Weaker than the pack's minimums (its config schema): refused as the engine would.
        ('{"node-machine-type-minimums": {"minVcpus": 1, "minMemoryGb": 4}}', "minVcpus: 1 is less than the minimum of 2"),
        ('{"node-memory-minimum": "mandatory"}', "unknown policy 'node-memory-minimum'"),
    ],
)
def test_a_policy_config_that_is_missing_not_json_or_too_weak_is_named_with_the_verdict_last(
    tmp_path: Path, capsys, text: str | None, expected: str
) -> None:
    path = tmp_path / "policy.json"
    if text is not None:
        path.write_text(text)
    code, out = _run(["--policy-config", str(path), "dev"], capsys)
    assert code == 1, out
    assert f"invalid policy config: {path}" in out and expected in out, f"expected {path} and {expected!r}:\n{out}"
    assert out.rstrip("\n").splitlines()[-1] == "plan check: FAILED", f"the verdict is not the last line:\n{out}"
    assert "== stack" not in out, f"a stack was checked although the policy config is refused:\n{out}"


def test_a_stack_file_is_used_as_given_or_refused(tmp_path: Path, capsys) -> None:
    """A file name given is that file: a missing one is reported, never swapped for the committed
    stack of the same name; ``.yml`` is refused, because the CLI reads a stack's file with the
    project file's extension (pulumi/pulumi sdk/go/common/workspace/paths.go, ProjectStackPath,
    pkg/v3.259.0: ``Pulumi.<stack>`` + the extension of Pulumi.yaml)."""
    elsewhere = tmp_path / "Pulumi.dev.yaml"
    code, out = _run([str(elsewhere)], capsys)
    assert code == 1 and f"no such file: {elsewhere}" in out, f"a missing {elsewhere} was not reported:\n{out}"
    assert "== stack dev: 0" not in out and "resources ==" not in out, f"the committed Pulumi.dev.yaml was checked instead:\n{out}"
    elsewhere.write_text(STACK + "  kubeadm-cluster:cni: cilium\n")
    code, out = _run([str(elsewhere)], capsys)
    assert code == 1 and "kubeadm-cluster:cni" in out, f"the given file was not the one checked:\n{out}"
    for argument in ("Pulumi.dev.yml", str(tmp_path / "Pulumi.dev.yml")):
        with pytest.raises(SystemExit) as exit_:
            plan_check.main([argument])
        err = capsys.readouterr().err
        assert exit_.value.code == 2, f"{argument} was not refused (exit {exit_.value.code})"
        assert "only from Pulumi.<stack>.yaml" in err and "rename it to Pulumi.dev.yaml" in err, err
    with pytest.raises(SystemExit):
        plan_check.main(["Pulumi.yaml"])
    assert "is the project file" in capsys.readouterr().err


def test_multi_line_warnings_and_policy_messages_stay_under_their_bullet() -> None:
    """A policy message is the policy's description and the violation on its own line (as the
    local stack's memory advisory), a warning may span lines: every line is indented."""
    plan = Plan(resources=[], outputs={}, secret_outputs=set(), warnings=["first line\nsecond line"])
    violation = Violation(policy="node-memory-recommended", level="advisory", urn="urn:x",
                          message="Nodes should have at least 8 GB of memory\nlocal-cp-0-vm: 4 GB\n", resource="local-cp-0-vm")
    mandatory = Violation(policy="p", level="mandatory", urn="urn:y", message="a\nb")
    report = plan_check.summarize("s", plan, [violation, mandatory])
    flush_left = [line for line in report.splitlines()[1:] if not line.startswith("  ")]
    assert not flush_left, f"lines of the report are not indented under their bullet: {flush_left}\n{report}"
    assert ("  advisory  node-memory-recommended on local-cp-0-vm: Nodes should have at least 8 GB of memory\n"
            "      local-cp-0-vm: 4 GB\n") in report, report
    assert "  warning: first line\n      second line\n" in report, report
