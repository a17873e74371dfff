"""Day two faults (issue 12): a replaced VM, expired join credentials, a failed upgrade, a machine
type change, SSH fan-out through the jump host, and steps that must end.

Two kinds of evidence. The program runs twice under the mock engine (tools/mock_engine.py) and
``_ops`` says what the engine and pulumi-command 1.2.1 do with the difference: a resource whose
``triggers`` changed is replaced (its create runs again; the Python SDK registers every command
with ``replace_on_changes=["triggers[*]"]``), one whose inputs changed is updated (its ``update``
runs, else its ``create``), a new one is created, a gone one deleted. And the node scripts run in
the sandbox of tests/test_scripts.py, with stubs that behave like the real tools where it matters
here: a kubeadm whose tokens and uploaded certificates expire on a clock, a kubectl with Nodes and
annotations, an sshd and an ssh.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import shlex
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pulumi_command
import pytest

from components.bootstrap import (
    STEP_TIMEOUTS,
    TOKEN_REFRESH_MINUTES,
    WORKER_TOKEN_TTL,
    join_token,
    step_timeout,
    token_refresh_window,
)
from components.bootstrap import kubeadm_config
from components.bootstrap.scripts import render_bundle, script
from components.machines.gcp import SSHD_MAX_STARTUPS
from components.nodes import NodeSpec
from tests.conftest import expanded, stack_config
from tests.test_scripts import SCRIPTS, Sandbox, _explain, sandbox  # noqa: F401  (sandbox: fixture)
from tools import mock_engine
from tools.mock_engine import MOCK_NOW, Plan, Registered, run_program

COMMAND = "command:remote:Command"
INSTANCE = "gcp:compute/instance:Instance"
MEMBERSHIP = "gcp:compute/instanceGroupMembership:InstanceGroupMembership"
POOL = {"name": "general", "count": 3, "storageDiskSizeGb": 50}


# --- the mock runs ------------------------------------------------------------------------------


@pytest.fixture
def options(monkeypatch: pytest.MonkeyPatch) -> dict[str, dict[str, bool]]:
    """Resource options the recording monitor does not keep: name -> {deleteBeforeReplace}."""
    seen: dict[str, dict[str, bool]] = {}
    original = mock_engine.RecordingMonitor.RegisterResource

    def register(self: Any, request: Any) -> Any:
        seen[request.name] = {"deleteBeforeReplace": bool(request.deleteBeforeReplace)}
        return original(self, request)

    monkeypatch.setattr(mock_engine.RecordingMonitor, "RegisterResource", register)
    return seen


def _run(config: dict[str, Any], *, now: datetime = MOCK_NOW, recreated: tuple[str, ...] = ()) -> Plan:
    """The program under mocks; the VMs named in ``recreated`` are new ones (another GCE id)."""
    original = mock_engine.ClusterMocks.new_resource

    def new_resource(self: Any, args: Any) -> Any:
        resource_id, state = original(self, args)
        if args.typ == INSTANCE and args.name in recreated:
            state["instanceId"] = str(int(state["instanceId"]) + 1)
        return resource_id, state

    mock_engine.ClusterMocks.new_resource = new_resource  # type: ignore[method-assign]
    try:
        plan = run_program(config, stack="dev", now=now)
    finally:
        mock_engine.ClusterMocks.new_resource = original  # type: ignore[method-assign]
    assert plan.error is None, plan.error
    return plan


def _ops(before: Plan, after: Plan) -> dict[str, str]:
    """What `pulumi up` does to go from ``before`` to ``after`` (see the module docstring)."""
    a, b = before.by_urn(), after.by_urn()
    ops: dict[str, str] = {}
    for urn in a.keys() | b.keys():
        if urn not in b:
            ops[a[urn].name] = "delete"
        elif urn not in a:
            ops[b[urn].name] = "create"
        elif a[urn].inputs != b[urn].inputs:
            replaced = a[urn].type == COMMAND and a[urn].inputs.get("triggers") != b[urn].inputs.get("triggers")
            ops[a[urn].name] = "replace" if replaced else "update"
    return ops


def _runs(plan: Plan, ops: dict[str, str]) -> dict[str, str]:
    """Of ``ops``, the remote commands that run something (a create/update command, or a delete)."""
    commands = {r.name: r for r in plan.of_type(COMMAND)}
    running = {}
    for name, op in ops.items():
        command = commands.get(name)
        if command is None:
            continue
        if op in ("create", "replace") and command.input("create"):
            running[name] = op
        elif op == "update" and (command.input("update") or command.input("create")):
            running[name] = op
    return running


def _env(command: Registered, field: str = "stdin") -> dict[str, str]:
    """The ``export NAME=value`` lines of a step's bundle."""
    text = str(command.input(field))
    if field == "delete":
        text = shlex.split(text)[-1]  # sudo bash -c '<bundle>'
    exports = text.split("\n#!/usr/bin/env bash", 1)[0].split("\n# kc-script", 1)[0].split("\n# kc-run", 1)[0]
    tokens = shlex.split(exports)
    return dict(t.split("=", 1) for i, t in enumerate(tokens) if "=" in t and i and tokens[i - 1] == "export")


def _depends(plan: Plan, resource: Registered, other: Registered) -> bool:
    return other.urn in plan.ancestors_depend(resource)


def _property_depends(resource: Registered, other: Registered, key: str) -> bool:
    return other.urn in resource.property_dependencies.get(key, [])


# --- 1. a replaced VM -----------------------------------------------------------------------------


