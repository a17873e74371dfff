"""The validation catalogue, second round (issue 13): what GCE, kubeadm and the add-ons would refuse
later is refused before any resource, and messages a user can act on.

Every refusal runs the real program under the mock engine and asserts that the message names the
field and what is allowed, and that nothing was registered. The accepted cases next to them pin
what must keep working (one public address with several SSH ports, short stack names unchanged).

Upstream facts, and where they come from (read through the search tools; nothing copied):

* kubeadm, kubernetes/kubernetes ``cmd/kubeadm/app/constants/constants.go`` (stored version
  00886ac01fec1c8432967e8bb597828f46a9ba8b): ``MinimumAddressesInServiceSubnet = 10`` ("the DNS
  service is always at the tenth cluster clusterIP"), ``MaximumBitsForServiceSubnet = 20`` ("the
  largest supported service subnet is /12 for IPv4"), ``PodSubnetNodeMaskMaxDiff = 16``;
  ``cmd/kubeadm/app/apis/kubeadm/validation/validation.go`` at
  00d24de699fe4409b5829a5e51b73c1fc7bcba12 (the file tests/upstream/cli digests):
  ValidateNetworking (line 550) applies ValidateIPNetFromString (line 424, the minimum address
  count) and ValidateServiceSubnetSize (line 465) to the service subnet and ValidatePodSubnetNodeMask
  (line 480: "the size of pod subnet with mask %d is smaller than the size of node subnet with mask
  %d", and the difference at most PodSubnetNodeMaskMaxDiff) to the pod subnet, with
  getClusterNodeMask (line 508: ``defaultNodeMaskCIDRIPv4 = 24`` unless the controller manager's
  ``node-cidr-mask-size-ipv4`` extra arg says otherwise). The API server's own check
  (cmd/kube-apiserver/app/options/validation.go: "specified --service-cluster-ip-range is too
  large", 20 bits) agrees.
* kubeadm's managed flags: ``getAPIServerCommand`` and ``getControllerManagerCommand`` in
  ``cmd/kubeadm/app/phases/controlplane/manifests.go`` (v1beta4 era, ``[]kubeadmapi.Arg``):
  advertise-address, service-cluster-ip-range, secure-port, etcd-servers and the PKI paths; the
  controller manager's cluster-cidr, service-cluster-ip-range, allocate-node-cidrs, cluster-name and
  kubeconfig/CA paths.
* Duration flags: the kube-controller-manager and kube-apiserver reference pages
  (kubernetes/website ``content/en/docs/reference/command-line-tools-reference/*.md``) give each
  flag's type; the ones below are ``duration`` there, ``--min-request-timeout`` is ``int``.
* GCE: Persistent Disk volumes up to 64 TiB, Hyperdisk Balanced 4 GiB-64 TiB; subnets /29 or
  larger with 4 unusable addresses and prohibited ranges (cloud.google.com/vpc/docs/subnets);
  project IDs of 6-30 lowercase letters, digits and hyphens starting with a letter; custom machine
  types in 256 MB steps with per-series vCPU counts and memory per vCPU (Google's own
  custom-machine-type helper, GoogleCloudPlatform golang-samples, after
  cloud.google.com/compute/docs/general-purpose-machines#custom_machine_types).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from components import config as config_module
from components import hardware, versions
from components.config import ClusterConfig, cluster_name, helm_repositories_used, is_duration_flag, parse_cluster_config
from tests.conftest import GCP, stack_config
from tools.mock_engine import Plan, run_program

POOL = {"name": "general", "count": 2, "storageDiskSizeGb": 50}
KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nREAL-LOOKING\n-----END OPENSSH PRIVATE KEY-----\n"
RELEASE = "kubernetes:helm.sh/v3:Release"


def _pool(**fields: Any) -> list[dict[str, Any]]:
    return [{**POOL, **fields}]


def existing(hosts: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A ``provider: existing`` stack (Rook off unless a host names a storage device)."""
    return {
        "provider": "existing",
        "adminCidrs": ["203.0.113.7/32"],
        "existingHosts": hosts,
        "workerPools": [{"name": "general"}],
        "rook": {"enabled": False},
        "sshPrivateKey": KEY,
        **extra,
    }


def run_existing(config: dict[str, Any]) -> Plan:
    return run_program(config, stack="lab", secret_keys=["kubeadm-cluster:sshPrivateKey"])


def _hosts(count: int) -> dict[str, Any]:
    return {"controlPlane": [{"address": f"192.0.2.{10 + i}"} for i in range(count)], "apiLoadBalancer": "192.0.2.100"}


