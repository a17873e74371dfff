"""The pull-request preview: tools/preview_comment.py, and the program's switch for a preview from
a runner outside adminCidrs.

The comment is built from event streams made the way the Pulumi CLI writes them: the real program
runs twice under the mock engine (the stack before and after a change), and each resource becomes
the ``resourcePreEvent`` the engine would emit for it, the policy pack's real verdicts become
``policyEvent``s and the program's warnings ``diagnosticEvent``s, closed by a ``summaryEvent``.

The schema, from pulumi/pulumi at commit 1b5949891b3cefcb9974752b24a5ecef0acc86c8 (v3.259.0 + 14;
the pinned CLI 3.272.0 keeps these types, which are also the Pulumi Cloud wire format):
- sdk/go/common/apitype/events.go: ``EngineEvent`` (sequence, timestamp and one of
  ``resourcePreEvent``, ``policyEvent``, ``diagnosticEvent``, ``summaryEvent``...),
  ``StepEventMetadata`` (op, urn, type, old, new, keys, diffs, detailedDiff with ``diffKind``,
  provider), ``StepEventStateMetadata`` (type, urn, id, parent, provider, inputs, outputs),
  ``PolicyEvent`` (resourceUrn, message, policyName, policyPackName, policyPackVersion,
  enforcementLevel), ``SummaryEvent`` (resourceChanges, ``PolicyPacks`` in PascalCase, isPreview,
  result), ``DiagnosticEvent`` (message, severity);
- sdk/go/common/apitype/history.go: the op names (same, create, update, delete, replace...);
- pkg/backend/display/events.go: ConvertEngineEvent serialises inputs with the blinding crypter,
  so a secret is ``{"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270",
  "ciphertext": "[secret]"}`` (apitype.SecretV1, config.BlindingCrypter);
- pkg/backend/display/display.go: ``pulumi preview --json`` streams these events (one JSON
  object per line, ShowJSONEvents) when PULUMI_ENABLE_STREAMING_JSON_PREVIEW is set; without
  it, ShowPreviewDigest prints one ``PreviewDigest`` (pkg/display/json.go: config, steps,
  diagnostics, duration, changeSummary) and skips every policy event.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shutil
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.bootstrap import NO_CLUSTER_KUBECONFIG
from components.bootstrap import scripts as bundles
from components.config import SKIP_KUBERNETES_DIFF_ENV, SKIP_KUBERNETES_DIFF_NOTE
from tools import preview_comment as pc
from tools.mock_engine import Plan, Registered, run_program
from tools.policy_client import Violation, analyze_resources

#: The resource types whose ``triggers`` replace them when they change (pulumi-command 1.2.1:
#: ``provider:"replaceOnChanges"`` on both inputs structs, remote/command.go and remote/copy.go).
REPLACE_ON_TRIGGERS = ("command:remote:Command", "command:remote:CopyToRemote")
COPY = "command:remote:CopyToRemote"

ROOT = Path(__file__).resolve().parent.parent
SECRET_SIG = "4dabf18193072939515e22adb298388d"
#: apitype.SecretV1 as the blinding crypter writes it (pkg/resource/stack/deployment.go).
BLINDED = {SECRET_SIG: "1b47061264138c4ac30d75fd1eb44270", "ciphertext": "[secret]"}
_PACK = re.search(r'^PACK_NAME = "([^"]+)"', (ROOT / "policies" / "__main__.py").read_text(), re.M)
assert _PACK, "policies/__main__.py names no PACK_NAME"
PACK_NAME = _PACK[1]
PACK_VERSION = yaml.safe_load((ROOT / "policies" / "PulumiPolicy.yaml").read_text())["version"]
#: Policy config that makes every e2-standard-2 node a mandatory violation (the pack's own schema).
STRICT_POLICY = {"node-machine-type-minimums": {"minVcpus": 4}}


def stack_config(workers: int, **extra: Any) -> dict[str, Any]:
    return {
        "gcp:project": "preview-test",
        "gcp:region": "europe-west1",
        "gcp:zone": "europe-west1-b",
        "adminCidrs": ["203.0.113.7/32"],
        "workerPools": [{"name": "general", "count": workers, "storageDiskSizeGb": 50}],
        **extra,
    }


@pytest.fixture(autouse=True)
def _no_skip_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sets the switch itself; the SDK also reads PULUMI_K8S_SKIP_UPDATE_UNREACHABLE."""
    monkeypatch.delenv(SKIP_KUBERNETES_DIFF_ENV, raising=False)
    monkeypatch.delenv("PULUMI_K8S_SKIP_UPDATE_UNREACHABLE", raising=False)