def test_a_recreated_vm_runs_its_nodes_steps_again_and_nothing_else() -> None:
    """The same node name, a new VM (GCE gives it another id: a boot disk or image change, or one
    deleted by hand and recreated by `pulumi up --refresh`): its wait, prep, old Node's removal,
    token and join run again, on that node alone. Before, the steps' inputs did not change (the
    name and often the address are the same), so the new VM was never prepared or joined."""
    config = stack_config(workerPools=[POOL])
    before, after = _run(config), _run(config, recreated=("dev-general-1",))
    ops = _ops(before, after)
    running = _runs(after, ops)
    assert running == {
        "dev-general-1-reachable": "replace",
        "dev-general-1-prepare": "replace",
        "dev-general-1-join-token": "replace",
        "dev-general-1-join": "replace",
    }, running
    # The old machine's Node object goes first: the -identity step is replaced, its delete (the
    # removal script) runs before its replacement is created (delete-before-replace, below).
    assert ops["dev-general-1-identity"] == "replace"
    assert {name for name in ops if not name.startswith("dev-general-1-")} == set(), ops


def test_the_old_machines_node_is_removed_before_the_new_machine_joins(options: dict[str, dict[str, bool]]) -> None:
    plan = _run(stack_config(controlPlane={"count": 3}, workerPools=[POOL]))
    commands = {r.name: r for r in plan.of_type(COMMAND)}
    for node, script_names in (("dev-general-0", ["remove-node.sh"]), ("dev-cp-1", ["etcd-snapshot.sh", "remove-control-plane.sh"])):
        identity, vm = commands[f"{node}-identity"], plan.named(node)
        assert identity.input("create") is None, "nothing runs when the machine is first seen"
        delete = expanded(identity.input("delete"))
        for name in script_names:
            assert f"# kc-script {name} " in delete, f"{node}: the old machine's removal must run {name}"
        assert _env(identity, "delete")["NODE_NAME"] == node
        assert identity.input("triggers") == [vm.outputs["instanceId"]], "keyed on the VM's own id"
        assert _property_depends(identity, vm, "triggers"), (
            "the trigger must come from the VM: Pulumi deletes, before a delete-before-replace VM, what "
            "depends on it through a property that forces a replacement (pulumi/pulumi "
            "pkg/resource/deploy/step_generator.go, calculateDependentReplacements)")
        assert options[f"{node}-identity"]["deleteBeforeReplace"], (
            f"{node}: the old Node must be removed before the new one joins, not after (a create-before-"
            "delete replacement runs the old delete at the end of `up`: it would remove the new node)")
        assert identity.input("connection")["host"] == commands["dev-cp-0-init"].input("connection")["host"]
        for step in ("join-token", "join"):
            assert _depends(plan, commands[f"{node}-{step}"], identity), f"{node}-{step} must wait for the removal"
        assert options[node]["deleteBeforeReplace"], f"{node}: a VM of a fixed name is replaced delete first"
        for step in ("prepare", "join-token", "join"):
            assert _property_depends(commands[f"{node}-{step}"], vm, "triggers"), f"{node}-{step} is not keyed on the VM"


def test_a_replaced_control_plane_is_back_in_the_load_balancers_instance_group() -> None:
    """An unmanaged instance group loses a deleted VM, and a VM recreated under the same name has
    the same self link: a group listing its VMs sees no change and never adds it back until a
    refresh (hashicorp/terraform-provider-google #4705, #18800). Each control plane is in the group
    through an InstanceGroupMembership instead, whose ``instance`` comes from the VM: the provider
    forces a new membership when it changes (resource_compute_instance_group_membership.go:
    ``instance`` is ForceNew), so the engine deletes it before the VM's delete-before-replace
    replacement and creates it again for the new VM; a VM deleted by hand is missing at the next
    refresh, and so is its membership (its Read lists the group), which `up` then creates."""
    plan = _run(stack_config(controlPlane={"count": 3}))
    group = plan.named("dev-api-control-planes")
    assert group.input("instances") is None, "the group must not list its VMs (it would compete with the memberships)"
    members = {m.name: m for m in plan.of_type(MEMBERSHIP)}
    assert sorted(members) == [f"dev-api-member-dev-cp-{i}" for i in range(3)], sorted(members)
    for i in range(3):
        member, vm = members[f"dev-api-member-dev-cp-{i}"], plan.named(f"dev-cp-{i}")
        assert _property_depends(member, vm, "instance"), f"dev-cp-{i}'s membership is not tied to the VM"
        assert _property_depends(member, group, "instanceGroup")
    for backend in plan.of_type("gcp:compute/regionBackendService:RegionBackendService"):
        assert _property_depends(backend, group, "backends"), "the load balancers' backend is the group"


def test_own_servers_have_no_identity_and_keep_their_steps() -> None:
    """Nothing at preview tells a reinstalled server from the same one at the same address: own
    servers get no identity, no -identity step and no identity triggers (a reinstalled server is
    re-joined with `pulumi up --replace`, see the README). Their join keeps `kubeadm reset` as its
    delete, run after the drain (the membership is deleted first, it depends on the join)."""
    config = {
        "adminCidrs": ["203.0.113.7/32"],
        "provider": "existing",
        "sshPrivateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\nX\n-----END OPENSSH PRIVATE KEY-----\n",
        "existingHosts": {"controlPlane": [{"address": "192.168.1.10"}], "workers": [{"address": "192.168.1.20"}]},
        "rook": {"enabled": False},
    }
    plan = run_program(config, stack="dev", secret_keys=["kubeadm-cluster:sshPrivateKey"])
    assert plan.error is None, plan.error
    commands = {r.name: r for r in plan.of_type(COMMAND)}
    assert not [name for name in commands if name.endswith(("-identity", "-reachable", "-resize-drain", "-sshd"))]
    for name in ("dev-general-0-prepare", "dev-general-0-join"):
        assert commands[name].input("triggers") is None, name
    assert commands["dev-general-0-join-token"].input("triggers") == [token_refresh_window(MOCK_NOW)]
    assert commands["dev-general-0-join"].input("delete") == "sudo kubeadm reset --force >&2 || true"
    assert _depends(plan, commands["dev-general-0-membership"], commands["dev-general-0-join"])


