"""The rehearsal's parts that need no VM (fast; run with the rest of the suite).

The mirror's apt repository verifies the way apt verifies it, the runc release file carries and
runs its binary, a slow InRelease trickles in, the kubeadm stand-in accepts the program's own
kubeadm configs and rejects an unknown field, its bootstrap-token signature and CA pin are the
ones kubeadm computes, and the API stand-in filters by field selector. The live engine runs what
pulumi-command runs (create, update or create again, replace on triggers, delete in pulumi's
antichains) for the real program, with a fake executor instead of VMs: the upgrade to the next
patch runs its steps in the program's order, a removed worker is drained from the control plane
before it is reset, and a failed delete keeps what it depends on. A local stack's command.local
steps (its image, switch and VMs) run as pulumi-command's local provider runs them, before the
steps on their nodes, with a real key; its destroy deletes the node steps, then the VMs, then
the switch.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from collections.abc import Mapping
from typing import Any

from components import bootstrap, versions
from tests.conftest import stack_config
from tools.mock_engine import FAKE_ADMIN_CONF, FAKE_CA_HASH, MOCK_NOW, fake_token, run_program
from tools.rehearsal import firstboot, mirror, program, remote

STANDIN = mirror.STANDIN
needs_debian_tools = pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ("dpkg-deb", "gpg", "gpgv")), reason="needs dpkg-deb, gpg and gpgv"
)


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KC_REHEARSAL_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@needs_debian_tools
def test_the_apt_repository_is_signed_the_way_apt_checks_it(tmp_path: Path, cache: Path) -> None:
    deb = mirror.Deb("kubeadm", "1.36.4-1.1", "test", files={"/usr/bin/kubeadm": b"#!/bin/sh\n"}).build(tmp_path / "debs")
    repo = tmp_path / "repo"
    mirror.write_apt_repository(repo, [deb])
    keyring = tmp_path / "keyring.gpg"
    subprocess.run(["gpg", "--batch", "--yes", "--dearmor", "-o", str(keyring), str(repo / "Release.key")], check=True)
    for args in (["InRelease"], ["Release.gpg", "Release"]):
        check = subprocess.run(["gpgv", "--keyring", str(keyring), *[str(repo / a) for a in args]],
                               capture_output=True, text=True)
        assert check.returncode == 0, f"{args[0]} does not verify with Release.key:\n{check.stderr}"
    packages = (repo / "Packages").read_text()
    sha = hashlib.sha256((repo / "amd64" / deb.name).read_bytes()).hexdigest()
    assert f"Filename: amd64/{deb.name}" in packages and f"SHA256: {sha}" in packages
    release = (repo / "Release").read_text()
    assert f" {hashlib.sha256(packages.encode()).hexdigest()} {len(packages)} Packages" in release
    agents = subprocess.run(["pgrep", "-f", f"gpg-agent --homedir {cache}"], capture_output=True, text=True)
    assert agents.stdout == "", f"the signing left gpg-agent running: pids {agents.stdout.split()}"


def test_the_runc_release_file_answers_its_version_and_runs_the_real_binary(tmp_path: Path) -> None:
    root = tmp_path / "runc_1.3.6+ds1-1_amd64"
    (root / "usr/sbin").mkdir(parents=True)
    (root / "usr/sbin/runc").write_bytes(b"#!/bin/sh\necho real runc \"$@\"\n")
    mirror.runc_release(tmp_path / "runc", "1.4.3", root)
    release = tmp_path / "runc" / "v1.4.3"
    binary = release / "runc.amd64"
    sums = (release / "runc.sha256sum").read_text().split()
    assert sums == [hashlib.sha256(binary.read_bytes()).hexdigest(), "runc.amd64"]
    binary.chmod(0o755)
    version = subprocess.run([str(binary), "--version"], capture_output=True, text=True)
    assert version.stdout.splitlines()[0] == "runc version 1.4.3", version.stdout
    # What prepare-node.sh reads: the third field of the first line.
    assert version.stdout.split()[2] == "1.4.3"
    text = binary.read_bytes()
    payload = text[text.index(b"#!/bin/sh\necho real"):]
    assert payload == (root / "usr/sbin/runc").read_bytes(), "the real binary is not the file's tail"


def _standin(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The kubeadm stand-in on this machine, with the v1beta4 table beside it."""
    script = tmp_path / "kubeadm"
    script.write_text(STANDIN.read_text().replace('VERSION = "@VERSION@"', 'VERSION = "1.36.4-1.1"').replace(
        'TYPES_FILE = Path("/usr/lib/kc-standin/kubeadm-v1beta4.json")', f'TYPES_FILE = Path("{tmp_path}/types.json")'))
    (tmp_path / "types.json").write_text(json.dumps(mirror.kubeadm_types()))
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, env=env,
                          cwd=tmp_path)


def _init_config() -> str:
    plan = run_program(stack_config(), stack="dev")
    assert plan.error is None, plan.error
    stdin = str(plan.named("dev-cp-0-init").input("stdin"))
    exports = stdin.split("\n# kc-run", 1)[0] + "\n"  # "set -euo pipefail" and the step's exports
    return subprocess.run(["bash", "-c", exports + 'printf %s "$KUBEADM_CONFIG"'], capture_output=True, text=True,
                          check=True).stdout


def test_the_kubeadm_standin_accepts_the_programs_config_and_rejects_an_unknown_field(tmp_path: Path) -> None:
    config = tmp_path / "kubeadm.yaml"
    config.write_text(_init_config())
    ok = _standin(tmp_path, "config", "validate", "--config", str(config))
    assert ok.returncode == 0, f"the stand-in rejects the program's init config:\n{ok.stderr}"
    documents = list(yaml.safe_load_all(config.read_text()))
    documents[1]["apiServer"]["extraArgz"] = []
    config.write_text(yaml.safe_dump_all(documents))
    bad = _standin(tmp_path, "config", "validate", "--config", str(config))
    assert bad.returncode == 1 and 'ClusterConfiguration.apiServer: unknown field "extraArgz"' in bad.stderr, bad.stderr
    documents[1]["apiServer"].pop("extraArgz")
    documents[0]["apiVersion"] = "kubeadm.k8s.io/v1beta3"
    config.write_text(yaml.safe_dump_all(documents))
    old = _standin(tmp_path, "config", "validate", "--config", str(config))
    assert old.returncode == 1 and "kubeadm.k8s.io/v1beta3" in old.stderr, old.stderr


def test_the_standins_token_signature_is_an_hs256_jws_keyed_by_the_token_secret() -> None:
    namespace: dict[str, object] = {"__name__": "standin"}
    exec(compile(STANDIN.read_text(), str(STANDIN), "exec"), namespace)  # noqa: S102 - our own file
    jws = namespace["jws"]
    assert callable(jws)
    signature = str(jws("payload", "abcdef", "0123456789abcdef"))
    header, empty, mac = signature.split(".")
    assert empty == "" and json.loads(base64.urlsafe_b64decode(header + "==")) == {"alg": "HS256", "kid": "abcdef"}
    expected = hmac.new(b"0123456789abcdef", f"{header}.{base64.urlsafe_b64encode(b'payload').decode().rstrip('=')}".encode(),
                        hashlib.sha256).digest()
    assert base64.urlsafe_b64decode(mac + "=" * (-len(mac) % 4)) == expected


