"""Day two under mocks: HA control planes, upgrades, nodes coming and going.

Each test runs the real program (twice when it is about a change) and asserts on the
registered resources, their inputs, their dependencies and which values are secret: what
`pulumi up` would create, update and delete, and in which order.
"""

from __future__ import annotations

import inspect
import shlex
from functools import cache
from typing import Any

import pulumi_kubernetes
import yaml

from components.machines.gcp import HEALTH_CHECK_RANGES
from tests.conftest import expanded, stack_config
from tests.test_program import _commands, _depends_on
from tools.graph import change_cost
from tools.mock_engine import Plan, Registered, run_program

COMMAND = "command:remote:Command"
INSTANCE = "gcp:compute/instance:Instance"
RULE = "gcp:compute/forwardingRule:ForwardingRule"
BACKEND = "gcp:compute/regionBackendService:RegionBackendService"
FIREWALL = "gcp:compute/firewall:Firewall"
POOL = {"name": "general", "count": 2, "storageDiskSizeGb": 50}
HA = stack_config(controlPlane={"count": 3}, workerPools=[{**POOL, "count": 3}])


@cache
def _run(key: str) -> Plan:
    stacks: dict[str, dict[str, Any]] = {
        "ha": HA,
        "single": stack_config(),
        "patch-before": stack_config(kubernetesVersion="1.36.4", workerPools=[{**POOL, "count": 4}]),
        "patch-after": stack_config(kubernetesVersion="1.36.5", workerPools=[{**POOL, "count": 4}]),
        "minor-before": stack_config(kubernetesVersion="1.35.2", controlPlane={"count": 3}),
        "minor-after": stack_config(kubernetesVersion="1.36.4", controlPlane={"count": 3}),
        "batch-2": stack_config(upgrade={"workerBatchSize": 2}, workerPools=[{**POOL, "count": 4}]),
        "ha-5": stack_config(controlPlane={"count": 5}, workerPools=[{**POOL, "count": 3}]),
    }
    plan = run_program(stacks[key], stack="dev")
    assert plan.error is None, f"stack {key} failed: {plan.error}"
    return plan


def _env(command: Registered) -> dict[str, str]:
    """The ``export NAME=value`` lines of a step's bundle (before lib.sh)."""
    stdin = str(command.input("stdin"))
    exports = stdin.split("\n#!/usr/bin/env bash", 1)[0].split("\n# kc-run", 1)[0]
    tokens = shlex.split(exports)
    return dict(t.split("=", 1) for t in tokens if "=" in t and tokens[tokens.index(t) - 1] == "export")


def _docs(command: Registered) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(_env(command)["KUBEADM_CONFIG"]) if d]


def _group_members(plan: Plan) -> list[str]:
    """The VMs in the API load balancers' instance group: one InstanceGroupMembership each, whose
    ``instance`` comes from the VM (tests/test_faults.py says why not the group's list)."""
    by_urn = plan.by_urn()
    group = plan.named("dev-api-control-planes")
    return sorted(
        by_urn[urn].name
        for member in plan.of_type("gcp:compute/instanceGroupMembership:InstanceGroupMembership")
        if group.urn in member.property_dependencies.get("instanceGroup", [])
        for urn in member.property_dependencies.get("instance", [])
    )


# --- HA control plane ----------------------------------------------------------------------


def test_ha_load_balancers_front_every_control_plane_on_6443() -> None:
    plan = _run("ha")
    control_planes = sorted(i.name for i in plan.of_type(INSTANCE) if "-cp-" in i.name)
    assert control_planes == ["dev-cp-0", "dev-cp-1", "dev-cp-2"]
    group = plan.named("dev-api-control-planes")
    members = _group_members(plan)
    assert members == control_planes, f"the instance group must hold the 3 control planes: {members}"
    assert group.input("namedPorts") == [{"name": "kube-api", "port": 6443}]
    health = plan.named("dev-api-health")
    assert health.input("tcpHealthCheck.port") == 6443, "the API health check must probe 6443"
    backends = {b.input("loadBalancingScheme"): b for b in plan.of_type(BACKEND)}
    assert set(backends) == {"INTERNAL", "EXTERNAL"}
    for backend in backends.values():
        assert backend.input("protocol") == "TCP" and backend.input("healthChecks"), backend.inputs
        assert _depends_on(plan, backend, health) and _depends_on(plan, backend, group)
    rules = {r.input("loadBalancingScheme"): r for r in plan.of_type(RULE)}
    internal_ip = plan.named("dev-api-lb-internal").outputs["address"]
    public_ip = plan.named("dev-api-public").outputs["address"]
    assert rules["INTERNAL"].input("ipAddress") == internal_ip and rules["INTERNAL"].input("ports") == ["6443"]
    assert rules["EXTERNAL"].input("ipAddress") == public_ip and rules["EXTERNAL"].input("portRange") == "6443"
    # The public address was the first control plane's before HA: its VM lets go of it first.
    assert _depends_on(plan, rules["EXTERNAL"], plan.named("dev-cp-0"))