# (case, kubeadm-cluster keys of a GCP stack, fragments the message holds)
GCP_CASES: list[tuple[str, dict[str, Any], list[str]]] = [
    # Type confusion: lax pydantic read `true` as 1.
    ("control-plane count true", {"controlPlane": {"count": True}}, ["controlPlane.count", "boolean true", "a number"]),
    ("pool count true", {"workerPools": _pool(count=True)}, ["workerPools[0].count", "boolean true", "a number"]),
    ("disk size false", {"controlPlane": {"diskSizeGb": False}}, ["controlPlane.diskSizeGb", "boolean false"]),
    ("upgrade batch true", {"upgrade": {"workerBatchSize": True}}, ["upgrade.workerBatchSize", "boolean true"]),
    # GCE limits.
    ("boot disk over 64 TiB", {"controlPlane": {"diskSizeGb": 65537}}, ["controlPlane.diskSizeGb", "65536 GB", "pd-balanced"]),
    ("Ceph disk over 64 TiB", {"workerPools": _pool(storageDiskSizeGb=100000)}, ["workerPools[0].storageDiskSizeGb", "65536 GB"]),
    ("Hyperdisk over 64 TiB", {"workerPools": _pool(machineType="n4-standard-2", storageDiskSizeGb=70000)},
     ["workerPools[0].storageDiskSizeGb", "hyperdisk-balanced", "65536 GB"]),
    ("subnet smaller than /29", {"network": {"subnetCidr": "10.240.0.0/30"}}, ["network.subnetCidr", "/29"]),
    ("subnet too small for the nodes", {"network": {"subnetCidr": "10.240.0.0/29"}, "workerPools": _pool(count=4)},
     ["network.subnetCidr", "4 usable addresses", "needs 5", "/28"]),
    ("subnet too small for HA", {"network": {"subnetCidr": "10.240.0.0/28"}, "controlPlane": {"count": 3},
                                 "workerPools": _pool(count=9)},
     ["network.subnetCidr", "12 usable", "needs 13", "load balancer"]),
    ("loopback subnet", {"network": {"subnetCidr": "127.0.0.0/24"}}, ["network.subnetCidr", "loopback", "private space"]),
    ("link-local pods", {"network": {"podCidr": "169.254.0.0/16"}}, ["network.podCidr", "link-local"]),
    ("loopback Services", {"network": {"serviceCidr": "127.16.0.0/16"}}, ["network.serviceCidr", "loopback"]),
    ("multicast pods", {"network": {"podCidr": "224.0.0.0/12"}}, ["network.podCidr", "multicast"]),
    ("custom memory not in 256 MB steps", {"workerPools": _pool(machineType="n2-custom-4-16000")},
     ["workerPools[0].machineType", "steps of 256 MB"]),
    ("custom memory per vCPU too high", {"workerPools": _pool(machineType="e2-custom-2-20480")},
     ["workerPools[0].machineType", "at most 8 GB per vCPU"]),
    ("custom memory per vCPU too high without -ext", {"workerPools": _pool(machineType="n2-custom-2-20480")},
     ["workerPools[0].machineType", "add -ext"]),
    ("N1 custom memory per vCPU too low", {"controlPlane": {"machineType": "custom-8-4096"}},
     ["controlPlane.machineType", "at least 0.9 GB per vCPU"]),
    ("odd vCPU count where the series needs even", {"workerPools": _pool(machineType="n2-custom-3-12288")},
     ["workerPools[0].machineType", "N2 custom types take", "not 3"]),
    ("E2 custom with extended memory", {"workerPools": _pool(machineType="e2-custom-4-40960-ext")},
     ["workerPools[0].machineType", "no extended memory"]),
    # kubeadm's own rules.
    ("pod range smaller than the node mask", {"network": {"podCidr": "10.32.0.0/25"}},
     ["network.podCidr", "smaller than one node's pod range", "/24"]),
    ("pod range smaller than a configured node mask", {"network": {"podCidr": "10.32.0.0/24"},
                                                        "kubeadm": {"controllerManagerExtraArgs": {"node-cidr-mask-size-ipv4": "23"}}},
     ["network.podCidr", "/23"]),
    ("pod range 17 bits above the node mask", {"network": {"podCidr": "172.16.0.0/12"},
                                               "kubeadm": {"controllerManagerExtraArgs": {"node-cidr-mask-size": "29"}}},
     ["network.podCidr", "more than 16 bits"]),
    ("node mask not a number", {"kubeadm": {"controllerManagerExtraArgs": {"node-cidr-mask-size-ipv4": "wide"}}},
     ["controllerManagerExtraArgs.node-cidr-mask-size-ipv4", "prefix length"]),
    ("Service range without a tenth address", {"network": {"serviceCidr": "10.96.0.0/29"}},
     ["network.serviceCidr", "at least 10", "/28"]),
    ("Service range over /12", {"network": {"serviceCidr": "10.64.0.0/11"}}, ["network.serviceCidr", "at most /12"]),
    ("advertise-address extra arg", {"kubeadm": {"apiServerExtraArgs": {"advertise-address": "10.0.0.9"}}},
     ["apiServerExtraArgs", "'advertise-address'", "set by kubeadm", "remove it"]),
    ("service-cluster-ip-range extra arg", {"kubeadm": {"apiServerExtraArgs": {"service-cluster-ip-range": "10.0.0.0/16"}}},
     ["apiServerExtraArgs", "network.serviceCidr"]),
    ("secure-port extra arg", {"kubeadm": {"apiServerExtraArgs": {"secure-port": "8443"}}}, ["apiServerExtraArgs", "6443"]),
    ("cluster-cidr extra arg", {"kubeadm": {"controllerManagerExtraArgs": {"cluster-cidr": "10.0.0.0/8"}}},
     ["controllerManagerExtraArgs", "network.podCidr"]),
    ("allocate-node-cidrs extra arg", {"kubeadm": {"controllerManagerExtraArgs": {"allocate-node-cidrs": "false"}}},
     ["controllerManagerExtraArgs", "'allocate-node-cidrs'"]),
    ("duration without a unit", {"kubeadm": {"controllerManagerExtraArgs": {"node-monitor-grace-period": "10"}}},
     ["controllerManagerExtraArgs", "node-monitor-grace-period", "duration with a unit", "40s"]),
    ("API server duration without a unit", {"kubeadm": {"apiServerExtraArgs": {"request-timeout": "60"}}},
     ["apiServerExtraArgs", "request-timeout", "duration with a unit"]),
    ("duration as a YAML number", {"kubeadm": {"controllerManagerExtraArgs": {"node-monitor-grace-period": 50}}},
     ["node-monitor-grace-period", "the number 50", "10s"]),
    # Versions.
    ("version with a leading zero", {"kubernetesVersion": "1.36.04"}, ["kubernetesVersion", "leading zero", "1.36.4"]),
    ("minor with a leading zero", {"kubernetesVersion": "1.036.4"}, ["kubernetesVersion", "leading zero"]),
    # Taints.
    ("same taint key and effect twice", {"workerPools": _pool(taints=["dedicated=a:NoSchedule", "dedicated=b:NoSchedule"])},
     ["workerPools[0].taints", "same key and effect"]),
    ("object taint with a bad key", {"workerPools": _pool(taints=[{"key": "bad key!", "effect": "NoSchedule"}])},
     ["workerPools[0].taints[0]", "'bad key!'", "invalid"]),
    ("object taint with a bad value", {"workerPools": _pool(taints=[{"key": "dedicated", "value": "-x-", "effect": "NoSchedule"}])},
     ["workerPools[0].taints[0]", "'-x-'"]),
    ("object and string taint repeat a pair", {"workerPools": _pool(taints=["a=1:NoExecute", {"key": "a", "effect": "NoExecute"}])},
     ["workerPools[0].taints", "same key and effect"]),
    # Mirrors.
    ("helm mirror for a chart the stack does not install",
     {"mirrors": {"helmRepositories": {versions.HEADLAMP_CHART_REPO: "https://charts.example.com/headlamp"}}},
     ["mirrors.helmRepositories", "no chart this stack installs", versions.ROOK_CHART_REPO]),
    ("helm mirror key with a typo", {"mirrors": {"helmRepositories": {"https://charts.rook.io/releases": "https://m.example.com/r"}}},
     ["mirrors.helmRepositories", "https://charts.rook.io/releases"]),
    ("registry endpoint with a quote", {"mirrors": {"registries": {"docker.io": ['https://m.example.com/"x']}}},
     ["mirrors.registries", "docker.io", "'\"'", "hosts.toml"]),
    ("registry endpoint with a comma", {"mirrors": {"registries": {"quay.io": ["https://m.example.com/a,b"]}}},
     ["mirrors.registries", "','", "%2C"]),
    ("registry endpoint with a backslash", {"mirrors": {"registries": {"quay.io": ["https://m.example.com/a\\b"]}}},
     ["mirrors.registries", "'\\\\'"]),
    ("upper-case imageRepository", {"imageRepository": "Mirror.Example.com/K8s"},
     ["imageRepository", "lower case", "'mirror.example.com/k8s'"]),
    ("imageRepository kubeadm refuses", {"imageRepository": "mirror.example.com/-k8s"}, ["imageRepository", "ValidateImageRepository"]),
    # Admin access open to the world.
    ("admin CIDR 0.0.0.0/0", {"adminCidrs": ["0.0.0.0/0"]}, ["adminCidrs", "whole internet", "allowAdminFromInternet: true"]),
    ("admin CIDRs covering the internet together", {"adminCidrs": ["0.0.0.0/1", "128.0.0.0/1"]},
     ["adminCidrs", "0.0.0.0/1, 128.0.0.0/1 together", "allowAdminFromInternet"]),
    ("admin CIDRs covering it in four pieces", {"adminCidrs": ["0.0.0.0/2", "64.0.0.0/2", "128.0.0.0/2", "192.0.0.0/2"]},
     ["adminCidrs", "whole internet"]),
    # Messages that name the YAML shape, not Python classes.
    ("rook: false", {"rook": False}, ["kubeadm-cluster:rook", "{enabled: false}", "not false"]),
    ("dashboard: off", {"dashboard": False}, ["kubeadm-cluster:dashboard", "{enabled: false}", "enabled, kind, adminServiceAccount"]),
    ("name: no", {"workerPools": [{**POOL, "name": False}]}, ["workerPools[0].name", "boolean false", 'quote the value (e.g. name: "no")']),
    ("controlPlane: 3", {"controlPlane": 3}, ["kubeadm-cluster:controlPlane", "YAML mapping", "count"]),
    ("control plane count 9", {"controlPlane": {"count": 9}}, ["controlPlane.count", "1, 3, 5 or 7"]),
    # Empty values: the CLI hands a YAML null (~, or nothing after the colon) over as "" (pulumi/pulumi#19483).
    ("controlPlane: null", {"controlPlane": ""}, ["kubeadm-cluster:controlPlane: is empty", "YAML null", "controlPlane: {count: 1"]),
    ("kubernetesVersion: ~", {"kubernetesVersion": ""},
     ["kubeadm-cluster:kubernetesVersion: is empty", f'kubernetesVersion: "{versions.KUBERNETES_DEFAULT_VERSION}"']),
    ("workerPools: ~", {"workerPools": ""}, ["kubeadm-cluster:workerPools: is empty", "a list, e.g. workerPools: [{name: general"]),
    ("count: null inside an object", {"controlPlane": {"count": None}}, ["controlPlane.count: is empty", "count: 3"]),
    # pydantic's shape errors, told as YAML.
    ("count 2.5", {"controlPlane": {"count": 2.5}}, ["controlPlane.count", "2.5", "a whole number, e.g. count: 3"]),
    ("pool count as words", {"workerPools": _pool(count="two")}, ["workerPools[0].count", "'two'", "a whole number"]),
    ("adminCidrs as one text", {"adminCidrs": "203.0.113.7/32"}, ["kubeadm-cluster:adminCidrs", 'adminCidrs: ["203.0.113.7/32"]']),
    ("taints as one text", {"workerPools": _pool(taints="a=b:NoSchedule")}, ["workerPools[0].taints", 'taints: ["a=b:NoSchedule"]']),
    ("labels as a list", {"workerPools": _pool(labels=["tier=general"])}, ["workerPools[0].labels", "is a list", "labels: {tier: general}"]),
    ("helm mirror as a list", {"mirrors": {"helmRepositories": {versions.ROOK_CHART_REPO: ["https://m.example.com/rook"]}}},
     ["mirrors.helmRepositories", "is a list", "expected text"]),
    ("registry mirrors as one text", {"mirrors": {"registries": {"docker.io": "https://m.example.com"}}},
     ["mirrors.registries.docker.io", 'docker.io: ["https://m.example.com"]']),
    # Quoting hints with the user's own key and value.
    ("label gpu: yes", {"workerPools": _pool(labels={"gpu": True})}, ["labels.gpu", "boolean true", 'quote the value (e.g. gpu: "yes")']),
    ("name: on", {"workerPools": [{**POOL, "name": True}]}, ["workerPools[0].name", 'name: "yes"']),
    ("label value 1", {"workerPools": _pool(labels={"tier": 1})}, ["labels.tier", "the number 1", 'tier: "1"']),
    # Node labels in the namespaces Kubernetes reserves ("Well-Known Labels, Annotations and Taints",
    # kubernetes.io/docs/reference/labels-annotations-taints: "Kubernetes reserves all labels, annotations
    # and taints in the kubernetes.io and k8s.io namespaces"): the pool's labels are force-patched onto
    # the Node, over what the kubelet and the controllers set.
    ("reserved label kubernetes.io/hostname", {"workerPools": _pool(labels={"kubernetes.io/hostname": "x"})},
     ["workerPools[0].labels", "'kubernetes.io/hostname'", "reserves", "example.com/hostname", "node-role.kubernetes.io/<role>"]),
    ("reserved label in a subdomain", {"workerPools": _pool(labels={"topology.kubernetes.io/zone": "a"})},
     ["workerPools[0].labels", "'topology.kubernetes.io/zone'", "reserves"]),
    ("reserved label in k8s.io", {"workerPools": _pool(labels={"k8s.io/owner": "me"})}, ["'k8s.io/owner'", "reserves"]),
    ("reserved label in a k8s.io subdomain", {"workerPools": _pool(labels={"node.k8s.io/x": "y"})}, ["'node.k8s.io/x'"]),
    ("label key with an empty prefix", {"workerPools": _pool(labels={"/gpu": "x"})}, ["'/gpu'", "invalid prefix"]),
]