@contextmanager
def previous_release(tmp: Path, touched: tuple[str, ...] | None = None) -> Iterator[None]:
    """The program as of the previous release: each script (or those in ``touched``) one line
    different, so the current checkout is a release that changes them."""
    copy = tmp / "previous" / "scripts"  # the copy lands in kubeadm-cluster/<its name>
    shutil.copytree(bundles.SCRIPTS_DIR, copy)
    for path in copy.glob("*.sh"):
        if touched is None or path.name in touched:
            path.write_text(path.read_text() + "# (previous release)\n")
    with bundles.scripts_from(copy):
        yield


def run(config: dict[str, Any], *, preview: bool = True) -> Plan:
    plan = run_program(config, stack="dev", preview=preview)
    assert plan.error is None, plan.error
    return plan


# --- event streams, the way the engine writes them ----------------------------------------------


def blind(value: Any) -> Any:
    """An input value as the event stream carries it: secrets blinded (ConvertEngineEvent)."""
    if isinstance(value, dict) and value.get(SECRET_SIG) == BLINDED[SECRET_SIG]:
        return dict(BLINDED)
    if isinstance(value, dict):
        return {k: blind(v) for k, v in value.items()}
    if isinstance(value, list):
        return [blind(v) for v in value]
    return value


def state(resource: Registered) -> dict[str, Any]:
    """apitype.StepEventStateMetadata of a registered resource."""
    return {
        "type": resource.type,
        "urn": resource.urn,
        "custom": resource.custom,
        "id": f"{resource.name}-id" if resource.custom else "",
        "parent": resource.parent,
        "provider": resource.provider,
        "inputs": blind(resource.raw_inputs),
        "outputs": {},
    }


def step_event(op: str, old: Registered | None, new: Registered | None) -> dict[str, Any]:
    some = new or old
    assert some is not None
    diffs = sorted(k for k in set(old.raw_inputs) | set(new.raw_inputs) if old.raw_inputs.get(k) != new.raw_inputs.get(k)) if old and new else []
    return {
        "resourcePreEvent": {
            "metadata": {
                "op": op,
                "urn": some.urn,
                "type": some.type,
                "old": state(old) if old else None,
                "new": state(new) if new else None,
                "diffs": diffs,
                "detailedDiff": {k: {"diffKind": "update", "inputDiff": True} for k in diffs} if op in ("update", "replace") else None,
                **({"keys": ["triggers"]} if op == "replace" else {}),
                "provider": some.provider,
            }
        }
    }


def policy_event(violation: Violation) -> dict[str, Any]:
    return {
        "policyEvent": {
            "resourceUrn": violation.urn,
            "message": violation.message + "\n",
            "color": "never",
            "policyName": violation.policy,
            "policyPackName": PACK_NAME,
            "policyPackVersion": PACK_VERSION,
            "policyPackVersionTag": PACK_VERSION,
            "enforcementLevel": violation.level,
        }
    }


def warning_event(message: str, urn: str = "") -> dict[str, Any]:
    return {"diagnosticEvent": {"urn": urn, "prefix": "warning: ", "message": message + "\n", "color": "never", "severity": "warning"}}


