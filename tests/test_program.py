"""The real program under Pulumi's mocks: resources, key inputs, dependency order, secrets."""

from __future__ import annotations

import ipaddress
from functools import cache
from typing import Any

import pytest
import yaml

from components import versions
from tests.conftest import expanded, stack_config
from tools.mock_engine import Plan, Registered, config_from_stack_file, run_program, stack_file

COMMAND = "command:remote:Command"
INSTANCE = "gcp:compute/instance:Instance"
FIREWALL = "gcp:compute/firewall:Firewall"

STACKS: dict[str, dict[str, Any]] = {
    "default": stack_config(),
    "single-node": stack_config(
        controlPlane={"schedulable": True, "storageDiskSizeGb": 50}, workerPools=[]
    ),
    "pools": stack_config(
        workerPools=[
            {"name": "general", "count": 2, "storageDiskSizeGb": 40},
            {"name": "batch", "count": 3, "machineType": "n2-standard-4", "labels": {"workload": "batch"},
             "taints": ["dedicated=batch:NoSchedule"]},
            {"name": "empty", "count": 0},
        ]
    ),
    "arm": stack_config(
        controlPlane={"machineType": "c4a-standard-2"},
        workerPools=[{"name": "arm", "count": 2, "machineType": "t2a-standard-2", "storageDiskSizeGb": 30}],
    ),
}


@cache
def plan_of(stack: str) -> Plan:
    plan = run_program(STACKS[stack], stack="dev")
    assert plan.error is None, f"stack {stack} failed: {plan.error}"
    return plan


def _commands(plan: Plan) -> dict[str, Registered]:
    return {r.name: r for r in plan.of_type(COMMAND)}


def _depends_on(plan: Plan, resource: Registered, other: Registered) -> bool:
    return other.urn in plan.ancestors_depend(resource)


def test_dev_stack_file_runs() -> None:
    plan = run_program(config_from_stack_file(stack_file("dev")), stack="dev")
    assert plan.error is None, plan.error
    assert len(plan.of_type(INSTANCE)) == 3


@pytest.mark.parametrize("stack,expected", [("default", 3), ("single-node", 1), ("pools", 6), ("arm", 3)])
def test_one_instance_per_node(stack: str, expected: int) -> None:
    instances = plan_of(stack).of_type(INSTANCE)
    assert len(instances) == expected, [i.name for i in instances]


def test_instances_meet_the_spec_and_are_hardened() -> None:
    for instance in plan_of("pools").of_type(INSTANCE):
        assert instance.input("bootDisk.initializeParams.size") >= 30, instance.name
        assert instance.input("shieldedInstanceConfig.enableSecureBoot") is True, instance.name
        metadata = instance.input("metadata")
        assert metadata["block-project-ssh-keys"] == "TRUE", f"{instance.name} accepts project-wide keys"
        assert metadata["ssh-keys"].startswith("kubeadm:ssh-ed25519 "), metadata
        assert instance.input("serviceAccount.email").startswith("dev-nodes@"), instance.name
    machine_types = {i.name: i.input("machineType") for i in plan_of("pools").of_type(INSTANCE)}
    assert machine_types["dev-batch-0"] == "n2-standard-4"


def test_only_the_first_control_plane_is_public() -> None:
    plan = plan_of("default")
    for instance in plan.of_type(INSTANCE):
        access = instance.input("networkInterfaces.0.accessConfigs") or []
        if instance.name == "dev-cp-0":
            assert len(access) == 1 and access[0]["natIp"].startswith("203.0.113."), access
        else:
            assert access == [], f"worker {instance.name} has a public address"


def test_arm_machines_get_arm_images() -> None:
    images = {i.name: i.input("bootDisk.initializeParams.image") for i in plan_of("arm").of_type(INSTANCE)}
    assert images == {
        "dev-cp-0": versions.GCP_IMAGES["arm64"],
        "dev-arm-0": versions.GCP_IMAGES["arm64"],
        "dev-arm-1": versions.GCP_IMAGES["arm64"],
    }
    default_images = {i.input("bootDisk.initializeParams.image") for i in plan_of("default").of_type(INSTANCE)}
    assert default_images == {versions.GCP_IMAGES["x86_64"]}