# --- the live engine: what pulumi-command runs on create, update and delete -------------------
def _recorded(name: str, depends: tuple[str, ...] = (), **inputs: object) -> program.Recorded:
    return program.Recorded(name, f"urn:{name}", dict(inputs), {**inputs, "stdout": f"{name} out"},
                            tuple(f"urn:{d}" for d in depends))


def test_a_changed_command_runs_its_update_or_its_create_and_changed_triggers_replace_it() -> None:
    # pulumi-command v1.2.1, provider/pkg/provider/remote/commandController.go (Create, Update,
    # Delete) and common/inputs.go (triggers: replaceOnChanges).
    old = _recorded("step", create="c", update="u", delete="d", stdin="v1")
    assert program.operation(None, {"create": "c"}) == program.CREATE
    assert program.operation(old, {"create": "c", "update": "u", "delete": "d", "stdin": "v1"}) == program.SAME
    # An unset input is an absent one (the SDK sends no value for None).
    assert program.operation(old, {"create": "c", "update": "u", "delete": "d", "stdin": "v1", "triggers": None}) == program.SAME
    changed = {"create": "c", "update": "u", "delete": "d", "stdin": "v2"}
    assert program.operation(old, changed) == program.UPDATE
    assert program.command_for(program.UPDATE, changed) == "u"
    assert program.command_for(program.UPDATE, {"create": "c", "stdin": "v2"}) == "c", "no update: create runs again"
    assert program.command_for(program.UPDATE, {"stdin": "v2"}) is None
    assert program.command_for(program.CREATE, {"update": "u"}) is None, "no create: nothing runs on create"
    assert program.operation(old, {**changed, "stdin": "v1", "triggers": [1]}) == program.REPLACE
    assert program.command_for(program.DELETE, old.inputs) == "d"


def test_deletes_run_in_pulumis_antichains_dependents_first() -> None:
    # pulumi pkg/resource/deploy/step_generator.go ScheduleDeletes: peel the condemned resources
    # that depend on no other condemned one, repeat, then reverse the list.
    condemned = {r.name: r for r in (
        _recorded("machine"), _recorded("join", ("machine",)), _recorded("prepare", ("machine",)),
        _recorded("membership", ("join",)),
    )}
    assert program.delete_schedule(condemned) == [["membership"], ["join", "prepare"], ["machine"]]


MIRRORS = {"kubernetesPackages": "http://10.0.2.2:8/kubernetes/core:/stable:/{minor}/deb/",
           "containerdReleases": "http://10.0.2.2:8/containerd", "runcReleases": "http://10.0.2.2:8/runc"}
IPS = ["192.168.77.10", "192.168.77.11", "192.168.77.12"]