def events_for(
    old: Plan | None, new: Plan, *, policy: dict[str, Any] | None = None, result: str = "succeeded"
) -> list[dict[str, Any]]:
    """The preview of going from ``old`` (the state; None: a new stack) to ``new``, as events."""
    before = {r.urn: r for r in old.resources} if old else {}
    after = {r.urn: r for r in new.resources}
    events: list[dict[str, Any]] = [{"preludeEvent": {"config": {}}}]
    events += [warning_event(w) for w in new.warnings]
    ops: Counter[str] = Counter()
    for urn, resource in after.items():
        previous = before.get(urn)
        if previous is not None and resource.ignore_changes:
            # The engine keeps the recorded value of an ignored input.
            kept = {k: previous.raw_inputs[k] for k in resource.ignore_changes if k in previous.raw_inputs}
            resource = dataclasses.replace(resource, raw_inputs={**resource.raw_inputs, **kept})
        op = "create" if previous is None else "same" if previous.raw_inputs == resource.raw_inputs else "update"
        if op == "update" and resource.type in REPLACE_ON_TRIGGERS and previous is not None and (
            previous.raw_inputs.get("triggers") != resource.raw_inputs.get("triggers")
        ):
            op = "replace"  # pulumi-command's triggers are replaceOnChanges
        ops[op] += 1
        events.append(step_event(op, previous, resource))
    for urn, resource in before.items():
        if urn not in after:
            ops["delete"] += 1
            events.append(step_event("delete", resource, None))
    resources = [
        {"type": r.type, "name": r.name, "urn": r.urn, "props": r.raw_inputs, "parent": r.parent,
         "dependencies": r.dependencies, **({"provider": r.provider} if r.provider else {})}
        for r in new.resources if r.custom
    ]
    events += [policy_event(v) for v in analyze_resources(resources, policy, dry_run=True)]
    events.append(
        {"summaryEvent": {"maybeCorrupt": False, "durationSeconds": 42, "resourceChanges": dict(ops),
                          "PolicyPacks": {PACK_NAME: f"v{PACK_VERSION}"}, "isPreview": True, "result": result}}
    )
    return [{"sequence": i, "timestamp": 1_800_000_000 + i, **e} for i, e in enumerate(events)]


def jsonl(events: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in events)


def comment_for(events: list[dict[str, Any]], **kwargs: Any) -> tuple[pc.Preview, str]:
    preview = pc.parse_preview(pc.read_events(jsonl(events).splitlines()))
    return preview, pc.render(preview, stack="dev", **kwargs)


def head_of(comment: str) -> str:
    """Everything before the per-resource detail."""
    return comment.split("<details>", 1)[0]


def current_hash(name: str) -> str:
    """The sha256 of the script file in the checkout."""
    return hashlib.sha256((bundles.SCRIPTS_DIR / name).read_bytes()).hexdigest()


# --- scenarios ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def release_2(tmp_path_factory: pytest.TempPathFactory) -> tuple[Plan, Plan]:
    """2 workers: a release that changes every script."""
    with previous_release(tmp_path_factory.mktemp("release2")):
        old = run(stack_config(2))
    return old, run(stack_config(2))


@pytest.fixture(scope="module")
def release_60(tmp_path_factory: pytest.TempPathFactory) -> tuple[Plan, Plan]:
    """1 control plane + 60 workers: a release that changes every script."""
    with previous_release(tmp_path_factory.mktemp("release60")):
        old = run(stack_config(60))
    return old, run(stack_config(60))


