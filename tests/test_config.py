"""The config validation catalogue: every rule has a failing case, run through the real program.

Each case asserts the message names the field and what is allowed, and that the program
registered no resource at all (bad config -> nothing half-made).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from components import hardware
from components.config import ClusterConfig, ConfigError, parse_cluster_config
from tests.conftest import GCP, stack_config
from tools.mock_engine import run_program

POOL = {"name": "general", "count": 2, "storageDiskSizeGb": 50}

CASES: list[tuple[str, dict[str, Any], list[str]]] = [
    ("malformed subnet", {"network": {"subnetCidr": "10.240.0.0/33"}}, ["network.subnetCidr", "not a valid IPv4 CIDR"]),
    ("host bits set", {"network": {"podCidr": "10.32.0.1/12"}}, ["network.podCidr", "host bits set"]),
    ("pods overlap subnet", {"network": {"podCidr": "10.240.0.0/16"}}, ["network", "overlaps", "podCidr"]),
    ("services overlap pods", {"network": {"serviceCidr": "10.32.0.0/16"}}, ["overlaps", "serviceCidr"]),
    ("malformed admin CIDR", {"adminCidrs": ["my-laptop"]}, ["adminCidrs", "not a valid IPv4 CIDR"]),
    ("empty admin CIDRs", {"adminCidrs": []}, ["adminCidrs", "at least one CIDR"]),
    ("shared-core machine", {"controlPlane": {"machineType": "e2-medium"}}, ["controlPlane.machineType", "shared-core"]),
    ("one vCPU", {"workerPools": [{**POOL, "machineType": "n1-standard-1"}]}, ["workerPools[0].machineType", "1 vCPU", "at least 2"]),
    ("too little memory", {"workerPools": [{**POOL, "machineType": "n2-custom-2-2048"}]}, ["workerPools[0].machineType", "2 GB of memory", "at least 4 GB"]),
    ("unknown machine type", {"controlPlane": {"machineType": "e2-gigantic-9"}}, ["controlPlane.machineType", "unknown machine type"]),
    ("small disk", {"controlPlane": {"diskSizeGb": 20}}, ["controlPlane.diskSizeGb", "at least 30 GB"]),
    ("even control plane", {"controlPlane": {"count": 2}}, ["controlPlane.count", "1, 3, 5 or 7"]),
    ("negative control plane", {"controlPlane": {"count": -1}}, ["controlPlane.count", "odd"]),
    ("pool name not a DNS label", {"workerPools": [{**POOL, "name": "GPU_Pool"}]}, ["workerPools[0].name", "DNS label"]),
    ("repeated pool name", {"workerPools": [POOL, POOL]}, ["workerPools", "used twice"]),
    ("malformed label", {"workerPools": [{**POOL, "labels": {"bad key!": "x"}}]}, ["workerPools[0].labels", "invalid"]),
    ("malformed taint", {"workerPools": [{**POOL, "taints": ["dedicated=batch"]}]}, ["workerPools[0].taints", "key[=value]:Effect"]),
    ("unknown taint effect", {"workerPools": [{**POOL, "taints": ["a=b:NoWay"]}]}, ["workerPools[0].taints", "NoSchedule, PreferNoSchedule, NoExecute"]),
    ("unknown CNI", {"cni": "cilium"}, ["cni", "weave", "flannel", "calico"]),
    ("unknown dashboard kind", {"dashboard": {"kind": "octant"}}, ["dashboard.kind", "kubernetes-dashboard", "headlamp"]),
    ("version too new", {"kubernetesVersion": "1.37.0"}, ["kubernetesVersion", "not supported", "1.35, 1.36"]),
    ("version too old", {"kubernetesVersion": "1.30.2"}, ["kubernetesVersion", "not supported"]),
    ("version not full", {"kubernetesVersion": "1.36"}, ["kubernetesVersion", "1.MINOR.PATCH"]),
    ("rook without storage", {"workerPools": [{"name": "general", "count": 2}]}, ["rook.enabled", "storage disk"]),
    ("typo at the top", {"workerPool": [POOL]}, ["kubeadm-cluster:workerPool", "unknown key", "workerPools"]),
    ("typo inside an object", {"controlPlane": {"machinetype": "e2-standard-2"}}, ["controlPlane.machinetype", "unknown key", "machineType"]),
    ("removed tutorial flag", {"kubeadm": {"controllerManagerExtraArgs": {"horizontal-pod-autoscaler-use-rest-clients": "true"}}}, ["controllerManagerExtraArgs", "removed in Kubernetes 1.21"]),
    ("existing HA without a load balancer", {"provider": "existing", "existingHosts": {"controlPlane": [{"address": "10.0.0.1"}, {"address": "10.0.0.2"}, {"address": "10.0.0.3"}]}}, ["existingHosts", "apiLoadBalancer", "6443"]),
    ("upgrade batch out of range", {"upgrade": {"workerBatchSize": 0}}, ["upgrade.workerBatchSize", "1 to 20"]),
    ("upgrade drain timeout not a duration", {"upgrade": {"drainTimeout": "forever"}}, ["upgrade.drainTimeout", "duration"]),
    ("existing without hosts", {"provider": "existing"}, ["existingHosts"]),
    ("existing host name without its IP", {"provider": "existing", "existingHosts": {"controlPlane": [{"address": "cp.example.net"}]}}, ["existingHosts.controlPlane[0]", "host name", "internalIp"]),
    ("unknown provider", {"provider": "aws"}, ["provider", "gcp", "existing"]),
    ("image repository with scheme", {"imageRepository": "https://mirror.example.com"}, ["imageRepository", "no scheme"]),
]


@pytest.mark.parametrize("keys,expected", [(c[1], c[2]) for c in CASES], ids=[c[0] for c in CASES])
def test_bad_config_fails_naming_the_field_and_registers_nothing(keys: dict[str, Any], expected: list[str]) -> None:
    plan = run_program(stack_config(**keys))
    assert plan.error is not None, f"config {keys} was accepted"
    for text in expected:
        assert text in plan.error, f"error for {keys} should mention {text!r}:\n{plan.error}"
    assert plan.resources == [], f"bad config registered {[r.name for r in plan.resources]}"


def test_zone_outside_region_is_rejected_before_any_resource() -> None:
    config = stack_config()
    config["gcp:zone"] = "us-east1-b"
    plan = run_program(config)
    assert plan.error and "gcp:zone" in plan.error and "europe-west1" in plan.error, plan.error
    assert plan.resources == []


def test_missing_admin_cidrs_is_required() -> None:
    plan = run_program(dict(GCP))
    assert plan.error and "kubeadm-cluster:adminCidrs: is required" in plan.error, plan.error
    assert plan.resources == []


def test_every_bad_field_is_reported_at_once() -> None:
    plan = run_program(stack_config(cni="cilium", controlPlane={"count": 2}))
    assert plan.error and "cni" in plan.error and "controlPlane.count" in plan.error, plan.error


def test_below_recommended_memory_warns_but_deploys() -> None:
    plan = run_program(stack_config(workerPools=[{**POOL, "machineType": "e2-highcpu-4"}]))
    assert plan.error is None, plan.error
    assert any("e2-highcpu-4" in w and "recommended" in w for w in plan.warnings), plan.warnings


def test_defaults_match_the_contract() -> None:
    config = ClusterConfig.model_validate({"adminCidrs": ["198.51.100.0/24"]})
    assert config.provider == "gcp" and config.cni == "weave"
    assert config.kubernetes_version.startswith("1.36.")
    cp = config.control_plane
    assert (cp.count, cp.machine_type, cp.disk_size_gb, cp.schedulable, cp.storage_disk_size_gb) == (1, "e2-standard-2", 50, False, 0)
    assert [(p.name, p.count) for p in config.worker_pools] == [("general", 2)]
    assert (config.network.subnet_cidr, config.network.pod_cidr, config.network.service_cidr) == (
        "10.240.0.0/24", "10.32.0.0/12", "10.96.0.0/12")
    assert config.dashboard.enabled and config.rook.enabled
    assert config.image_repository == "registry.k8s.io"


def test_structured_values_arrive_as_json_text_like_the_cli_sends_them() -> None:
    config = parse_cluster_config({"adminCidrs": '["203.0.113.7/32"]', "kubernetesVersion": "1.35.9",
                                   "controlPlane": '{"count": 3, "schedulable": true}'})
    assert config.kubernetes_version == "1.35.9" and config.control_plane.count == 3
    with pytest.raises(ConfigError, match="controlPlane.schedulable"):
        parse_cluster_config({"adminCidrs": '["203.0.113.7/32"]', "controlPlane": '{"schedulable": "maybe"}'})


@pytest.mark.parametrize("machine_type", ["e2-standard-2", "n2-standard-4", "c4a-standard-2", "t2a-standard-2",
                                          "n2-custom-4-16384", "custom-2-4096", "n2d-highmem-2", "n4-standard-2",
                                          "c4-standard-2", "c4-standard-24", "n4-custom-2-8192"])
def test_machine_types_that_meet_the_spec(machine_type: str) -> None:
    assert hardware.machine_type_problems(machine_type) == []


@pytest.mark.parametrize("machine_type", ["e2-micro", "e2-small", "e2-medium", "f1-micro", "g1-small", "n1-standard-1",
                                          "n1-highcpu-4", "t2a-standard-1", "e2-custom-medium-4096", "n2-custom-2-3072",
                                          "nonsense", "z9-standard-4"])
def test_machine_types_below_the_spec(machine_type: str) -> None:
    assert hardware.machine_type_problems(machine_type), f"{machine_type} should miss the spec"


@pytest.mark.parametrize("machine_type", ["e2-highmem-32", "n2-highcpu-128", "n2d-highmem-224", "n1-highcpu-1",
                                          "n1-highmem-1", "c4-standard-64", "c4a-custom-2-8192", "t2a-custom-2-8192"])
def test_machine_types_gce_does_not_offer_are_refused(machine_type: str) -> None:
    """GCE's tables (tests/upstream/gce) have no such type: pulumi up would fail on it."""
    problems = hardware.machine_type_problems(machine_type)
    assert problems and "unknown machine type" in problems[0], f"{machine_type} passed: {problems}"


@pytest.mark.parametrize(("machine_type", "disk_type"), [("n4-standard-2", "hyperdisk-balanced"),
                                                         ("c4-standard-4", "hyperdisk-balanced"),
                                                         ("c4a-standard-2", "hyperdisk-balanced"),
                                                         ("e2-standard-2", "pd-balanced"),
                                                         ("n2-standard-4", "pd-balanced"),
                                                         ("t2a-standard-2", "pd-balanced")])
def test_disk_type_comes_with_the_machine_type(machine_type: str, disk_type: str) -> None:
    spec = hardware.lookup_machine_type(machine_type)
    assert spec is not None and spec.disk_type == disk_type, f"{machine_type}: {spec}"
    config = parse_cluster_config({"adminCidrs": '["203.0.113.7/32"]', "controlPlane": json.dumps({"machineType": machine_type})})
    assert hardware.disk_type(config.control_plane.machine_type) == disk_type


def test_arm_families_are_arm64() -> None:
    spec = hardware.lookup_machine_type("c4a-standard-4")
    assert spec is not None and spec.arch == "arm64" and spec.vcpus == 4 and spec.memory_mb == 16384