def test_storage_disks_are_separate_blank_disks() -> None:
    plan = plan_of("pools")
    disks = {d.name: d for d in plan.of_type("gcp:compute/disk:Disk")}
    assert set(disks) == {"dev-general-0-storage", "dev-general-1-storage"}
    for disk in disks.values():
        assert disk.input("size") == 40 and disk.input("image") is None and disk.input("snapshot") is None
    attached = plan.named("dev-general-0").input("attachedDisks")
    assert attached and attached[0]["deviceName"] == "ceph-osd", attached
    assert not plan.named("dev-batch-0").input("attachedDisks")


def test_firewall_opens_nothing_to_the_internet() -> None:
    plan = plan_of("default")
    rules = {r.name: r for r in plan.of_type(FIREWALL)}
    admin = rules["dev-network-admin"]
    assert admin.input("sourceRanges") == ["203.0.113.7/32"]
    assert admin.input("allows") == [{"protocol": "tcp", "ports": ["22", "6443"]}]
    internal = rules["dev-network-internal"]
    assert internal.input("sourceRanges") == ["10.240.0.0/24", "10.32.0.0/12"]
    for rule in rules.values():
        for cidr in rule.input("sourceRanges"):
            assert ipaddress.ip_network(cidr).num_addresses < 2**24, f"{rule.name} is open to {cidr}"
    nat = plan.of_type("gcp:compute/routerNat:RouterNat")
    assert len(nat) == 1 and nat[0].input("sourceSubnetworkIpRangesToNat") == "ALL_SUBNETWORKS_ALL_IP_RANGES"


def test_workers_are_reached_through_the_control_plane() -> None:
    commands = _commands(plan_of("default"))
    cp = commands["dev-cp-0-prepare"].input("connection")
    worker = commands["dev-general-0-prepare"].input("connection")
    assert cp.get("proxy") is None and cp["host"].startswith("203.0.113.")
    assert worker["proxy"]["host"] == cp["host"], "workers must be reached through the control plane"
    assert worker["host"].startswith("10.240.0."), worker["host"]


def test_every_node_is_prepared_with_the_pinned_versions_and_hardware_truth() -> None:
    plan = plan_of("default")
    commands = _commands(plan)
    for instance in plan.of_type(INSTANCE):
        prepare = commands[f"{instance.name}-prepare"]
        stdin = prepare.input("stdin")
        assert "export MIN_VCPUS=2" in stdin and "export MIN_MEMORY_MB=4096" in stdin and "export MIN_DISK_GB=30" in stdin
        assert f"export K8S_VERSION={versions.KUBERNETES_DEFAULT_VERSION}" in stdin
        assert "pkgs.k8s.io/core:/stable:/v1.36/deb/" in stdin
        assert f"export CONTAINERD_VERSION={versions.CONTAINERD_VERSION}" in stdin
        assert prepare.input("create") == "sudo bash -s"
        # Prep starts as soon as the VM exists: it waits for its own VM and nothing remote.
        assert _depends_on(plan, prepare, instance), f"{prepare.name} must wait for its VM"
        remote_deps = [u for u in plan.ancestors_depend(prepare) if u.split("::")[-2].endswith(COMMAND)]
        # ... but what runs nothing when created (the version check, the resize drains; they run
        # on a version or machine type change), and for a node behind the jump host the jump host's
        # sshd limits and the wait until the node accepts the key (tests/test_faults.py).
        running = sorted(u.rsplit("::", 1)[-1] for u in remote_deps if plan.by_urn()[u].input("create") is not None)
        expected = [] if instance.name == "dev-cp-0" else ["dev-cp-0-sshd", f"{instance.name}-reachable"]
        assert running == expected, running
        assert any(u.endswith("::dev-cp-0-version-check") for u in remote_deps), remote_deps


def test_init_config_is_generated_from_the_stack() -> None:
    init = _commands(plan_of("default"))["dev-cp-0-init"]
    stdin = init.input("stdin")
    config_text = stdin.split("export KUBEADM_CONFIG=", 1)[1]
    assert "kind: InitConfiguration" in config_text and "kind: ClusterConfiguration" in config_text
    assert "podSubnet: 10.32.0.0/12" in config_text and "serviceSubnet: 10.96.0.0/12" in config_text
    assert "apiVersion: kubeadm.k8s.io/v1beta4" in config_text