def test_a_release_names_each_changed_script_once_with_its_hashes(release_2: tuple[Plan, Plan]) -> None:
    """A release that changes every script: the copies of the scripts (one per node) are replaced,
    their trigger lists every script with its hash, so each script is named once, with its old and
    new hash and the number of resources it reaches; node prep runs again (its scripts' hash, a
    step variable); no other step changes."""
    old, new = release_2
    preview, comment = comment_for(events_for(old, new))
    head = head_of(comment)
    rows = {m["name"]: m for m in re.finditer(r"^\| `(?P<name>[^`]+)` \| `(?P<old>[0-9a-f]{12})` \| `(?P<new>[0-9a-f]{12})` \| (?P<n>\d+) \|$", head, re.M)}
    shipped = {path.name for path in bundles.SCRIPTS_DIR.glob("*.sh")}
    assert set(rows) == shipped, f"scripts named {sorted(rows)}, the release changes {sorted(shipped)}:\n{head}"
    copies = [r for r in new.resources if r.type == COPY]
    for name, row in rows.items():
        assert row["new"] == current_hash(name)[:12], f"{name}: the new hash is not the script's own:\n{head}"
        assert row["old"] != row["new"]
        assert head.count(f"`{name}`") == 1, f"{name} is not named exactly once in the head:\n{head}"
        assert int(row["n"]) == len(copies), f"{name} reaches {row['n']} resources, not the {len(copies)} copies:\n{head}"
    changed = preview.changed_steps()
    assert sorted(s.name for s in changed if s.op == "replace") == sorted(c.name for c in copies), changed
    assert sorted(s.name for s in changed if s.op == "update") == sorted(
        r.name for r in new.resources if r.name.endswith("-prepare")
    ), "a release updates node prep only (its scripts' hash)"
    assert re.search(r"`KC_SCRIPTS_SHA256` \(3\)", head), head
    assert "~triggers: certs-renew.sh" in comment, "the per-resource lines do not name the scripts"
    assert "\n# +- replace command:remote:CopyToRemote (3)" in comment, "the resource lines are not grouped by type"


def test_a_version_change_names_the_step_variables_not_scripts() -> None:
    """A patch upgrade changes no script, only the steps' K8S_VERSION: the comment names that
    variable and how many steps carry it, and says no script changed."""
    old = run(stack_config(2, kubernetesVersion="1.36.3"))
    new = run(stack_config(2, kubernetesVersion="1.36.4"))
    preview, comment = comment_for(events_for(old, new))
    head = head_of(comment)
    assert "**Scripts changed:** none." in head, head
    carrying = [s for s in preview.changed_steps() if s.op == "update" and any("K8S_VERSION" in c.variables for c in s.bundle_changes)]
    assert carrying, "a version change updates no step carrying K8S_VERSION?"
    assert re.search(rf"`K8S_VERSION` \({len(carrying)}\)", head), head
    lines = [line for _, line in pc.resource_lines(preview, False)]
    assert any(re.search(r"\[~stdin: K8S_VERSION\b", line) for line in lines), lines


def test_60_workers_stay_under_the_comment_limit_with_summary_and_policies(release_60: tuple[Plan, Plan]) -> None:
    old, new = release_60
    events = events_for(old, new, policy=STRICT_POLICY, result="failed")
    preview, comment = comment_for(events, exit_code=255, details_url="https://example.invalid/run/1")
    size = len(comment.encode("utf-8"))
    assert size <= pc.COMMENT_LIMIT < 65_536, f"{size} bytes"
    assert comment.startswith("<!-- kubeadm-cluster preview: dev -->\n")
    counts = Counter(s.op for s in preview.steps if s.type != "pulumi:pulumi:Stack")
    assert f"**{counts['update']}** to update" in comment and "**61** to replace" in comment, head_of(comment)
    assert counts["update"] == 61 and counts["replace"] == 61, counts  # node prep; the copies (issue 12: 426 before)
    assert "**61** mandatory violations · **0** advisory" in comment, head_of(comment)
    assert "`node-machine-type-minimums` on 61:" in comment
    for name in ("lib.sh", "prepare-node.sh", "upgrade-node.sh", "upgrade-drain.sh", "mint-token.sh"):
        assert head_of(comment).count(f"`{name}`") == 1, name


def with_more_stacks(events: list[dict[str, Any]], plan: Plan, copies: int) -> list[dict[str, Any]]:
    """``events`` plus the creation of ``copies`` more stacks like ``plan`` (inputs left out: only
    the number of lines matters), before the summary."""
    more = []
    for copy in range(copies):
        for resource in plan.resources:
            event = step_event("create", None, resource)
            meta = event["resourcePreEvent"]["metadata"]
            meta["urn"] = meta["new"]["urn"] = resource.urn.replace("urn:pulumi:dev::", f"urn:pulumi:dev{copy}::")
            meta["new"]["inputs"] = {}
            more.append(event)
    return events[:-1] + more + events[-1:]