@pytest.mark.parametrize(("keys", "expected"), [(c[1], c[2]) for c in GCP_CASES], ids=[c[0] for c in GCP_CASES])
def test_gcp_stack_refused_before_any_resource(keys: dict[str, Any], expected: list[str]) -> None:
    plan = run_program(stack_config(**keys))
    assert plan.error is not None, f"config {keys} was accepted"
    for text in expected:
        assert text in plan.error, f"error for {keys} should mention {text!r}:\n{plan.error}"
    assert plan.resources == [], f"bad config registered {[r.name for r in plan.resources]}"
    for python_name in ("RookConfig", "DashboardConfig", "WorkerPoolConfig", "Input should be"):
        assert python_name not in plan.error, f"the message shows pydantic's wording {python_name!r}:\n{plan.error}"


# (case, stack config of own servers, fragments)
EXISTING_CASES: list[tuple[str, dict[str, Any], list[str]]] = [
    ("9 control-plane hosts", existing(_hosts(9)), ["existingHosts.controlPlane", "9 hosts", "1, 3, 5 or 7"]),
    ("4 control-plane hosts", existing(_hosts(4)), ["existingHosts.controlPlane", "1, 3, 5 or 7"]),
    ("two hosts with the same internalIp",
     existing({"controlPlane": [{"address": "198.51.100.5", "port": 2201, "internalIp": "192.168.1.10"}],
               "workers": [{"address": "198.51.100.5", "port": 2202, "internalIp": "192.168.1.10"}]}),
     ["existingHosts.workers[0].internalIp", "192.168.1.10", "controlPlane[0]"]),
    ("two hosts with the same address and no internalIp",
     existing({"controlPlane": [{"address": "192.0.2.10"}], "workers": [{"address": "192.0.2.10", "port": 2222}]}),
     ["existingHosts.workers[0].internalIp", "also the node IP", "set each one's internalIp"]),
    ("the same host and port twice",
     existing({"controlPlane": [{"address": "192.0.2.10", "internalIp": "10.1.0.1"}],
               "workers": [{"address": "192.0.2.10", "internalIp": "10.1.0.2"}]}),
     ["existingHosts.workers[0]", "port 22 is listed twice"]),
    ("IPv6 internalIp in an IPv4 cluster", existing({"controlPlane": [{"address": "cp.example.net", "internalIp": "2001:db8::10"}]}),
     ["existingHosts.controlPlane[0].internalIp", "IPv6", "IPv4"]),
    ("IPv6 address as the node IP", existing({"controlPlane": [{"address": "2001:db8::10"}]}),
     ["existingHosts.controlPlane[0].internalIp", "IPv6"]),
    ("node IP inside the Service range", existing({"controlPlane": [{"address": "10.96.0.20"}]}),
     ["existingHosts.controlPlane[0].internalIp", "network.serviceCidr 10.96.0.0/12"]),
    ("node IP inside the pod range", existing({"controlPlane": [{"address": "192.0.2.10", "internalIp": "10.32.1.5"}]}),
     ["existingHosts.controlPlane[0].internalIp", "network.podCidr"]),
    ("machineType on a host", existing({"controlPlane": [{"address": "192.0.2.10", "machineType": "n2-standard-4"}]}),
     ["existingHosts.controlPlane[0].machineType", "its own machine", "node preflight", "remove it"]),
    # Login names as useradd(8) takes them (shadow-maint/shadow man/useradd.8.xml, CAVEATS: the
    # regular expression [a-z_][a-z0-9_-]*[$]? and at most 32 characters; login.defs(5) has no
    # setting that widens it for ssh).
    ("user with a space", existing({"controlPlane": [{"address": "192.0.2.10", "user": "bad user"}]}),
     ["existingHosts.controlPlane[0].user", "'bad user'", "login name", "useradd"]),
    ("user starting with a digit", existing({"controlPlane": [{"address": "192.0.2.10"}],
                                             "workers": [{"address": "192.0.2.11", "user": "1admin"}]}),
     ["existingHosts.workers[0].user", "'1admin'"]),
    ("user of 33 characters", existing({"controlPlane": [{"address": "192.0.2.10"}], "bastion": {"address": "198.51.100.5", "user": "a" * 33}}),
     ["existingHosts.bastion.user", "at most 32"]),
    ("user with upper case", existing({"controlPlane": [{"address": "192.0.2.10", "user": "Admin"}]}),
     ["existingHosts.controlPlane[0].user", "lowercase"]),
]