def test_join_order_each_join_after_init_and_its_own_token() -> None:
    plan = plan_of("pools")
    commands = _commands(plan)
    init = commands["dev-cp-0-init"]
    workers = [i.name for i in plan.of_type(INSTANCE) if "-cp-" not in i.name]
    assert len(workers) == 5
    for worker in workers:
        join, token = commands[f"{worker}-join"], commands[f"{worker}-join-token"]
        assert _depends_on(plan, join, init), f"{worker} joins before init"
        assert _depends_on(plan, join, token), f"{worker} joins before its token"
        assert _depends_on(plan, join, commands[f"{worker}-prepare"]), f"{worker} joins before its prep"
        assert _depends_on(plan, token, init), f"{worker}'s token is minted before init"
        assert token.input("connection")["host"] == commands["dev-cp-0-init"].input("connection")["host"]
        for other in workers:
            if other != worker:
                assert not _depends_on(plan, join, commands[f"{other}-join-token"]), f"{worker} waits for {other}'s token"
                assert not _depends_on(plan, join, commands[f"{other}-join"]), f"{worker} waits for {other}'s join"
        join_config = join.input("stdin").split("export KUBEADM_CONFIG=", 1)[1]
        assert "caCertHashes" in join_config and "sha256:" in join_config


def test_secrets_are_secret() -> None:
    plan = plan_of("default")
    for command in plan.of_type(COMMAND):
        assert "connection" in command.secret_inputs, f"{command.name}'s connection (private key) is not secret"
    commands = _commands(plan)
    for name, command in commands.items():
        if name.endswith(("-join-token", "-kubeconfig", "-join-command")):
            assert "stdout" in command.additional_secret_outputs, f"{name} stdout is not secret"
            assert command.input("logging") == "stderr", f"{name} logs its secret stdout"
        if name.endswith("-join"):
            assert "stdin" in command.secret_inputs, f"{name}'s stdin carries a token and is not secret"
    provider = plan.of_type("pulumi:providers:kubernetes")
    assert len(provider) == 1 and "kubeconfig" in provider[0].secret_inputs, "provider kubeconfig is not secret"
    assert {"kubeconfig", "joinCommand", "sshPrivateKey"} <= plan.secret_outputs, plan.secret_outputs
    assert "PRIVATE KEY" in plan.outputs["sshPrivateKey"] and plan.outputs["sshUser"] == "kubeadm"
    assert plan.outputs["sshHost"] == plan.named("dev-api-public").outputs["address"]
    assert "controlPlaneEndpoint" not in plan.secret_outputs


def test_outputs() -> None:
    plan = plan_of("pools")
    kubeconfig = yaml.safe_load(plan.outputs["kubeconfig"])
    public = plan.named("dev-api-public").outputs["address"]
    assert kubeconfig["clusters"][0]["cluster"]["server"] == f"https://{public}:6443"
    assert plan.outputs["controlPlaneEndpoint"] == f"https://{public}:6443"
    join = plan.outputs["joinCommand"]
    internal = plan.named("dev-api-internal").outputs["address"]
    # The endpoint is a name: a machine joined by hand gets its hosts entry first.
    assert join.startswith(f"echo '{internal} api.dev.internal' | sudo tee -a /etc/hosts"), join
    assert f"sudo kubeadm join {internal}:6443 --token " in join and "--discovery-token-ca-cert-hash sha256:" in join
    nodes = plan.outputs["nodes"]
    assert set(nodes) == {"dev-cp-0", "dev-general-0", "dev-general-1", "dev-batch-0", "dev-batch-1", "dev-batch-2"}
    assert nodes["dev-batch-1"]["pool"] == "batch" and nodes["dev-batch-1"]["role"] == "worker"
    assert nodes["dev-cp-0"]["role"] == "control-plane"
    assert "kubectl" in plan.outputs["nextSteps"]


def test_components_follow_the_convention() -> None:
    plan = plan_of("default")
    components = {r.type for r in plan.resources if not r.custom}
    assert {"kubeadm-cluster:index:GcpMachines", "kubeadm-cluster:index:Network",
            "kubeadm-cluster:index:KubeadmCluster"} <= components
    for resource in plan.resources:
        assert resource.parent, f"{resource.name} is not parented to a component"
        if resource.custom:
            assert resource.parent.split("::")[-2].split("$")[-1].startswith("kubeadm-cluster:index:"), (
                f"{resource.name} is not inside a kubeadm-cluster component")