def test_memberships_never_get_triggers() -> None:
    """A membership's delete drains and removes its node. Stacks made before -identity existed have
    memberships without triggers: giving them triggers would replace them all at the next `up`,
    running every delete (with the old inputs), i.e. draining and deleting every node."""
    plan = _run(stack_config(controlPlane={"count": 3}, workerPools=[POOL]))
    for command in plan.of_type(COMMAND):
        if command.name.endswith("-membership"):
            assert command.input("triggers") is None, f"{command.name} must never be replaced"


# --- 2. expiry ----------------------------------------------------------------------------------


def test_a_join_token_is_made_anew_in_each_half_hour_and_the_join_reads_the_same() -> None:
    """A join retried by a later `up` (its first try failed; the token lasts 1 h, the uploaded
    certificates 2 h) needs them valid again: the first `up` of each half hour replaces each token
    step (mint-token.sh makes the node's token anew, and a control plane's certificates, unless the
    node is in the cluster and Ready). The token is the node's own (an HMAC of its name under a
    secret seed), so the join's inputs stay the same: a joined node is not joined again."""
    config = stack_config(controlPlane={"count": 3}, workerPools=[POOL])
    first = _run(config)
    same = _run(config, now=MOCK_NOW + timedelta(minutes=TOKEN_REFRESH_MINUTES - 1))
    assert _ops(first, same) == {}, "a run in the same half hour changed something"
    later = _run(config, now=MOCK_NOW + timedelta(hours=2, minutes=5))
    ops = _ops(first, later)
    tokens = sorted(r.name for r in first.of_type(COMMAND) if r.name.endswith("-join-token"))
    assert ops == {name: "replace" for name in tokens}, ops
    for name in tokens:
        node = name.removesuffix("-join-token")
        a, b = first.named(name), later.named(name)
        assert a.input("stdin") == b.input("stdin"), f"{name}: the token it makes must not change"
        assert "stdin" in b.secret_inputs and "stdout" in b.additional_secret_outputs
        assert first.named(f"{node}-join").inputs == later.named(f"{node}-join").inputs
    assert first.named("dev-cp-1-join-token").input("triggers")[-1] == token_refresh_window(MOCK_NOW)


def test_the_refresh_comes_before_the_token_and_the_certificates_expire() -> None:
    """Refreshed in every window of TOKEN_REFRESH_MINUTES: a join retried in the window of an
    earlier refresh finds the token (WORKER_TOKEN_TTL) and the certificates (kubeadm's
    DefaultCertTokenDuration, 2 h: kubernetes cmd/kubeadm/app/constants/constants.go) no older
    than the window."""
    ttl = re.fullmatch(r"(\d+)h", WORKER_TOKEN_TTL)
    assert ttl, WORKER_TOKEN_TTL
    assert TOKEN_REFRESH_MINUTES < int(ttl.group(1)) * 60 < 2 * 60 + 1
    windows = {token_refresh_window(MOCK_NOW + timedelta(minutes=m)) for m in range(0, 24 * 60)}
    assert len(windows) == 24 * 60 // TOKEN_REFRESH_MINUTES
    assert token_refresh_window(datetime(2026, 11, 2, 12, 29, tzinfo=timezone.utc)) == "2026-11-02T12:00Z"
    assert token_refresh_window(datetime(2026, 11, 2, 12, 30, tzinfo=timezone.utc)) == "2026-11-02T12:30Z"


def test_each_node_gets_its_own_token_from_the_secret_seed() -> None:
    plan = _run(stack_config(workerPools=[POOL]))
    seed = plan.named("dev-join-token-seed")
    assert "hex" in seed.additional_secret_outputs and seed.input("length") == 32
    tokens = {}
    for i in range(3):
        command = plan.named(f"dev-general-{i}-join-token")
        tokens[i] = _env(command)["TOKEN"]
        assert tokens[i] == join_token(seed.outputs["hex"], f"dev-general-{i}")
        assert re.fullmatch(r"[a-z0-9]{6}\.[a-z0-9]{16}", tokens[i])
    assert len(set(tokens.values())) == 3
    assert join_token("00" * 32, "a") != join_token("11" * 32, "a")