@pytest.mark.parametrize(("config", "expected"), [(c[1], c[2]) for c in EXISTING_CASES], ids=[c[0] for c in EXISTING_CASES])
def test_own_servers_refused_before_any_resource(config: dict[str, Any], expected: list[str]) -> None:
    plan = run_existing(config)
    assert plan.error is not None, f"config {config['existingHosts']} was accepted"
    for text in expected:
        assert text in plan.error, f"error should mention {text!r}:\n{plan.error}"
    assert plan.resources == [], f"bad config registered {[r.name for r in plan.resources]}"


def test_control_plane_count_rule_and_message_agree() -> None:
    """Issue 13: 7 and 9 own control planes were accepted while the message said 1, 3 or 5. One
    list now drives the rule and both messages (GCP and own servers)."""
    assert config_module.CONTROL_PLANE_COUNTS == (1, 3, 5, 7)
    for count in range(0, 11):
        gcp = run_program(stack_config(controlPlane={"count": count}))
        own = run_existing(existing(_hosts(count)))
        allowed = count in config_module.CONTROL_PLANE_COUNTS
        for where, plan in (("gcp", gcp), ("existing", own)):
            assert (plan.error is None) == allowed, f"{where}, {count} control planes: {plan.error}"
            if not allowed:
                assert plan.error is not None and "1, 3, 5 or 7" in plan.error, plan.error