def test_truncation_cuts_only_the_resource_lines(release_60: tuple[Plan, Plan]) -> None:
    """The 60-worker release plus twelve more 60-worker stacks created in the same preview (their
    inputs left out: only the number of lines matters): far past the limit. Summary, policies
    and scripts are all there, whole; the cut is said and the code block closed."""
    old, new = release_60
    events = with_more_stacks(events_for(old, new, policy=STRICT_POLICY, result="failed"), new, 12)
    preview, comment = comment_for(events, exit_code=255, details_url="https://example.invalid/run/1")
    assert len(comment.encode("utf-8")) <= pc.COMMENT_LIMIT
    full = pc.render(preview, stack="dev", exit_code=255, details_url="https://example.invalid/run/1", limit=10_000_000)
    assert head_of(comment) == head_of(full), "the head was cut"
    assert "**Summary:**" in comment and "**Scripts changed:**" in comment
    assert "**61** mandatory violations" in comment
    total = len(pc.resource_lines(preview, False))
    shown = sum(1 for line in comment.splitlines() if line.startswith(("+ ", "~ ", "+- ")))
    assert total > 12 * len(new.resources) and 0 < shown < total, (shown, total)
    match = re.search(r"_… (\d+) more resource changes not shown: the comment limit is 64,000 bytes; the job summary lists every change\._", comment)
    assert match and int(match[1]) == total - shown, comment[-400:]
    assert comment.rstrip().endswith("._") and "```\n</details>\n\n_…" in comment, "the code block is not closed before the note"
    # The most important lines come first: the release's updates are cut, never its deletes or replaces.
    assert comment.index("\n+ ") < comment.index("\n~ ") if "\n~ " in comment else True


def test_the_skip_note_comes_from_the_program(monkeypatch: pytest.MonkeyPatch, release_2: tuple[Plan, Plan]) -> None:
    old, _ = release_2
    monkeypatch.setenv(SKIP_KUBERNETES_DIFF_ENV, "true")
    new = run(stack_config(2))
    preview, comment = comment_for(events_for(old, new))
    assert preview.kubernetes_skipped
    head = head_of(comment)
    assert "**Kubernetes objects were not compared.**" in head and "PREVIEW_RUNNER" in head, head
    provider = [line for group, line in pc.resource_lines(preview, True) if "pulumi:providers:kubernetes" in group]
    assert provider and "stand-in" in provider[0], provider
    assert comment.count(SKIP_KUBERNETES_DIFF_ENV) == 1, "the program's note is repeated among the warnings"


# --- the comment's parts on their own -------------------------------------------------------------


def test_the_digest_is_refused_it_has_no_policy_results() -> None:
    # pkg/display/json.go PreviewDigest, as `pulumi preview --json` prints it (indented, one document).
    digest = json.dumps({"config": {}, "steps": [{"op": "same", "urn": "urn:x", "detailedDiff": None}],
                         "changeSummary": {"same": 1}, "duration": 1}, indent=4)
    with pytest.raises(pc.PreviewFormatError, match="PULUMI_ENABLE_STREAMING_JSON_PREVIEW"):
        pc.read_events(digest.splitlines())
    with pytest.raises(pc.PreviewFormatError, match="PULUMI_ENABLE_STREAMING_JSON_PREVIEW"):
        pc.read_events([json.dumps(json.loads(digest))])


def test_a_failed_preview_shows_its_errors_and_counts_without_a_summary() -> None:
    events = [
        {"resourcePreEvent": {"metadata": {"op": "create", "urn": "urn:pulumi:dev::p::gcp:compute/network:Network::net",
                                           "type": "gcp:compute/network:Network", "old": None, "new": {"inputs": {}}}}},
        {"diagnosticEvent": {"message": "<{%fg 1%}>invalid stack configuration:\n  kubeadm-cluster:adminCidrs: is required<{%reset%}>\n",
                             "severity": "error", "color": "raw"}},
        {"diagnosticEvent": {"message": "progress", "severity": "info", "ephemeral": True}},
    ]
    _, comment = comment_for(events, exit_code=255)
    assert ":x: failed (exit code 255)" in comment
    assert "invalid stack configuration:\n  kubeadm-cluster:adminCidrs: is required" in comment, comment
    assert "<{%" not in comment
    assert "**1** to create" in comment and "counted from the steps seen" in comment
    assert "no policy pack ran" in comment


