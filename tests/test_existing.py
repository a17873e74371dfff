"""provider: existing (your own servers) and restricted-network mirrors, under mocks."""

from __future__ import annotations

from typing import Any

from tests.conftest import expanded
from tools.mock_engine import Plan, run_program

KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nREAL-LOOKING\n-----END OPENSSH PRIVATE KEY-----\n"


def _existing(bastion: bool = True, **extra: Any) -> Plan:
    hosts: dict[str, Any] = {
        "controlPlane": [{"address": "192.0.2.10", "user": "ops"}],
        "workers": [
            {"address": "192.0.2.11", "user": "ops", "pool": "general", "storageDevice": "/dev/disk/by-id/nvme-data"},
            {"address": "rack1-node3.example.net", "internalIp": "192.0.2.13", "user": "ops", "port": 2222, "pool": "general"},
        ],
    }
    if bastion:
        hosts["bastion"] = {"address": "198.51.100.5", "user": "jump"}
    config = {
        "provider": "existing",
        "adminCidrs": ["203.0.113.7/32"],
        "existingHosts": hosts,
        "workerPools": [{"name": "general", "count": 0}],
        "sshPrivateKey": KEY,
        **extra,
    }
    plan = run_program(config, stack="lab", secret_keys=["kubeadm-cluster:sshPrivateKey"])
    assert plan.error is None, plan.error
    return plan


def test_existing_hosts_create_no_cloud_resources() -> None:
    plan = _existing()
    cloud = [r.type for r in plan.resources if r.type.startswith(("gcp:", "tls:"))]
    assert cloud == [], f"existing hosts must not create cloud resources: {cloud}"
    assert plan.of_type("kubeadm-cluster:index:ExistingMachines")


def test_commands_target_the_given_addresses_through_the_bastion() -> None:
    plan = _existing()
    prepares = {r.name: r.input("connection") for r in plan.of_type("command:remote:Command") if r.name.endswith("-prepare")}
    assert {c["host"] for c in prepares.values()} == {"192.0.2.10", "192.0.2.11", "rack1-node3.example.net"}
    assert prepares["lab-general-1-prepare"]["port"] == 2222 and prepares["lab-general-1-prepare"]["user"] == "ops"
    for name, connection in prepares.items():
        assert connection["proxy"]["host"] == "198.51.100.5", f"{name} does not go through the bastion"
        assert connection["privateKey"] == KEY
    direct = _existing(bastion=False)
    for command in direct.of_type("command:remote:Command"):
        assert command.input("connection").get("proxy") is None, command.name


def test_private_key_is_secret_everywhere() -> None:
    plan = _existing()
    for command in plan.of_type("command:remote:Command"):
        assert "connection" in command.secret_inputs, f"{command.name}: the SSH key is not secret"
    assert {"kubeconfig", "joinCommand"} <= plan.secret_outputs


def test_preflight_is_the_hardware_gate_before_kubeadm() -> None:
    plan = _existing()
    commands = {r.name: r for r in plan.of_type("command:remote:Command")}
    for name in ("lab-cp-0", "lab-general-0", "lab-general-1"):
        stdin = commands[f"{name}-prepare"].input("stdin")
        assert stdin.index("preflight") < stdin.index("kubeadm"), f"{name}: preflight must run first"
        assert "export MIN_MEMORY_MB=4096" in stdin
    init = commands["lab-cp-0-init"]
    assert commands["lab-cp-0-prepare"].urn in plan.ancestors_depend(init)


def test_nodes_output_names_the_pools() -> None:
    nodes = _existing().outputs["nodes"]
    assert nodes["lab-general-0"] == {"internalIp": "192.0.2.11", "pool": "general", "role": "worker"}
    # Reached by its DNS name over SSH, but the kubelet gets an IP: its internalIp.
    assert nodes["lab-general-1"]["internalIp"] == "192.0.2.13"


def test_a_host_reached_by_name_joins_with_its_internal_ip() -> None:
    import yaml

    plan = _existing()
    join = next(r for r in plan.of_type("command:remote:Command") if r.name == "lab-general-1-join")
    assert join.input("connection")["host"] == "rack1-node3.example.net"
    config = join.input("stdin").split("export KUBEADM_CONFIG=", 1)[1]
    assert "value: 192.0.2.13" in config and "rack1-node3.example.net" not in config, config[:400]


MIRRORS = {
    "kubernetesPackages": "https://mirror.example.cn/kubernetes-new/core/stable/{minor}/deb/",
    "containerdReleases": "https://mirror.example.cn/containerd/releases",
    "runcReleases": "https://mirror.example.cn/runc/releases",
    "registries": {"docker.io": ["https://hub.mirror.example.cn"], "quay.io": ["https://quay.mirror.example.cn"]},
}


def test_mirrors_reach_the_node_scripts_and_kubeadm() -> None:
    plan = _existing(mirrors=MIRRORS, imageRepository="registry.mirror.example.cn/k8s")
    commands = {r.name: r for r in plan.of_type("command:remote:Command")}
    stdin = commands["lab-general-0-prepare"].input("stdin")
    assert "export K8S_APT_REPO=https://mirror.example.cn/kubernetes-new/core/stable/v1.36/deb/" in stdin
    assert "export CONTAINERD_RELEASE_URL=https://mirror.example.cn/containerd/releases" in stdin
    assert "export RUNC_RELEASE_URL=https://mirror.example.cn/runc/releases" in stdin
    assert "docker.io=https://hub.mirror.example.cn" in stdin and "quay.io=https://quay.mirror.example.cn" in stdin
    assert "export PAUSE_IMAGE=registry.mirror.example.cn/k8s/pause:" in stdin
    assert "imageRepository: registry.mirror.example.cn/k8s" in commands["lab-cp-0-init"].input("stdin")


def test_no_mirror_anywhere_when_none_is_set() -> None:
    plan = _existing()
    for command in plan.of_type("command:remote:Command"):
        stdin = command.input("stdin") or command.input("delete") or ""
        assert "export REGISTRY_MIRRORS=''" in stdin or "REGISTRY_MIRRORS" not in stdin, command.name
        assert "example.cn" not in stdin
    prepare = [c for c in plan.of_type("command:remote:Command") if c.name.endswith("-prepare")][0]
    assert "export K8S_APT_REPO=https://pkgs.k8s.io/core:/stable:/v1.36/deb/" in prepare.input("stdin")
    assert "imageRepository: registry.k8s.io" in {c.name: c for c in plan.of_type("command:remote:Command")}["lab-cp-0-init"].input("stdin")


def test_an_owned_server_leaving_the_stack_is_drained_and_reset() -> None:
    commands = {r.name: r for r in _existing().of_type("command:remote:Command")}
    assert "kubeadm reset --force" in commands["lab-general-0-join"].input("delete")
    assert "kubectl drain" in expanded(commands["lab-general-0-membership"].input("delete"))