def test_one_public_address_with_several_ssh_ports_is_accepted() -> None:
    """Port forwarding: hosts share the public address, differ by SSH port and internal IP."""
    plan = run_existing(existing({
        "controlPlane": [{"address": "198.51.100.5", "port": 2201, "internalIp": "192.168.1.10"}],
        "workers": [{"address": "198.51.100.5", "port": 2202, "internalIp": "192.168.1.11"},
                    {"address": "198.51.100.5", "port": 2203, "internalIp": "192.168.1.12"}],
    }))
    assert plan.error is None, plan.error
    connections = {r.name: r.input("connection") for r in plan.of_type("command:remote:Command") if r.name.endswith("-prepare")}
    assert sorted((c["host"], c["port"]) for c in connections.values()) == [
        ("198.51.100.5", 2201), ("198.51.100.5", 2202), ("198.51.100.5", 2203)]
    assert {n["internalIp"] for n in plan.outputs["nodes"].values()} == {"192.168.1.10", "192.168.1.11", "192.168.1.12"}


def test_machine_fields_of_pools_are_ignored_with_own_servers_and_said_so() -> None:
    """README: pool machine fields are ignored for existing hosts. They were checked against the
    GCP catalogue (a pool's `machineType: bare-metal` refused the stack); now they are ignored,
    with a warning that names each one."""
    plan = run_existing(existing({"controlPlane": [{"address": "192.0.2.10"}]},
                                 workerPools=[{"name": "general", "machineType": "bare-metal", "diskSizeGb": 10}]))
    assert plan.error is None, plan.error
    for field in ("workerPools[general].machineType", "workerPools[general].diskSizeGb"):
        assert any(field in w and "ignored with provider 'existing'" in w for w in plan.warnings), plan.warnings


def test_counts_are_ignored_with_own_servers_and_said_so() -> None:
    """README: a pool's count "is ignored ... and a warning names each one you set"; it was ignored
    silently. controlPlane.count too: the control planes are the hosts of existingHosts.controlPlane
    (control_plane_count), so a count the hosts do not match is no error (2 was refused as "not odd")."""
    hosts = {"controlPlane": [{"address": "192.0.2.10"}], "workers": [{"address": "192.0.2.11"}]}
    for control_planes in (3, 2):
        plan = run_existing(existing(hosts, workerPools=[{"name": "general", "count": 5}], controlPlane={"count": control_planes}))
        assert plan.error is None, plan.error
        assert any(w.startswith("controlPlane.count is ignored with provider 'existing'") and "(1 host)" in w
                   for w in plan.warnings), plan.warnings
        assert any(w.startswith("workerPools[general].count is ignored") and "name pool general (1 host)" in w
                   for w in plan.warnings), plan.warnings
        assert len(plan.outputs["nodes"]) == 2, plan.outputs["nodes"]
    quiet = run_existing(existing(hosts))
    assert quiet.error is None and not [w for w in quiet.warnings if ".count is ignored" in w], quiet.warnings


@pytest.mark.parametrize("user", ["ubuntu", "debian", "_deploy", "ci-runner_2", "machine$", "a" * 32])
def test_login_names_useradd_takes_are_accepted(user: str) -> None:
    plan = run_existing(existing({"controlPlane": [{"address": "192.0.2.10", "user": user}]}))
    assert plan.error is None, plan.error


@pytest.mark.parametrize(
    ("keys", "absent"),
    [
        ({"workerPools": [{**POOL, "name": 123}]}, "durations take a unit"),
        ({"workerPools": _pool(labels={"tier": 1})}, "durations take a unit"),
        ({"mirrors": {"kubernetesPackages": 5}}, "durations take a unit"),
        ({"workerPools": _pool(labels={"gpu": True})}, 'name: "no"'),
        ({"workerPools": [{**POOL, "name": True}]}, 'name: "no"'),
    ],
    ids=["pool name 123", "label value 1", "kubernetesPackages: 5", "label gpu: yes", "name: on"],
)
def test_hints_fit_the_field(keys: dict[str, Any], absent: str) -> None:
    """The duration hint was added to every number given for text, and the quoting hint always
    showed `name: "no"`, whatever the key and value were."""
    plan = run_program(stack_config(**keys))
    assert plan.error is not None and absent not in plan.error, f"a hint that does not fit: {absent!r}:\n{plan.error}"


@pytest.mark.parametrize(
    ("where", "plan_of"),
    [
        ("gcp, workerPools: []", lambda: run_program(stack_config(workerPools=[], rook={"enabled": False}))),
        ("own servers, control planes only", lambda: run_existing(existing({"controlPlane": [{"address": "192.0.2.10"}]}))),
    ],
)
def test_no_workers_is_not_called_every_worker_pool_tainted(where: str, plan_of: Any) -> None:
    """With no worker at all the warning said "every worker pool with workers has NoSchedule/NoExecute
    taints". What is true: every node is a control plane with kubeadm's control-plane taint."""
    plan = plan_of()
    assert plan.error is None, plan.error
    assert not [w for w in plan.warnings if "every worker pool" in w], f"{where}: {plan.warnings}"
    assert any(w.startswith("no worker nodes") and "node-role.kubernetes.io/control-plane:NoSchedule" in w
               and "controlPlane.schedulable: true or add workers" in w for w in plan.warnings), f"{where}: {plan.warnings}"
    schedulable = run_program(stack_config(workerPools=[], rook={"enabled": False}, controlPlane={"schedulable": True}))
    assert not [w for w in schedulable.warnings if "no worker nodes" in w], schedulable.warnings