def test_stderr_is_shown_when_no_error_event_says_why() -> None:
    _, comment = comment_for([], exit_code=255, stderr="error: failed to load checkpoint: no stack named 'dev' found\n")
    assert "no stack named 'dev' found" in comment
    _, quiet = comment_for([], exit_code=0, stderr="some noise\n")
    assert "some noise" not in quiet


def test_text_from_the_preview_cannot_break_the_comment() -> None:
    hostile = "<details><summary>x</summary> @someone ``` |"
    events = [
        {"policyEvent": {"resourceUrn": "urn:pulumi:dev::p::t::r", "message": hostile, "policyName": "p",
                         "policyPackName": "k", "policyPackVersion": "1", "enforcementLevel": "advisory"}},
        {"diagnosticEvent": {"message": "boom ```\n</details>", "severity": "error"}},
        {"summaryEvent": {"resourceChanges": {}, "PolicyPacks": {"k": "1"}, "result": "failed"}},
    ]
    _, comment = comment_for(events, exit_code=1)
    body = comment.split("\n", 1)[1]
    assert "<details><summary>x" not in body and "@someone" not in body, body
    assert body.count("```") % 2 == 0 and "boom '''" in body, body


def test_policy_lists_are_bounded_and_counts_complete() -> None:
    events: list[dict[str, Any]] = [
        {"policyEvent": {"resourceUrn": f"urn:pulumi:dev::p::t::r{i}", "message": f"{'m' * 900} {i % 7}",
                         "policyName": f"policy-{i % 30}", "policyPackName": "k", "policyPackVersion": "1",
                         "enforcementLevel": "mandatory" if i % 3 else "advisory"}}
        for i in range(3000)
    ]
    events.append({"summaryEvent": {"resourceChanges": {"same": 3}, "PolicyPacks": {"k": "1"}, "result": "failed"}})
    _, comment = comment_for(events, exit_code=255)
    assert len(comment.encode()) < 40_000, len(comment.encode())
    assert "**2000** mandatory violations · **1000** advisory" in comment
    # 30 policies (each all mandatory or all advisory): the first ones listed, the rest counted.
    listed = sum(int(n) for n in re.findall(r"^- \*\*(?:mandatory|advisory)\*\* `policy-\d+` on (\d+):", comment, re.M))
    rest = re.search(r"^- … (\d+) more policies with (\d+) violations$", comment, re.M)
    assert rest and int(rest[1]) == 30 - pc.MAX_POLICY_GROUPS and listed + int(rest[2]) == 3000, comment[-600:]


def test_main_writes_the_comment_and_the_uncut_step_summary(tmp_path: Path, release_60: tuple[Plan, Plan]) -> None:
    old, new = release_60
    (tmp_path / "events.jsonl").write_text(jsonl(with_more_stacks(events_for(old, new), new, 3)))
    code = pc.main([str(tmp_path / "events.jsonl"), "--stack", "dev", "--output", str(tmp_path / "c.md"),
                    "--step-summary", str(tmp_path / "summary.md"), "--details-url", "https://example.invalid/r"])
    assert code == 0
    comment, summary = (tmp_path / "c.md").read_text(), (tmp_path / "summary.md").read_text()
    assert len(comment.encode()) <= pc.COMMENT_LIMIT < len(summary.encode()) <= pc.STEP_SUMMARY_LIMIT
    assert "more resource changes not shown" in comment and "more resource changes not shown" not in summary
    (tmp_path / "digest.json").write_text(json.dumps({"steps": [], "changeSummary": {}}))
    assert pc.main([str(tmp_path / "digest.json"), "--stack", "dev"]) == 2


# --- the program's switch: a preview that skips the Kubernetes diff --------------------------------