def test_ha_firewall_admits_only_health_checkers_and_admins_to_the_api() -> None:
    plan = _run("ha")
    rules = {f.name: f for f in plan.of_type(FIREWALL)}
    checks = rules["dev-api-health-checks"]
    assert sorted(checks.input("sourceRanges")) == sorted(HEALTH_CHECK_RANGES)
    assert checks.input("allows") == [{"protocol": "tcp", "ports": ["6443"]}]
    assert checks.input("targetTags") == ["dev-control-plane"]
    admin = rules["dev-network-admin"]
    assert admin.input("sourceRanges") == ["203.0.113.7/32"], "the API stays closed to the internet"


def test_ha_ssh_moves_to_its_own_address_and_the_kubeconfig_uses_the_load_balancer() -> None:
    plan = _run("ha")
    ssh = plan.named("dev-ssh-public").outputs["address"]
    public = plan.named("dev-api-public").outputs["address"]
    cp0 = plan.named("dev-cp-0")
    assert cp0.input("networkInterfaces.0.accessConfigs.0.natIp") == ssh
    commands = _commands(plan)
    assert commands["dev-cp-0-init"].input("connection")["host"] == ssh
    assert commands["dev-general-0-join"].input("connection")["proxy"]["host"] == ssh
    kubeconfig = yaml.safe_load(plan.outputs["kubeconfig"])
    assert kubeconfig["clusters"][0]["cluster"]["server"] == f"https://{public}:6443"
    assert plan.outputs["controlPlaneEndpoint"] == f"https://{public}:6443"
    assert plan.outputs["sshHost"] == ssh, "the exported SSH host must be the jump host, not the API LB"


def test_single_control_plane_builds_no_load_balancer() -> None:
    plan = _run("single")
    assert plan.of_type(RULE) == [] and plan.of_type(BACKEND) == []
    names = plan.names()
    assert "dev-ssh-public" not in names and "dev-api-lb-internal" not in names
    assert "dev-certificate-key" not in names, "one control plane uploads no certificates"
    init = _docs(_commands(plan)["dev-cp-0-init"])
    assert "certificateKey" not in init[0]
    assert init[1]["controlPlaneEndpoint"] == "api.dev.internal:6443"


def test_ha_init_uploads_certificates_under_a_secret_random_key() -> None:
    plan = _run("ha")
    key = plan.named("dev-certificate-key")
    assert key.type == "random:index/randomBytes:RandomBytes" and key.input("length") == 32
    assert "hex" in key.additional_secret_outputs, "the certificate key must be secret in the state"
    init = _commands(plan)["dev-cp-0-init"]
    assert "stdin" in init.secret_inputs, "the init bundle carries the certificate key: it must be secret"
    env = _env(init)
    assert env["CERTIFICATE_KEY"] == key.outputs["hex"] and len(env["CERTIFICATE_KEY"]) == 64
    init_doc, cluster_doc = _docs(init)[:2]
    assert init_doc["certificateKey"] == key.outputs["hex"]
    assert cluster_doc["controlPlaneEndpoint"] == "api.dev.internal:6443"
    sans = cluster_doc["apiServer"]["certSANs"]
    public = plan.named("dev-api-public").outputs["address"]
    internal = plan.named("dev-api-lb-internal").outputs["address"]
    assert {"api.dev.internal", public, internal} <= set(sans), sans