# --- gcp:* -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gcp", "expected"),
    [
        ({"gcp:project": "My Project"}, ["gcp:project", "'My Project' is not a project ID", "6 to 30"]),
        ({"gcp:project": "proj"}, ["gcp:project", "6 to 30"]),
        ({"gcp:project": "1project"}, ["gcp:project", "starting with a letter"]),
        ({"gcp:project": "my-project-"}, ["gcp:project", "not ending with a hyphen"]),
        ({"gcp:region": "europe-west1-b"}, ["gcp:region: 'europe-west1-b' is a zone name", "(europe-west1)"]),
        ({"gcp:region": "europe"}, ["gcp:region", "not a region name"]),
    ],
)
def test_gcp_settings_refused(gcp: dict[str, str], expected: list[str]) -> None:
    plan = run_program({**stack_config(), **gcp})
    assert plan.error is not None, f"{gcp} was accepted"
    for text in expected:
        assert text in plan.error, plan.error
    assert plan.resources == []


def test_zone_like_region_is_not_blamed_on_the_zone() -> None:
    plan = run_program({**stack_config(), "gcp:region": "europe-west1-b"})
    assert plan.error is not None and "gcp:zone" not in plan.error.split("gcp:region")[0], plan.error
    assert not any(line.strip().startswith("gcp:zone") for line in plan.error.splitlines()), plan.error


@pytest.mark.parametrize("project", ["my-project", "kubeadm-prod-123456", "a12345", "example.com:my-project"])
def test_project_ids_gce_takes_are_accepted(project: str) -> None:
    assert run_program({**stack_config(), "gcp:project": project}).error is None


def test_gcp_errors_show_together_with_the_others() -> None:
    plan = run_program({**stack_config(cni="cilium", controlPlane={"count": 2}), "gcp:project": "My Project",
                        "gcp:region": "europe-west1-b"})
    assert plan.error is not None
    for field in ("kubeadm-cluster:cni", "kubeadm-cluster:controlPlane.count", "gcp:project", "gcp:region"):
        assert field in plan.error, f"{field} missing from the one message:\n{plan.error}"
    assert plan.resources == []


# --- accepted: the other side of each rule --------------------------------------------------------


@pytest.mark.parametrize(
    "keys",
    [
        {"controlPlane": {"diskSizeGb": 65536}},
        {"network": {"subnetCidr": "10.240.0.0/29"}, "workerPools": _pool(count=3)},
        {"network": {"serviceCidr": "10.96.0.0/28", "podCidr": "10.32.0.0/24"}},
        {"network": {"podCidr": "10.32.0.0/16"}, "kubeadm": {"controllerManagerExtraArgs": {"node-cidr-mask-size-ipv4": "26"}}},
        {"network": {"podCidr": "100.64.0.0/10", "serviceCidr": "10.96.0.0/12"}},
        {"kubeadm": {"controllerManagerExtraArgs": {"node-monitor-grace-period": "50s", "node-monitor-period": "5s"},
                     "apiServerExtraArgs": {"request-timeout": "1m30s", "min-request-timeout": "1800",
                                            "enable-admission-plugins": "NodeRestriction,AlwaysPullImages"}}},
        {"workerPools": _pool(taints=["a=1:NoSchedule", "a=1:NoExecute", {"key": "b", "effect": "NoSchedule"}])},
        {"workerPools": _pool(machineType="n2-custom-2-20480-ext")},
        {"workerPools": _pool(machineType="custom-2-13312")},
        {"imageRepository": "registry.example.com:5000/k8s_mirror"},
        {"mirrors": {"registries": {"docker.io": ["https://m.example.com/v2/proxy?ns=docker.io&x=%2C"]}}},
        {"adminCidrs": ["0.0.0.0/1", "128.0.0.0/2"]},
        # The label namespaces Kubernetes leaves to administrators: node-role.kubernetes.io (the roles
        # kubectl shows) and node-restriction.kubernetes.io (the NodeRestriction admission docs,
        # kubernetes.io/docs/reference/access-authn-authz/admission-controllers/#noderestriction: "reserved
        # for cluster administrators to use for labeling their Node objects for workload isolation purposes").
        {"workerPools": _pool(labels={"node-role.kubernetes.io/storage": "", "node-restriction.kubernetes.io/pci": "true",
                                      "example.com/gpu": "a100", "app.example.kubernetes.io.example.com/x": "y"})},
    ],
    ids=["64 TiB disk", "/29 subnet for 4 nodes", "/28 Service range", "node mask 26", "CGNAT pods",
         "durations with units", "same key, other effects", "N2 extended memory", "N1 6.5 GB per vCPU",
         "registry with port", "endpoint with query", "most of the internet", "admin label namespaces"],
)
def test_the_other_side_of_each_rule_is_accepted(keys: dict[str, Any]) -> None:
    plan = run_program(stack_config(**keys))
    assert plan.error is None, f"{keys}: {plan.error}"


def test_allow_admin_from_internet_is_explicit() -> None:
    """0.0.0.0/0 is accepted only with the setting named for it, and still warned about."""
    plan = run_program(stack_config(adminCidrs=["0.0.0.0/0"], allowAdminFromInternet=True))
    assert plan.error is None, plan.error
    assert any("whole internet" in w for w in plan.warnings), plan.warnings
    firewall = plan.named("dev-network-admin")
    assert firewall.input("sourceRanges") == ["0.0.0.0/0"]


def test_helm_mirror_key_with_a_trailing_slash_is_used_not_ignored() -> None:
    """A key written with a trailing slash matched nothing and the chart came from upstream."""
    mirror = "https://charts.example.com/rook"
    plan = run_program(stack_config(mirrors={"helmRepositories": {versions.ROOK_CHART_REPO + "/": mirror}}))
    assert plan.error is None, plan.error
    repos = {r.name: r.input("repositoryOpts.repo") for r in plan.of_type(RELEASE)}
    assert repos["dev-rook-operator"] == mirror, repos