def test_adding_a_worker_adds_only_its_own_steps() -> None:
    two = run_program(stack_config(workerPools=[{"name": "general", "count": 2, "storageDiskSizeGb": 50}]))
    three = run_program(stack_config(workerPools=[{"name": "general", "count": 3, "storageDiskSizeGb": 50}]))
    assert two.error is None and three.error is None
    before = {r.urn: r for r in two.resources}
    after = {r.urn: r for r in three.resources}
    added = sorted(after[u].name for u in set(after) - set(before))
    assert added == sorted(["dev-general-2", "dev-general-2-storage", "dev-general-2-prepare",
                            "dev-general-2-join-token", "dev-general-2-join", "dev-general-2-membership",
                            "dev-general-2-upgrade-drain", "dev-general-2-upgrade", "dev-general-2-upgrade-uncordon",
                            "dev-general-2-identity", "dev-general-2-reachable", "dev-general-2-scripts",
                            "dev-general-2-resize-drain", "dev-general-2-resize-uncordon",
                            "dev-nodes-dev-general-2"]), added
    assert set(before) <= set(after), "a resource disappeared when a worker was added"
    changed = sorted(before[u].name for u in before if before[u].inputs != after[u].inputs)
    # Only Ceph's own spec follows the storage nodes (a new OSD; 3 nodes -> 3 replicas):
    # no machine, command, patch or other add-on is touched.
    assert changed == ["dev-rook-cluster", "dev-rook-replicapool"], f"adding a worker changed: {changed}"


def test_removing_a_worker_drains_it_before_its_vm_is_deleted() -> None:
    plan = plan_of("default")
    commands = _commands(plan)
    for instance in plan.of_type(INSTANCE):
        if "-cp-" in instance.name:
            continue
        membership = commands[f"{instance.name}-membership"]
        # Pulumi deletes dependants first: membership (drain) -> join -> ... -> the VM.
        assert _depends_on(plan, membership, instance), f"{membership.name} must be deleted before {instance.name}"
        assert _depends_on(plan, membership, commands[f"{instance.name}-join"])
        delete = expanded(membership.input("delete"))
        assert "kubectl drain" in delete and "--ignore-daemonsets --delete-emptydir-data" in delete, delete
        assert f"NODE_NAME={instance.name}" in delete
        assert "--ignore-not-found" in delete, "removal must tolerate a node that is already gone"
        assert membership.input("connection")["host"] == commands["dev-cp-0-init"].input("connection")["host"]
        assert commands[f"{instance.name}-join"].input("delete") is None, "a VM is deleted, not reset"


def test_a_second_run_with_the_same_config_changes_nothing() -> None:
    first = run_program(STACKS["pools"], stack="dev")
    second = run_program(STACKS["pools"], stack="dev")
    assert first.error is None and second.error is None
    a, b = {r.urn: r.inputs for r in first.resources}, {r.urn: r.inputs for r in second.resources}
    assert set(a) == set(b), "the same config registered different resources"
    differing = sorted(urn.rsplit("::", 1)[-1] for urn in a if a[urn] != b[urn])
    assert differing == [], f"inputs are not deterministic (every up would update them): {differing}"


def test_removing_a_pool_removes_only_its_nodes_and_drains_them() -> None:
    both = run_program(stack_config(workerPools=[{"name": "general", "count": 2, "storageDiskSizeGb": 50},
                                                 {"name": "batch", "count": 2}]))
    one = run_program(stack_config(workerPools=[{"name": "general", "count": 2, "storageDiskSizeGb": 50}]))
    assert both.error is None and one.error is None
    before, after = both.by_urn(), one.by_urn()
    removed = sorted(before[u].name for u in set(before) - set(after))
    expected = sorted(f"dev-batch-{i}{suffix}" for i in range(2)
                      for suffix in ("", "-prepare", "-join-token", "-join", "-membership",
                                     "-upgrade-drain", "-upgrade", "-upgrade-uncordon",
                                     "-identity", "-reachable", "-resize-drain", "-resize-uncordon", "-scripts"))
    expected += ["dev-nodes-dev-batch-0", "dev-nodes-dev-batch-1"]
    assert removed == sorted(expected), removed
    assert set(after) <= set(before), "removing a pool created resources"
    for i in range(2):
        membership = before[next(u for u in before if before[u].name == f"dev-batch-{i}-membership")]
        assert "kubectl drain" in expanded(membership.input("delete"))
