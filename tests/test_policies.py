"""The CrossGuard policy pack (policies/), through the real Analyzer gRPC protocol.

The pack is started as the Pulumi engine starts it (``python -u -m pulumi.policy <engine>
<pack dir>`` in the pack's directory, see tools/policy_client.py), prints its port, and is
configured and queried with ``pulumi.runtime.proto.analyzer_pb2``. Properties go over the
wire as the engine encodes them: camelCase names, secrets wrapped with the secret
signature, unknown preview values as the UNKNOWN sentinels.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import struct_pb2
from pulumi.runtime.proto import analyzer_pb2
from pulumi_policy.version import VERSION as PULUMI_POLICY_VERSION

from components import hardware
from tools.policy_client import (
    UNKNOWN,
    UNKNOWN_ARRAY,
    UNKNOWN_NUMBER,
    PolicyPackProcess,
    Violation,
    analyze_resources,
    secret,
    to_struct,
)

INSTANCE = "gcp:compute/instance:Instance"
TEMPLATE = "gcp:compute/instanceTemplate:InstanceTemplate"
FIREWALL = "gcp:compute/firewall:Firewall"
SERVICE = "kubernetes:core/v1:Service"
RELEASE = "kubernetes:helm.sh/v3:Release"
K8S_PROVIDER = "pulumi:providers:kubernetes"

MACHINE = "node-machine-type-minimums"
DISK = "node-boot-disk-minimum"
DISK_TYPE = "node-disk-type-supported"
MEMORY_ADVICE = "node-memory-recommended"
FIREWALL_POLICY = "firewall-no-public-admin-ports"
FIREWALLS_TOGETHER = "firewalls-together-no-public-admin-ports"
DASHBOARD = "dashboard-not-exposed"
KUBECONFIG = "kubeconfig-is-secret"

KUBECONFIG_TEXT = "apiVersion: v1\nkind: Config\nusers:\n- name: admin\n  user: {client-key-data: S0VZCg==}\n"


@pytest.fixture(scope="module")
def pack() -> Iterator[PolicyPackProcess]:
    process = PolicyPackProcess()
    try:
        process.configure_stack()
        process.configure()
        yield process
    finally:
        process.close()
        assert not process.alive(), "the policy pack process is still running after close()"


@pytest.fixture
def default_config(pack: PolicyPackProcess) -> Iterator[PolicyPackProcess]:
    """For tests that reconfigure the pack: the engine's default config is restored after."""
    try:
        yield pack
    finally:
        pack.configure()


def urn(type_: str, name: str) -> str:
    return f"urn:pulumi:test::kubeadm-cluster::{type_}::{name}"