# The sandbox: a kubeadm whose tokens and certificate uploads expire on a clock ($STUB_STATE/clock,
# seconds), a kubectl that knows Nodes' readiness and deletes token Secrets.
EXPIRING_KUBEADM = r"""now=$(cat "$STUB_STATE/clock" 2>/dev/null || echo 0)
tokens=$STUB_STATE/tokens; mkdir -p "$tokens"
k=$KC_ROOT/etc/kubernetes
cfg="" prev=""
for a in "$@"; do [[ $prev == --config ]] && cfg=$a; prev=$a; done
value() { awk -v key="$1" '$1 == key":" || ($1 == "-" && $2 == key":") { v = $NF; gsub(/"/, "", v); print v; exit }' "$cfg"; }
seconds() { local d=$1; [[ $d == *h ]] && echo $(( ${d%h} * 3600 )) || echo $(( ${d%m} * 60 )); }
case "$1 ${2:-}" in
  "token create")
    if [[ -n $cfg ]]; then
      token=$(value token); ttl=$(value ttl)
      if [[ -f $tokens/${token%%.*} ]]; then echo "a token with id \"${token%%.*}\" already exists" >&2; exit 1; fi
      echo "${token#*.} $((now + $(seconds "$ttl")))" >"$tokens/${token%%.*}"
      echo "$token"
    else
      echo "zzzzzz.zzzzzzzzzzzzzzzz"
    fi ;;
  "init phase")
    echo $((now + 7200)) >"$STUB_STATE/certs-expire" ;;
  "join "*)
    token=$(value token)
    read -r secret expires <"$tokens/${token%%.*}" 2>/dev/null || { secret=""; expires=0; }
    if [[ $secret != "${token#*.}" || $expires -le $now ]]; then
      echo "error execution phase preflight: couldn't validate the identity of the API Server: token id \"${token%%.*}\" is invalid for this cluster or it has expired" >&2
      exit 1
    fi
    if grep -q "certificateKey:" "$cfg" && (( $(cat "$STUB_STATE/certs-expire" 2>/dev/null || echo 0) <= now )); then
      echo "error execution phase control-plane-prepare/download-certs: error downloading the secret: Secret \"kubeadm-certs\" was not found in the \"kube-system\" Namespace" >&2
      exit 1
    fi
    mkdir -p "$k"; echo joined >"$k/kubelet.conf"; echo "This node has joined the cluster" ;;
  "reset "*) rm -f "$k/kubelet.conf" ;;
  *) echo "unexpected kubeadm call: $*" >&2; exit 64 ;;
esac"""

TOKEN_KUBECTL = r"""args=" $* "
case $args in
  *" get configmap kubeadm-config "*) printf 'kind: ClusterConfiguration\nkubernetesVersion: v1.36.4\n' ;;
  *" get node "*"Ready"*) name=$3; [[ ! -f $STUB_STATE/ready-$name ]] || cat "$STUB_STATE/ready-$name" ;;
  *" delete secret bootstrap-token-"*)
    for a in "$@"; do [[ $a != bootstrap-token-* ]] || rm -f "$STUB_STATE/tokens/${a#bootstrap-token-}"; done ;;
  *) echo "unexpected kubectl call: $*" >&2; exit 64 ;;
esac"""

TOKEN = "k3xq0a.0123456789abcdef"
CERT_KEY = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"


@pytest.fixture
def control_plane(sandbox: Sandbox) -> Sandbox:
    """The first control plane of the sandbox (admin.conf, CA) with the expiring kubeadm."""
    sandbox._stub("kubeadm", EXPIRING_KUBEADM)
    sandbox._stub("kubectl", TOKEN_KUBECTL)
    k = sandbox.path("/etc/kubernetes")
    (k / "pki").mkdir(parents=True)
    (k / "admin.conf").write_text("apiVersion: v1\n")
    (k / "pki" / "ca.crt").write_text("CA\n")
    return sandbox


def _clock(sandbox: Sandbox, seconds: int) -> None:
    (sandbox.state / "clock").write_text(f"{seconds}\n")


def _mint(sandbox: Sandbox, node: str, **extra: str) -> dict[str, str]:
    result = sandbox.run("mint-token.sh", {"NODE_NAME": node, "TOKEN_TTL": WORKER_TOKEN_TTL, "TOKEN": TOKEN, **extra})
    assert result.rc == 0, _explain(result)
    assert all(TOKEN.split(".")[1] not in call for call in result.calls), "the token's secret is on a command line"
    return json.loads(result.stdout)


def _join(sandbox: Sandbox, node: NodeSpec, certificate_key: str | None = None) -> Any:
    config = kubeadm_config.join_configuration(
        node, node_ip="10.0.0.5", internal_endpoint="10.0.0.2", token=TOKEN,
        ca_cert_hash="sha256:" + "ab" * 32, certificate_key=certificate_key,
    )
    return sandbox.run("kubeadm-join.sh", {"NODE_NAME": node.name, "KUBEADM_CONFIG": config, "KC_JOIN_ATTEMPTS": "1"})


def test_a_join_retried_after_its_token_expired_succeeds_once_the_token_step_ran_again(control_plane: Sandbox) -> None:
    worker = NodeSpec(name="w-0", role="worker", pool="general", index=0)
    first = _mint(control_plane, "w-0")
    assert first["token"] == TOKEN
    # The join failed (the node was not ready); `pulumi up` two hours later: the token expired.
    _clock(control_plane, 2 * 3600)
    expired = _join(control_plane, worker)
    assert expired.rc != 0 and "has expired" in expired.stderr, _explain(expired)
    # The later `up` is in a new half hour: the token step runs again and makes the same token.
    again = _mint(control_plane, "w-0")
    assert again == first, "the join reads the token step's output: it must not change"
    assert [c for c in control_plane.log.read_text().splitlines() if "delete secret" in c], "the expired copy stays"
    joined = _join(control_plane, worker)
    assert joined.rc == 0, _explain(joined)


def test_a_control_plane_retried_after_its_certificates_expired_gets_them_uploaded_again(control_plane: Sandbox) -> None:
    cp = NodeSpec(name="cp-1", role="control-plane", pool="control-plane", index=1)
    _mint(control_plane, "cp-1", CERTIFICATE_KEY=CERT_KEY)
    _clock(control_plane, 2 * 3600 + 60)
    expired = _join(control_plane, cp, CERT_KEY)
    assert expired.rc != 0, _explain(expired)
    _mint(control_plane, "cp-1", CERTIFICATE_KEY=CERT_KEY)
    joined = _join(control_plane, cp, CERT_KEY)
    assert joined.rc == 0, _explain(joined)