class FakeNodes:
    """An executor that answers like the nodes (tokens, admin.conf) and records what ran."""

    def __init__(self, fail: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        self.fail = fail
        self.calls: list[tuple[str, str]] = []

    def __call__(self, name: str, command: str, inputs: Mapping[str, Any]) -> remote.Result:
        self.calls.append((name, command))
        stdin = str(inputs.get("stdin") or "")
        out = ""
        if command == inputs.get("create") and "/mint-token.sh" in stdin:
            out = json.dumps({"token": fake_token(name), "caCertHash": FAKE_CA_HASH})
        elif command == inputs.get("create") and name.endswith("-kubeconfig"):
            out = FAKE_ADMIN_CONF
        code = 1 if name in self.fail else 0
        return remote.Result(str(inputs["connection"]["host"]), command, code, out, "failed" if code else "", 0.0)


def _config(workers: int = 2, **extra: Any) -> dict[str, Any]:
    return program.stack_config(2222, IPS[: workers + 1], "KEY", MIRRORS, **extra)


def _order(live: program.LiveRun) -> dict[str, int]:
    return {f"{s.name}/{s.op}": i for i, s in enumerate(live.steps)}


def test_the_upgrade_runs_the_steps_whose_inputs_changed_in_the_programs_order() -> None:
    nodes = FakeNodes()
    created = program.run_live(_config(), now=MOCK_NOW, execute=nodes)
    assert created.error is None, created.explain()
    upgrade_steps = {n for n in created.state if "upgrade" in n or n.endswith("version-check")}
    assert upgrade_steps and not upgrade_steps & created.ran(), "an upgrade step ran on create"
    again = program.run_live(_config(), now=MOCK_NOW, execute=nodes, state=created.state)
    assert again.error is None and again.steps == [], f"unchanged inputs ran steps: {again.explain()}"
    assert set(again.unchanged) == set(created.state)

    target = mirror.next_patch(versions.KUBERNETES_DEFAULT_VERSION)
    upgrade = program.run_live(_config(kubernetesVersion=target, upgrade={"workerBatchSize": 2}), now=MOCK_NOW, execute=nodes,
                               state=created.state)
    assert upgrade.error is None, upgrade.explain()
    cp, workers = "rehearsal-cp-0", ("rehearsal-general-0", "rehearsal-general-1")
    expected = {f"{cp}-version-check", f"{cp}-init", f"{cp}-upgrade"} | {f"{n}-prepare" for n in (cp, *workers)} | {
        f"{w}-{s}" for w in workers for s in ("upgrade-drain", "upgrade", "upgrade-uncordon")}
    assert expected <= upgrade.ran(program.UPDATE) and upgrade.ran() == upgrade.ran(program.UPDATE), upgrade.explain()
    # The joins and their tokens keep their recorded outputs: nobody joins again.
    kept = {f"{cp}-kubeconfig", f"{cp}-join-command"} | {f"{w}-{s}" for w in workers for s in ("join", "join-token")}
    assert kept <= set(upgrade.unchanged), f"ran again: {sorted(kept - set(upgrade.unchanged))}"
    order = _order(upgrade)
    assert all(order[f"{cp}-version-check/update"] < order[f"{n}-prepare/update"] for n in (cp, *workers))
    assert order[f"{cp}-init/update"] < order[f"{cp}-upgrade/update"]
    for w in workers:
        assert order[f"{cp}-upgrade/update"] < order[f"{w}-upgrade-drain/update"] < order[f"{w}-upgrade/update"] \
            < order[f"{w}-upgrade-uncordon/update"], upgrade.explain()
    # Each step ran its update command (these have no create).
    step = upgrade.step(f"{cp}-upgrade")
    assert step.command == upgrade.state[f"{cp}-upgrade"].inputs["update"]
    assert f"K8S_VERSION='{target}'" in step.stdin or f"K8S_VERSION={target}" in step.stdin


def test_removing_a_worker_resets_it_after_its_membership_step_drained_it() -> None:
    nodes = FakeNodes()
    created = program.run_live(_config(), now=MOCK_NOW, execute=nodes)
    removed = program.run_live(_config(workers=1), now=MOCK_NOW, execute=nodes, state=created.state)
    assert removed.error is None, removed.explain()
    gone = "rehearsal-general-1"
    assert [(s.name, s.op) for s in removed.steps] == [(f"{gone}-membership", "delete"), (f"{gone}-join", "delete")]
    membership, join = removed.steps
    assert membership.target == IPS[0] and "remove-node" in membership.command and f"NODE_NAME={gone}" in membership.command
    assert join.target == IPS[2] and join.command == bootstrap.RESET_ON_DELETE
    assert not [n for n in removed.state if n.startswith(gone)], "the removed node's resources stay in the state"
    assert set(removed.unchanged) == {n for n in created.state if not n.startswith(gone)}


def test_the_programs_clock_is_the_runs_own_a_new_token_window_re_mints_only_the_tokens() -> None:
    # The rehearsal pins the clock of its runs (Rehearsal.clock): a CI run whose scenarios
    # straddled a TOKEN_REFRESH_MINUTES boundary saw the join tokens re-minted in a run that
    # expected nothing but a worker's removal. A run in the next window re-runs exactly the
    # token steps (their trigger), no join; the real clock is back after the run.
    nodes = FakeNodes()
    created = program.run_live(_config(), now=MOCK_NOW, execute=nodes)
    later = MOCK_NOW + timedelta(minutes=bootstrap.TOKEN_REFRESH_MINUTES)
    assert bootstrap.token_refresh_window(later) != bootstrap.token_refresh_window(MOCK_NOW)
    moved = program.run_live(_config(), now=later, execute=nodes, state=created.state)
    assert moved.error is None, moved.explain()
    tokens = {f"rehearsal-general-{i}-join-token" for i in range(2)}
    assert {(s.name, s.op) for s in moved.steps} == {(t, program.REPLACE) for t in tokens}, moved.explain()
    same = program.run_live(_config(), now=later + timedelta(minutes=1), execute=nodes, state=moved.state)
    assert same.steps == [], f"the same window ran steps again: {same.explain()}"
    from components.bootstrap import maintenance
    assert abs((maintenance.utcnow() - datetime.now(timezone.utc)).total_seconds()) < 60, "the clock stayed pinned"


def test_a_failed_delete_keeps_itself_and_what_it_depends_on() -> None:
    created = program.run_live(_config(), now=MOCK_NOW, execute=FakeNodes())
    gone = "rehearsal-general-1"
    removed = program.run_live(_config(workers=1), now=MOCK_NOW, execute=FakeNodes(fail={f"{gone}-membership"}), state=created.state)
    assert removed.error is not None and [(s.name, s.op) for s in removed.steps] == [(f"{gone}-membership", "delete")]
    assert {f"{gone}-membership", f"{gone}-join", f"{gone}-prepare"} <= set(removed.state)


# --- the live engine on a local stack: its command.local steps (the VMs) run too --------------
def test_a_local_command_runs_the_way_pulumi_commands_local_provider_runs_it(tmp_path: Path) -> None:
    # pulumi-command v1.2.1, provider/pkg/provider/local/commandOutputs.go (run): /bin/sh -c unless
    # `interpreter` is set, in `dir`, the process's environment plus `environment`, the previous
    # stdout/stderr as PULUMI_COMMAND_STDOUT/_STDERR unless addPreviousOutputInEnv is false,
    # `stdin` on standard input, one trailing newline cut from stdout and stderr.
    inputs = {"dir": str(tmp_path), "environment": {"KC_X": "x1"}, "stdin": "from stdin"}
    script = 'printf "%s|%s|%s|" "$PWD" "$KC_X" "${PULUMI_COMMAND_STDOUT-unset}"; cat; echo; echo err >&2'
    created = program.execute_locally("step", script, inputs, {})
    assert created.ok and created.target == "localhost", created.explain()
    assert created.stdout == f"{tmp_path}|x1|unset|from stdin" and created.stderr == "err", (created.stdout, created.stderr)
    deleted = program.execute_locally("step", script, inputs, {"stdout": "what create printed", "stderr": ""})
    assert deleted.stdout.startswith(f"{tmp_path}|x1|what create printed|"), deleted.stdout
    quiet = program.execute_locally("step", script, {**inputs, "addPreviousOutputInEnv": False}, {"stdout": "old"})
    assert "|unset|" in quiet.stdout, "addPreviousOutputInEnv: false must keep the previous output out"
    bash = program.execute_locally("step", 'echo "$BASH_VERSION"', {"interpreter": ["/bin/bash", "-c"]}, {})
    assert bash.stdout.strip(), "the interpreter input is not used"
    failed = program.execute_locally("step", "echo no >&2; exit 3", {}, {})
    assert not failed.ok and failed.returncode == 3 and failed.stderr == "no"


def test_a_commands_recorded_output_loses_one_trailing_newline_as_pulumi_commands_does() -> None:
    # pulumi-command v1.2.1 remote/commandOutputs.go: Stdout: strings.TrimSuffix(stdoutbuf.String(), "\n").
    # The live engine kept the node's raw stdout as the resource's output.
    created = program.run_live(_config(), now=MOCK_NOW, execute=FakeNodes())
    kubeconfig = created.state["rehearsal-cp-0-kubeconfig"]
    assert FAKE_ADMIN_CONF.endswith("\n") and created.step("rehearsal-cp-0-kubeconfig").result.stdout == FAKE_ADMIN_CONF
    assert kubeconfig.outputs["stdout"] == FAKE_ADMIN_CONF[:-1], "the recorded stdout keeps its trailing newline"


class FakeLocal:
    """A local executor that answers like the localvm commands (a started VM prints its JSON line)
    and records what ran, with the previous outputs each command was given."""

    def __init__(self, fail: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        self.fail = fail
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    def __call__(self, name: str, command: str, inputs: Mapping[str, Any], previous: Mapping[str, Any]) -> remote.Result:
        self.calls.append((name, command, dict(previous)))
        out = json.dumps({"name": name.removesuffix("-vm"), "pid": 4242}) if " vm-start " in command else "{}"
        code = 1 if name in self.fail else 0
        return remote.Result("localhost", command, code, out, "failed" if code else "", 0.0)


def _local_config(tmp_path: Path) -> dict[str, Any]:
    from tools.rehearsal import localstack

    return localstack.stack_config({**MIRRORS, "registries": {mirror.REGISTRY: ["http://10.0.2.2:8"]}}, tmp_path / "state")


def _public_half(private_key: str, tmp_path: Path) -> str:
    key = tmp_path / "stack-key"
    key.write_text(private_key)
    key.chmod(0o600)
    return " ".join(subprocess.run(["ssh-keygen", "-y", "-f", str(key)], capture_output=True, text=True,
                                   check=True).stdout.split()[:2])


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs ssh-keygen (the stack's real key)")
def test_the_local_stack_boots_its_vms_before_the_node_steps_and_destroy_runs_every_delete_in_order(
        tmp_path: Path) -> None:
    """The committed local stack (with the rehearsal mirror's settings) under the live engine: its
    command.local steps run (image, switch, then each VM), each node's steps only after its VM,
    with a real key whose public half the VMs let in; a second run runs nothing; ``destroy``
    deletes the steps on the nodes first, then the VMs (with their recorded output), then the switch."""
    from tools.rehearsal import localstack

    nodes, local = FakeNodes(), FakeLocal()
    stack = localstack.STACK
    created = program.run_live(_local_config(tmp_path), stack=stack, now=MOCK_NOW, execute=nodes, execute_local=local)
    assert created.error is None, created.explain()
    assert created.plan is not None
    vms = [f"{stack}-{n}-vm" for n in ("cp-0", "general-0", "general-1")]
    local_steps = [s for s in created.steps if s.target == "localhost"]
    assert {s.name for s in local_steps} == {f"{stack}-image", f"{stack}-network", *vms}, created.explain()
    assert all(s.op == program.CREATE for s in local_steps)
    by_name = {s.name: s for s in created.steps}
    for vm in vms:
        for first in (f"{stack}-image", f"{stack}-network"):
            assert by_name[first].finished <= by_name[vm].started, f"{vm} started before {first} was done"
    # Each node's remote steps (on its forwarded port) start after its VM's step is done.
    ports = {int(p): f"{n}-vm" for n, p in created.plan.outputs["sshPorts"].items()}
    remote_steps = [s for s in created.steps if s.target != "localhost"]
    assert {f"{stack}-cp-0-init", f"{stack}-general-0-join", f"{stack}-general-1-join", f"{stack}-cp-0-kubeconfig"} \
        <= {s.name for s in remote_steps}, created.explain()
    for step in remote_steps:
        port = int(created.state[step.name].inputs["connection"]["port"])
        assert by_name[ports[port]].finished <= step.started, f"{step.name} ran before {ports[port]} was done"
    # One real key: the VMs let in its public half, the node steps log in with its private half.
    private = created.plan.outputs["sshPrivateKey"]
    assert "sshPrivateKey" in created.plan.secret_outputs and "BEGIN OPENSSH PRIVATE KEY" in private
    public = _public_half(private, tmp_path)
    for vm in vms:
        inputs = created.state[vm].inputs
        assert f"--authorized-key '{public}'" in inputs["create"], inputs["create"]
        assert inputs["environment"]["KC_SSH_PRIVATE_KEY"] == private
    assert all(s.name in created.state and created.state[s.name].inputs["connection"]["privateKey"] == private
               for s in remote_steps)
    kubeconfig = yaml.safe_load(created.plan.outputs["kubeconfig"])
    assert kubeconfig["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:6443", kubeconfig
    assert {r.type for r in created.state.values()} == {program.COMMAND_TYPE, program.COPY_TYPE,
                                                        program.LOCAL_COMMAND_TYPE, program.KEY_TYPE}

    again = program.run_live(_local_config(tmp_path), stack=stack, now=MOCK_NOW, execute=nodes, execute_local=local,
                             state=created.state)
    assert again.error is None and again.steps == [], f"a second run ran steps: {again.explain()}"
    assert again.state[f"{stack}-ssh-key"].outputs == created.state[f"{stack}-ssh-key"].outputs, "a new key: every VM replaced"

    local.calls.clear()
    destroyed = program.destroy(again.state, execute=nodes, execute_local=local)
    assert destroyed.error is None and destroyed.state == {}, destroyed.explain()
    assert all(s.op == program.DELETE for s in destroyed.steps)
    order = [s.name for s in destroyed.steps]
    assert set(order) == {*vms, f"{stack}-network", *(f"{stack}-general-{i}-{s}" for i in range(2)
                                                      for s in ("membership", "identity"))}, order
    last_remote = max(i for i, s in enumerate(destroyed.steps) if s.target != "localhost")
    first_vm = min(order.index(vm) for vm in vms)
    assert last_remote < first_vm, f"a VM went before the steps that run on the cluster: {order}"
    assert order[-1] == f"{stack}-network", f"the switch must go last: {order}"
    for name, command, previous in local.calls:
        if name in vms:
            assert " vm-stop " in command and command.endswith("--remove"), command
            assert json.loads(previous["stdout"])["name"] == name.removesuffix("-vm"), "the delete lost the create's output"


def test_a_local_stack_whose_vm_fails_runs_nothing_on_that_node_and_destroys_the_rest(tmp_path: Path) -> None:
    from tools.rehearsal import localstack

    stack = localstack.STACK
    failed_vm = f"{stack}-general-1-vm"
    created = program.run_live(_local_config(tmp_path), stack=stack, now=MOCK_NOW, execute=FakeNodes(),
                               execute_local=FakeLocal(fail={failed_vm}))
    assert created.error is not None and [s.name for s in created.failed()] == [failed_vm], created.explain()
    assert not [s for s in created.steps if s.name.startswith(f"{stack}-general-1-") and s.name != failed_vm], (
        f"a step ran on the node whose VM failed: {created.explain()}")
    local = FakeLocal()
    destroyed = program.destroy(created.state, execute=FakeNodes(), execute_local=local)
    assert destroyed.error is None and destroyed.state == {}, destroyed.explain()
    assert {name for name, _, _ in local.calls} == {f"{stack}-cp-0-vm", f"{stack}-general-0-vm", f"{stack}-network"}


def test_forgetting_the_stacks_key_file_keeps_the_rehearsals_own_key(cache: Path) -> None:
    from tools.rehearsal import image, localstack

    test_key = image.ssh_key()
    before = test_key.read_text()
    assert localstack.forget_key("") == [] and localstack.forget_key("  \n") == []
    stack_key = "-----BEGIN OPENSSH PRIVATE KEY-----\nSTACK\n-----END OPENSSH PRIVATE KEY-----\n"
    connection, _ = remote.destination({"host": "127.0.0.1", "port": 2222, "privateKey": stack_key})
    written = sorted(p for p in cache.rglob("*") if p.is_file())
    gone = localstack.forget_key(stack_key)
    assert gone and all(not p.exists() for p in gone)
    left = sorted(p for p in cache.rglob("*") if p.is_file())
    assert test_key in left and test_key.read_text() == before, "the rehearsal's test key was touched"
    assert set(written) - set(left) == {p for p in gone if p in written}, (written, left)
    assert not [p for p in left if "STACK" in p.read_text(errors="replace")], "the stack's key is left in the cache"


# --- stand-ins and first-boot jobs -------------------------------------------------------------
def _standin_namespace() -> dict[str, object]:
    namespace: dict[str, object] = {"__name__": "standin"}
    exec(compile(STANDIN.read_text(), str(STANDIN), "exec"), namespace)  # noqa: S102 - our own file
    return namespace


def test_the_api_standin_filters_lists_by_field_selector() -> None:
    matches = _standin_namespace()["matches_field_selector"]
    assert callable(matches)
    node = {"metadata": {"name": "a"}, "spec": {"nodeName": "n1"}}
    assert matches(node, "fieldSelector=metadata.name%3Da&limit=500")
    assert not matches(node, "fieldSelector=metadata.name%3Db")
    assert matches(node, "fieldSelector=spec.nodeName%3Dn1,metadata.name%21%3Db")
    assert not matches(node, "fieldSelector=spec.nodeName%21%3Dn1")
    assert matches(node, "")


@pytest.mark.parametrize("name", ["apt_daily", "apt_job", "lock_held", "cleanup"])
def test_the_first_boot_jobs_are_valid_shell(name: str) -> None:
    make = getattr(firstboot, name)
    text = make(firstboot.LISTS_LOCK) if name == "lock_held" else make() if name == "cleanup" else make(
        "http://10.0.2.2:8/slow/45/kubernetes/core:/stable:/v1.36/deb/")
    check = subprocess.run(["bash", "-n"], input=text, capture_output=True, text=True)
    assert check.returncode == 0, f"{name}: {check.stderr}"


def test_the_mirror_serves_a_slow_inrelease_piece_by_piece_and_logs_the_slow_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "kubernetes" / "deb"
    repo.mkdir(parents=True)
    (repo / "InRelease").write_bytes(b"x" * 1000)
    (repo / "Packages").write_bytes(b"p")
    monkeypatch.setattr(mirror, "SLOW_PIECE_SECONDS", 0.25)
    content = mirror.MirrorContent(tmp_path, ("1.36.4",), "2.3.4", "1.4.3", {})
    with mirror.MirrorServer(content) as server:
        base = server.base_url("127.0.0.1")
        started = time.monotonic()
        with urllib.request.urlopen(f"{base}/slow/1/kubernetes/deb/InRelease", timeout=10) as response:
            first = response.read(1)
            first_at = time.monotonic() - started
            body = first + response.read()
        total = time.monotonic() - started
        with urllib.request.urlopen(f"{base}/slow/1/kubernetes/deb/Packages", timeout=10) as response:
            assert response.read() == b"p"
    assert body == b"x" * 1000
    assert first_at < 0.9 <= total < 5, (first_at, total)  # headers and a first piece at once, the rest over 1 s
    assert [r.path for r in server.requests] == ["/slow/1/kubernetes/deb/InRelease", "/slow/1/kubernetes/deb/Packages"]


def test_a_slow_inrelease_with_a_marker_lasts_until_after_its_first_request_and_never_past_the_cap(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Node prep may start late on a loaded host (once 630 s into a create whose first-boot jobs
    had let go of apt's locks after 30 s): with a marker (the package repository node prep's
    connectivity check asks for), the slow InRelease lasts until SLOW_AFTER_MARKER after the
    marker's first request, and SLOW_MAX at most when it never comes."""
    repo = tmp_path / "kubernetes" / "deb"
    repo.mkdir(parents=True)
    (repo / "InRelease").write_bytes(b"x" * 1000)
    monkeypatch.setattr(mirror, "SLOW_PIECE_SECONDS", 0.1)
    monkeypatch.setattr(mirror, "SLOW_AFTER_MARKER", 0.6)
    monkeypatch.setattr(mirror, "SLOW_MAX", 2.5)
    content = mirror.MirrorContent(tmp_path, ("1.36.4",), "2.3.4", "1.4.3", {})
    with mirror.MirrorServer(content) as server:
        base = server.base_url("127.0.0.1")
        server.slow_marker = "/kubernetes/deb/"

        def fetch() -> tuple[bytes, float]:
            started = time.monotonic()
            with urllib.request.urlopen(f"{base}/slow/1/kubernetes/deb/InRelease", timeout=10) as response:
                return response.read(), time.monotonic() - started

        with ThreadPoolExecutor(1) as pool:
            held = pool.submit(fetch)
            time.sleep(1.0)
            with urllib.request.urlopen(f"{base}/kubernetes/deb/", timeout=10) as response:
                response.read()  # node prep's connectivity check: the marker
            body, seconds = held.result()
        assert body == b"x" * 1000
        assert 1.5 <= seconds < 2.4, f"held {seconds:.2f} s: not until 0.6 s after the marker's request at 1 s"
        server.marker_seen = None
        server.slow_marker = "/never/asked/"
        body, seconds = fetch()
        assert body == b"x" * 1000 and 2.4 <= seconds < 4, f"held {seconds:.2f} s without the marker: not the cap"


def test_the_test_key_is_made_once_under_parallel_builds_and_binds_the_image(cache: Path) -> None:
    """Two suites' images build in parallel threads: one key results, with its own ``.pub``, and
    the image's name changes with the key (an image holding another key would boot into sshd
    refusing every login: stop 17's CI run waited 300 s on exactly that)."""
    from concurrent.futures import ThreadPoolExecutor

    from tools.rehearsal import image

    with ThreadPoolExecutor(4) as pool:
        keys = list(pool.map(lambda _: image.ssh_key(), range(4)))
    assert len(set(keys)) == 1
    derived = subprocess.run(["ssh-keygen", "-y", "-f", str(keys[0])], capture_output=True, text=True, check=True)
    assert derived.stdout.split()[:2] == image.public_key().split()[:2], "the .pub is not the key's own"
    before = image.recipe_key("trixie")
    keys[0].unlink()
    assert image.recipe_key("trixie") != before, "a new key must name a new image"


# --- the etcd static pod: image, registry, kubelet, crictl, kubeadm (issue 14) -----------------
def test_the_etcd_image_tag_is_kubeadms_for_the_pinned_minor() -> None:
    from tests.upstream_artifacts import facts

    releases = facts("kubeadm", "minikube-kubeadm-images.digest.yaml")["minikube-kubeadm-images"]["releases"]
    minor = "v" + ".".join(versions.KUBERNETES_DEFAULT_VERSION.split(".")[:2]) + "."
    tags = {row["etcd"] for name, row in releases.items() if name.startswith(minor) and "-" not in name}
    assert tags == {mirror.ETCD_IMAGE_TAG}, f"kubeadm {minor}x runs etcd {tags}, the mirror serves {mirror.ETCD_IMAGE_TAG}"
    assert json.loads(mirror.standin_images())["etcd"] == mirror.ETCD_IMAGE_TAG


def _fake_roots(tmp_path: Path) -> dict[str, Path]:
    roots = {}
    for package, binaries in (("etcd-server", ("etcd", "etcdutl")), ("etcd-client", ("etcdctl",))):
        root = tmp_path / f"{package}_3.5.30-2_amd64"
        (root / "usr/bin").mkdir(parents=True)
        for binary in binaries:
            (root / "usr/bin" / binary).write_bytes(f"#!/bin/sh\necho {binary}\n".encode())
        roots[package] = root
    libc = tmp_path / "libc6_2.43-7_amd64"
    (libc / "usr/lib/x86_64-linux-gnu").mkdir(parents=True)
    for name in ("libc.so.6", "ld-linux-x86-64.so.2"):
        (libc / "usr/lib/x86_64-linux-gnu" / name).write_bytes(name.encode())
    roots["libc6"] = libc
    return roots


def test_the_mirror_serves_the_etcd_image_the_way_a_registry_does(tmp_path: Path) -> None:
    """The pull side of the OCI distribution API, as containerd's resolver asks a mirror
    (``?ns=<registry>``): the manifest by tag and by digest with its media type and
    Docker-Content-Digest, the blobs by digest, a 404 with the spec's error code otherwise; the
    config's diff_id is the uncompressed layer's digest (containerd checks it on unpack)."""
    import gzip
    import io
    import tarfile
    from urllib.error import HTTPError

    digest = mirror.etcd_image(tmp_path, _fake_roots(tmp_path))
    content = mirror.MirrorContent(tmp_path, (), "", "", {})
    with mirror.MirrorServer(content) as server:
        base = f"{server.base_url('127.0.0.1')}/v2/etcd"

        def get(path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
            request = urllib.request.Request(f"{base}/{path}?ns=registry.k8s.io", method=method,
                                             headers={"Accept": mirror.MANIFEST_TYPE})
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    return response.status, dict(response.headers), response.read()
            except HTTPError as error:
                return error.code, dict(error.headers), error.read()

        status, headers, body = get(f"manifests/{mirror.ETCD_IMAGE_TAG}", "HEAD")
        assert status == 200 and body == b"" and headers["Docker-Content-Digest"] == digest, (status, headers)
        assert headers["Content-Type"] == mirror.MANIFEST_TYPE
        status, headers, body = get(f"manifests/{digest}")
        assert status == 200 and "sha256:" + hashlib.sha256(body).hexdigest() == digest
        manifest = json.loads(body)
        assert manifest["mediaType"] == mirror.MANIFEST_TYPE and int(headers["Content-Length"]) == len(body)
        status, _, config_bytes = get(f"blobs/{manifest['config']['digest']}")
        assert status == 200 and "sha256:" + hashlib.sha256(config_bytes).hexdigest() == manifest["config"]["digest"]
        (layer_ref,) = manifest["layers"]
        status, _, layer = get(f"blobs/{layer_ref['digest']}")
        assert status == 200 and len(layer) == layer_ref["size"] and layer_ref["mediaType"] == mirror.LAYER_TYPE
        config = json.loads(config_bytes)
        assert config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(gzip.decompress(layer)).hexdigest()]
        assert (config["os"], config["architecture"]) == ("linux", "amd64")
        with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
            names = set(tar.getnames())
        # Where the upstream image has them, and the dynamic loader where Debian's binaries look.
        assert {"usr/local/bin/etcd", "usr/local/bin/etcdctl", "usr/local/bin/etcdutl", "lib64",
                "usr/lib64/ld-linux-x86-64.so.2", "usr/lib/x86_64-linux-gnu/libc.so.6"} <= names, names
        status, _, body = get("manifests/3.0.0-0")
        assert status == 404 and json.loads(body)["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    assert server.stack_mirrors()["registries"] == {mirror.REGISTRY: [server.base_url()]}


def test_the_etcd_images_etcdctl_runs_in_a_root_of_its_own(tmp_path: Path) -> None:
    """Debian's dynamically linked etcdctl runs from the image's layer alone (chroot): the
    layer carries the loader and glibc it needs."""
    import io
    import tarfile

    from tools.debian_packages import cached_package

    roots = {name: cached_package(name) for name in ("etcd-server", "etcd-client", "libc6")}
    missing = [name for name, root in roots.items() if root is None]
    if missing or os.geteuid() != 0 or shutil.which("chroot") is None:
        pytest.skip(f"needs root, chroot and Debian's {', '.join(roots)} in the cache (missing: {missing}); "
                    "`python -m tools.debian_packages etcd-server etcd-client libc6`")
    layer = mirror.etcd_layer({name: root for name, root in roots.items() if root is not None})
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        tar.extractall(tmp_path / "root", filter="tar")
    ran = subprocess.run(["chroot", str(tmp_path / "root"), "/usr/local/bin/etcdctl", "version"],
                         capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0 and ran.stdout.startswith("etcdctl version: 3."), ran.stdout + ran.stderr


#: A containerd as ctr shows it: the kubelet's running etcd, an exited older etcd, the API server's
#: container (another name) and a container that is not the kubelet's (no CRI labels).
FAKE_CTR = r'''#!/usr/bin/env python3
import json, os, sys
args = sys.argv[1:]
while args and args[0] in ("--address", "--namespace"):
    args = args[2:]
with open(os.environ["FAKE_CTR_LOG"], "a") as log:
    log.write(json.dumps(args) + "\n")
pod = {"io.kubernetes.pod.namespace": "kube-system", "io.kubernetes.pod.name": "etcd-cp"}
containers = {
    "a1" * 32: {"io.kubernetes.container.name": "etcd", **pod},
    "b2" * 32: {"io.kubernetes.container.name": "etcd", **pod},
    "c3" * 32: {"io.kubernetes.container.name": "kube-apiserver", "io.kubernetes.pod.namespace": "kube-system"},
    "d4" * 32: {},
}
if args[:2] == ["containers", "list"]:
    print("\n".join(containers))
elif args[:2] == ["tasks", "list"]:
    print("TASK    PID    STATUS")
    print("a1" * 32 + "    4242    RUNNING")
    print("b2" * 32 + "    0    STOPPED")
    print("c3" * 32 + "    4343    RUNNING")
    print("d4" * 32 + "    4444    RUNNING")
elif args[:2] == ["containers", "info"]:
    print(json.dumps({"ID": args[2], "Labels": containers[args[2]], "Image": "registry.k8s.io/etcd:3.6.8-0"}))
elif args[:2] == ["tasks", "exec"]:
    print("exec " + " ".join(args[2:]))
    print("stdin=" + sys.stdin.read())
    sys.exit(int(os.environ.get("FAKE_EXEC_RC", "0")))
else:
    sys.exit(f"fake ctr: unexpected {args}")
'''


def _crictl(tmp_path: Path, *args: str, rc: int = 0, stdin: str = "") -> tuple[subprocess.CompletedProcess[str], list[list[str]]]:
    """The crictl stand-in against FAKE_CTR (first on PATH); its result and the ctr calls."""
    bin_dir = tmp_path / "bin"
    if not bin_dir.exists():
        bin_dir.mkdir()
        (bin_dir / "ctr").write_text(FAKE_CTR)
        (bin_dir / "ctr").chmod(0o755)
        (bin_dir / "crictl").write_text(STANDIN.read_text())
    log = tmp_path / "ctr.log"
    log.write_text("")
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_CTR_LOG": str(log),
           "FAKE_EXEC_RC": str(rc), "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run([sys.executable, str(bin_dir / "crictl"), "--runtime-endpoint", "unix:///fake.sock", *args],
                            capture_output=True, text=True, env=env, timeout=60, input=stdin)
    return result, [json.loads(line) for line in log.read_text().splitlines()]


def test_the_crictl_standin_finds_the_running_etcd_as_etcd_snapshot_sh_asks(tmp_path: Path) -> None:
    # The query of etcd-snapshot.sh (and certs-renew.sh): cri-tools' ps filters, --state case-blind.
    found, _ = _crictl(tmp_path, "ps", "--name", "^etcd$", "--label", "io.kubernetes.pod.namespace=kube-system",
                       "--state", "Running", "-q")
    assert found.returncode == 0 and found.stdout.split() == ["a1" * 32], found.stdout + found.stderr
    everything, _ = _crictl(tmp_path, "ps", "-a", "-q")
    assert everything.stdout.split() == ["a1" * 32, "b2" * 32, "c3" * 32], "ps -a lists only the kubelet's containers"
    exited, _ = _crictl(tmp_path, "ps", "--state", "exited", "-q", "--label", "io.kubernetes.pod.name=etcd-cp")
    assert exited.stdout.split() == ["b2" * 32]
    # cri-tools cmd/crictl/container.go ListContainers: the states it knows, its message.
    bad, _ = _crictl(tmp_path, "ps", "--state", "Up")
    assert bad.returncode != 0 and "--state should be one of created, running, exited or unknown" in bad.stderr
    unknown, _ = _crictl(tmp_path, "ps", "--pod", "x")
    assert unknown.returncode != 0 and "flag provided but not defined: -pod" in unknown.stderr, unknown.stderr


def test_the_crictl_standin_execs_in_the_container_and_passes_its_exit_code(tmp_path: Path) -> None:
    command = ["etcdctl", "--endpoints=https://127.0.0.1:2379", "--cacert=/etc/kubernetes/pki/etcd/ca.crt",
               "snapshot", "save", "/var/lib/etcd/kubeadm-cluster-snapshot.db"]
    ran, calls = _crictl(tmp_path, "exec", "a1a1a1", *command, rc=3)
    assert ran.returncode == 3, f"the command's exit code is not passed through: {ran.returncode}\n{ran.stderr}"
    (execed,) = [c for c in calls if c[:2] == ["tasks", "exec"]]
    # etcdctl's own flags reach it untouched, in the container the prefix names.
    assert execed[2] == "--exec-id" and execed[3].startswith("crictl-") and execed[4:] == ["a1" * 32, *command], execed
    # Without -i, no stdin (the CRI attaches none): a script piped to `bash -s` is not eaten.
    piped, _ = _crictl(tmp_path, "exec", "a1" * 32, "etcdctl", "version", stdin="rest of the script")
    assert "stdin=\n" in piped.stdout, f"crictl exec without -i passed its stdin on:\n{piped.stdout}"
    interactive, _ = _crictl(tmp_path, "exec", "-i", "a1" * 32, "etcdctl", "version", stdin="input")
    assert "stdin=input" in interactive.stdout, interactive.stdout
    stopped, calls = _crictl(tmp_path, "exec", "b2" * 32, "etcdctl", "version")
    assert stopped.returncode != 0 and "CONTAINER_EXITED" in stopped.stderr
    assert not [c for c in calls if c[:2] == ["tasks", "exec"]]
    for args, message in ((["exec", "-t", "a1" * 32, "sh"], "TTY"), (["exec", "a1" * 32], "needs a container ID and a command"),
                          (["exec", "zz", "sh"], "not a container ID"), (["logs", "a1"], "does not implement 'logs'"),
                          (["--bogus", "ps"], "flag provided but not defined: -bogus")):
        refused, _ = _crictl(tmp_path, *args)
        assert refused.returncode != 0 and message in refused.stderr, (args, refused.stderr)


def _kubeadm_ns(tmp_path: Path) -> dict[str, Any]:
    """The stand-in's functions with its node paths moved under ``tmp_path``."""
    namespace = _standin_namespace()
    for name, path in (("KUBE", "etc/kubernetes"), ("STATE", "var/lib/kc-standin"), ("KUBELET_DIR", "var/lib/kubelet"),
                       ("ETCD_DATA_DIR", "var/lib/etcd"), ("LOGS", "log")):
        namespace[name] = tmp_path / path
    namespace["PKI"] = tmp_path / "etc/kubernetes/pki"
    namespace["MANIFESTS"] = tmp_path / "etc/kubernetes/manifests"
    namespace["IMAGES_FILE"] = tmp_path / "images.json"
    (tmp_path / "images.json").write_bytes(mirror.standin_images())
    return namespace


def test_the_standins_etcd_manifest_is_what_the_node_scripts_and_the_kubelet_read(tmp_path: Path) -> None:
    ns = _kubeadm_ns(tmp_path)
    ns["ETCD_DATA_DIR"] = Path("/var/lib/etcd")  # kubeadm's default, as on a node (nothing is written there)
    manifest = tmp_path / "etcd.yaml"
    manifest.write_text(ns["etcd_manifest"]({}, "192.168.77.10", "rehearsal-cp-0"))  # type: ignore[operator]
    text = manifest.read_text()
    # etcd-snapshot.sh's reading of the manifest (kc_snapshot_data_dir, the image line).
    data_dir = subprocess.run(["sed", "-n", r"s/^[[:space:]]*- --data-dir=\(.*\)$/\1/p", str(manifest)],
                              capture_output=True, text=True).stdout.split()
    image = subprocess.run(["sed", "-n", r"s/^[[:space:]]*image:[[:space:]]*\([^[:space:]]*\).*/\1/p", str(manifest)],
                           capture_output=True, text=True).stdout.split()
    assert data_dir == ["/var/lib/etcd"] and image == [mirror.ETCD_IMAGE], text
    spec = ns["pod_spec"](manifest, "rehearsal-cp-0")  # type: ignore[operator]
    assert spec["pod"] == "etcd-rehearsal-cp-0" and spec["namespace"] == "kube-system" and spec["host_network"]
    assert sorted(m[:2] for m in spec["mounts"]) == [("/etc/kubernetes/pki/etcd", "/etc/kubernetes/pki/etcd"),
                                                      ("/var/lib/etcd", "/var/lib/etcd")]
    flags = [a.split("=", 1)[0] for a in spec["command"][1:]]
    for flag in ("--client-cert-auth", "--trusted-ca-file", "--cert-file", "--key-file", "--peer-client-cert-auth"):
        assert flag in flags, f"the etcd pod runs without {flag}"
    assert "--listen-client-urls=https://127.0.0.1:2379,https://192.168.77.10:2379" in spec["command"]
    assert "--initial-cluster=rehearsal-cp-0=https://192.168.77.10:2380" in spec["command"]
    etcd = shutil.which("etcd") or next((str(p) for p in Path.home().glob(".cache/kubeadm-cluster/debian/etcd-server_*/usr/bin/etcd")), None)
    if etcd:  # every flag is one the etcd the rehearsal runs knows
        known = subprocess.run([etcd, "--help"], capture_output=True, text=True).stdout
        assert not [f for f in flags if f"  {f} " not in known and f"  {f}\n" not in known], known[:200]
    listed = _kubeadm_images(tmp_path, ns)
    assert listed[-1] == mirror.ETCD_IMAGE and f"registry.k8s.io/kube-apiserver:v{versions.KUBERNETES_DEFAULT_VERSION}" in listed


def _kubeadm_images(tmp_path: Path, ns: dict[str, Any]) -> list[str]:
    """`kubeadm config images list --config <the program's init config>` from the stand-in."""
    config = tmp_path / "kubeadm.yaml"
    config.write_text(_init_config())
    script = tmp_path / "kubeadm"
    script.write_text(STANDIN.read_text().replace('VERSION = "@VERSION@"', 'VERSION = "1.36.4-1.1"').replace(
        'TYPES_FILE = Path("/usr/lib/kc-standin/kubeadm-v1beta4.json")', f'TYPES_FILE = Path("{tmp_path}/types.json")').replace(
        'IMAGES_FILE = Path("/usr/lib/kc-standin/images.json")', f'IMAGES_FILE = Path("{ns["IMAGES_FILE"]}")'))
    (tmp_path / "types.json").write_text(json.dumps(mirror.kubeadm_types()))
    listed = subprocess.run([sys.executable, str(script), "config", "images", "list", "--config", str(config)],
                            capture_output=True, text=True, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert listed.returncode == 0, listed.stderr
    return listed.stdout.split()


def test_the_standins_reset_stops_the_pods_empties_etcds_data_and_keeps_the_kept_config(tmp_path: Path) -> None:
    """kubeadm reset (cmd/kubeadm/app/cmd/phases/reset: removeContainers, the etcd data dir of
    the etcd manifest, cleanupnode.go's kubeconfig list): kubeadm-init.sh's kept
    kubeadm-config.yaml stays (etcd-restore.sh's kubeadm init reads it after its reset)."""
    ns = _kubeadm_ns(tmp_path)
    kube = tmp_path / "etc/kubernetes"
    (kube / "manifests").mkdir(parents=True)
    data = tmp_path / "var/lib/etcd"
    (data / "member/snap").mkdir(parents=True)
    (data / "member/snap/db").write_text("etcd data")
    (kube / "manifests/etcd.yaml").write_text(
        ns["etcd_manifest"]({"etcd": {"local": {"dataDir": str(data)}}}, "10.0.0.2", "cp"))  # type: ignore[operator]
    for name in ("admin.conf", "kubelet.conf", "kubeadm-config.yaml"):
        (kube / name).write_text(name)
    removed: list[str] = []
    ns["runtime_containers"] = lambda endpoint: [
        {"id": "a1" * 32, "labels": {"io.kubernetes.pod.namespace": "kube-system", "io.kubernetes.container.name": "etcd"}},
        {"id": "d4" * 32, "labels": {}}]
    ns["remove_container"] = lambda endpoint, cid: removed.append(cid)
    ns["run"] = lambda command, **_: subprocess.CompletedProcess(command, 0, "", "")
    ns["kubeadm_reset"](["-f"])  # type: ignore[operator]
    assert removed == ["a1" * 32], "reset must stop the kubelet's containers, and only those"
    assert data.is_dir() and not list(data.iterdir()), "the etcd data directory was not emptied"
    assert not (kube / "admin.conf").exists() and not (kube / "manifests/etcd.yaml").exists()
    assert (kube / "kubeadm-config.yaml").read_text() == "kubeadm-config.yaml", "kubeadm reset keeps other files"


def test_the_standin_kubelet_runs_the_etcd_pod_and_replaces_or_stops_it_with_its_manifest(tmp_path: Path) -> None:
    ns = _kubeadm_ns(tmp_path)
    manifests = tmp_path / "etc/kubernetes/manifests"
    manifests.mkdir(parents=True)
    running: dict[str, dict[str, Any]] = {}
    calls: list[str] = []

    def containers(endpoint: str) -> list[dict[str, Any]]:
        calls.append("list")
        return list(running.values())

    def start(endpoint: str, spec: dict[str, Any]) -> str:
        cid = f"{len(calls):02d}" * 32
        calls.append(f"start {spec['image']}")
        running[cid] = {"id": cid, "pid": os.getpid(), "state": "running",
                        "labels": {"io.kubernetes.pod.name": spec["pod"], "kc-standin.spec-hash": spec["hash"]}}
        return cid

    def remove(endpoint: str, cid: str) -> None:
        calls.append("remove")
        running.pop(cid)

    ns.update(runtime_containers=containers, start_pod_container=start, remove_container=remove)
    sync, known = ns["sync_container_pods"], {}
    assert callable(sync)
    sync("unix:///x", "cp", known)
    assert calls == [], "no manifest, no container: no runtime call"
    (manifests / "etcd.yaml").write_text(ns["etcd_manifest"]({}, "10.0.0.2", "cp"))  # type: ignore[operator]
    sync("unix:///x", "cp", known)
    assert [c for c in calls if c != "list"] == [f"start {mirror.ETCD_IMAGE}"] and len(running) == 1
    calls.clear()
    sync("unix:///x", "cp", known)
    assert calls == [], "a running pod as last seen costs no runtime call"
    # A kubelet restart (nothing known) finds the running container and keeps it.
    sync("unix:///x", "cp", {})
    assert calls == ["list"]
    calls.clear()
    (manifests / "etcd.yaml").write_text(ns["etcd_manifest"]({"etcd": {"local": {"imageTag": "3.6.9-0"}}}, "10.0.0.2", "cp"))  # type: ignore[operator]
    sync("unix:///x", "cp", known)
    assert [c for c in calls if c != "list"] == ["remove", "start registry.k8s.io/etcd:3.6.9-0"], calls
    (manifests / "etcd.yaml").unlink()
    sync("unix:///x", "cp", known)
    assert not running and known["etcd"] == {}, "a removed manifest's container still runs"


def test_only_the_tests_checks_share_an_ssh_connection_the_programs_steps_never_do() -> None:
    # The checks on a VM reuse one connection (OpenSSH ControlMaster: a handshake costs 1.3 s under
    # software emulation); the program's steps open their own, as pulumi-command does, through the
    # jump host. The control socket's path fits a Unix socket's 108 bytes (%C is 40 hex digits).
    checks, _ = remote.destination(remote.direct(2222, shared=True))
    assert "ControlMaster=auto" in checks and f"ControlPersist={remote.MUX_PERSIST}" in checks, checks
    control = next(option for option in checks if option.startswith("ControlPath="))
    assert len(control.removeprefix("ControlPath=").replace("%C", "c" * 40).encode()) < 108, control
    assert os.stat(remote.mux_directory()).st_mode & 0o777 == 0o700
    step, _ = remote.destination(remote.via(2222, "192.168.77.11"))
    plain, _ = remote.destination(remote.direct(2222))
    for command in (step, plain):
        assert not [option for option in command if option.startswith("Control")], command
    # A program step's connection as the program registers it carries no such field.
    connections = [r.input("connection") for r in program.plan(_config()).of_type(program.COMMAND_TYPE)]
    assert connections and not [c for c in connections if "shared" in c], "a step asked for a shared connection"


def test_a_local_vms_replacement_is_refused_by_the_live_engine_not_rehearsed_in_the_wrong_order(tmp_path: Path) -> None:
    """A local VM is deleteBeforeReplace (its successor takes its name, ports and directory): Pulumi
    deletes it before the create. The engine runs a replacement's delete after the run, so the new
    VM's create would meet the old VM; it refuses the run instead, before any command."""
    from tools.rehearsal import localstack

    stack = localstack.STACK
    created = program.run_live(_local_config(tmp_path), stack=stack, now=MOCK_NOW, execute=FakeNodes(),
                               execute_local=FakeLocal())
    assert created.error is None, created.explain()
    bigger = _local_config(tmp_path)
    bigger["kubeadm-cluster:workerPools"] = [{**bigger["kubeadm-cluster:workerPools"][0], "diskSizeGb": 40}]
    local = FakeLocal()
    replaced = program.run_live(bigger, stack=stack, now=MOCK_NOW, execute=FakeNodes(), execute_local=local,
                                state=created.state)
    assert replaced.error is not None and "deleteBeforeReplace" in replaced.error, replaced.explain()
    assert local.calls == [], f"commands ran for a replacement the engine cannot order: {local.calls}"


def test_a_vm_whose_kernel_panicked_while_booting_is_booted_once_more_and_a_second_panic_fails(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A CI run's VM died 4 s into its boot with "Oops: int3" in sched_clock_cpu: QEMU's
    # multi-threaded emulation raced the guest's text patching. One cold restart; never more,
    # and any other boot failure is not retried.
    from tools.rehearsal import vms as vms_module

    panic = vms_module.VMError("node-1 failed to boot ('Kernel panic' on its console):\nOops: int3")
    image = vms_module.BaseImage.__new__(vms_module.BaseImage)
    group = vms_module.VMGroup(image=image, count=1, directory=tmp_path)
    vm = group.vms[0]
    for outcomes, expected_restarts, fails in (([panic, None], 1, False), ([panic, panic], 1, True),
                                               ([vms_module.VMError("node-0 did not answer SSH"), None], 0, True)):
        calls: list[str] = []
        left = list(outcomes)

        def wait_ssh(machine: vms_module.VM, timeout: float = 300, kernel_timeout: float = 90) -> None:
            calls.append("wait")
            outcome = left.pop(0)
            if outcome is not None:
                raise outcome

        monkeypatch.setattr(group, "wait_ssh", wait_ssh)
        monkeypatch.setattr(group, "stop_vm", lambda machine, grace=60: calls.append("stop"))
        monkeypatch.setattr(group, "_start_vm", lambda machine: calls.append("start"))
        group.restarts.clear()
        if fails:
            with pytest.raises(vms_module.VMError):
                group.wait_booted(vm)
        else:
            group.wait_booted(vm)
        assert len(group.restarts) == expected_restarts, (outcomes, calls)
        assert calls == (["wait", "stop", "start", "wait"] if expected_restarts else ["wait"]), calls