@pytest.mark.parametrize(
    "keys",
    [{}, {"cni": "flannel"}, {"cni": "calico"}, {"dashboard": {"kind": "headlamp"}}, {"rook": {"enabled": False},
     "workerPools": [{"name": "general", "count": 2}]}, {"dashboard": {"enabled": False, "kind": "headlamp"}}],
    ids=["default", "flannel", "calico", "headlamp", "no rook", "headlamp off"],
)
def test_helm_repositories_of_the_rule_are_the_ones_the_program_uses(keys: dict[str, Any]) -> None:
    """The mirror rule's list of chart repositories is exactly what the Helm releases fetch from."""
    plan = run_program(stack_config(**keys))
    assert plan.error is None, plan.error
    fetched = {str(r.input("repositoryOpts.repo")).rstrip("/") for r in plan.of_type(RELEASE)}
    config = parse_cluster_config({k: json.dumps(v) for k, v in {"adminCidrs": ["203.0.113.7/32"], **keys}.items()})
    assert set(helm_repositories_used(config)) == fetched


def test_every_node_tainted_with_rook_and_headlamp_is_accepted_with_a_warning() -> None:
    """Add-ons that could never schedule: with every node tainted, Rook and Headlamp tolerate the
    taints they need (scheduling modelled in tests/test_upstream_rook.py and
    tests/test_upstream_dashboard.py), so the stack deploys and the user is warned about their own pods."""
    plan = run_program(stack_config(workerPools=_pool(taints=["dedicated=storage:NoExecute"]), dashboard={"kind": "headlamp"}))
    assert plan.error is None, plan.error
    assert any("every node is tainted" in w for w in plan.warnings), plan.warnings
    values = {r.name: r.input("values") for r in plan.of_type(RELEASE)}
    assert values["dev-dashboard-headlamp"]["tolerations"], "Headlamp tolerates nothing"
    assert {"key": "dedicated", "operator": "Equal", "value": "storage", "effect": "NoExecute"} in values["dev-rook-operator"]["tolerations"]


# --- names -----------------------------------------------------------------------------------------


def test_stack_names_that_fit_keep_their_resource_names() -> None:
    """No rename (and so no replacement) for stacks whose names are DNS labels that fit."""
    for stack, prefix in [("dev", "dev"), ("prod", "prod"), ("dev-eu", "dev-eu"),
                          ("twenty-chars-exactly", "twenty-chars-exactly")]:
        assert cluster_name(stack) == prefix, stack


def test_stack_names_that_differ_only_in_case_or_separators_get_different_resource_names() -> None:
    """Pulumi stack names may hold upper case, `_` and `.`; GCE names may not. `dev_a` and `dev-a`
    (or `Team_Prod` and `team-prod`) both became `dev-a`, so their VPCs and VMs shared names in one
    project. Every name that had to be changed now carries a hash of the stack's own name."""
    groups = [("dev_a", "dev-a", "dev.a", "DEV-A", "Dev_A"), ("Team_Prod", "team-prod", "team.prod"),
              ("123", "k8s-123"), ("a--b", "a-b")]
    for group in groups:
        prefixes = [cluster_name(stack) for stack in group]
        assert len(set(prefixes)) == len(group), f"stacks {group} share resource names: {prefixes}"
        for prefix in prefixes:
            assert len(prefix) <= config_module.NAME_PREFIX_LENGTH and config_module._DNS_LABEL.match(prefix), prefix
    assert cluster_name("Dev_EU").startswith("dev-eu-"), "the changed name should still read like the stack's"
    names = []
    for stack in ("dev_a", "dev-a"):
        plan = run_program(stack_config(), stack=stack)
        assert plan.error is None, plan.error
        names.append({str(r.input("name")) for r in plan.resources if r.type.startswith("gcp:") and r.input("name")})
    assert names[0] and not names[0] & names[1], f"GCE names shared by two stacks: {sorted(names[0] & names[1])}"


def test_long_stack_names_get_unique_resource_names() -> None:
    """Two stacks sharing their first 20 characters got identical GCE names in one project."""
    stacks = ("kubeadm-production-europe", "kubeadm-production-europe-2", "kubeadm-production-eu")
    prefixes = [cluster_name(stack) for stack in stacks]
    assert len(set(prefixes)) == len(prefixes), prefixes
    for prefix in prefixes:
        assert len(prefix) <= config_module.NAME_PREFIX_LENGTH and config_module._DNS_LABEL.match(prefix), prefix
    names = []
    for stack in stacks[:2]:
        plan = run_program(stack_config(), stack=stack)
        assert plan.error is None, plan.error
        names.append({str(r.input("name")) for r in plan.resources if r.type.startswith("gcp:") and r.input("name")})
    assert names[0] and not names[0] & names[1], f"GCE names shared by two stacks: {sorted(names[0] & names[1])}"
    assert all(len(name) <= 63 for name in names[0] | names[1])


def test_config_in_a_namespace_resembling_this_one_is_warned_about() -> None:
    plan = run_program({**stack_config(), "kubeadm-clusters:cni": "calico", "kubeadm_cluster:rook": {"enabled": False},
                        "Kubeadm-Cluster:dashboard": {"enabled": False}, "kubernetes:context": "x"})
    assert plan.error is None, plan.error
    for key in ("kubeadm-clusters:cni", "kubeadm_cluster:rook", "Kubeadm-Cluster:dashboard"):
        assert any(repr(key) in w and "kubeadm-cluster:" in w for w in plan.warnings), f"{key}: {plan.warnings}"
    assert not any("'kubernetes:context'" in w for w in plan.warnings), plan.warnings


@pytest.mark.parametrize(("namespace", "close"), [("kubeadm-clusters", True), ("kubeadmcluster", True), ("kubeadm-clster", True),
                                                  ("kubeadm", False), ("gcp", False), ("aws", False), ("kubernetes", False)])
def test_namespace_resemblance(namespace: str, close: bool) -> None:
    assert config_module.resembles_namespace(namespace) is close


# --- the rules' tables against upstream -------------------------------------------------------------