def test_a_node_in_the_cluster_gets_no_token(control_plane: Sandbox) -> None:
    """The half-hourly run for a node that joined long ago: nothing is created or uploaded, the
    output is the same (the join's inputs do not move)."""
    (control_plane.state / "ready-w-0").write_text("True")
    result = control_plane.run("mint-token.sh", {"NODE_NAME": "w-0", "TOKEN_TTL": "1h", "TOKEN": TOKEN, "CERTIFICATE_KEY": CERT_KEY})
    assert result.rc == 0, _explain(result)
    assert json.loads(result.stdout)["token"] == TOKEN
    assert not result.called("kubeadm"), f"a Ready node got a token or certificates: {result.calls}"
    assert not (control_plane.state / "tokens").exists()


# --- 3. a failed upgrade (the record: tests/test_version_gate.py) ---------------------------------


def test_nothing_waits_for_the_version_record() -> None:
    """The record is the last of the upgrade: a step that waited for it would run only after the
    version is recorded, i.e. never after a failure (and the record would wait for itself)."""
    plan = _run(stack_config(controlPlane={"count": 3}, workerPools=[POOL]))
    record = plan.named("dev-kubernetes-version")
    waiting = [r.name for r in plan.resources if record.urn in plan.ancestors_depend(r)]
    assert waiting == [], waiting


# --- 4. a machine type change -------------------------------------------------------------------


def test_a_machine_type_change_drains_each_node_before_its_vm_stops() -> None:
    before = _run(stack_config(workerPools=[POOL]))
    after = _run(stack_config(workerPools=[{**POOL, "machineType": "e2-standard-4"}]))
    ops = _ops(before, after)
    workers = [f"dev-general-{i}" for i in range(3)]
    assert sorted(ops) == sorted(workers + [f"{w}-resize-{a}" for w in workers for a in ("drain", "uncordon")]), ops
    running = _runs(after, ops)
    assert running == {f"{w}-resize-{a}": "update" for w in workers for a in ("drain", "uncordon")}, running
    for worker in workers:
        vm = after.named(worker)
        drain, uncordon = after.named(f"{worker}-resize-drain"), after.named(f"{worker}-resize-uncordon")
        assert vm.input("machineType") == "e2-standard-4" and vm.input("allowStoppingForUpdate") is True
        assert _depends(after, vm, drain), f"{worker}'s VM must not stop before its drain"
        assert _depends(after, uncordon, vm)
        env = _env(drain)
        assert env["ACTION"] == "drain" and env["MACHINE_TYPE"] == "e2-standard-4"
        assert (env["MACHINE_VCPUS"], env["MACHINE_MEMORY_MB"]) == ("4", "16384")
        assert drain.input("connection")["host"] == after.named("dev-cp-0-init").input("connection")["host"]
        # The first control plane is resized first and alone: every other drain waits for it.
        assert _depends(after, drain, after.named("dev-cp-0-resize-uncordon"))


def test_the_drain_steps_cost_nothing_when_the_cluster_is_created() -> None:
    """They run only when their inputs change, and the VMs are not chained: a new cluster's VMs are
    created in parallel (only after the first control plane's). The one-at-a-time is a lease on
    the first control plane (resize-node.sh), taken at run time by the nodes that do change."""
    plan = _run(stack_config(workerPools=[POOL]))
    for command in plan.of_type(COMMAND):
        if "-resize-" in command.name:
            assert command.input("create") is None and command.input("update") == "sudo bash -s", command.name
    for i in range(3):
        for j in range(3):
            if i != j:
                assert not _depends(plan, plan.named(f"dev-general-{i}"), plan.named(f"dev-general-{j}"))


RESIZE_KUBECTL = r"""nodes=$STUB_STATE/nodes
args=("$@")
case "$1 $2" in
  "get node")
    name=$3; d=$nodes/$name
    if [[ ! -d $d ]]; then [[ " $* " == *" --ignore-not-found "* ]] && exit 0; echo "Error from server (NotFound): nodes \"$name\" not found" >&2; exit 1; fi
    case "$*" in
      *"-o name"*) echo "node/$name" ;;
      *machine-type*) cat "$d/machine-type" 2>/dev/null || true ;;
      *resizing-to*) cat "$d/resizing-to" 2>/dev/null || true ;;
      *unschedulable*) [[ ! -f $d/cordoned ]] || printf true ;;
      *capacity*) printf '%s %s' "$(cat "$d/cpu")" "$(cat "$d/memory")" ;;
      *Ready*) cat "$d/ready" 2>/dev/null || printf True ;;
      *) echo "unexpected: $*" >&2; exit 64 ;;
    esac ;;
  "annotate --overwrite"|"annotate node")
    [[ $2 == --overwrite ]] && shift
    name=$3 pair=$4 key=${4%%=*}
    case $pair in
      *-) key=${pair%-}; rm -f "$nodes/$name/${key#kubeadm-cluster.io/}" ;;
      *) echo "${pair#*=}" >"$nodes/$name/${key#kubeadm-cluster.io/}" ;;
    esac ;;
  "drain "*) touch "$nodes/$2/cordoned"; echo "node/$2 drained" ;;
  "uncordon "*) rm -f "$nodes/$2/cordoned"; echo "node/$2 uncordoned" ;;
  *) echo "unexpected kubectl call: $*" >&2; exit 64 ;;
esac"""


@pytest.fixture
def resize(sandbox: Sandbox) -> Sandbox:
    """The first control plane with three e2-standard-2 nodes (2 vCPUs, 8 GiB less the kernel's)."""
    sandbox._stub("kubectl", RESIZE_KUBECTL)
    admin = sandbox.path("/etc/kubernetes/admin.conf")
    admin.parent.mkdir(parents=True)
    admin.write_text("apiVersion: v1\n")
    for name in ("w-0", "w-1", "w-2"):
        node = sandbox.state / "nodes" / name
        node.mkdir(parents=True)
        (node / "cpu").write_text("2")
        (node / "memory").write_text("8131304Ki")
    return sandbox