def test_ha_control_planes_join_one_at_a_time_after_a_fresh_cert_upload() -> None:
    plan = _run("ha")
    commands = _commands(plan)
    key = plan.named("dev-certificate-key").outputs["hex"]
    cp0_ip = plan.named("dev-cp-0").outputs["networkInterfaces"][0]["networkIp"]
    for node, previous in (("dev-cp-1", "dev-cp-0-init"), ("dev-cp-2", "dev-cp-1-join")):
        token, join = commands[f"{node}-join-token"], commands[f"{node}-join"]
        assert _env(token)["CERTIFICATE_KEY"] == key, f"{node}: certs must be re-uploaded right before its join"
        assert "stdin" in token.secret_inputs and "stdout" in token.additional_secret_outputs
        assert _depends_on(plan, token, commands[previous]), f"{node}'s join must wait for {previous}"
        assert _depends_on(plan, join, token)
        doc = _docs(join)[0]
        assert doc["controlPlane"]["certificateKey"] == key
        node_ip = plan.named(node).outputs["networkInterfaces"][0]["networkIp"]
        assert doc["controlPlane"]["localAPIEndpoint"]["advertiseAddress"] == node_ip
        # Discovery goes straight to the first control plane, never through the LB hairpin.
        assert doc["discovery"]["bootstrapToken"]["apiServerEndpoint"] == f"{cp0_ip}:6443"
        assert doc["nodeRegistration"]["taints"] == [
            {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
        ]
        assert "stdin" in join.secret_inputs


def test_ha_workers_join_in_parallel_without_waiting_for_control_plane_joins() -> None:
    plan = _run("ha")
    commands = _commands(plan)
    cp_joins = {commands["dev-cp-1-join"].urn, commands["dev-cp-2-join"].urn}
    worker_joins = [commands[f"dev-general-{i}-join"] for i in range(3)]
    for join in worker_joins:
        ancestors = plan.ancestors_depend(join)
        assert not ancestors & cp_joins, f"{join.name} waits for a control-plane join"
        assert not {j.urn for j in worker_joins} & ancestors, f"{join.name} waits for another worker"
        lb_ip = plan.named("dev-api-lb-internal").outputs["address"]
        assert _docs(join)[0]["discovery"]["bootstrapToken"]["apiServerEndpoint"] == f"{lb_ip}:6443"


def test_endpoint_name_resolves_past_the_hairpin() -> None:
    """Workers: the name -> the internal LB. Control planes: the first one while joining, then themselves."""
    plan = _run("ha")
    commands = _commands(plan)
    ip = {i.name: i.outputs["networkInterfaces"][0]["networkIp"] for i in plan.of_type(INSTANCE)}
    lb_ip = plan.named("dev-api-lb-internal").outputs["address"]
    for node in ("dev-cp-0", "dev-cp-1", "dev-cp-2"):
        env = _env(commands[f"{node}-prepare"])
        assert env["API_ENDPOINT_NAME"] == "api.dev.internal"
        assert env["API_ENDPOINT_IP"] == ip[node], f"{node} must reach its own API server once joined"
        assert env["API_ENDPOINT_BOOTSTRAP_IP"] == ip["dev-cp-0"], f"{node} must join through the first control plane"
    for node in ("dev-cp-1", "dev-cp-2"):
        assert _env(commands[f"{node}-join"])["API_ENDPOINT_IP"] == ip[node]
    for i in range(3):
        env = _env(commands[f"dev-general-{i}-prepare"])
        assert env["API_ENDPOINT_IP"] == env["API_ENDPOINT_BOOTSTRAP_IP"] == lb_ip


def test_existing_hosts_ha_uses_your_load_balancer() -> None:
    config = {
        "adminCidrs": ["203.0.113.7/32"],
        "provider": "existing",
        "sshPrivateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\nX\n-----END OPENSSH PRIVATE KEY-----\n",
        "existingHosts": {
            "controlPlane": [{"address": f"192.168.1.1{i}"} for i in range(3)],
            "workers": [{"address": "192.168.1.20"}],
            "apiLoadBalancer": "192.168.1.5",
        },
        "rook": {"enabled": False},
    }
    plan = run_program(config, stack="dev", secret_keys=["kubeadm-cluster:sshPrivateKey"])
    assert plan.error is None, plan.error
    commands = _commands(plan)
    cluster = _docs(commands["dev-cp-0-init"])[1]
    assert cluster["controlPlaneEndpoint"] == "192.168.1.5:6443"
    assert "API_ENDPOINT_NAME" not in _env(commands["dev-general-0-prepare"])
    assert _docs(commands["dev-cp-2-join"])[0]["discovery"]["bootstrapToken"]["apiServerEndpoint"] == "192.168.1.10:6443"
    assert commands["dev-cp-1-join"].input("delete") == "sudo kubeadm reset --force >&2 || true"


# --- removing control planes --------------------------------------------------------------


def test_lowering_control_planes_removes_their_etcd_members_before_their_vms() -> None:
    five, three = _run("ha-5"), _run("ha")
    before, after = five.by_urn(), three.by_urn()
    removed = sorted(before[u].name for u in set(before) - set(after))
    expected = sorted(
        [f"dev-cp-{i}{suffix}" for i in (3, 4)
         for suffix in ("", "-prepare", "-join-token", "-join", "-upgrade", "-membership", "-maintenance", "-scripts",
                        "-identity", "-reachable", "-resize-drain", "-resize-uncordon")]
        + ["dev-nodes-dev-cp-3", "dev-nodes-dev-cp-4", "dev-api-member-dev-cp-3", "dev-api-member-dev-cp-4"]
    )
    assert removed == expected, removed
    commands = _commands(five)
    for i in (3, 4):
        membership = commands[f"dev-cp-{i}-membership"]
        assert membership.input("create") is None, "joining runs nothing extra: only leaving does"
        delete = expanded(membership.input("delete"))
        assert "member remove" in delete and "quorum" in delete, "a leaving control plane must leave etcd"
        assert f"NODE_NAME=dev-cp-{i}" in delete and "FIRST_NODE_NAME=dev-cp-0" in delete
        assert membership.input("connection")["host"] == commands["dev-cp-0-init"].input("connection")["host"]
        assert _depends_on(five, membership, five.named(f"dev-cp-{i}")), "etcd member removal must precede the VM deletion"
    assert len(_group_members(five)) == 5 and len(_group_members(three)) == 3


def test_raising_control_planes_adds_only_the_new_ones() -> None:
    three, five = _run("ha"), _run("ha-5")
    before, after = three.by_urn(), five.by_urn()
    changed = sorted(before[u].name for u in before if u in after and before[u].inputs != after[u].inputs)
    # The new VMs join the instance group through memberships of their own; nothing else moves.
    assert changed == [], changed
    assert set(before) <= set(after)


# --- upgrades -------------------------------------------------------------------------------


def _changed(before: Plan, after: Plan) -> list[str]:
    a, b = before.by_urn(), after.by_urn()
    assert set(a) == set(b), "a version change must not add or remove resources"
    return sorted(a[u].name for u in a if a[u].inputs != b[u].inputs)


def test_a_patch_bump_runs_the_upgrade_steps_and_touches_nothing_else() -> None:
    before, after = _run("patch-before"), _run("patch-after")
    changed = _changed(before, after)
    workers = [f"dev-general-{i}" for i in range(4)]
    expected = sorted(
        ["dev-kubernetes-version", "dev-cp-0-version-check", "dev-cp-0-prepare", "dev-cp-0-upgrade", "dev-cp-0-init"]
        + [f"{w}{s}" for w in workers for s in ("-prepare", "-upgrade-drain", "-upgrade", "-upgrade-uncordon")]
    )
    # init's config names the version (for a new cluster); on a running one its script skips.
    assert changed == expected, changed
    by_name = {r.name: r for r in after.resources}
    for name in changed:
        if name != "dev-kubernetes-version":  # the preview-time version gate records the new version
            assert by_name[name].type == COMMAND, f"{name} is not a command: a version change must not touch it"
    for name in expected:
        if name.endswith(("-upgrade", "-upgrade-drain", "-upgrade-uncordon", "-version-check")):
            command = by_name[name]
            assert command.input("create") is None and command.input("update") == "sudo bash -s", (
                f"{name} must run only when its inputs change, not when it is created"
            )
            assert _env(command)["K8S_VERSION"] == "1.36.5"


def test_upgrade_order_control_planes_then_workers_one_at_a_time() -> None:
    plan = _run("patch-after")
    commands = _commands(plan)

    def before(first: str, second: str) -> None:
        assert _depends_on(plan, commands[second], commands[first]), f"{second} must wait for {first}"

    before("dev-cp-0-version-check", "dev-cp-0-prepare")
    before("dev-cp-0-version-check", "dev-general-3-prepare")
    before("dev-cp-0-prepare", "dev-cp-0-upgrade")
    before("dev-cp-0-upgrade", "dev-general-0-upgrade-drain")
    for i in range(4):
        before(f"dev-general-{i}-upgrade-drain", f"dev-general-{i}-upgrade")
        before(f"dev-general-{i}-prepare", f"dev-general-{i}-upgrade")
        before(f"dev-general-{i}-upgrade", f"dev-general-{i}-upgrade-uncordon")
        if i:
            before(f"dev-general-{i - 1}-upgrade-uncordon", f"dev-general-{i}-upgrade-drain")
    env = _env(commands["dev-cp-0-upgrade"])
    assert env["UPGRADE_ROLE"] == "first-control-plane" and env["NODE_NAME"] == "dev-cp-0"
    assert _env(commands["dev-general-2-upgrade"])["UPGRADE_ROLE"] == "worker"
    drain = commands["dev-general-2-upgrade-drain"]
    assert drain.input("connection")["host"] == commands["dev-cp-0-init"].input("connection")["host"], (
        "workers are drained from the first control plane (it has the admin credentials)"
    )
    assert _env(drain)["ACTION"] == "drain" and "DRAIN_TIMEOUT" not in _env(drain)
    # The drain reads upgrade.drainTimeout from the settings ConfigMap when it runs, after it exists.
    settings = plan.named("dev-settings")
    assert settings.input("data") == {"drainTimeout": "5m"}, settings.inputs
    assert _depends_on(plan, drain, settings), "the drain must wait for the ConfigMap it reads"
    # A new worker joins only after the control plane is upgraded (kubelet never newer than the API).
    assert _depends_on(plan, commands["dev-general-0-join-token"], commands["dev-cp-0-upgrade"])


def test_worker_batches_upgrade_in_lanes() -> None:
    plan = _run("batch-2")
    commands = _commands(plan)
    drain = {i: commands[f"dev-general-{i}-upgrade-drain"] for i in range(4)}
    uncordon = {i: commands[f"dev-general-{i}-upgrade-uncordon"] for i in range(4)}
    assert not _depends_on(plan, drain[1], uncordon[0]), "batch size 2: the first two workers go together"
    assert _depends_on(plan, drain[2], uncordon[0]) and _depends_on(plan, drain[3], uncordon[1])
    assert not _depends_on(plan, drain[3], uncordon[2])


def test_a_minor_bump_switches_the_package_repository_and_upgrades_control_planes_in_turn() -> None:
    before, after = _run("minor-before"), _run("minor-after")
    changed = set(_changed(before, after))
    commands = _commands(after)
    for node in ("dev-cp-0", "dev-cp-1", "dev-cp-2"):
        assert f"{node}-prepare" in changed and f"{node}-upgrade" in changed
        assert "pkgs.k8s.io/core:/stable:/v1.36/deb/" in commands[f"{node}-prepare"].input("stdin")
    assert "pkgs.k8s.io/core:/stable:/v1.35/deb/" in _commands(before)["dev-cp-0-prepare"].input("stdin")
    assert _env(commands["dev-cp-1-upgrade"])["UPGRADE_ROLE"] == "control-plane"
    assert _depends_on(after, commands["dev-cp-1-upgrade"], commands["dev-cp-0-upgrade"])
    assert _depends_on(after, commands["dev-cp-2-upgrade"], commands["dev-cp-1-upgrade"])
    assert _depends_on(after, commands["dev-general-0-upgrade-drain"], commands["dev-cp-2-upgrade"])
    # No join, token or machine re-runs: they are not upgrade steps.
    for name in changed:
        assert not name.endswith(("-join", "-join-token", "-membership")), f"{name} re-runs on a version bump"
    # The certificate key and the VMs stay as they are.
    assert "dev-certificate-key" not in changed and not any(n.startswith("dev-api") for n in changed)


def test_growing_from_one_to_three_control_planes_keeps_the_first_one() -> None:
    """1 -> 3: the first VM keeps its internal address (no replacement); only its SSH address moves."""
    single = run_program(stack_config(workerPools=[{**POOL, "count": 3}]), stack="dev")
    assert single.error is None, single.error
    ha = _run("ha")
    before, after = single.named("dev-cp-0"), ha.named("dev-cp-0")
    changed = sorted(k for k in set(before.inputs) | set(after.inputs) if before.inputs.get(k) != after.inputs.get(k))
    assert changed == ["networkInterfaces"], f"the first control plane's VM changes more than its NIC: {changed}"
    nic_before, nic_after = before.input("networkInterfaces.0"), after.input("networkInterfaces.0")
    assert nic_before["networkIp"] == nic_after["networkIp"], "its internal address must stay (a new one replaces the VM)"
    assert nic_before["accessConfigs"][0]["natIp"] == single.named("dev-api-public").outputs["address"]
    assert nic_after["accessConfigs"][0]["natIp"] == ha.named("dev-ssh-public").outputs["address"]
    # The endpoint every node already knows is a name: it does not change with the topology.
    assert _docs(_commands(single)["dev-cp-0-init"])[1]["controlPlaneEndpoint"] == "api.dev.internal:6443"
    for i in range(3):
        assert _env(_commands(single)[f"dev-general-{i}-prepare"])["API_ENDPOINT_NAME"] == "api.dev.internal"


def test_adding_a_worker_to_an_ha_stack_touches_no_control_plane() -> None:
    more = run_program(stack_config(controlPlane={"count": 3}, workerPools=[{**POOL, "count": 4}]), stack="dev")
    assert more.error is None, more.error
    before, after = _run("ha").by_urn(), more.by_urn()
    added = sorted(after[u].name for u in set(after) - set(before))
    assert all(name.startswith(("dev-general-3", "dev-nodes-dev-general-3")) for name in added), added
    changed = sorted(before[u].name for u in before if before[u].inputs != after[u].inputs)
    # Ceph's spec follows the storage nodes; the load balancer and every control-plane step stay.
    # (3 -> 4 storage nodes: the pool keeps 3 replicas, only the CephCluster spec changes.)
    assert changed == ["dev-rook-cluster"], changed


# --- the Kubernetes provider's identity -------------------------------------------------------


def test_the_kubernetes_provider_is_the_init_steps_cluster_so_a_reread_kubeconfig_replaces_nothing() -> None:
    """Without ``clusterIdentifier``, a preview in which the kubeconfig-reading step runs again
    (its stdout unknown) shows the provider and every add-on as replaced. With it, the provider
    is replaced only when its identifier changes: here, only when ``kubeadm init`` is created
    anew, i.e. when there is a new cluster."""
    doc = " ".join(inspect.getsource(pulumi_kubernetes.Provider).split())
    # pulumi-kubernetes 4.34.2 (requirements.txt), Provider's own docstring; the rule lives in
    # provider/pkg/provider/provider.go DiffConfig (adding the identifier to an existing
    # provider replaces nothing: "in order to make on- and off-boarding less risky").
    assert "the provider will _only_ be replaced when `clusterIdentifier` changes" in doc, (
        "the pinned pulumi-kubernetes no longer documents clusterIdentifier's replacement rule"
    )
    for key in ("single", "patch-before", "patch-after"):
        plan = _run(key)
        (provider,) = plan.of_type("pulumi:providers:kubernetes")
        init = plan.named("dev-cp-0-init")
        identifier = provider.input("clusterIdentifier")
        assert identifier and identifier == f"{init.name}-id", (
            f"{key}: the provider's clusterIdentifier must be the init step's id, got {identifier!r}"
        )
        assert "clusterIdentifier" not in provider.secret_inputs
        assert _depends_on(plan, provider, init) or init.urn in provider.property_dependencies.get("clusterIdentifier", [])


# --- settings that run nothing on the nodes ---------------------------------------------------


def _changed_inputs(before: Plan, after: Plan) -> list[str]:
    a, b = before.by_urn(), after.by_urn()
    assert set(a) == set(b), f"a setting change added or removed resources: {sorted(set(a) ^ set(b))}"
    return sorted(a[u].name for u in a if a[u].inputs != b[u].inputs)


def test_a_drain_timeout_change_runs_nothing_on_the_nodes() -> None:
    """upgrade.drainTimeout lives in the settings ConfigMap (read by each drain when it runs), not
    in any step's inputs: changing it updates that one Kubernetes object."""
    shape = {"controlPlane": {"count": 3}, "workerPools": [{**POOL, "count": 4}]}
    before = run_program(stack_config(**shape, upgrade={"drainTimeout": "5m"}), stack="dev")
    after = run_program(stack_config(**shape, upgrade={"drainTimeout": "20m"}), stack="dev")
    assert before.error is None and after.error is None, (before.error, after.error)
    assert _changed_inputs(before, after) == ["dev-settings"], _changed_inputs(before, after)
    run, chain = change_cost(before, after)
    assert run == [] and chain == [], f"a drainTimeout change runs steps on the nodes: {run}"
    assert after.named("dev-settings").input("data") == {"drainTimeout": "20m"}
    for command in after.of_type(COMMAND):
        for field in ("stdin", "create", "update", "delete"):
            assert "20m" not in str(command.input(field) or ""), f"{command.name}'s {field} carries the drain timeout"


def test_a_worker_batch_size_change_changes_no_input() -> None:
    """upgrade.workerBatchSize only orders the worker upgrades (depends_on, which is no input)."""
    one, two = _run("patch-before"), _run("batch-2")
    assert _changed_inputs(one, two) == [], _changed_inputs(one, two)
    assert change_cost(one, two) == ([], [])
    commands_one, commands_two = _commands(one), _commands(two)
    drain, uncordon = "dev-general-1-upgrade-drain", "dev-general-0-upgrade-uncordon"
    assert _depends_on(one, commands_one[drain], commands_one[uncordon])
    assert not _depends_on(two, commands_two[drain], commands_two[uncordon]), "the batch size did not reshape the order"


#: What an upgrade step's inputs may name: the target version and the node (its name and role),
#: the action of a drain step, the step's time bound, and the control planes' pre-upgrade snapshot.
UPGRADE_INPUTS = {"NODE_NAME", "K8S_VERSION", "UPGRADE_ROLE", "ACTION", "KC_STEP_TIMEOUT", "BACKUP_REASON", "BACKUP_REQUIRED"}


def test_upgrade_steps_inputs_are_only_the_version_and_the_node() -> None:
    """Settings other than kubernetesVersion never reach an upgrade step, so changing them never
    runs one (an upgrade step runs whenever its inputs change)."""
    shape = {"controlPlane": {"count": 3}, "workerPools": [{**POOL, "count": 3}]}
    before = run_program(stack_config(**shape), stack="dev")
    after = run_program(
        stack_config(**shape, upgrade={"drainTimeout": "30m", "workerBatchSize": 3}, backup={"schedule": "*-*-* 03:00:00"}),
        stack="dev",
    )
    assert before.error is None and after.error is None, (before.error, after.error)
    upgrade_steps = [c for c in _commands(after).values() if c.name.endswith(("-upgrade", "-upgrade-drain", "-upgrade-uncordon", "-version-check"))]
    assert len(upgrade_steps) == 1 + 3 + 3 * 3, [c.name for c in upgrade_steps]
    old = _commands(before)
    for step in upgrade_steps:
        assert set(_env(step)) <= UPGRADE_INPUTS, f"{step.name} has inputs beyond the version and the node: {sorted(set(_env(step)) - UPGRADE_INPUTS)}"
        assert step.inputs == old[step.name].inputs, f"{step.name}'s inputs changed with settings other than the version"


def test_the_settings_configmap_is_the_one_the_scripts_read() -> None:
    from components.bootstrap import SETTINGS_CONFIGMAP
    from components.bootstrap.scripts import script

    assert f"\nKC_SETTINGS_CONFIGMAP={SETTINGS_CONFIGMAP}\n" in script("lib.sh"), (
        "lib.sh's KC_SETTINGS_CONFIGMAP is not the ConfigMap the program writes (SETTINGS_CONFIGMAP)"
    )
    settings = _run("single").named("dev-settings")
    assert settings.input("metadata") == {
        "name": SETTINGS_CONFIGMAP, "namespace": "kube-system", "labels": {"app.kubernetes.io/managed-by": "kubeadm-cluster"}
    }


def test_a_kubeconfig_read_again_keeps_the_providers_identifier_and_replaces_no_add_on() -> None:
    """Two runs in different kubeconfig refresh windows: the kubeconfig-reading step is replaced
    (its trigger changed; in the real preview its stdout, hence the provider's kubeconfig, is
    unknown), while the provider's clusterIdentifier (the init step's id) is the same, so
    pulumi-kubernetes plans no replacement of the provider or of anything it manages."""
    from datetime import timedelta

    from tools.mock_engine import MOCK_NOW

    config = stack_config(workerPools=[{**POOL, "count": 2}])
    before = run_program(config, stack="dev", now=MOCK_NOW)
    after = run_program(config, stack="dev", now=MOCK_NOW + timedelta(days=30))
    assert before.error is None and after.error is None, (before.error, after.error)
    old, new = before.by_urn(), after.by_urn()
    changed = sorted(old[u].name for u in old if old[u].inputs != new[u].inputs)
    assert "dev-cp-0-kubeconfig" in changed, f"the kubeconfig step did not change in a new window: {changed}"
    assert old[before.named("dev-cp-0-kubeconfig").urn].input("triggers") != after.named("dev-cp-0-kubeconfig").input("triggers")
    (provider_before,) = before.of_type("pulumi:providers:kubernetes")
    (provider_after,) = after.of_type("pulumi:providers:kubernetes")
    assert provider_before.urn == provider_after.urn
    assert provider_after.input("clusterIdentifier") == provider_before.input("clusterIdentifier") == "dev-cp-0-init-id", (
        "the provider's identity must not follow the kubeconfig step"
    )
    managed = [r for r in after.resources if r.provider.startswith(provider_after.urn)]
    assert managed, "no Kubernetes object uses the cluster's provider"
    assert not [r.name for r in managed if r.inputs != old[r.urn].inputs], "an add-on changed with a re-read kubeconfig"


# --- the node scripts, copied once per node ---------------------------------------------------


def test_every_step_waits_for_the_copy_of_the_scripts_on_the_node_it_runs_on() -> None:
    """Each node gets one CopyToRemote of the scripts directory (over the node's own connection,
    jump host included) and every step that sources them on that node waits for it. The only
    exceptions: the jump host's sshd settings (a standalone bundle, so the copies through the jump
    host need not wait), and the first control plane's own resize drain, which runs before its VM
    changes, so before that VM's copy (it finds the copy an earlier `up` left)."""
    import pulumi_command

    doc = " ".join(inspect.getsource(pulumi_command.remote.CopyToRemote).split())
    # pulumi-command 1.2.1 SDK (requirements.txt): a directory is copied recursively; the
    # provider's copyController.go (v1.2.1) puts a directory without a trailing slash under
    # <remotePath>/<its basename> and copies again on a new source hash, remote path or trigger.
    assert "Directories are copied recursively, overwriting existing files." in doc, "recheck CopyToRemote's semantics"
    plan = _run("ha")
    copies = plan.of_type("command:remote:CopyToRemote")
    assert sorted(c.name for c in copies) == sorted(f"dev-{n}-scripts" for n in ("cp-0", "cp-1", "cp-2", "general-0", "general-1", "general-2"))
    by_connection = {yaml.safe_dump(c.input("connection")): c for c in copies}
    assert len(by_connection) == len(copies), "two copies share a connection"
    for copy in copies:
        assert copy.input("remotePath") == "kubeadm-cluster" and copy.input("source.path", "").endswith("/scripts"), copy.inputs
        triggers = copy.input("triggers")
        assert "# kc-script lib.sh sha256:" in triggers[0] and triggers[1] == plan.named(copy.name.removesuffix("-scripts")).outputs["instanceId"]
    for command in _commands(plan).values():
        if command.name in ("dev-cp-0-sshd", "dev-cp-0-resize-drain"):
            continue
        copy = by_connection[yaml.safe_dump(command.input("connection"))]
        assert copy.urn in plan.ancestors_depend(command), f"{command.name} does not wait for {copy.name}"
    sshd = plan.named("dev-cp-0-sshd")
    assert "# kc-script jump-host.sh sha256:" in sshd.input("stdin") and sshd.ignore_changes == ["stdin"]