def resource(type_: str, name: str, props: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": type_, "name": name, "urn": urn(type_, name), "props": props, **extra}


def instance(machine_type: Any, size: Any = 50, name: str = "node-0", disk_type: Any = None) -> dict[str, Any]:
    boot: dict[str, Any] = {"initializeParams": {"image": "ubuntu-os-cloud/ubuntu-2404-lts-amd64"}}
    if size is not None:
        boot["initializeParams"]["size"] = size
    if disk_type is not None:
        boot["initializeParams"]["type"] = disk_type
    return resource(INSTANCE, name, {"machineType": machine_type, "zone": "europe-west1-b", "bootDisk": boot})


def template(machine_type: Any, size: Any = 50, name: str = "pool-template", disk_type: Any = None) -> dict[str, Any]:
    disks = [
        {"boot": True, "autoDelete": True, "diskSizeGb": size, "sourceImage": "ubuntu-os-cloud/ubuntu-2404-lts-amd64"},
        {"boot": False, "diskSizeGb": 10, "type": "PERSISTENT"},
    ]
    if disk_type is not None:
        disks[0]["diskType"] = disk_type
    return resource(TEMPLATE, name, {"machineType": machine_type, "disks": disks})


def firewall(ranges: list[str] | None, allows: list[dict[str, Any]], **props: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"network": "kubeadm", "allows": allows, **props}
    if ranges is not None:
        body["sourceRanges"] = ranges
    return resource(FIREWALL, "admin", body)


def service(name: str, namespace: str, type_: str | None, labels: dict[str, str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"ports": [{"port": 443, "targetPort": 8443}], "selector": {"k8s-app": name}}
    if type_ is not None:
        spec["type"] = type_
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels:
        metadata["labels"] = labels
    return resource(SERVICE, f"{namespace}-{name}", {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": spec})


def k8s_provider(kubeconfig: Any = None) -> dict[str, Any]:
    props: dict[str, Any] = {"deleteUnreachable": "true"}
    if kubeconfig is not None:
        props["kubeconfig"] = kubeconfig
    return resource(K8S_PROVIDER, "cluster-k8s", props)


def of(violations: list[Violation], policy: str, level: str | None = None) -> list[Violation]:
    return [v for v in violations if v.policy == policy and (level is None or v.level == level)]


def listing(violations: list[Violation]) -> str:
    return "\n".join(str(v) for v in violations) or "(none)"


def assert_blocked(violations: list[Violation], policy: str, *fragments: str) -> None:
    found = of(violations, policy, "mandatory")
    assert found, f"expected a MANDATORY {policy} violation, got:\n{listing(violations)}"
    text = "\n".join(v.message for v in found)
    for fragment in fragments:
        assert fragment in text, f"{policy} does not say {fragment!r}:\n{text}"


def assert_no_mandatory(violations: list[Violation]) -> None:
    blocking = [v for v in violations if v.mandatory]
    assert not blocking, f"expected no MANDATORY violation, got:\n{listing(blocking)}"


# --- The protocol ----------------------------------------------------------------------


def test_pack_serves_analyzer_info_with_policies_levels_and_config_schema(pack: PolicyPackProcess) -> None:
    info = pack.analyzer_info()
    assert info.name == "kubeadm-cluster", info
    assert info.supportsConfig, "the pack must accept config (thresholds for a prod stack)"
    levels = {p.name: p.enforcementLevel for p in info.policies}
    assert levels == {
        MACHINE: analyzer_pb2.MANDATORY,
        DISK: analyzer_pb2.MANDATORY,
        DISK_TYPE: analyzer_pb2.MANDATORY,
        MEMORY_ADVICE: analyzer_pb2.ADVISORY,
        FIREWALL_POLICY: analyzer_pb2.MANDATORY,
        FIREWALLS_TOGETHER: analyzer_pb2.MANDATORY,
        DASHBOARD: analyzer_pb2.MANDATORY,
        KUBECONFIG: analyzer_pb2.MANDATORY,
    }, levels
    assert pack.plugin_info().version == PULUMI_POLICY_VERSION


def test_config_defaults_are_the_hardware_truth(pack: PolicyPackProcess) -> None:
    """The pack's thresholds come from components/hardware.py, not from copied numbers."""
    config = pack.engine_config()
    minimums = hardware.DEFAULT_MINIMUMS
    assert config[MACHINE]["minVcpus"] == minimums.vcpus, config[MACHINE]
    assert config[MACHINE]["minMemoryGb"] * 1024 == minimums.memory_mb, config[MACHINE]
    assert config[DISK]["minDiskGb"] == minimums.disk_gb, config[DISK]
    assert config[MEMORY_ADVICE]["recommendedMemoryGb"] * 1024 == minimums.recommended_memory_mb
    assert sorted(config[FIREWALL_POLICY]["forbiddenPorts"]) == [22, 6443, 10250]
    assert config[FIREWALLS_TOGETHER]["forbiddenPorts"] == config[FIREWALL_POLICY]["forbiddenPorts"], config


# --- Hardware --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("machine_type", "says"),
    [
        ("e2-micro", "shared-core"),
        ("e2-small", "shared-core"),
        ("e2-medium", "shared-core"),
        ("n1-standard-1", "1 vCPU"),
        ("n2-custom-1-2048", "1 vCPU"),
        ("n2-custom-1-2048", "2 GB of memory"),
        ("zones/us-central1-a/machineTypes/e2-small", "e2-small is a shared-core"),
        ("projects/p/zones/z/machineTypes/n1-standard-1", "n1-standard-1 has 1 vCPU"),
        (
            "https://www.googleapis.com/compute/v1/projects/p/zones/europe-west1-b/machineTypes/e2-micro",
            "e2-micro is a shared-core",
        ),
    ],
)
@pytest.mark.parametrize("kind", [instance, template])
def test_under_spec_machine_types_are_blocked(pack: PolicyPackProcess, kind: Any, machine_type: str, says: str) -> None:
    assert_blocked(pack.analyze(kind(machine_type)), MACHINE, says)


def test_unknown_machine_type_is_blocked_with_a_clear_message(pack: PolicyPackProcess) -> None:
    violations = pack.analyze(instance("x9-mega-4"))
    assert_blocked(violations, MACHINE, "unknown machine type 'x9-mega-4'", "FAMILY-custom-CPUS-MB")


def test_missing_machine_type_is_blocked(pack: PolicyPackProcess) -> None:
    violations = pack.analyze(resource(INSTANCE, "bare", {"bootDisk": {"initializeParams": {"size": 50}}}))
    assert_blocked(violations, MACHINE, "no machineType")


@pytest.mark.parametrize("machine_type", ["e2-standard-2", "n2-custom-4-16384", "t2a-standard-2", "e2-highcpu-4"])
@pytest.mark.parametrize("kind", [instance, template])
def test_machines_meeting_the_minimums_pass(pack: PolicyPackProcess, kind: Any, machine_type: str) -> None:
    assert_no_mandatory(pack.analyze(kind(machine_type, size=50)))


@pytest.mark.parametrize("kind", [instance, template])
def test_small_boot_disk_is_blocked(pack: PolicyPackProcess, kind: Any) -> None:
    assert_blocked(pack.analyze(kind("e2-standard-2", size=20)), DISK, "boot disk of 20 GB", "at least 30 GB")


def test_boot_disk_at_the_minimum_passes(pack: PolicyPackProcess) -> None:
    assert not of(pack.analyze(instance("e2-standard-2", size=30)), DISK)


def test_boot_disk_without_size_is_blocked(pack: PolicyPackProcess) -> None:
    assert_blocked(pack.analyze(instance("e2-standard-2", size=None)), DISK, "no boot disk size")


def test_template_boot_disk_is_the_one_marked_boot(pack: PolicyPackProcess) -> None:
    disks = [
        {"boot": False, "diskSizeGb": 10},
        {"boot": True, "diskSizeGb": 40},
    ]
    assert not of(pack.analyze(resource(TEMPLATE, "t", {"machineType": "e2-standard-2", "disks": disks})), DISK)
    disks[1]["diskSizeGb"] = 20
    violations = pack.analyze(resource(TEMPLATE, "t", {"machineType": "e2-standard-2", "disks": disks}))
    assert_blocked(violations, DISK, "20 GB")


@pytest.mark.parametrize(
    ("machine_type", "disk_type", "says"),
    [
        ("n4-standard-4", "pd-balanced", "use hyperdisk-balanced"),
        ("c4-standard-4", "pd-ssd", "GCE gives the C4 series only"),
        ("c4a-standard-2", "projects/p/zones/z/diskTypes/pd-balanced", "c4a-standard-2 cannot use pd-balanced"),
        ("n4-custom-4-16384", "pd-balanced", "use hyperdisk-balanced"),
        ("e2-standard-2", "hyperdisk-balanced", "use pd-balanced"),
        ("t2a-standard-2", "hyperdisk-balanced", "GCE gives the T2A series only"),
    ],
)
@pytest.mark.parametrize("kind", [instance, template])
def test_boot_disk_of_a_type_the_series_refuses_is_blocked(
    pack: PolicyPackProcess, kind: Any, machine_type: str, disk_type: str, says: str
) -> None:
    """Defect 6: N4, C4 and C4A take Hyperdisk only; Persistent Disk there fails at pulumi up."""
    assert_blocked(pack.analyze(kind(machine_type, disk_type=disk_type)), DISK_TYPE, says)


@pytest.mark.parametrize(
    ("machine_type", "disk_type"),
    [
        ("n4-standard-4", "hyperdisk-balanced"),
        ("c4a-standard-2", "zones/europe-west1-b/diskTypes/hyperdisk-balanced"),
        ("c4-standard-4", None),  # unset: GCE's default for the series
        ("e2-standard-2", "pd-balanced"),
        ("c3-standard-4", "hyperdisk-balanced"),
        ("t2a-standard-2", "pd-balanced"),
    ],
)
@pytest.mark.parametrize("kind", [instance, template])
def test_boot_disk_of_a_type_the_series_takes_passes(
    pack: PolicyPackProcess, kind: Any, machine_type: str, disk_type: str | None
) -> None:
    assert not of(pack.analyze(kind(machine_type, disk_type=disk_type)), DISK_TYPE)


def test_the_disk_type_policy_uses_the_hardware_truth(pack: PolicyPackProcess) -> None:
    for series in hardware.HYPERDISK_ONLY_SERIES:
        machine_type = f"{series}-standard-4"
        assert not of(pack.analyze(instance(machine_type, disk_type=hardware.disk_type(machine_type))), DISK_TYPE)


def test_unknown_disk_type_in_preview_is_no_mandatory_violation(pack: PolicyPackProcess) -> None:
    assert_no_mandatory(pack.analyze(instance("n4-standard-4", disk_type=UNKNOWN)))


def test_recommended_memory_is_advisory_only(pack: PolicyPackProcess) -> None:
    eight = pack.analyze(instance("e2-standard-2"))
    assert not eight, f"e2-standard-2 (8 GB) should get nothing at all:\n{listing(eight)}"
    four = pack.analyze(instance("e2-highcpu-4"))
    advisories = of(four, MEMORY_ADVICE, "advisory")
    assert advisories, f"e2-highcpu-4 (4 GB) should get the 8 GB advisory:\n{listing(four)}"
    assert "8 GB is recommended" in advisories[0].message, advisories[0].message
    assert_no_mandatory(four)


def test_config_raises_the_minimums(default_config: PolicyPackProcess) -> None:
    pack = default_config
    sent = pack.configure({MACHINE: {"minVcpus": 4}})
    assert sent[MACHINE]["enforcementLevel"] == "mandatory", sent
    assert_blocked(pack.analyze(instance("e2-standard-2")), MACHINE, "at least 4")
    assert_no_mandatory(pack.analyze(instance("n2-standard-4")))
    pack.configure({DISK: {"minDiskGb": 100}, MEMORY_ADVICE: {"recommendedMemoryGb": 32}})
    violations = pack.analyze(instance("n2-standard-4", size=50))
    assert_blocked(violations, DISK, "at least 100 GB")
    assert of(violations, MEMORY_ADVICE, "advisory"), listing(violations)


def test_config_cannot_lower_the_minimums(default_config: PolicyPackProcess) -> None:
    pack = default_config
    with pytest.raises(ValueError, match="minVcpus"):
        pack.engine_config({MACHINE: {"minVcpus": 1}})  # the engine validates against the schema
    # Even when sent anyway (bypassing the schema), the pack keeps the hardware minimum.
    request = analyzer_pb2.ConfigureAnalyzerRequest()
    properties = struct_pb2.Struct()
    properties.update({"minVcpus": 1, "minMemoryGb": 1})
    request.policyConfig[MACHINE].CopyFrom(
        analyzer_pb2.PolicyConfig(enforcementLevel=analyzer_pb2.MANDATORY, properties=properties)
    )
    pack.stub.Configure(request)
    assert_blocked(pack.analyze(instance("n1-standard-1")), MACHINE, "at least 2")


def test_enforcement_level_can_be_configured(default_config: PolicyPackProcess) -> None:
    pack = default_config
    pack.configure({MACHINE: "advisory"})
    violations = pack.analyze(instance("e2-micro"))
    assert of(violations, MACHINE, "advisory") and not of(violations, MACHINE, "mandatory"), listing(violations)


# --- Unknown values (preview) ----------------------------------------------------------


def test_unknown_machine_type_in_preview_is_no_mandatory_violation(pack: PolicyPackProcess) -> None:
    for kind in (instance, template):
        violations = pack.analyze(kind(UNKNOWN))
        assert_no_mandatory(violations)
        notes = of(violations, MACHINE, "advisory")
        assert notes and "can't be known during preview" in notes[0].message, listing(violations)


def test_unknown_disk_size_in_preview_is_no_mandatory_violation(pack: PolicyPackProcess) -> None:
    assert_no_mandatory(pack.analyze(instance("e2-standard-2", size=UNKNOWN_NUMBER)))
    assert_no_mandatory(pack.analyze(template("e2-standard-2", size=UNKNOWN_NUMBER)))


def test_secret_machine_type_is_still_checked(pack: PolicyPackProcess) -> None:
    assert_blocked(pack.analyze(instance(secret("e2-small"))), MACHINE, "e2-small")


# --- Firewall --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ranges", "allows", "says"),
    [
        (["0.0.0.0/0"], [{"protocol": "tcp", "ports": ["22"]}], "TCP 22"),
        (["10.0.0.0/8", "0.0.0.0/0"], [{"protocol": "tcp", "ports": ["6443"]}], "TCP 6443"),
        (["::/0"], [{"protocol": "tcp", "ports": ["10250"]}], "TCP 10250"),
        (["0.0.0.0/0"], [{"protocol": "tcp", "ports": ["20-30"]}], "TCP 22"),
        (["0.0.0.0/0"], [{"protocol": "tcp", "ports": ["6000-7000", "80"]}], "TCP 6443"),
        (["0.0.0.0/0"], [{"protocol": "all"}], "TCP 22, 6443, 10250"),
        (["0.0.0.0/0"], [{"protocol": "tcp"}], "TCP 22, 6443, 10250"),
        (["0.0.0.0/0"], [{"protocol": "tcp", "ports": []}], "TCP 22"),
        (None, [{"protocol": "tcp", "ports": ["22"]}], "no source given"),
    ],
)
def test_firewall_open_to_the_internet_on_admin_ports_is_blocked(
    pack: PolicyPackProcess, ranges: list[str] | None, allows: list[dict[str, Any]], says: str
) -> None:
    assert_blocked(pack.analyze(firewall(ranges, allows)), FIREWALL_POLICY, says)


@pytest.mark.parametrize(
    ("ranges", "allows", "props"),
    [
        (["203.0.113.0/24"], [{"protocol": "tcp", "ports": ["22", "6443"]}], {}),
        (["0.0.0.0/0"], [{"protocol": "tcp", "ports": ["80", "443"]}], {}),
        (["0.0.0.0/0"], [{"protocol": "udp", "ports": ["22"]}], {}),
        (["0.0.0.0/0"], [{"protocol": "icmp"}], {}),
        (["0.0.0.0/0"], [{"protocol": "tcp", "ports": ["22"]}], {"direction": "EGRESS"}),
        (["0.0.0.0/0"], [{"protocol": "tcp", "ports": ["22"]}], {"disabled": True}),
        (None, [{"protocol": "all"}], {"sourceTags": ["kubeadm-node"]}),
    ],
)
def test_firewall_restricted_or_harmless_passes(
    pack: PolicyPackProcess, ranges: list[str] | None, allows: list[dict[str, Any]], props: dict[str, Any]
) -> None:
    violations = pack.analyze(firewall(ranges, allows, **props))
    assert not of(violations, FIREWALL_POLICY), listing(violations)


#: Source ranges that admit the whole internet only together (issue 13: 0.0.0.0/1 + 128.0.0.0/1
#: passed the pack), and near misses that leave part of it out.
WORLD_TOGETHER = [
    (["0.0.0.0/1", "128.0.0.0/1"], "0.0.0.0/1 + 128.0.0.0/1 (together 0.0.0.0/0)"),
    (["128.0.0.0/1", "0.0.0.0/2", "64.0.0.0/2"], "(together 0.0.0.0/0)"),
    (["::/1", "8000::/1"], "(together ::/0)"),
    (["203.0.113.0/24", "0.0.0.0/1", "128.0.0.0/1"], "(together 0.0.0.0/0)"),
]


@pytest.mark.parametrize(("ranges", "says"), WORLD_TOGETHER, ids=[" + ".join(r) for r, _ in WORLD_TOGETHER])
def test_firewall_ranges_that_cover_the_internet_together_are_blocked(
    pack: PolicyPackProcess, ranges: list[str], says: str
) -> None:
    violations = pack.analyze(firewall(ranges, [{"protocol": "tcp", "ports": ["22"]}]))
    assert_blocked(violations, FIREWALL_POLICY, says, "allowAdminFromInternet")


@pytest.mark.parametrize("ranges", [["0.0.0.0/1", "128.0.0.0/2"], ["0.0.0.0/1", "192.0.0.0/2", "128.0.0.0/3"]])
def test_firewall_ranges_that_leave_part_of_the_internet_out_pass(pack: PolicyPackProcess, ranges: list[str]) -> None:
    violations = pack.analyze(firewall(ranges, [{"protocol": "tcp", "ports": ["22"]}]))
    assert not of(violations, FIREWALL_POLICY), listing(violations)


@pytest.mark.parametrize("configure_stack", [True, False], ids=["ConfigureStack", "PULUMI_CONFIG only"])
def test_stack_that_allows_admin_from_the_internet_passes_the_firewall_policy(configure_stack: bool) -> None:
    """The stack's own setting (kubeadm-cluster:allowAdminFromInternet), as the engine hands the
    pack the stack config: in ConfigureStack and in the PULUMI_CONFIG of the pack's process."""
    allowed = {"kubeadm-cluster:allowAdminFromInternet": "true"}
    with PolicyPackProcess(stack_config=allowed) as process:
        if configure_stack:
            process.configure_stack()
        process.configure()
        for ranges in (["0.0.0.0/0"], ["0.0.0.0/1", "128.0.0.0/1"]):
            violations = process.analyze(firewall(ranges, [{"protocol": "tcp", "ports": ["22", "6443"]}]))
            assert not of(violations, FIREWALL_POLICY), f"{ranges}: {listing(violations)}"
    with PolicyPackProcess(stack_config={"kubeadm-cluster:allowAdminFromInternet": "false"}) as process:
        process.configure_stack()
        process.configure()
        violations = process.analyze(firewall(["0.0.0.0/0"], [{"protocol": "tcp", "ports": ["22"]}]))
        assert_blocked(violations, FIREWALL_POLICY, "TCP 22")


# --- Firewalls together (the stack policy) ------------------------------------------------
#
# Issue 13: rule A with 0.0.0.0/1 and rule B with 128.0.0.0/1, both allowing TCP 22, passed the
# pack: the per-resource policy sees one rule at a time. The stack policy unites the rules'
# source ranges per network, admin port and IP family (AnalyzeStack, as the engine sends it).


def admin_rule(
    name: str, ranges: Any, ports: list[str] | None = None, *, network: Any = "kubeadm",
    protocol: str = "tcp", **props: Any,
) -> dict[str, Any]:
    """An ingress firewall rule as the engine sends it (props are the rule's wire names)."""
    allow: dict[str, Any] = {"protocol": protocol}
    if ports is not None or protocol == "tcp":
        allow["ports"] = ["22"] if ports is None else ports
    body: dict[str, Any] = {"network": network, "direction": "INGRESS", "sourceRanges": ranges, "allows": [allow]}
    return resource(FIREWALL, name, {**body, **props})


HALVES = [admin_rule("admin-low", ["0.0.0.0/1"]), admin_rule("admin-high", ["128.0.0.0/1"])]

SELF_LINK = "https://www.googleapis.com/compute/v1/projects/my-gcp-project/global/networks/kubeadm"

#: Rule sets that open an admin port to the whole internet only together: (id, rules, fragments
#: the one violation must hold).
TOGETHER = [
    ("halves", HALVES, ["admin-low (0.0.0.0/1)", "admin-high (128.0.0.0/1)", "0.0.0.0/0 reach TCP 22,"]),
    (
        "quarters in four rules",
        [admin_rule(f"q{i}", [f"{i * 64}.0.0.0/2"]) for i in range(4)],
        ["q0 (0.0.0.0/2); q1 (64.0.0.0/2); q2 (128.0.0.0/2); q3 (192.0.0.0/2)", "TCP 22,"],
    ),
    (
        "IPv6 halves",
        [admin_rule("v6-low", ["::/1"]), admin_rule("v6-high", ["8000::/1", "203.0.113.0/24"])],
        ["::/0 reach TCP 22,", "v6-low (::/1)", "v6-high (8000::/1, 203.0.113.0/24)"],
    ),
    (
        # The network by name, by id (the program's vpc.id) and by self link (the state's output).
        "one network three spellings",
        [
            admin_rule("by-name", ["0.0.0.0/2", "64.0.0.0/2"]),
            admin_rule("by-id", ["128.0.0.0/2"], network="projects/my-gcp-project/global/networks/kubeadm"),
            admin_rule("by-link", ["192.0.0.0/2"], network=SELF_LINK),
        ],
        ["network kubeadm", "by-name", "by-id", "by-link"],
    ),
    (
        "a port range, and a protocol-all rule",
        [admin_rule("range", ["0.0.0.0/1"], ["20-30"]), admin_rule("everything", ["128.0.0.0/1"], protocol="all")],
        ["reach TCP 22,", "range (0.0.0.0/1)", "everything (128.0.0.0/1)"],
    ),
    (
        "both admin ports in both halves: one finding",
        [admin_rule("low", ["0.0.0.0/1"], ["22", "6443"]), admin_rule("high", ["128.0.0.0/1"], ["6443", "22"])],
        ["reach TCP 22, 6443,"],
    ),
    (
        # Ignored on purpose (the policy's docstring): a deny of higher priority, different targets.
        "a deny rule of higher priority does not count",
        [
            *HALVES,
            resource(FIREWALL, "deny-ssh", {"network": "kubeadm", "direction": "INGRESS", "priority": 0,
                                            "sourceRanges": ["0.0.0.0/0"],
                                            "denies": [{"protocol": "tcp", "ports": ["22"]}]}),
        ],
        ["admin-low", "admin-high"],
    ),
    (
        "rules aimed at different targets are united",
        [admin_rule("cp", ["0.0.0.0/1"], targetTags=["cp"]), admin_rule("workers", ["128.0.0.0/1"], targetTags=["w"])],
        ["cp (0.0.0.0/1); workers (128.0.0.0/1)"],
    ),
    (
        # A rule whose ranges the others cover anyway (the node-to-node rule) is not what opens it.
        "halves and a private range",
        [*HALVES, admin_rule("internal", ["10.240.0.0/24", "10.32.0.0/12"], protocol="all")],
        ["admin-high (128.0.0.0/1); admin-low (0.0.0.0/1);"],
    ),
    (
        # The rule open on its own is the per-resource policy's finding; the halves still are this one's.
        "halves next to a rule open alone",
        [*HALVES, admin_rule("open", ["0.0.0.0/0"])],
        ["admin-low (0.0.0.0/1)", "admin-high (128.0.0.0/1)"],
    ),
]


@pytest.mark.parametrize(("rules", "says"), [(r, s) for _, r, s in TOGETHER], ids=[i for i, _, _ in TOGETHER])
def test_firewall_rules_that_open_admin_ports_to_the_internet_together_are_blocked(
    pack: PolicyPackProcess, rules: list[dict[str, Any]], says: list[str]
) -> None:
    violations = pack.analyze_stack(rules)
    found = of(violations, FIREWALLS_TOGETHER, "mandatory")
    assert len(found) == 1, f"expected one MANDATORY {FIREWALLS_TOGETHER} violation:\n{listing(violations)}"
    assert_blocked(violations, FIREWALLS_TOGETHER, *says, "allowAdminFromInternet", "kubeadm-cluster:adminCidrs")
    assert "open (" not in found[0].message, f"the rule open alone is named again:\n{found[0].message}"
    assert "internal (" not in found[0].message, f"a rule not needed for the cover is named:\n{found[0].message}"


def test_each_half_alone_passes_the_per_resource_policy_which_stays_as_it_is(pack: PolicyPackProcess) -> None:
    """What the auditor found: every rule passes on its own, so only the stack policy can see it."""
    for rule in HALVES:
        violations = pack.analyze(rule)
        assert not of(violations, FIREWALL_POLICY), listing(violations)
    assert_blocked(pack.analyze(admin_rule("open", ["0.0.0.0/0"])), FIREWALL_POLICY, "open lets 0.0.0.0/0 reach TCP 22")


#: Rule sets that do not open an admin port to the whole internet: (id, rules).
NOT_TOGETHER = [
    ("two networks", [admin_rule("a", ["0.0.0.0/1"]), admin_rule("b", ["128.0.0.0/1"], network="other")]),
    (
        "two networks by self link",
        [admin_rule("a", ["0.0.0.0/1"], network=SELF_LINK), admin_rule("b", ["128.0.0.0/1"], network=SELF_LINK + "-2")],
    ),
    ("one disabled", [admin_rule("a", ["0.0.0.0/1"]), admin_rule("b", ["128.0.0.0/1"], disabled=True)]),
    ("one egress", [admin_rule("a", ["0.0.0.0/1"]), admin_rule("b", ["128.0.0.0/1"], direction="EGRESS")]),
    (
        "22 on one, 6443 on the other",
        [admin_rule("a", ["0.0.0.0/1"], ["22"]), admin_rule("b", ["128.0.0.0/1"], ["6443"])],
    ),
    ("UDP on one", [admin_rule("a", ["0.0.0.0/1"]), admin_rule("b", ["128.0.0.0/1"], ["22"], protocol="udp")]),
    ("a gap left", [admin_rule("a", ["0.0.0.0/1"]), admin_rule("b", ["128.0.0.0/2", "192.0.0.0/3"])]),
    ("other ports", [admin_rule("a", ["0.0.0.0/1"], ["80", "443"]), admin_rule("b", ["128.0.0.0/1"], ["80"])]),
    (
        # Source tags admit the network's own instances, not the internet.
        "tags, not ranges",
        [admin_rule("a", ["0.0.0.0/1"]), resource(FIREWALL, "b", {"network": "kubeadm", "sourceTags": ["node"],
                                                                   "allows": [{"protocol": "tcp", "ports": ["22"]}]})],
    ),
    ("v4 half and v6 half", [admin_rule("a", ["0.0.0.0/1"]), admin_rule("b", ["8000::/1"])]),
    # A rule open alone is the per-resource policy's finding (tested above), not repeated here.
    ("one rule open alone", [admin_rule("open", ["0.0.0.0/0"]), admin_rule("b", ["128.0.0.0/1"])]),
]


@pytest.mark.parametrize("rules", [r for _, r in NOT_TOGETHER], ids=[i for i, _ in NOT_TOGETHER])
def test_firewall_rules_that_do_not_open_admin_ports_together_pass(
    pack: PolicyPackProcess, rules: list[dict[str, Any]]
) -> None:
    violations = pack.analyze_stack(rules)
    assert not of(violations, FIREWALLS_TOGETHER), listing(violations)


def test_the_stack_policy_honours_allow_admin_from_internet() -> None:
    """The same escape hatch as the per-resource policy: the stack's allowAdminFromInternet."""
    with PolicyPackProcess(stack_config={"kubeadm-cluster:allowAdminFromInternet": "true"}) as process:
        process.configure_stack()
        process.configure()
        violations = process.analyze_stack(HALVES)
        assert not of(violations, FIREWALLS_TOGETHER), listing(violations)
    with PolicyPackProcess(stack_config={"kubeadm-cluster:allowAdminFromInternet": "false"}) as process:
        process.configure_stack()
        process.configure()
        assert_blocked(process.analyze_stack(HALVES), FIREWALLS_TOGETHER, "admin-low", "admin-high")


def test_the_stack_policy_takes_its_admin_ports_from_its_config(default_config: PolicyPackProcess) -> None:
    pack = default_config
    rules = [admin_rule("a", ["0.0.0.0/1"], ["8080"]), admin_rule("b", ["128.0.0.0/1"], ["8000-9000"])]
    assert not of(pack.analyze_stack(rules), FIREWALLS_TOGETHER)
    pack.configure({FIREWALLS_TOGETHER: {"forbiddenPorts": [8080]}})
    assert_blocked(pack.analyze_stack(rules), FIREWALLS_TOGETHER, "reach TCP 8080,")


# Unknown values: in the first preview the VPC's id (each rule's ``network``) is not known yet.


def stack_request(
    rules: list[dict[str, Any]], network_sources: dict[str, list[str]]
) -> analyzer_pb2.AnalyzeStackRequest:
    """An AnalyzeStack request with each rule's property dependency on ``network`` (rule name ->
    URNs), as the engine sends it (pulumi/pulumi pkg/resource/deploy/step_generator.go,
    AnalyzeResources: PropertyDependencies); tools/policy_client.py sends none."""
    request = analyzer_pb2.AnalyzeStackRequest()
    for rule in rules:
        message = analyzer_pb2.AnalyzerResource(
            type=rule["type"], urn=rule["urn"], name=rule["name"], properties=to_struct(rule["props"])
        )
        if rule["name"] in network_sources:
            message.propertyDependencies["network"].CopyFrom(
                analyzer_pb2.AnalyzerPropertyDependencies(urns=network_sources[rule["name"]])
            )
        request.resources.append(message)
    return request


def vpc(name: str, vpc_name: Any) -> dict[str, Any]:
    return resource("gcp:compute/network:Network", name, {"name": vpc_name, "autoCreateSubnetworks": False})


def test_unknown_networks_are_placed_by_the_network_they_depend_on(pack: PolicyPackProcess) -> None:
    one, two = vpc("cluster-vpc", "dev-vpc"), vpc("other-vpc", "other")
    rules = [admin_rule("low", ["0.0.0.0/1"], network=UNKNOWN), admin_rule("high", ["128.0.0.0/1"], network=UNKNOWN)]
    same = pack.stub.AnalyzeStack(stack_request([one, two, *rules], {"low": [one["urn"]], "high": [one["urn"]]}))
    messages = [d.message for d in same.diagnostics if d.policyName == FIREWALLS_TOGETHER
                and d.enforcementLevel == analyzer_pb2.MANDATORY]
    assert len(messages) == 1 and "network dev-vpc" in messages[0], list(same.diagnostics)
    apart = pack.stub.AnalyzeStack(stack_request([one, two, *rules], {"low": [one["urn"]], "high": [two["urn"]]}))
    assert not [d for d in apart.diagnostics if d.enforcementLevel == analyzer_pb2.MANDATORY], list(apart.diagnostics)
    # The network's name unknown too: its URN places the rules.
    hidden = vpc("cluster-vpc", UNKNOWN)
    again = pack.stub.AnalyzeStack(stack_request([hidden, *rules], {"low": [hidden["urn"]], "high": [hidden["urn"]]}))
    assert [d for d in again.diagnostics if d.enforcementLevel == analyzer_pb2.MANDATORY], list(again.diagnostics)


def test_an_unreadable_rule_in_preview_is_an_advisory_unless_the_known_rules_cover_the_internet(
    pack: PolicyPackProcess,
) -> None:
    unplaced = [admin_rule("low", ["0.0.0.0/1"]), admin_rule("high", ["128.0.0.0/1"], network=UNKNOWN)]
    violations = pack.analyze_stack(unplaced)
    assert_no_mandatory(violations)
    notes = of(violations, FIREWALLS_TOGETHER, "advisory")
    assert notes and "can't be known during preview" in notes[0].message, listing(violations)
    # Unknown rules could only add to what the known ones open: known halves are a violation still.
    extra = admin_rule("computed", UNKNOWN_ARRAY)
    assert_blocked(pack.analyze_stack([*HALVES, extra]), FIREWALLS_TOGETHER, "admin-low", "admin-high")


def test_the_plan_check_chain_reports_the_program_firewalls_that_open_admin_ports_together() -> None:
    """tools/plan_check sends every resource through AnalyzeStack too (analyze_resources): the
    program's own admin rule split in two rules that cover the internet is a FAIL."""
    import copy

    from tests.conftest import stack_config
    from tools import mock_engine, plan_check

    plan = mock_engine.run_program(stack_config())
    assert plan.error is None, plan.error
    resources = copy.deepcopy(plan_check._resources(plan))
    admin = next(r for r in resources if r["type"] == FIREWALL and r["name"].endswith("-admin"))
    admin["props"]["sourceRanges"] = ["0.0.0.0/1"]
    other = copy.deepcopy(admin)
    other.update(name=admin["name"] + "-2", urn=admin["urn"] + "-2")
    other["props"]["sourceRanges"] = ["128.0.0.0/1"]
    violations = analyze_resources([*resources, other])
    assert_blocked(violations, FIREWALLS_TOGETHER, admin["name"], other["name"], "TCP 22, 6443,")
    assert "-internal (" not in of(violations, FIREWALLS_TOGETHER)[0].message, listing(violations)
    assert not of(violations, FIREWALL_POLICY), listing(violations)
    summary = plan_check.summarize("dev", plan, violations)
    assert f"MANDATORY {FIREWALLS_TOGETHER} on the stack: " in summary and summary.rstrip().endswith("-> FAIL"), summary
    assert_no_mandatory(analyze_resources(resources, stack_config={}))  # the untouched program passes


# --- Dashboard Services ----------------------------------------------------------------


@pytest.mark.parametrize(
    "svc",
    [
        service("kubernetes-dashboard", "kubernetes-dashboard", "NodePort"),
        service("web", "kubernetes-dashboard", "LoadBalancer"),
        service("headlamp", "tools", "NodePort"),
        service("ui", "tools", "LoadBalancer", labels={"app.kubernetes.io/name": "headlamp"}),
    ],
)
def test_exposed_dashboard_service_is_blocked(pack: PolicyPackProcess, svc: dict[str, Any]) -> None:
    assert_blocked(pack.analyze(svc), DASHBOARD, svc["props"]["spec"]["type"])


@pytest.mark.parametrize(
    "svc",
    [
        service("kubernetes-dashboard", "kubernetes-dashboard", "ClusterIP"),
        service("headlamp", "headlamp", None),  # ClusterIP by default
        service("web", "shop", "LoadBalancer"),
    ],
)
def test_cluster_ip_dashboard_or_other_service_passes(pack: PolicyPackProcess, svc: dict[str, Any]) -> None:
    violations = pack.analyze(svc)
    assert not of(violations, DASHBOARD), listing(violations)


def test_helm_release_publishing_a_dashboard_is_blocked(pack: PolicyPackProcess) -> None:
    def release(service_type: str) -> dict[str, Any]:
        return resource(
            RELEASE,
            "headlamp",
            {"chart": "headlamp", "namespace": "headlamp", "values": {"service": {"type": service_type, "port": 80}}},
        )

    assert_blocked(pack.analyze(release("NodePort")), DASHBOARD, "values.service.type=NodePort")
    assert not of(pack.analyze(release("ClusterIP")), DASHBOARD)


# --- Kubernetes provider kubeconfig ----------------------------------------------------


def test_plain_kubeconfig_is_blocked(pack: PolicyPackProcess) -> None:
    assert_blocked(pack.analyze(k8s_provider(KUBECONFIG_TEXT)), KUBECONFIG, "plain text")


def test_plain_unknown_kubeconfig_is_blocked(pack: PolicyPackProcess) -> None:
    """Secrecy is known in preview even when the value is not: a plain unknown stays plain."""
    assert_blocked(pack.analyze(k8s_provider(UNKNOWN)), KUBECONFIG, "not marked secret")


@pytest.mark.parametrize("kubeconfig", [secret(KUBECONFIG_TEXT), secret(UNKNOWN), None, "/home/ops/.kube/config"])
def test_secret_or_absent_kubeconfig_passes(pack: PolicyPackProcess, kubeconfig: Any) -> None:
    violations = pack.analyze(k8s_provider(kubeconfig))
    assert not violations, listing(violations)


def test_additional_secret_outputs_does_not_make_the_input_secret(pack: PolicyPackProcess) -> None:
    provider = k8s_provider(KUBECONFIG_TEXT)
    provider["additionalSecretOutputs"] = ["kubeconfig"]
    assert_blocked(pack.analyze(provider), KUBECONFIG, "plain text")


# --- The plan-check entry point --------------------------------------------------------


def test_analyze_resources_runs_every_resource_through_a_fresh_pack() -> None:
    provider = k8s_provider(secret(KUBECONFIG_TEXT))
    svc = service("kubernetes-dashboard", "kubernetes-dashboard", "NodePort")
    svc["provider"] = provider["urn"] + "::04da6b54-provider-id"
    resources = [
        instance("e2-standard-2", name="cp-0"),
        instance("e2-small", name="worker-0"),
        firewall(["203.0.113.7/32"], [{"protocol": "tcp", "ports": ["22", "6443"]}]),
        provider,
        svc,
    ]
    violations = analyze_resources(resources)
    blocking = {(v.resource, v.policy) for v in violations if v.mandatory}
    expected = {("kubernetes-dashboard-kubernetes-dashboard", DASHBOARD), ("worker-0", MACHINE)}
    assert blocking == expected, listing(violations)
    assert all(v.urn for v in violations if v.mandatory), listing(violations)
    with pytest.raises(ValueError, match="unknown policy"):
        analyze_resources(resources, {"no-such-policy": {"x": 1}})


def test_analyze_stack_reports_nothing_on_a_stack_without_firewalls(pack: PolicyPackProcess) -> None:
    """The one stack policy (firewalls-together-no-public-admin-ports) reads firewalls only: the
    resource policies' findings are not repeated by AnalyzeStack."""
    assert pack.analyze_stack([instance("e2-small"), k8s_provider(KUBECONFIG_TEXT)]) == []


def test_pack_requirements_are_pinned_like_the_program_venv_it_shares() -> None:
    """policies/PulumiPolicy.yaml runs the pack in ../venv: its pins must agree with the repo's."""
    root = Path(__file__).resolve().parent.parent

    def pins(path: Path) -> dict[str, str]:
        found: dict[str, str] = {}
        for line in path.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                name, sep, version = line.partition("==")
                assert sep, f"{path.name}: {line!r} is not pinned with =="
                found[name.strip().lower()] = version.strip()
        return found

    pack = pins(root / "policies" / "requirements.txt")
    assert pack.get("pulumi-policy") == "1.21.0", pack
    repo = {**pins(root / "requirements.txt"), **pins(root / "requirements-dev.txt")}
    differing = {name: (version, repo.get(name)) for name, version in pack.items() if repo.get(name) != version}
    assert not differing, f"policies/requirements.txt vs requirements*.txt: {differing}"
    pack_yaml = (root / "policies" / "PulumiPolicy.yaml").read_text()
    assert "virtualenv: ../venv" in pack_yaml, pack_yaml


# --- provider: local VMs (a local command whose environment names the VM's shape) ------------


def local_vm(machine_type: str, disk_gb: Any = "30", key: Any = None) -> dict[str, Any]:
    """A `provider: local` VM step as components/machines/local.py registers it: its create command
    waits on the stack's key (unknown at the first preview), its environment names its shape."""
    from components.machines.localvm import KEY_ENV, VM_DISK_GB_ENV, VM_MACHINE_TYPE_ENV

    environment: dict[str, Any] = {KEY_ENV: secret(UNKNOWN) if key is None else key, VM_MACHINE_TYPE_ENV: machine_type}
    if disk_gb is not None:
        environment[VM_DISK_GB_ENV] = disk_gb
    return resource("command:local:Command", "lab-general-0-vm", {"create": UNKNOWN, "environment": environment})


@pytest.mark.parametrize(("machine_type", "says"), [("local-1-4096", "has 1 vCPU"), ("local-2-3072", "3 GB of memory"),
                                                     ("e2-small", "unknown machine type 'e2-small' for a local VM")])
def test_an_under_spec_local_vm_is_blocked_at_preview(pack: PolicyPackProcess, machine_type: str, says: str) -> None:
    assert_blocked(pack.analyze(local_vm(machine_type)), MACHINE, says)


def test_a_local_vm_with_a_small_disk_is_blocked(pack: PolicyPackProcess) -> None:
    assert_blocked(pack.analyze(local_vm("local-2-4096", disk_gb="20")), DISK, "boot disk of 20 GB", "KC_VM_DISK_GB")


def test_a_local_vm_meeting_the_minimums_passes_with_the_memory_advice(pack: PolicyPackProcess) -> None:
    violations = pack.analyze(local_vm("local-2-4096"))
    assert_no_mandatory(violations)
    assert of(violations, "node-memory-recommended", "advisory"), listing(violations)
    assert_no_mandatory(pack.analyze(local_vm("local-4-8192", disk_gb="40")))


def test_other_local_commands_are_not_machines(pack: PolicyPackProcess) -> None:
    assert not pack.analyze(resource("command:local:Command", "lab-network", {"create": "true", "environment": {}}))


def test_the_local_stacks_vm_steps_carry_the_shape_the_vm_starts_with() -> None:
    """What the pack reads is what vm-start gets: the machine type's vCPUs/memory and the disk."""
    import shlex

    from components.machines.localvm import VM_DISK_GB_ENV, VM_MACHINE_TYPE_ENV
    from tools import mock_engine

    plan = mock_engine.run_program(mock_engine.config_from_stack_file(mock_engine.stack_file("local")), stack="local")
    assert plan.error is None, plan.error
    steps = [r for r in plan.of_type("command:local:Command") if r.name.endswith("-vm")]
    assert len(steps) == 3
    for step in steps:
        environment, words = step.input("environment"), shlex.split(str(step.input("create")))
        spec = hardware.local_machine_spec(environment[VM_MACHINE_TYPE_ENV])
        assert spec is not None
        given = {flag: words[words.index(flag) + 1] for flag in ("--vcpus", "--memory-mb", "--disk-gb")}
        assert given == {"--vcpus": str(int(spec.vcpus)), "--memory-mb": str(spec.memory_mb),
                         "--disk-gb": environment[VM_DISK_GB_ENV]}, (step.name, given, environment)