def test_kubeadm_constants_are_upstream_values() -> None:
    """cmd/kubeadm/app/constants/constants.go and validation.go (see the module docstring)."""
    assert config_module.KUBEADM_MIN_SERVICE_SUBNET_ADDRESSES == 10  # MinimumAddressesInServiceSubnet
    assert config_module.KUBEADM_MAX_SERVICE_SUBNET_BITS == 20  # MaximumBitsForServiceSubnet
    assert config_module.KUBEADM_POD_SUBNET_NODE_MASK_MAX_DIFF == 16  # PodSubnetNodeMaskMaxDiff
    assert config_module.KUBEADM_DEFAULT_NODE_CIDR_MASK == 24  # getClusterNodeMask, defaultNodeMaskCIDRIPv4
    # The cluster DNS address of the smallest range accepted exists in it.
    config = ClusterConfig.model_validate({"adminCidrs": ["203.0.113.7/32"], "network": {"serviceCidr": "10.96.0.0/28"}})
    assert config.network.dns_service_ip == "10.96.0.10"


#: Flags the reference pages type as ``duration`` (kube-controller-manager, kube-apiserver).
UPSTREAM_DURATION_FLAGS = [
    "node-monitor-grace-period", "node-monitor-period", "node-startup-grace-period", "horizontal-pod-autoscaler-sync-period",
    "horizontal-pod-autoscaler-downscale-stabilization", "horizontal-pod-autoscaler-cpu-initialization-period",
    "attach-detach-reconcile-sync-period", "deployment-controller-sync-period", "endpoint-updates-batch-period",
    "endpointslice-updates-batch-period", "leader-elect-lease-duration", "leader-elect-renew-deadline",
    "leader-elect-retry-period", "authentication-token-webhook-cache-ttl", "authorization-webhook-cache-authorized-ttl",
    "cluster-signing-duration", "request-timeout", "event-ttl", "kubelet-timeout", "shutdown-delay-duration",
    "livez-grace-period", "shutdown-watch-termination-grace-period",
]
#: Flags of those pages with such names that take a number (``--min-request-timeout int``).
UPSTREAM_NUMERIC_FLAGS = ["min-request-timeout", "concurrent-gc-syncs", "terminated-pod-gc-threshold", "max-requests-inflight"]


def test_duration_flags_by_name_match_the_reference_pages() -> None:
    assert [f for f in UPSTREAM_DURATION_FLAGS if not is_duration_flag(f)] == []
    assert [f for f in UPSTREAM_NUMERIC_FLAGS if is_duration_flag(f)] == []


@pytest.mark.parametrize("value", ["10s", "1m30s", "1.5h", "300ms", "0", "2h45m"])
def test_go_durations_are_accepted(value: str) -> None:
    parse_cluster_config({"adminCidrs": '["203.0.113.7/32"]',
                          "kubeadm": json.dumps({"controllerManagerExtraArgs": {"node-monitor-period": value}})})


def test_kubeadm_managed_flags_cover_what_kubeadm_derives_from_the_stack() -> None:
    assert {"advertise-address", "service-cluster-ip-range", "secure-port", "etcd-servers"} <= set(
        config_module.KUBEADM_MANAGED_API_SERVER_FLAGS)
    assert {"cluster-cidr", "service-cluster-ip-range", "allocate-node-cidrs", "cluster-name"} <= set(
        config_module.KUBEADM_MANAGED_CONTROLLER_MANAGER_FLAGS)
    # Policy flags stay the user's: kubeadm only defaults them.
    for flag in ("enable-admission-plugins", "authorization-mode", "profiling", "node-cidr-mask-size-ipv4"):
        assert flag not in config_module.KUBEADM_MANAGED_API_SERVER_FLAGS
        assert flag not in config_module.KUBEADM_MANAGED_CONTROLLER_MANAGER_FLAGS


@pytest.mark.parametrize(
    ("machine_type", "problem"),
    [("n2-custom-4-16000", "steps of 256 MB"), ("n2-custom-3-12288", "not 3"), ("n2-custom-34-139264", "not 34"),
     ("n2d-custom-6-24576", "not 6"), ("e2-custom-34-69632", "not 34"), ("custom-3-12288", "not 3"),
     ("custom-2-14336", "at most 6.5 GB per vCPU"), ("n2-custom-2-16640", "at most 8 GB per vCPU"),
     ("n2-custom-8-655360-ext", "up to 624 GB"), ("n4-custom-4-16100", "steps of 256 MB")],
)
def test_custom_shapes_gce_refuses(machine_type: str, problem: str) -> None:
    problems = hardware.machine_type_problems(machine_type)
    assert any(problem in p for p in problems), f"{machine_type}: {problems}"


@pytest.mark.parametrize("machine_type", ["custom-1-6656", "custom-96-98304", "n2-custom-36-36864", "n2-custom-128-131072",
                                          "n2d-custom-96-98304", "e2-custom-32-131072", "n2-custom-8-638720-ext",
                                          "n4-custom-2-8192"])
def test_custom_shapes_gce_takes(machine_type: str) -> None:
    assert hardware.custom_shape_problems(machine_type) == []


def test_disk_limits_are_per_type() -> None:
    assert hardware.MAX_DISK_GB == {hardware.PD_BALANCED: 65536, hardware.HYPERDISK_BALANCED: 65536}
    assert hardware.disk_size_limit_problems(65536, hardware.PD_BALANCED) == []
    assert hardware.disk_size_limit_problems(65537, hardware.HYPERDISK_BALANCED)


def test_gcp_fixture_is_valid() -> None:
    """The catalogue's GCP settings themselves pass the new project-ID and region rules."""
    assert config_module.gcp_settings_problems({k.removeprefix("gcp:"): v for k, v in GCP.items()}) == []


@pytest.mark.parametrize("key", ["controlPlane", "kubernetesVersion"])
def test_a_yaml_null_reaches_the_program_as_the_cli_sends_it_and_is_called_empty(key: str) -> None:
    """`key: ~` in a stack file: the CLI hands the program an empty text (pulumi/pulumi#19483), and
    the mock engine does the same (it sent the text "None", which the message then quoted)."""
    plan = run_program(stack_config(**{key: None}), stack="dev")
    assert plan.error is not None and f"kubeadm-cluster:{key}: is empty (YAML null" in plan.error, plan.error
    assert "None" not in plan.error, plan.error
    assert not plan.resources or all(r.type.startswith("pulumi:") for r in plan.resources)