def provider_of(plan: Plan) -> Registered:
    providers = plan.of_type("pulumi:providers:kubernetes")
    assert len(providers) == 1, [p.name for p in providers]
    return providers[0]


def test_by_default_the_provider_gets_the_clusters_kubeconfig() -> None:
    plan = run(stack_config(2))
    provider = provider_of(plan)
    assert provider.inputs["kubeconfig"] == plan.outputs["kubeconfig"] != NO_CLUSTER_KUBECONFIG
    assert "skipUpdateUnreachable" not in provider.inputs, provider.inputs
    assert not any(w.startswith(pc.SKIP_NOTE_PREFIX) for w in plan.warnings)


def test_the_switch_changes_only_the_providers_kubeconfig_and_skip_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    normal = run(stack_config(2))
    monkeypatch.setenv(SKIP_KUBERNETES_DIFF_ENV, "true")
    skipped = run(stack_config(2))
    provider = provider_of(skipped)
    assert provider.inputs["kubeconfig"] == NO_CLUSTER_KUBECONFIG and "kubeconfig" in provider.secret_inputs
    # pulumi-kubernetes (provider/pkg/provider/provider.go Configure) compares this with "true".
    assert provider.inputs["skipUpdateUnreachable"] == "true"
    # Same clusterIdentifier: DiffConfig plans an update of the provider, never a replacement.
    assert provider.inputs["clusterIdentifier"] == provider_of(normal).inputs["clusterIdentifier"]
    before = {r.urn: r.raw_inputs for r in normal.resources}
    after = {r.urn: r.raw_inputs for r in skipped.resources}
    assert set(before) == set(after), "the switch changed which resources exist"
    changed = sorted(urn.rsplit("::", 1)[1] for urn in after if after[urn] != before[urn])
    assert changed == [provider.name], f"the switch changed more than the provider: {changed}"
    assert skipped.outputs["kubeconfig"] == normal.outputs["kubeconfig"], "the exported kubeconfig changed"
    assert SKIP_KUBERNETES_DIFF_NOTE in skipped.warnings
    assert SKIP_KUBERNETES_DIFF_NOTE.startswith(pc.SKIP_NOTE_PREFIX)


def test_the_stand_in_kubeconfig_is_refused_before_any_connection() -> None:
    """client-go tools/clientcmd/validation.go ConfirmUsable returns ErrEmptyConfig ("no
    configuration has been provided") for a config with no clusters, contexts, users or
    extensions (api.IsConfigEmpty), before any request: pulumi-kubernetes' Configure then marks
    the cluster unreachable. The document must still parse: DiffConfig loads it (clientcmd.Load)."""
    document = yaml.safe_load(NO_CLUSTER_KUBECONFIG)
    assert document == {"apiVersion": "v1", "kind": "Config", "clusters": [], "contexts": [], "users": [], "current-context": ""}


@pytest.mark.parametrize("value", ["true", "1", "TRUE"])
def test_the_switch_is_refused_for_an_update(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(SKIP_KUBERNETES_DIFF_ENV, value)
    plan = run_program(stack_config(2), stack="dev", preview=False)
    assert plan.error and f"{SKIP_KUBERNETES_DIFF_ENV}=true is for `pulumi preview` only" in plan.error, plan.error
    assert plan.resources == [], "resources were registered before the refusal"


@pytest.mark.parametrize("value", ["yes", "on", "skip"])
def test_an_unclear_switch_value_is_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(SKIP_KUBERNETES_DIFF_ENV, value)
    plan = run_program(stack_config(2), stack="dev", preview=True)
    assert plan.error and SKIP_KUBERNETES_DIFF_ENV in plan.error and repr(value) in plan.error, plan.error
    assert plan.resources == []


@pytest.mark.parametrize("value", ["", "false", "0"])
def test_an_off_switch_changes_nothing(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(SKIP_KUBERNETES_DIFF_ENV, value)
    plan = run_program(stack_config(2), stack="dev", preview=False)
    assert plan.error is None and "skipUpdateUnreachable" not in provider_of(plan).inputs