def _resize(sandbox: Sandbox, action: str, node: str, machine_type: str = "e2-standard-4", **extra: str) -> Any:
    vcpus, memory = {"e2-standard-2": ("2", "8192"), "e2-standard-4": ("4", "16384")}[machine_type]
    env = {"ACTION": action, "NODE_NAME": node, "MACHINE_TYPE": machine_type, "MACHINE_VCPUS": vcpus,
           "MACHINE_MEMORY_MB": memory, "KC_RESIZE_POLL": "0.1", "KC_READY_ATTEMPTS": "2", **extra}
    return sandbox.run("resize-node.sh", env)


def _node(sandbox: Sandbox, name: str) -> dict[str, str]:
    return {f.name: f.read_text().strip() for f in (sandbox.state / "nodes" / name).iterdir()}


def test_nodes_are_resized_one_at_a_time(resize: Sandbox) -> None:
    first = _resize(resize, "drain", "w-0")
    assert first.rc == 0 and first.called("kubectl drain w-0"), _explain(first)
    assert _node(resize, "w-0")["resizing-to"] == "e2-standard-4" and "cordoned" in _node(resize, "w-0")
    # w-1's drain runs at the same time in the same `up`: it waits for the lease, without draining.
    waiting = _resize(resize, "drain", "w-1", KC_RESIZE_WAIT="1")
    assert waiting.rc != 0 and "waited 1s for the resize lease, held by w-0" in waiting.stderr, _explain(waiting)
    assert not waiting.called("kubectl drain"), "a second node was drained while the first one is being resized"
    # w-0's VM has its new type: Ready, uncordoned, recorded, and the lease is free again.
    (resize.state / "nodes" / "w-0" / "cpu").write_text("4")
    done = _resize(resize, "uncordon", "w-0")
    assert done.rc == 0 and done.called("kubectl uncordon w-0"), _explain(done)
    state = _node(resize, "w-0")
    assert state["machine-type"] == "e2-standard-4" and "resizing-to" not in state and "cordoned" not in state
    second = _resize(resize, "drain", "w-1")
    assert second.rc == 0 and second.called("kubectl drain w-1"), _explain(second)


