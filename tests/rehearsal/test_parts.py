"""The rehearsal's parts that need no VM (fast; run with the rest of the suite).

The mirror's apt repository verifies the way apt verifies it, the runc release file carries and
runs its binary, a slow InRelease trickles in, the kubeadm stand-in accepts the program's own
kubeadm configs and rejects an unknown field, its bootstrap-token signature and CA pin are the
ones kubeadm computes, and the API stand-in filters by field selector. The live engine runs what
pulumi-command runs (create, update or create again, replace on triggers, delete in pulumi's
antichains) for the real program, with a fake executor instead of VMs: the upgrade to the next
patch runs its steps in the program's order, a removed worker is drained from the control plane
before it is reset, and a failed delete keeps what it depends on.
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
from pathlib import Path

import pytest
import yaml

from collections.abc import Mapping
from typing import Any

from components import bootstrap, versions
from components.bootstrap.scripts import script
from tests.conftest import stack_config
from tools.mock_engine import FAKE_ADMIN_CONF, FAKE_CA_HASH, fake_token, run_program
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
    exports = stdin.split(script("lib.sh"))[0]  # "set -euo pipefail" and the step's exports
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
        if command == inputs.get("create") and "kubeadm token create" in stdin:
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
    created = program.run_live(_config(), execute=nodes)
    assert created.error is None, created.explain()
    upgrade_steps = {n for n in created.state if "upgrade" in n or n.endswith("version-check")}
    assert upgrade_steps and not upgrade_steps & created.ran(), "an upgrade step ran on create"
    again = program.run_live(_config(), execute=nodes, state=created.state)
    assert again.error is None and again.steps == [], f"unchanged inputs ran steps: {again.explain()}"
    assert set(again.unchanged) == set(created.state)

    target = mirror.next_patch(versions.KUBERNETES_DEFAULT_VERSION)
    upgrade = program.run_live(_config(kubernetesVersion=target, upgrade={"workerBatchSize": 2}), execute=nodes,
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
    created = program.run_live(_config(), execute=nodes)
    removed = program.run_live(_config(workers=1), execute=nodes, state=created.state)
    assert removed.error is None, removed.explain()
    gone = "rehearsal-general-1"
    assert [(s.name, s.op) for s in removed.steps] == [(f"{gone}-membership", "delete"), (f"{gone}-join", "delete")]
    membership, join = removed.steps
    assert membership.target == IPS[0] and "remove-node" in membership.command and f"NODE_NAME={gone}" in membership.command
    assert join.target == IPS[2] and join.command == bootstrap.RESET_ON_DELETE
    assert not [n for n in removed.state if n.startswith(gone)], "the removed node's resources stay in the state"
    assert set(removed.unchanged) == {n for n in created.state if not n.startswith(gone)}


def test_a_failed_delete_keeps_itself_and_what_it_depends_on() -> None:
    created = program.run_live(_config(), execute=FakeNodes())
    gone = "rehearsal-general-1"
    removed = program.run_live(_config(workers=1), execute=FakeNodes(fail={f"{gone}-membership"}), state=created.state)
    assert removed.error is not None and [(s.name, s.op) for s in removed.steps] == [(f"{gone}-membership", "delete")]
    assert {f"{gone}-membership", f"{gone}-join", f"{gone}-prepare"} <= set(removed.state)


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