def test_the_lease_is_taken_by_one_node_of_those_that_start_together(resize: Sandbox) -> None:
    env = {**os.environ, "PATH": str(resize.bin)}
    procs = []
    for name in ("w-0", "w-1", "w-2"):
        cmd = (f"ACTION=drain NODE_NAME={name} MACHINE_TYPE=e2-standard-4 MACHINE_VCPUS=4 MACHINE_MEMORY_MB=16384 "
               f"KC_RESIZE_WAIT=2 KC_RESIZE_POLL=0.1 KC_ROOT={resize.root} STUB_LOG={resize.base}/{name}.log "
               f"STUB_STATE={resize.state} KC_RETRY_DELAY=0 bash {SCRIPTS / 'resize-node.sh'}")
        procs.append(subprocess.Popen(["bash", "-c", cmd], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    codes = [p.wait(timeout=60) for p in procs]
    assert sorted(codes) == [0, 1, 1], codes
    drained = [n for n in ("w-0", "w-1", "w-2") if "cordoned" in _node(resize, n)]
    assert len(drained) == 1, drained


def test_a_node_that_already_has_the_shape_is_not_drained(resize: Sandbox) -> None:
    """A run that is not a resize (the step's inputs changed for another reason, a release): the
    node's capacity says it runs the type already; it is recorded, nothing is drained."""
    result = _resize(resize, "drain", "w-2", machine_type="e2-standard-2")
    assert result.rc == 0 and not result.called("kubectl drain"), _explain(result)
    assert _node(resize, "w-2")["machine-type"] == "e2-standard-2"
    assert not (resize.root / "var/lib/kubeadm-cluster/resize-lease").exists()
    nothing = _resize(resize, "uncordon", "w-2", machine_type="e2-standard-2")
    assert nothing.rc == 0 and not nothing.called("kubectl uncordon"), _explain(nothing)


def test_a_node_an_admin_cordoned_stays_cordoned(resize: Sandbox) -> None:
    (resize.state / "nodes" / "w-1" / "cordoned").write_text("")
    assert _resize(resize, "drain", "w-1").rc == 0
    (resize.state / "nodes" / "w-1" / "cpu").write_text("4")
    done = _resize(resize, "uncordon", "w-1")
    assert done.rc == 0 and not done.called("kubectl uncordon"), _explain(done)
    assert "cordoned" in _node(resize, "w-1") and _node(resize, "w-1")["machine-type"] == "e2-standard-4"
    assert not (resize.root / "var/lib/kubeadm-cluster/resize-lease").exists()


def test_a_lease_left_by_a_node_that_is_gone_is_taken_over(resize: Sandbox) -> None:
    lease = resize.root / "var/lib/kubeadm-cluster/resize-lease"
    lease.mkdir(parents=True)
    (lease / "holder").write_text("w-9\n")
    result = _resize(resize, "drain", "w-0", KC_RESIZE_WAIT="1")
    assert result.rc == 0 and "taking it over" in result.stderr, _explain(result)
    assert (lease / "holder").read_text().strip() == "w-0"


# --- 5. SSH fan-out through the jump host --------------------------------------------------------


def test_nodes_behind_the_jump_host_wait_for_its_sshd_limits_and_for_their_key() -> None:
    plan = _run(stack_config(workerPools=[{**POOL, "count": 60}]))
    commands = {r.name: r for r in plan.of_type(COMMAND)}
    sshd = commands["dev-cp-0-sshd"]
    assert _env(sshd)["SSHD_MAX_STARTUPS"] == SSHD_MAX_STARTUPS
    assert sshd.input("connection").get("proxy") is None, "the jump host is reached directly"
    start = int(SSHD_MAX_STARTUPS.split(":")[0])
    nodes = len(plan.of_type(INSTANCE))
    assert start >= 2 * nodes, f"{nodes} nodes may open {2 * nodes} connections through the jump host at once"
    assert not _depends(plan, commands["dev-cp-0-prepare"], sshd), "the first control plane's prep must not wait"
    for i in (0, 59):
        node = f"dev-general-{i}"
        reachable = commands[f"{node}-reachable"]
        env = _env(reachable)
        assert env["NODE_ADDRESS"] == plan.named(node).outputs["networkInterfaces"][0]["networkIp"]
        assert env["SSH_USER"] == "kubeadm" and env["SSH_PUBLIC_KEY"].startswith("ssh-ed25519 ")
        assert reachable.input("connection").get("proxy") is None, "the wait runs on the jump host, not through it"
        assert _depends(plan, reachable, sshd) and _depends(plan, reachable, plan.named(node))
        first_step = commands[f"{node}-prepare"]
        assert _depends(plan, first_step, reachable), f"{node}'s first step must wait until it accepts the key"
        assert first_step.input("connection")["proxy"]["host"] == sshd.input("connection")["host"]


def test_pulumi_commands_retry_through_a_jump_host_is_why_the_wait_exists() -> None:
    """pulumi-command 1.2.1 retries a failed handshake through a jump host on the connection it
    already dialled (provider/pkg/provider/remote/connection.go, Dial: ``ssh.NewClientConn(conn,
    ...)`` in the retry loop over the one ``conn``); sshd closes that connection when the key is
    refused, so every retry fails. The pinned SDK still documents one connection with one proxy."""
    assert pulumi_command.__name__ and "proxy" in inspect.signature(pulumi_command.remote.ConnectionArgs).parameters
    waits = script("wait-ssh.sh")
    assert "Server accepts key" in waits and "IdentitiesOnly=yes" in waits


SSHD = r"""case $1 in
  -t) exit "${STUB_SSHD_T_RC:-0}" ;;
  -T)
    value=10:30:100
    for f in $(ls "$KC_ROOT/etc/ssh/sshd_config.d/"*.conf 2>/dev/null | sort -r); do
      v=$(awk '$1 == "MaxStartups" { print $2 }' "$f"); [[ -z $v ]] || value=$v
    done
    echo "maxstartups $value" ;;
esac"""


def test_the_jump_host_raises_maxstartups_once(sandbox: Sandbox) -> None:
    sandbox._stub("sshd", SSHD)
    first = sandbox.run("jump-host.sh", {"SSHD_MAX_STARTUPS": SSHD_MAX_STARTUPS})
    assert first.rc == 0, _explain(first)
    dropin = sandbox.path("/etc/ssh/sshd_config.d/10-kubeadm-cluster-jump-host.conf")
    assert f"MaxStartups {SSHD_MAX_STARTUPS}" in dropin.read_text()
    assert first.called("systemctl try-reload-or-restart ssh.service"), first.calls
    again = sandbox.run("jump-host.sh", {"SSHD_MAX_STARTUPS": SSHD_MAX_STARTUPS})
    assert again.rc == 0 and not again.called("systemctl"), "an unchanged drop-in must not reload sshd"


def test_the_jump_host_says_when_another_drop_in_wins(sandbox: Sandbox) -> None:
    sandbox._stub("sshd", SSHD)
    other = sandbox.path("/etc/ssh/sshd_config.d/01-site.conf")
    other.parent.mkdir(parents=True)
    other.write_text("MaxStartups 10:30:60\n")
    result = sandbox.run("jump-host.sh", {"SSHD_MAX_STARTUPS": SSHD_MAX_STARTUPS})
    assert result.rc != 0 and "'10:30:60'" in result.stderr and "first value wins" in result.stderr, _explain(result)


def test_a_refused_drop_in_is_removed_again(sandbox: Sandbox) -> None:
    sandbox._stub("sshd", SSHD)
    result = sandbox.run("jump-host.sh", {"SSHD_MAX_STARTUPS": SSHD_MAX_STARTUPS, "STUB_SSHD_T_RC": "255"})
    assert result.rc != 0 and "removed again" in result.stderr, _explain(result)
    assert not sandbox.path("/etc/ssh/sshd_config.d/10-kubeadm-cluster-jump-host.conf").exists()


SSH = r"""n=$(count ssh)
key=""; prev=""
for a in "$@"; do [[ $prev == -i ]] && key=$a; prev=$a; done
cp "$key" "$STUB_STATE/offered-key"
echo "debug1: Offering public key: $key ED25519 SHA256:abc explicit" >&2
if ((n > ${STUB_SSH_ACCEPT_AFTER:-0})); then echo "debug1: Server accepts key: $key ED25519 SHA256:abc explicit" >&2; fi
echo "kubeadm@10.240.0.9: Permission denied (publickey)." >&2
exit 255"""

WAIT_ENV = {"NODE_NAME": "w-0", "NODE_ADDRESS": "10.240.0.9", "SSH_USER": "kubeadm",
            "SSH_PUBLIC_KEY": "ssh-ed25519 AAAAC3NzaFAKE", "KC_SSH_POLL": "0.1"}


def test_the_wait_ends_when_the_node_accepts_the_key(sandbox: Sandbox) -> None:
    sandbox._stub("ssh", SSH)
    result = sandbox.run("wait-ssh.sh", {**WAIT_ENV, "STUB_SSH_ACCEPT_AFTER": "3"})
    assert result.rc == 0, _explain(result)
    assert len(result.called("ssh")) == 4, result.calls
    assert (sandbox.state / "offered-key").read_text().strip() == WAIT_ENV["SSH_PUBLIC_KEY"], "only the public key is offered"
    assert "BatchMode=yes" in result.called("ssh")[0]


def test_the_wait_is_bounded_and_names_the_node(sandbox: Sandbox) -> None:
    sandbox._stub("ssh", SSH)
    result = sandbox.run("wait-ssh.sh", {**WAIT_ENV, "STUB_SSH_ACCEPT_AFTER": "999", "KC_SSH_WAIT": "1"})
    assert result.rc != 0 and "w-0 (10.240.0.9) does not accept the stack's SSH key" in result.stderr, _explain(result)


# --- 6. every step is bounded ---------------------------------------------------------------------


def test_every_step_is_bounded_and_never_sends_its_previous_output() -> None:
    """pulumi-command 1.2.1 sends a step's previous stdout and stderr as SSH environment requests
    unless ``add_previous_output_in_env`` is false (its SDK: "Defaults to true"); some steps' output
    is a secret (tokens, the admin kubeconfig). Each step's bundle exports its KC_STEP_TIMEOUT, and
    each connection (and jump host) gives up dialling after dialErrorLimit x perDialTimeout."""
    source = " ".join(inspect.getsource(pulumi_command.remote.Command).split())
    assert ("injected into the environment of the next run as PULUMI_COMMAND_STDOUT and PULUMI_COMMAND_STDERR. "
            "Defaults to true.") in source, "pulumi-command's add_previous_output_in_env default changed: recheck"
    plan = _run(stack_config(controlPlane={"count": 3}, workerPools=[POOL]))
    for command in plan.of_type(COMMAND):
        assert command.input("addPreviousOutputInEnv") is False, f"{command.name} sends its previous output"
        field = "stdin" if command.input("stdin") else "delete"
        bound = _env(command, field).get("KC_STEP_TIMEOUT")
        scripts = re.findall(r"^# kc-script (\S+) ", expanded(command.input(field)), flags=re.M)
        assert bound == step_timeout([s for s in scripts if s != "lib.sh"]), f"{command.name}: bound {bound}"
        connection = command.input("connection")
        for hop in (connection, connection.get("proxy") or connection):
            assert hop.get("dialErrorLimit") and hop.get("perDialTimeout"), f"{command.name} may dial forever"


def test_every_script_has_a_bound() -> None:
    steps = sorted(p.name for p in SCRIPTS.glob("*.sh") if p.name not in ("lib.sh", "etcd-restore.sh", "certs-renew.sh"))
    assert sorted(set(steps) - set(STEP_TIMEOUTS)) == [], "a step script without a bound in STEP_TIMEOUTS"
    with pytest.raises(KeyError, match="STEP_TIMEOUTS"):
        step_timeout("new-step.sh")


@pytest.fixture
def sibling() -> Iterator[subprocess.Popen[bytes]]:
    """A process of the test's own process group, which a bundle's watchdog must leave alone."""
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    proc.kill()
    proc.wait()


HANG = r"""echo $$ >"$STUB_STATE/hang.pid"
exec sleep 60"""


def test_a_hung_step_is_stopped_at_its_bound(sandbox: Sandbox, sibling: subprocess.Popen[bytes]) -> None:
    sandbox._stub("hang", HANG)
    bundle = render_bundle([], {"KC_STEP_TIMEOUT": "2"}) + "KC_STEP=test\nkc_on_exit 'echo cleaned-up >&2'\nhang </dev/null\necho never\n"
    started = time.monotonic()
    result = sandbox.run([], bundle=bundle)
    elapsed = time.monotonic() - started
    assert result.rc == 124 and elapsed < 15, (elapsed, _explain(result))
    assert "ran longer than its bound of 2s (KC_STEP_TIMEOUT)" in result.stderr and "cleaned-up" in result.stderr
    assert "never" not in result.stdout
    hung = int((sandbox.state / "hang.pid").read_text())
    time.sleep(0.5)
    assert not Path(f"/proc/{hung}").exists() or "Z" in Path(f"/proc/{hung}/stat").read_text().split(") ")[1][:1], (
        "the step's own child still runs")
    assert sibling.poll() is None, "the watchdog signalled a process that is not the bundle's"


def test_a_step_that_ends_in_time_ends_at_once(sandbox: Sandbox) -> None:
    bundle = render_bundle([], {"KC_STEP_TIMEOUT": "30"}) + "KC_STEP=test\necho done\n"
    started = time.monotonic()
    result = sandbox.run([], bundle=bundle)
    assert result.rc == 0 and result.stdout == "done\n", _explain(result)
    assert time.monotonic() - started < 5, "the watchdog held the step's output open"


def test_a_real_step_is_bounded(sandbox: Sandbox) -> None:
    """wait-ssh.sh waiting for a node that never answers, bounded by the bundle's KC_STEP_TIMEOUT
    rather than its own (longer) wait."""
    sandbox._stub("ssh", SSH)
    env = {**WAIT_ENV, "STUB_SSH_ACCEPT_AFTER": "999", "KC_SSH_WAIT": "600", "KC_STEP_TIMEOUT": "2"}
    result = sandbox.run([], bundle=render_bundle("wait-ssh.sh", env))
    assert result.rc == 124 and "KC_STEP_TIMEOUT" in result.stderr, _explain(result)
