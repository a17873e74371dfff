"""The stack configuration contract: pydantic models, read once, validated before any resource.

Every key lives in the ``kubeadm-cluster:`` namespace and is camelCase; objects are Pulumi
structured config. Unknown keys (typos) are errors. ``load_config()`` returns a
``ClusterConfig`` or raises ``ConfigError`` whose message names every offending field;
``__main__`` turns that into a clean ``pulumi.RunError`` before registering anything.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic.alias_generators import to_camel
from pydantic.fields import FieldInfo

from components import hardware, systemd_calendar, versions

NAMESPACE = "kubeadm-cluster"

_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# No leading zeros (``1.36.04`` is no Kubernetes release and no pkgs.k8s.io package version).
_VERSION = re.compile(r"^v?1\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")
_FLAG_NAME = re.compile(r"^[a-z0-9][-a-z0-9.]*$")
#: useradd(8)'s recommended login names (a trailing '$' for Samba machine accounts).
_LOGIN_NAME = re.compile(r"^[a-z_][a-z0-9_-]*[$]?$")
_TAINT = re.compile(r"^(?P<key>[^=:\s]+)(=(?P<value>[^:\s]*))?:(?P<effect>[A-Za-z]+)$")

TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
CNI_KINDS = ("weave", "flannel", "calico")
DASHBOARD_KINDS = ("kubernetes-dashboard", "headlamp")
#: Flags kubeadm's components no longer accept; passing them crashes the component.
REMOVED_FLAGS: dict[str, str] = {
    "horizontal-pod-autoscaler-use-rest-clients": (
        "was removed in Kubernetes 1.21 (the HPA always uses the metrics APIs now) and makes "
        "kube-controller-manager exit at start-up"
    ),
}
#: The kubelet posts node status every 10 s; a grace period near that flaps nodes NotReady.
SAFE_NODE_MONITOR_GRACE_SECONDS = 40

#: Control-plane counts the stacked-etcd layout here supports (odd, for quorum), GCP and own servers alike.
CONTROL_PLANE_COUNTS = (1, 3, 5, 7)

# --- kubeadm's own rules (cmd/kubeadm/app/apis/kubeadm/validation/validation.go and
# cmd/kubeadm/app/constants/constants.go; tests/test_config_refusals.py names lines and refs) ---
#: ValidateServiceSubnetSize: the service range is at most 20 host bits (/12 for IPv4), as the
#: API server's --service-cluster-ip-range check also demands (MaximumBitsForServiceSubnet).
KUBEADM_MAX_SERVICE_SUBNET_BITS = 20
#: ValidateIPNetFromString(serviceSubnet, MinimumAddressesInServiceSubnet): at least 10 addresses,
#: since the cluster DNS Service takes the tenth address of the range.
KUBEADM_MIN_SERVICE_SUBNET_ADDRESSES = 10
#: getClusterNodeMask: the controller manager's per-node pod range, /24 for IPv4 unless
#: ``node-cidr-mask-size-ipv4`` is set among its extra args.
KUBEADM_DEFAULT_NODE_CIDR_MASK = 24
#: ValidatePodSubnetNodeMask: the node mask is at most 16 bits longer than the pod range's
#: (PodSubnetNodeMaskMaxDiff).
KUBEADM_POD_SUBNET_NODE_MASK_MAX_DIFF = 16

#: Flags kubeadm sets itself from the stack config or from its own files (getAPIServerCommand and
#: getControllerManagerCommand in cmd/kubeadm/app/phases/controlplane/manifests.go): an extra arg
#: would silently override them on one side only (certificates, the node's address, the ranges
#: the CNI and kube-proxy were given), so they are refused with the setting that drives them.
KUBEADM_MANAGED_API_SERVER_FLAGS: dict[str, str] = {
    "advertise-address": "each control plane's own internal IP",
    "secure-port": "the API port 6443 every node, firewall and load balancer uses",
    "service-cluster-ip-range": "network.serviceCidr",
    "etcd-servers": "the local stacked etcd member",
    "enable-bootstrap-token-auth": "kubeadm (every worker joins with a bootstrap token)",
    **{
        flag: "kubeadm's certificates in /etc/kubernetes/pki"
        for flag in (
            "client-ca-file", "tls-cert-file", "tls-private-key-file", "kubelet-client-certificate",
            "kubelet-client-key", "service-account-key-file", "service-account-signing-key-file",
            "requestheader-client-ca-file", "proxy-client-cert-file", "proxy-client-key-file",
            "etcd-cafile", "etcd-certfile", "etcd-keyfile",
        )
    },
}
KUBEADM_MANAGED_CONTROLLER_MANAGER_FLAGS: dict[str, str] = {
    "cluster-cidr": "network.podCidr",
    "service-cluster-ip-range": "network.serviceCidr",
    "allocate-node-cidrs": "network.podCidr (the CNIs rely on each node's pod range)",
    "cluster-name": "the stack name",
    **{
        flag: "kubeadm's kubeconfig and certificates in /etc/kubernetes"
        for flag in (
            "kubeconfig", "authentication-kubeconfig", "authorization-kubeconfig", "client-ca-file",
            "requestheader-client-ca-file", "root-ca-file", "service-account-private-key-file",
            "cluster-signing-cert-file", "cluster-signing-key-file",
        )
    },
}
#: Flag names that take a Go duration in kube-apiserver and kube-controller-manager: they end in
#: one of these words (``node-monitor-grace-period``, ``request-timeout``, ``event-ttl``...).
#: ``time.ParseDuration`` refuses a number without a unit ("10"): the component exits at start.
_DURATION_FLAG_SUFFIXES = ("-period", "-timeout", "-duration", "-ttl", "-interval", "-deadline", "-delay", "-stabilization")
#: Flags with such a name that take a plain number instead (kube-apiserver: seconds, an int).
_NUMERIC_FLAGS_WITH_DURATION_NAMES = frozenset({"min-request-timeout"})
#: A Go duration (``time.ParseDuration``): a signed sequence of decimal numbers, each with a unit.
_GO_DURATION = re.compile(r"^[-+]?(0|((\d+(\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h))+)$")

#: IPv4 ranges no cluster range may use: GCE refuses them for subnets ("Prohibited IPv4 subnet
#: ranges", cloud.google.com/vpc/docs/subnets), and as pod or Service addresses they collide with
#: every host's own loopback or link-local traffic (the metadata server is 169.254.169.254).
PROHIBITED_RANGES: dict[str, str] = {
    "0.0.0.0/8": "'this network' (RFC 1122)",
    "127.0.0.0/8": "loopback",
    "169.254.0.0/16": "link-local",
    "224.0.0.0/4": "multicast",
    "240.0.0.0/4": "reserved (RFC 1112)",
}
#: GCE's smallest primary IPv4 subnet range, and the addresses it keeps in each primary range
#: (network, default gateway, second-to-last, broadcast): cloud.google.com/vpc/docs/subnets.
GCE_MIN_SUBNET_PREFIX = 29
GCE_RESERVED_SUBNET_ADDRESSES = 4
#: Google Cloud project IDs: 6 to 30 lowercase letters, digits or hyphens, starting with a
#: letter, not ending with a hyphen (Resource Manager, "Creating and managing projects"); a
#: legacy domain-scoped ID is ``example.com:my-project``.
_GCP_PROJECT_ID = re.compile(r"^(?:[a-z0-9][-a-z0-9.]*[a-z0-9]:)?[a-z][-a-z0-9]{4,28}[a-z0-9]$")
_GCP_ZONE = re.compile(r"^[a-z]+-[a-z]+\d+-[a-z]$")
_GCP_REGION = re.compile(r"^[a-z]+-[a-z]+\d+$")


class ConfigError(ValueError):
    """Stack configuration that cannot build a cluster; the message names each field."""


class _Problems(ValueError):
    """Several problems found by one cross-field check, each with the field it belongs to."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{path}: {message}" for path, message in problems))
        self.problems = problems


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True, strict=False
    )

    @field_validator("*", mode="before")
    @classmethod
    def _no_boolean_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        """pydantic's lax mode reads ``true`` as 1: ``count: true`` would build one node."""
        if isinstance(value, bool) and info.field_name is not None:
            annotation = cls.model_fields[info.field_name].annotation
            if annotation in (int, float):
                raise ValueError(
                    f"is the boolean {str(value).lower()}; a number is expected here (e.g. 3), "
                    "and YAML reads unquoted true/false/yes/no/on/off as booleans"
                )
        return value


def _check_label_key(key: str) -> str | None:
    prefix, slash, name = key.rpartition("/")
    # "/name": Kubernetes' IsQualifiedName refuses an empty prefix before the '/'.
    if slash and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        return f"label/taint key {key!r} has an invalid prefix (a DNS subdomain, like example.com)"
    if not name or len(name) > 63 or not _LABEL_NAME.match(name):
        return (
            f"label/taint key {key!r} is invalid: at most 63 characters, alphanumerics, '-', '_' "
            "or '.', starting and ending with an alphanumeric"
        )
    return None


#: Label namespaces Kubernetes reserves for itself ("Well-Known Labels, Annotations and Taints",
#: kubernetes.io/docs/reference/labels-annotations-taints: all of kubernetes.io and k8s.io, their
#: subdomains too), and the two it leaves to administrators: node-role.kubernetes.io (the node
#: roles kubectl shows) and node-restriction.kubernetes.io (the NodeRestriction admission plugin,
#: kubernetes.io/docs/reference/access-authn-authz/admission-controllers/#noderestriction: kept for
#: admins to label Nodes for workload isolation; kubelets may not set it).
RESERVED_LABEL_NAMESPACES = ("kubernetes.io", "k8s.io")
ADMIN_LABEL_NAMESPACES = ("node-role.kubernetes.io", "node-restriction.kubernetes.io")


def _reserved_label_problem(key: str) -> str | None:
    """A node label key in a namespace Kubernetes reserves (``kubernetes.io/hostname``,
    ``topology.kubernetes.io/zone``): the pool's labels are force-applied to the Node and would
    override what the kubelet, kubeadm and the controllers set there."""
    prefix, _, name = key.rpartition("/")
    prefix = prefix.lower()
    if not any(prefix == ns or prefix.endswith(f".{ns}") for ns in RESERVED_LABEL_NAMESPACES):
        return None
    if prefix == ADMIN_LABEL_NAMESPACES[0] or any(
        prefix == ns or prefix.endswith(f".{ns}") for ns in ADMIN_LABEL_NAMESPACES[1:]
    ):
        return None
    return (
        f"label key {key!r} is in {prefix}, a namespace Kubernetes reserves for its own components (the kubelet, "
        "kubeadm and the controllers set these labels; the pool's labels are forced onto the node): use a prefix "
        f"of your own (e.g. example.com/{name}), or node-role.kubernetes.io/<role> or "
        "node-restriction.kubernetes.io/<name>, which Kubernetes leaves to administrators"
    )


def _check_label_value(value: str) -> str | None:
    if value == "":
        return None
    if len(value) > 63 or not _LABEL_NAME.match(value):
        return (
            f"label/taint value {value!r} is invalid: at most 63 characters, alphanumerics, '-', "
            "'_' or '.', starting and ending with an alphanumeric"
        )
    return None


class Taint(_Model):
    """A node taint, written in stack config as ``key[=value]:Effect``."""

    key: str
    value: str = ""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]

    @classmethod
    def parse(cls, text: str) -> "Taint":
        match = _TAINT.match(text)
        if match is None:
            raise ValueError(f"taint {text!r} is not of the form key[=value]:Effect (e.g. dedicated=batch:NoSchedule)")
        effect = match.group("effect")
        if effect not in TAINT_EFFECTS:
            raise ValueError(f"taint {text!r} has effect {effect!r}; allowed: {', '.join(TAINT_EFFECTS)}")
        key, value = match.group("key"), match.group("value") or ""
        for problem in (_check_label_key(key), _check_label_value(value)):
            if problem:
                raise ValueError(problem)
        return cls(key=key, value=value, effect=effect)  # type: ignore[arg-type]

    @model_validator(mode="after")
    def _valid_key_and_value(self) -> "Taint":
        """The object form (``{key, value, effect}``) passes the same checks as the string form."""
        for problem in (_check_label_key(self.key), _check_label_value(self.value)):
            if problem:
                raise ValueError(problem)
        return self

    def __str__(self) -> str:
        return f"{self.key}={self.value}:{self.effect}" if self.value else f"{self.key}:{self.effect}"


def _own_servers(info: ValidationInfo) -> bool:
    """Whether the stack is ``provider: existing``: its hosts are the machines, so the GCP machine
    fields of ``controlPlane`` and ``workerPools`` are ignored (a warning says so), not checked."""
    return isinstance(info.context, Mapping) and info.context.get("provider") == "existing"


def _local_vms(info: ValidationInfo) -> bool:
    """Whether the stack is ``provider: local``: its machines are QEMU VMs on this machine, whose
    machine type is a shape (``local-CPUS-MB`` or a GCE type's vCPUs and memory)."""
    return isinstance(info.context, Mapping) and info.context.get("provider") == "local"


def _machine_type_check(value: str, info: ValidationInfo) -> str:
    if _local_vms(info):
        problems = hardware.local_machine_type_problems(value)
    else:
        problems = [] if _own_servers(info) else hardware.machine_type_problems(value)
    if problems:
        raise ValueError("; ".join(problems))
    return value


def _disk_check(value: int, info: ValidationInfo) -> int:
    problems = [] if _own_servers(info) else hardware.disk_problems(value)
    if problems:
        raise ValueError(problems[0])
    return value


def _storage_disk_check(value: int, info: ValidationInfo) -> int:
    if value != 0 and value < 10 and not _own_servers(info):
        raise ValueError(f"storage disk of {value} GB: use 0 (no storage disk) or at least 10 GB")
    return value


def _disk_size_limits(group: "ControlPlaneConfig | WorkerPoolConfig", info: ValidationInfo) -> None:
    """GCE's largest disk of the type the machine series takes (boot and Ceph disk alike)."""
    if _own_servers(info) or _local_vms(info):
        return
    disk_type = hardware.disk_type(group.machine_type)
    problems = [
        (field_name, problem)
        for field_name, size in (("diskSizeGb", group.disk_size_gb), ("storageDiskSizeGb", group.storage_disk_size_gb))
        for problem in hardware.disk_size_limit_problems(size, disk_type)
    ]
    if problems:
        raise _Problems(problems)


MachineType = Annotated[str, Field(min_length=1)]


class ControlPlaneConfig(_Model):
    count: int = 1
    machine_type: MachineType = "e2-standard-2"
    disk_size_gb: int = 50
    schedulable: bool = False
    storage_disk_size_gb: int = 0

    @field_validator("count")
    @classmethod
    def _odd_count(cls, value: int, info: ValidationInfo) -> int:
        # Own servers: the control planes are existingHosts.controlPlane (whose size is checked
        # there); this count is ignored, and a warning says so.
        if value not in CONTROL_PLANE_COUNTS and not _own_servers(info):
            raise ValueError(
                f"control-plane count {value} is not allowed: use {_counts_text()} (an odd number keeps etcd quorum)"
            )
        return value

    _mt = field_validator("machine_type")(_machine_type_check)
    _disk = field_validator("disk_size_gb")(_disk_check)
    _storage = field_validator("storage_disk_size_gb")(_storage_disk_check)

    @model_validator(mode="after")
    def _disk_limits(self, info: ValidationInfo) -> "ControlPlaneConfig":
        _disk_size_limits(self, info)
        return self


def _counts_text() -> str:
    """``1, 3, 5 or 7``"""
    *head, last = (str(count) for count in CONTROL_PLANE_COUNTS)
    return f"{', '.join(head)} or {last}"


class WorkerPoolConfig(_Model):
    name: str
    count: int = 2
    machine_type: MachineType = "e2-standard-2"
    disk_size_gb: int = 50
    storage_disk_size_gb: int = 0
    labels: dict[str, str] = Field(default_factory=dict)
    taints: list[Taint] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _dns_label(cls, value: str) -> str:
        if len(value) > 20 or not _DNS_LABEL.match(value):
            raise ValueError(
                f"pool name {value!r} is not a DNS label: lowercase letters, digits and '-', "
                "starting with a letter, at most 20 characters"
            )
        if value == "cp":
            raise ValueError("pool name 'cp' is reserved for the control plane")
        return value

    @field_validator("count")
    @classmethod
    def _count(cls, value: int, info: ValidationInfo) -> int:
        if (value < 0 or value > 200) and not _own_servers(info):  # own servers: ignored (a warning)
            raise ValueError(f"pool count {value} is out of range: 0 to 200")
        return value

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        for key, label in value.items():
            for problem in (_check_label_key(key), _reserved_label_problem(key), _check_label_value(label)):
                if problem:
                    raise ValueError(problem)
        return value

    @field_validator("taints", mode="before")
    @classmethod
    def _taints(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        return [Taint.parse(item) if isinstance(item, str) else item for item in value]

    @field_validator("taints")
    @classmethod
    def _unique_taints(cls, value: list[Taint]) -> list[Taint]:
        """The API server refuses a Node whose taints repeat a key and effect pair
        (validateNodeTaints, pkg/apis/core/validation/validation.go): the node patch would fail."""
        seen: dict[tuple[str, str], Taint] = {}
        for taint in value:
            earlier = seen.setdefault((taint.key, taint.effect), taint)
            if earlier is not taint:
                raise ValueError(
                    f"taints {str(earlier)!r} and {str(taint)!r} have the same key and effect; a node takes one "
                    "taint per key and effect (keep one, or give them different keys or effects)"
                )
        return value

    _mt = field_validator("machine_type")(_machine_type_check)
    _disk = field_validator("disk_size_gb")(_disk_check)
    _storage = field_validator("storage_disk_size_gb")(_storage_disk_check)

    @model_validator(mode="after")
    def _disk_limits(self, info: ValidationInfo) -> "WorkerPoolConfig":
        _disk_size_limits(self, info)
        return self


def _network(value: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError as err:
        raise ValueError(f"{value!r} is not a valid IPv4 CIDR ({err})") from None
    if not isinstance(net, ipaddress.IPv4Network):
        raise ValueError(f"{value!r} is not an IPv4 CIDR (IPv6 is not supported yet)")
    return net


class NetworkConfig(_Model):
    subnet_cidr: str = "10.240.0.0/24"
    pod_cidr: str = "10.32.0.0/12"
    service_cidr: str = "10.96.0.0/12"

    @field_validator("subnet_cidr", "pod_cidr", "service_cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        net = _network(value)
        for prohibited, what in PROHIBITED_RANGES.items():
            if net.overlaps(ipaddress.ip_network(prohibited)):
                raise ValueError(
                    f"{value} overlaps {prohibited} ({what}), which no subnet, pod or Service range may use; "
                    "use private space (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 or 100.64.0.0/10)"
                )
        return value

    @field_validator("service_cidr")
    @classmethod
    def _service_range_size(cls, value: str) -> str:
        """kubeadm's ValidateIPNetFromString (10 addresses at least) and ValidateServiceSubnetSize."""
        net = _network(value)
        if net.num_addresses < KUBEADM_MIN_SERVICE_SUBNET_ADDRESSES:
            raise ValueError(
                f"{value} has {net.num_addresses} addresses; kubeadm needs at least "
                f"{KUBEADM_MIN_SERVICE_SUBNET_ADDRESSES} (the cluster DNS Service takes the tenth): use a prefix of "
                f"/{32 - (KUBEADM_MIN_SERVICE_SUBNET_ADDRESSES - 1).bit_length()} or shorter"
            )
        if net.max_prefixlen - net.prefixlen > KUBEADM_MAX_SERVICE_SUBNET_BITS:
            raise ValueError(
                f"{value} is larger than kubeadm and the API server allow: the Service range is at most "
                f"/{net.max_prefixlen - KUBEADM_MAX_SERVICE_SUBNET_BITS} (e.g. 10.96.0.0/12)"
            )
        return value

    @model_validator(mode="after")
    def _no_overlap(self) -> "NetworkConfig":
        nets = {"subnetCidr": self.subnet_cidr, "podCidr": self.pod_cidr, "serviceCidr": self.service_cidr}
        names = list(nets)
        for i, left in enumerate(names):
            for right in names[i + 1 :]:
                if _network(nets[left]).overlaps(_network(nets[right])):
                    raise ValueError(
                        f"{left} {nets[left]} overlaps {right} {nets[right]}: the subnet, pod and "
                        "service ranges must be disjoint"
                    )
        return self

    @property
    def dns_service_ip(self) -> str:
        """kubeadm gives CoreDNS the tenth address of the service range."""
        return str(_network(self.service_cidr).network_address + 10)


class DashboardConfig(_Model):
    enabled: bool = True
    kind: Literal["kubernetes-dashboard", "headlamp"] = "kubernetes-dashboard"
    #: Create a cluster-admin ServiceAccount for the UI (off: users bring their own token).
    admin_service_account: bool = False


class RookConfig(_Model):
    enabled: bool = True


class UpgradeConfig(_Model):
    """How a ``kubernetesVersion`` change rolls through the workers (control planes: one at a time)."""

    #: Workers drained and upgraded at the same time.
    worker_batch_size: int = 1
    #: Bound of each ``kubectl drain`` (a Go duration); a drain that runs out is a warning.
    drain_timeout: str = "5m"

    @field_validator("worker_batch_size")
    @classmethod
    def _batch(cls, value: int) -> int:
        if not 1 <= value <= 20:
            raise ValueError(f"workerBatchSize {value} is out of range: 1 to 20 workers at a time")
        return value

    @field_validator("drain_timeout")
    @classmethod
    def _timeout(cls, value: str) -> str:
        seconds = _seconds(value)
        if seconds is None or not 30 <= seconds <= 3600:
            raise ValueError(f"drainTimeout {value!r} must be a duration like 5m or 300s, from 30s to 1h")
        return value


#: systemd calendar shorthands (systemd.time(7)) suggested for ``backup.schedule``; every shorthand
#: systemd knows passes but ``minutely`` (components/systemd_calendar.py and the interval rule decide).
BACKUP_SCHEDULE_SHORTHANDS = ("hourly", "daily", "weekly", "monthly", "quarterly", "semiannually", "yearly")
#: What a calendar expression may contain (digits, names, ``*,./:~-`` and spaces): the node refuses
#: anything else too (install-maintenance.sh, before ``systemd-analyze calendar``), so time zones with
#: ``_`` or ``+`` (America/New_York) cannot be used; UTC or e.g. Europe/Berlin can.
_CALENDAR = re.compile(r"^[A-Za-z0-9*,./:~ -]{1,100}$")
#: The least time between two scheduled etcd snapshots: closer ones only load etcd, and ``keep`` of
#: them would cover a few minutes of history.
BACKUP_MIN_INTERVAL_SECONDS = 300
_SCHEDULE_HINT = (
    f"use {', '.join(BACKUP_SCHEDULE_SHORTHANDS[:3])} or an expression like 'Mon..Fri 02:30', '*:0/15' or "
    "'*-*-* 00/6:00:00'"
)


class BackupConfig(_Model):
    """etcd snapshots: a systemd timer on every control plane (components/bootstrap/maintenance.py)."""

    #: When the timer takes a snapshot: a systemd ``OnCalendar=`` value (``hourly``, ``daily``,
    #: ``*-*-* 00/6:00:00`` ...).
    schedule: str = "hourly"
    #: Snapshots of each kind (scheduled, pre-upgrade, pre-remove) kept on each control plane.
    keep: int = 24
    #: GCP: days a snapshot stays in the stack's bucket (a lifecycle rule deletes older ones).
    bucket_retention_days: int = 30
    #: ``provider: existing``: an https URL each snapshot is also PUT to (``<url>/<node>/<file>``);
    #: credentials, if any, in /etc/kubeadm-cluster/backup-upload.netrc on the node, never here.
    upload_url: str = ""
    #: A snapshot on each control plane right before its ``kubeadm upgrade`` (the upgrade stops
    #: when the snapshot fails). ``false`` leaves the upgrade to your own backups.
    before_upgrade: bool = True

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        # Checked as systemd will check it on the node, before any resource exists (a value the
        # node refuses used to stop `pulumi up` half-way); surrounding spaces are not written.
        text = value.strip()
        if not _CALENDAR.match(text):
            raise ValueError(
                f"schedule {value!r} is not a systemd calendar expression (systemd.time(7)): only letters, "
                f"digits, spaces and * , . / : ~ - (at most 100); {_SCHEDULE_HINT}"
            )
        problem = systemd_calendar.repeating_schedule_problem(text, min_gap_seconds=BACKUP_MIN_INTERVAL_SECONDS)
        if problem is not None:
            raise ValueError(f"schedule {value!r} {problem}; {_SCHEDULE_HINT}")
        return text

    @field_validator("keep")
    @classmethod
    def _keep(cls, value: int) -> int:
        if not 1 <= value <= 1000:
            raise ValueError(f"keep {value} is out of range: 1 to 1000 snapshots of each kind per control plane")
        return value

    @field_validator("bucket_retention_days")
    @classmethod
    def _retention(cls, value: int) -> int:
        if not 1 <= value <= 3650:
            raise ValueError(f"bucketRetentionDays {value} is out of range: 1 to 3650 days")
        return value

    @field_validator("upload_url")
    @classmethod
    def _upload(cls, value: str) -> str:
        if not value:
            return value
        if not value.startswith("https://"):
            raise ValueError(f"uploadUrl {value!r} must be an https:// URL: a snapshot holds every Secret of the cluster")
        if "@" in value.split("/", 3)[2] or "?" in value or "#" in value:
            raise ValueError(
                "uploadUrl must not carry credentials or a query (they would sit in the stack config and on the "
                "nodes' process lists): put them in /etc/kubeadm-cluster/backup-upload.netrc on each control plane"
            )
        return _check_url(value, "uploadUrl")


def _default_controller_manager_args() -> dict[str, str]:
    return {"horizontal-pod-autoscaler-sync-period": "10s"}


class KubeadmConfig(_Model):
    controller_manager_extra_args: dict[str, str] = Field(default_factory=_default_controller_manager_args)
    api_server_extra_args: dict[str, str] = Field(default_factory=dict)

    @field_validator("controller_manager_extra_args", "api_server_extra_args")
    @classmethod
    def _flags(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        managed = (
            KUBEADM_MANAGED_API_SERVER_FLAGS
            if info.field_name == "api_server_extra_args"
            else KUBEADM_MANAGED_CONTROLLER_MANAGER_FLAGS
        )
        for name, flag_value in value.items():
            flag = name.removeprefix("--")
            if flag != name:
                raise ValueError(f"flag {name!r}: write it without the leading '--' ({flag!r})")
            if not _FLAG_NAME.match(flag):
                raise ValueError(f"{name!r} is not a flag name (lowercase letters, digits, '-' and '.')")
            if flag in REMOVED_FLAGS:
                raise ValueError(f"flag {flag!r} {REMOVED_FLAGS[flag]}; remove it")
            if flag in managed:
                raise ValueError(
                    f"flag {flag!r} is set by kubeadm from {managed[flag]}; an extra arg would override it "
                    "behind kubeadm's back: remove it"
                )
            if is_duration_flag(flag) and not _GO_DURATION.match(flag_value.strip()):
                raise ValueError(
                    f"flag {flag!r} takes a duration with a unit, like 40s, 5m or 1h30m (got {flag_value!r}; "
                    "a number without a unit stops the component at start)"
                )
        return value


def is_duration_flag(flag: str) -> bool:
    """Whether a kube-apiserver/kube-controller-manager flag takes a Go duration (by its name)."""
    return flag.endswith(_DURATION_FLAG_SUFFIXES) and flag not in _NUMERIC_FLAGS_WITH_DURATION_NAMES


_URL = re.compile(r"^https?://[^\s/$.?#][^\s]*$")
_REGISTRY_HOST = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?(:\d+)?$")


def _check_url(value: str, what: str) -> str:
    if not _URL.match(value):
        raise ValueError(f"{what} {value!r} is not an http(s) URL")
    problem = _userinfo_problem(value)
    if problem:
        raise ValueError(f"{what}: {problem}")
    return value.rstrip("/")


def _userinfo_problem(url: str) -> str | None:
    """Credentials whose '#', '?' or '/' is not percent-encoded (``https://u:p#w@host/``): the
    authority ends at that character (RFC 3986, 3.2), so curl, containerd and helm see host ``u``
    with port ``p`` and the password lands in a fragment, path or query; lib.sh's log redaction and
    every tool would read the URL differently. Never quotes the URL (it may be a secret)."""
    rest = url.partition("://")[2]
    before_at, at, _ = rest.partition("@")
    if not at:
        return None
    authority = re.split(r"[/?#]", before_at, maxsplit=1)[0]
    if authority == before_at:
        return None  # a clean user:password@ before the host
    looks_like_password = ":" in authority and not authority.rpartition(":")[2].isdigit()
    if not ("#" in before_at or "?" in before_at or looks_like_password):
        return None  # an '@' in the path (https://host/@scope/pkg)
    unencoded = [c for c in "#?/" if c in before_at]
    return (
        f"the user name or password before '@' holds an unencoded {', '.join(repr(c) for c in unencoded)}, which "
        "ends the host part of a URL: percent-encode it (# as %23, ? as %3F, / as %2F)"
    )


class MirrorsConfig(_Model):
    """Where to download from when the upstream hosts are out of reach (empty = upstream)."""

    #: The Kubernetes apt repository of one minor, with ``{minor}`` for e.g. ``v1.36``.
    kubernetes_packages: str = ""
    #: Replaces https://github.com/containerd/containerd/releases/download (same file layout).
    containerd_releases: str = ""
    #: Replaces https://github.com/opencontainers/runc/releases/download (same file layout).
    runc_releases: str = ""
    #: Container registry -> mirror endpoints, written as containerd ``hosts.toml`` files.
    registries: dict[str, list[str]] = Field(default_factory=dict)
    #: Helm chart repository URL -> mirror URL serving the same charts.
    helm_repositories: dict[str, str] = Field(default_factory=dict)

    @field_validator("kubernetes_packages")
    @classmethod
    def _packages(cls, value: str) -> str:
        if not value:
            return value
        if "{minor}" not in value:
            raise ValueError(
                f"{value!r} must contain {{minor}} where the Kubernetes minor goes "
                "(e.g. https://mirror.example.com/kubernetes/core/stable/{minor}/deb/)"
            )
        _check_url(value.replace("{minor}", "v1.36"), "kubernetesPackages")
        return value if value.endswith("/") else value + "/"

    @field_validator("containerd_releases", "runc_releases")
    @classmethod
    def _releases(cls, value: str) -> str:
        return _check_url(value, "release mirror") if value else value

    @field_validator("registries")
    @classmethod
    def _registries(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for registry, endpoints in value.items():
            if not _REGISTRY_HOST.match(registry):
                raise ValueError(f"{registry!r} is not a registry host name (e.g. docker.io, registry.k8s.io)")
            if not endpoints:
                raise ValueError(f"registry {registry}: list at least one mirror endpoint")
            for endpoint in endpoints:
                _check_url(endpoint, f"registry {registry} mirror")
                _check_hosts_toml_endpoint(endpoint, registry)
        return value

    @field_validator("helm_repositories")
    @classmethod
    def _helm(cls, value: dict[str, str]) -> dict[str, str]:
        for upstream, mirror in value.items():
            _check_url(upstream, "helm repository")
            _check_url(mirror, f"helm repository {upstream} mirror")
        # Keyed without a trailing slash, as helm_repository() looks them up: a key written with
        # one ("https://charts.rook.io/release/") used to match nothing and was silently ignored.
        return {upstream.rstrip("/"): mirror for upstream, mirror in value.items()}

    def helm_repository(self, upstream: str) -> str:
        """The URL to fetch a chart repository from: its mirror when one is set."""
        return self.helm_repositories.get(upstream.rstrip("/"), upstream)


#: What containerd's hosts.toml (a TOML basic string in ``[host."<endpoint>"]``) and the prep
#: script's ``registry=endpoint,endpoint`` line can carry: URL characters (RFC 3986) but the comma,
#: which separates endpoints. A quote or backslash would end or escape the TOML string.
#: kubeadm's ValidateImageRepository matches ``<imageRepository>/name:tag`` against the
#: distribution reference grammar (github.com/distribution/reference, regexp.go): domain
#: components with an optional port, then lower-case path components joined by '.', '_', '__'
#: or dashes. Upper case is refused apart (image references are lower case).
_REFERENCE_PATH = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE_REPOSITORY = re.compile(
    r"^(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*(?::\d+)?"
    rf"|{_REFERENCE_PATH})(?:/{_REFERENCE_PATH})*$"
)
_HOSTS_TOML_ENDPOINT = re.compile(r"^[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+;=%]+$")


def _check_hosts_toml_endpoint(endpoint: str, registry: str) -> None:
    if not _HOSTS_TOML_ENDPOINT.match(endpoint):
        bad = sorted({c for c in endpoint if not _HOSTS_TOML_ENDPOINT.match(c)})
        raise ValueError(
            f"registry {registry}: a mirror endpoint holds {', '.join(repr(c) for c in bad)}, which containerd's "
            "hosts.toml cannot carry: use URL characters only (percent-encode others, e.g. %2C for a comma)"
        )


def _check_address(value: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        if not _DNS_SUBDOMAIN.match(value.lower()) or len(value) > 253:
            raise ValueError(f"address {value!r} is neither an IP address nor a host name") from None
    return value


class ExistingHost(_Model):
    #: Where SSH reaches the host: an IP address or a DNS name.
    address: str
    #: The host's IP address inside the cluster network (the kubelet's node-ip and, on a control
    #: plane, the API server's advertise address). Defaults to ``address`` when that is an IP.
    internal_ip: str = ""
    user: str = "ubuntu"
    port: int = 22
    #: Raw block device for Ceph on this host (e.g. /dev/disk/by-id/...); empty = none.
    storage_device: str = ""

    @field_validator("internal_ip")
    @classmethod
    def _internal_ip(cls, value: str) -> str:
        if value:
            try:
                ipaddress.ip_address(value)
            except ValueError:
                raise ValueError(f"internalIp {value!r} is not an IP address") from None
        return value

    @property
    def node_ip(self) -> str:
        """The IP the node has in the cluster (``internalIp``, else ``address``)."""
        return self.internal_ip or self.address

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        return _check_address(value)

    @field_validator("user")
    @classmethod
    def _user(cls, value: str) -> str:
        """A login name as useradd(8) takes it (shadow-maint/shadow man/useradd.8.xml, CAVEATS:
        ``[a-z_][a-z0-9_-]*[$]?``, at most 32 characters): "bad user" can be no account to SSH into."""
        if not _LOGIN_NAME.match(value) or len(value) > 32:
            raise ValueError(
                f"user {value!r} is not a login name: lowercase letters, digits, '_' and '-', starting with a letter "
                "or '_', at most 32 characters (useradd's rule), e.g. ubuntu"
            )
        return value

    @field_validator("port")
    @classmethod
    def _port(cls, value: int) -> int:
        if not 1 <= value <= 65535:
            raise ValueError(f"port {value} is out of range 1-65535")
        return value

    @field_validator("storage_device")
    @classmethod
    def _device(cls, value: str) -> str:
        if value and not value.startswith("/dev/"):
            raise ValueError(f"storageDevice {value!r} must be a device path under /dev/")
        return value


class ExistingWorker(ExistingHost):
    pool: str = "general"


class ExistingHostsConfig(_Model):
    control_plane: list[ExistingHost]
    workers: list[ExistingWorker] = Field(default_factory=list)
    bastion: ExistingHost | None = None
    #: Address (IP or DNS name) of your TCP load balancer in front of port 6443 of every
    #: control-plane host: the cluster's API endpoint. Required with more than one control plane.
    api_load_balancer: str = ""

    @field_validator("api_load_balancer")
    @classmethod
    def _load_balancer(cls, value: str) -> str:
        return _check_address(value) if value else value

    @model_validator(mode="after")
    def _hosts(self) -> "ExistingHostsConfig":
        count = len(self.control_plane)
        if count not in CONTROL_PLANE_COUNTS:
            raise _Problems([(
                "controlPlane", f"{count} hosts: use {_counts_text()} (an odd number keeps etcd quorum)"
            )])
        if count > 1 and not self.api_load_balancer:
            raise ValueError(
                f"existingHosts.controlPlane has {count} hosts: set existingHosts.apiLoadBalancer to the address "
                "of a TCP load balancer that forwards port 6443 to each of them (the HA API endpoint)"
            )
        for where, group in (("controlPlane", self.control_plane), ("workers", self.workers)):
            for index, host in enumerate(group):
                if host.internal_ip:
                    continue
                try:
                    ipaddress.ip_address(host.address)
                except ValueError:
                    raise ValueError(
                        f"existingHosts.{where}[{index}]: address {host.address!r} is a host name; set its "
                        "internalIp to the host's IP address in the cluster network (the kubelet's node-ip)"
                    ) from None
        # One public address may front several hosts through port forwarding: a host is its SSH
        # address *and* port; what must differ is each node's IP in the cluster network.
        seen: set[tuple[str, int]] = set()
        node_ips: dict[str, str] = {}
        problems: list[tuple[str, str]] = []
        for where, index, host in self.hosts():
            if (host.address, host.port) in seen:
                problems.append((f"{where}[{index}]", f"{host.address} port {host.port} is listed twice"))
            seen.add((host.address, host.port))
            node_ip = ipaddress.ip_address(host.node_ip)
            if node_ip.version != 4:
                problems.append((
                    f"{where}[{index}].internalIp",
                    f"{host.node_ip} is an IPv6 address and the cluster is IPv4 (its pod and Service ranges are): "
                    "set internalIp to the host's IPv4 address in the cluster network",
                ))
            other = node_ips.setdefault(str(node_ip), f"{where}[{index}]")
            if other != f"{where}[{index}]":
                problems.append((
                    f"{where}[{index}].internalIp",
                    f"{node_ip} is also the node IP of {other}: each host needs its own IP in the cluster network "
                    "(hosts behind one public address: set each one's internalIp)",
                ))
        if problems:
            raise _Problems(problems)
        return self

    def hosts(self) -> list[tuple[str, int, ExistingHost]]:
        """Every node host (not the bastion) with where it is listed: ``("workers", 2, host)``."""
        return [
            *(("controlPlane", i, h) for i, h in enumerate(self.control_plane)),
            *(("workers", i, h) for i, h in enumerate(self.workers)),
        ]


#: Base images a local VM may boot (``local.image``) and the ones built today.
LOCAL_IMAGES = ("debian-13", "debian-12", "ubuntu-24.04")
LOCAL_IMAGES_BUILT = ("debian-13", "debian-12")


class LocalConfig(_Model):
    """``provider: local``: the cluster's machines are QEMU VMs on the machine running ``pulumi up``."""

    #: The base image every VM boots (built once per machine, cached).
    image: Literal["debian-13", "debian-12", "ubuntu-24.04"] = "debian-13"
    #: ``auto``: KVM only when a probe shows it boots a stock kernel, else software emulation.
    accelerator: Literal["auto", "tcg", "kvm"] = "auto"
    #: Where the stack's VM disks, consoles and pid files live ("": ~/.cache/kubeadm-cluster/local/<stack>).
    state_dir: str = ""
    #: SSH of VM i is forwarded to 127.0.0.1:(sshPortBase + i) (0: a base derived from the stack name).
    ssh_port_base: int = 0

    @field_validator("image")
    @classmethod
    def _image(cls, value: str) -> str:
        if value not in LOCAL_IMAGES_BUILT:
            raise ValueError(
                f"{value} is not built for local VMs yet (its cloud image needs a download this program does not "
                f"verify yet); use {' or '.join(LOCAL_IMAGES_BUILT)}"
            )
        return value

    @field_validator("accelerator")
    @classmethod
    def _accelerator(cls, value: str) -> str:
        if value == "kvm":
            from components.machines.localvm import accel  # here: components.machines imports this module

            problems = accel.kvm_problems()
            if problems:
                raise ValueError(f"kvm cannot boot a stock kernel here: {problems[0]}; use auto or tcg")
        return value

    @field_validator("state_dir")
    @classmethod
    def _state_dir(cls, value: str) -> str:
        if value and not (value.startswith("/") or value.startswith("~/")):
            raise ValueError(f"{value!r} is not an absolute path (or one under ~/)")
        return value

    @field_validator("ssh_port_base")
    @classmethod
    def _port_base(cls, value: int) -> int:
        if value and not 1024 <= value <= 65000:
            raise ValueError(f"{value} is out of range: 1024 to 65000 (or 0 for a base derived from the stack name)")
        return value


class ClusterConfig(_Model):
    """The whole ``kubeadm-cluster:`` namespace of a stack."""

    provider: Literal["gcp", "existing", "local"] = "gcp"
    kubernetes_version: str = versions.KUBERNETES_DEFAULT_VERSION
    admin_cidrs: list[str]
    control_plane: ControlPlaneConfig = Field(default_factory=ControlPlaneConfig)
    worker_pools: list[WorkerPoolConfig] = Field(
        default_factory=lambda: [WorkerPoolConfig(name="general", count=2, storage_disk_size_gb=50)]
    )
    network: NetworkConfig = Field(default_factory=NetworkConfig)
    cni: Literal["weave", "flannel", "calico"] = "weave"
    dashboard: DashboardConfig = Field(default_factory=DashboardConfig)
    rook: RookConfig = Field(default_factory=RookConfig)
    kubeadm: KubeadmConfig = Field(default_factory=KubeadmConfig)
    image_repository: str = versions.UPSTREAM_IMAGE_REPOSITORY
    mirrors: MirrorsConfig = Field(default_factory=MirrorsConfig)
    upgrade: UpgradeConfig = Field(default_factory=UpgradeConfig)
    backup: BackupConfig = Field(default_factory=BackupConfig)
    existing_hosts: ExistingHostsConfig | None = None
    #: ``provider: local``: the VMs' image, accelerator, state directory and SSH ports.
    local: LocalConfig = Field(default_factory=LocalConfig)
    #: Let ``adminCidrs`` cover the whole IPv4 internet (SSH and the API server open to anyone):
    #: refused unless this says so, here and in the policy pack (which reads the same key).
    allow_admin_from_internet: bool = False
    #: Top-level keys (camelCase) the stack set with ``pulumi config set --secret`` (or whose
    #: object holds a ``{secure: ...}`` part): what the program derives from them stays a secret.
    _secret_keys: frozenset[str] = PrivateAttr(default_factory=frozenset)

    def is_secret(self, *keys: str) -> bool:
        """Whether any of these top-level keys (camelCase, e.g. ``mirrors``) is a secret."""
        return any(key in self._secret_keys for key in keys)

    @field_validator("kubernetes_version")
    @classmethod
    def _version(cls, value: str) -> str:
        match = _VERSION.match(value)
        supported = ", ".join(f"1.{m}" for m in versions.KUBERNETES_SUPPORTED_MINORS)
        if match is None and re.fullmatch(r"v?1\.\d+\.\d+", value):
            raise ValueError(
                f"{value!r} has a leading zero; versions are written without them (e.g. "
                f"{versions.KUBERNETES_DEFAULT_VERSION}, not 1.36.04): no such release or package exists"
            )
        if match is None:
            raise ValueError(f"{value!r} is not a full version 1.MINOR.PATCH (e.g. {versions.KUBERNETES_DEFAULT_VERSION})")
        if int(match.group(1)) not in versions.KUBERNETES_SUPPORTED_MINORS:
            raise ValueError(f"Kubernetes {value} is not supported; supported minors: {supported}")
        return value.removeprefix("v")

    @field_validator("admin_cidrs")
    @classmethod
    def _admin_cidrs(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("list at least one CIDR allowed to reach SSH and the API server (e.g. 203.0.113.7/32)")
        for cidr in value:
            _network(cidr)
        return value

    @field_validator("image_repository")
    @classmethod
    def _registry(cls, value: str) -> str:
        if not value or "://" in value or value.endswith("/") or " " in value:
            raise ValueError(f"{value!r} is not a registry path like registry.example.com/k8s (no scheme)")
        if value != value.lower():
            raise ValueError(
                f"{value!r} has upper-case letters; image references are lower case (containerd refuses "
                f"'repository name must be lowercase'): write {value.lower()!r}"
            )
        if not _IMAGE_REPOSITORY.match(value):
            raise ValueError(
                f"{value!r} is not an image repository kubeadm accepts (ValidateImageRepository): a registry host "
                "with an optional :port, then path components of a-z and 0-9 joined by '.', '_', '__' or dashes, "
                "like registry.example.com/k8s"
            )
        return value

    @model_validator(mode="after")
    def _backup_upload(self) -> "ClusterConfig":
        """On GCP the stack's own bucket receives the snapshots; uploadUrl is for your own servers
        and local VMs (whose disks `pulumi destroy` deletes, backups with them)."""
        if self.backup.upload_url and self.provider == "gcp":
            raise ValueError(
                "backup.uploadUrl is for provider 'existing' or 'local': on gcp the snapshots go to the bucket the "
                "stack creates (stack output etcdBackups)"
            )
        return self

    @model_validator(mode="after")
    def _cluster(self) -> "ClusterConfig":
        names = [pool.name for pool in self.worker_pools]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"workerPools: pool name {name!r} is used twice; pool names must be unique")
        if self.provider == "existing":
            if self.existing_hosts is None:
                raise ValueError("provider 'existing' needs existingHosts (the control-plane and worker hosts)")
            for worker in self.existing_hosts.workers:
                if worker.pool not in names:
                    raise ValueError(
                        f"existingHosts.workers: host {worker.address} names pool {worker.pool!r}, "
                        f"which workerPools does not define (pools: {', '.join(names) or 'none'})"
                    )
        elif self.existing_hosts is not None:
            raise ValueError("existingHosts is only used with provider 'existing'")
        if self.provider == "local" or "local" in self.model_fields_set:
            local_problems = self._local_problems()
            if local_problems:
                raise _Problems(local_problems)
        if self.rook.enabled and not self.storage_node_count:
            raise ValueError(
                "rook.enabled is true but no node has a storage disk: set controlPlane.storageDiskSizeGb "
                "or a workerPools[].storageDiskSizeGb above 0 (existingHosts: storageDevice), "
                "or set rook.enabled to false"
            )
        problems = [
            *self._admin_access_problems(),
            *self._subnet_capacity_problems(),
            *self._pod_range_problems(),
            *self._node_ip_problems(),
            *self._helm_mirror_problems(),
        ]
        if problems:
            raise _Problems(problems)
        return self

    def _local_problems(self) -> list[tuple[str, str]]:
        """``provider: local``: one control plane (no load balancer in front of several yet), node
        addresses from network.subnetCidr (VM i gets host address 10 + i), and no cluster range on
        QEMU's user-mode network 10.0.2.0/24, which every VM has as its NAT."""
        if self.provider != "local":
            return [("local", "is only used with provider 'local' (QEMU VMs on this machine)")]
        problems: list[tuple[str, str]] = []
        if self.control_plane.count != 1:
            problems.append((
                "controlPlane.count",
                f"{self.control_plane.count} control planes: provider 'local' builds one (an HA control plane needs "
                "a load balancer in front of the API servers, which local VMs do not have yet)",
            ))
        qemu_nat = ipaddress.IPv4Network("10.0.2.0/24")
        for key, cidr in (("subnetCidr", self.network.subnet_cidr), ("podCidr", self.network.pod_cidr),
                          ("serviceCidr", self.network.service_cidr)):
            if _network(cidr).overlaps(qemu_nat):
                problems.append((f"network.{key}", f"{cidr} overlaps QEMU's user-mode network {qemu_nat} (every local "
                                 "VM's NAT): move it elsewhere"))
        nodes = self.control_plane.count + sum(pool.count for pool in self.worker_pools)
        subnet = _network(self.network.subnet_cidr)
        if subnet.num_addresses - 11 < nodes:
            problems.append(("network.subnetCidr", f"{subnet} has too few addresses for {nodes} local VMs (they take "
                             "host addresses from .10 on)"))
        return problems

    def _admin_access_problems(self) -> list[tuple[str, str]]:
        """adminCidrs that together admit every IPv4 address (``0.0.0.0/1`` + ``128.0.0.0/1`` too)."""
        if self.allow_admin_from_internet or not covers_whole_internet(self.admin_cidrs):
            return []
        return [(
            "adminCidrs",
            f"{', '.join(self.admin_cidrs)} together admit the whole internet to SSH and the API server: list "
            "your own addresses (e.g. 203.0.113.7/32), or set allowAdminFromInternet: true if that is "
            "really what you want (the policy pack reads the same key)",
        )]

    def _subnet_capacity_problems(self) -> list[tuple[str, str]]:
        """GCE: a primary range of /29 or larger, with an address for every VM and static address."""
        if self.provider != "gcp":
            return []
        subnet = _network(self.network.subnet_cidr)
        if subnet.prefixlen > GCE_MIN_SUBNET_PREFIX:
            return [(
                "network.subnetCidr",
                f"{subnet} is smaller than GCE's smallest subnet range, /{GCE_MIN_SUBNET_PREFIX}",
            )]
        usable = subnet.num_addresses - GCE_RESERVED_SUBNET_ADDRESSES
        nodes = self.control_plane.count + sum(pool.count for pool in self.worker_pools)
        # The first control plane's static internal address is its own VM's; HA adds the
        # internal load balancer's address.
        needed = nodes + (1 if self.highly_available else 0)
        if usable < needed:
            return [(
                "network.subnetCidr",
                f"{subnet} has {usable} usable addresses (GCE keeps {GCE_RESERVED_SUBNET_ADDRESSES} of every range) "
                f"and the stack needs {needed}: {nodes} nodes"
                + (" and the API load balancer's internal address" if self.highly_available else "")
                + f"; use a larger range (e.g. /{_prefix_for(needed + GCE_RESERVED_SUBNET_ADDRESSES)})",
            )]
        return []

    def _pod_range_problems(self) -> list[tuple[str, str]]:
        """kubeadm's ValidatePodSubnetNodeMask against the controller manager's node mask."""
        args = self.kubeadm.controller_manager_extra_args
        where = "kubeadm.controllerManagerExtraArgs"
        mask = KUBEADM_DEFAULT_NODE_CIDR_MASK
        for flag in ("node-cidr-mask-size-ipv4", "node-cidr-mask-size"):
            if flag in args:
                text = args[flag].strip()
                if not text.isdigit() or not 0 < int(text) <= 32:
                    return [(f"{where}.{flag}", f"{args[flag]!r} is not a prefix length (an integer, 1 to 32)")]
                mask = int(text)
                break
        pods = _network(self.network.pod_cidr)
        if pods.prefixlen > mask:
            return [(
                "network.podCidr",
                f"{pods} is smaller than one node's pod range (/{mask}, the controller manager's node mask): "
                f"kubeadm refuses it; use /{mask} or larger (e.g. 10.32.0.0/12)",
            )]
        if mask - pods.prefixlen > KUBEADM_POD_SUBNET_NODE_MASK_MAX_DIFF:
            return [(
                "network.podCidr",
                f"{pods} and the node mask /{mask} differ by more than {KUBEADM_POD_SUBNET_NODE_MASK_MAX_DIFF} bits: "
                f"kubeadm refuses it; use /{mask - KUBEADM_POD_SUBNET_NODE_MASK_MAX_DIFF} or smaller",
            )]
        return []

    def _node_ip_problems(self) -> list[tuple[str, str]]:
        """Own servers: a node IP inside the pod or Service range would be routed into the cluster."""
        if self.existing_hosts is None:
            return []
        ranges = {"network.serviceCidr": _network(self.network.service_cidr), "network.podCidr": _network(self.network.pod_cidr)}
        problems: list[tuple[str, str]] = []
        for where, index, host in self.existing_hosts.hosts():
            node_ip = ipaddress.ip_address(host.node_ip)
            for name, net in ranges.items():
                if node_ip.version == 4 and node_ip in net:
                    problems.append((
                        f"existingHosts.{where}[{index}].internalIp",
                        f"{node_ip} lies inside {name} {net}: node IPs must be outside the pod and Service ranges "
                        f"(move {name} elsewhere)",
                    ))
        return problems

    def _helm_mirror_problems(self) -> list[tuple[str, str]]:
        """A helmRepositories key no chart of this stack comes from is a typo or a leftover."""
        used = helm_repositories_used(self)
        return [
            (
                "mirrors.helmRepositories",
                f"no chart this stack installs comes from {upstream}; the stack's chart repositories are "
                f"{', '.join(used) or 'none'} (write the key exactly as one of them)",
            )
            for upstream in self.mirrors.helm_repositories
            if upstream not in used
        ]

    # --- derived facts ----------------------------------------------------------------
    @property
    def kubernetes_minor(self) -> str:
        """``"v1.36"`` for ``1.36.4``: names the pkgs.k8s.io repository."""
        major, minor, _ = self.kubernetes_version.split(".")
        return f"v{major}.{minor}"

    @property
    def control_plane_count(self) -> int:
        """How many control planes the stack has (GCP: controlPlane.count; existing: its hosts)."""
        if self.provider == "existing" and self.existing_hosts is not None:
            return len(self.existing_hosts.control_plane)
        return self.control_plane.count

    @property
    def highly_available(self) -> bool:
        """More than one control plane: a load-balanced API endpoint and stacked etcd."""
        return self.control_plane_count > 1

    @property
    def storage_node_count(self) -> int:
        if self.provider == "existing" and self.existing_hosts is not None:
            hosts = [*self.existing_hosts.control_plane, *self.existing_hosts.workers]
            return sum(1 for host in hosts if host.storage_device)
        count = self.control_plane.count if self.control_plane.storage_disk_size_gb else 0
        return count + sum(pool.count for pool in self.worker_pools if pool.storage_disk_size_gb)

    def pool_worker_count(self, pool: WorkerPoolConfig) -> int:
        """How many workers a pool has (GCP: its count; existing: the hosts that name it)."""
        if self.provider == "existing" and self.existing_hosts is not None:
            return sum(1 for host in self.existing_hosts.workers if host.pool == pool.name)
        return pool.count

    @property
    def untainted_node_exists(self) -> bool:
        """Whether some node takes a pod that tolerates nothing: a schedulable control plane, or a
        worker whose pool taints nothing hard (PreferNoSchedule only steers the scheduler)."""
        if self.control_plane.schedulable:
            return True
        return any(
            self.pool_worker_count(pool) and all(t.effect == "PreferNoSchedule" for t in pool.taints)
            for pool in self.worker_pools
        )

    def _ignored_count_warnings(self) -> list[str]:
        """Own servers: the host list is the nodes, so a ``count`` set in the config is ignored."""
        notes: list[str] = []
        if "count" in self.control_plane.model_fields_set:
            hosts = self.control_plane_count
            notes.append(
                f"controlPlane.count is ignored with provider 'existing': the control planes are the hosts of "
                f"existingHosts.controlPlane ({hosts} host{'s' if hosts != 1 else ''}); remove the count"
            )
        for pool in self.worker_pools:
            if "count" in pool.model_fields_set:
                hosts = self.pool_worker_count(pool)
                notes.append(
                    f"workerPools[{pool.name}].count is ignored with provider 'existing': the pool's nodes are the "
                    f"existingHosts.workers that name pool {pool.name} ({hosts} host{'s' if hosts != 1 else ''}); "
                    "remove the count"
                )
        return notes

    def warnings(self) -> list[str]:
        """Advisories that do not stop the deploy."""
        notes: list[str] = []
        workers = sum(self.pool_worker_count(pool) for pool in self.worker_pools)
        if not self.untainted_node_exists and not workers:
            notes.append(
                "no worker nodes, and controlPlane.schedulable is false: every node is a control plane with "
                "kubeadm's node-role.kubernetes.io/control-plane:NoSchedule taint; the add-ons tolerate it, but "
                "your own pods need that toleration; set controlPlane.schedulable: true or add workers"
            )
        elif not self.untainted_node_exists:
            notes.append(
                "every node is tainted (controlPlane.schedulable is false and every worker pool with "
                "workers has NoSchedule/NoExecute taints): the add-ons tolerate what they need, but your "
                "own pods need tolerations; set controlPlane.schedulable or add a pool without taints"
            )
        if self.provider in ("gcp", "local"):
            advise = hardware.machine_type_warnings if self.provider == "gcp" else hardware.local_machine_type_warnings
            for where, machine_type in [("controlPlane", self.control_plane.machine_type)] + [
                (f"workerPools[{pool.name}]", pool.machine_type) for pool in self.worker_pools
            ]:
                notes += [f"{where}.machineType: {text}" for text in advise(machine_type)]
        else:
            machine_fields = {"machine_type", "disk_size_gb", "storage_disk_size_gb"}
            for where, group in [("controlPlane", self.control_plane)] + [
                (f"workerPools[{pool.name}]", pool) for pool in self.worker_pools
            ]:
                for name in sorted(machine_fields & group.model_fields_set):
                    notes.append(
                        f"{where}.{to_camel(name)} is ignored with provider 'existing': the hosts are the machines "
                        "(the node preflight checks their CPUs, memory and disk; storageDevice names a Ceph disk)"
                    )
            notes += self._ignored_count_warnings()
        if self.allow_admin_from_internet and covers_whole_internet(self.admin_cidrs):
            notes.append(
                "adminCidrs admit the whole internet to SSH and the API server (allowAdminFromInternet: true)"
            )
        grace = self.kubeadm.controller_manager_extra_args.get("node-monitor-grace-period")
        if grace is not None and _seconds(grace) is not None and (_seconds(grace) or 0) < SAFE_NODE_MONITOR_GRACE_SECONDS:
            notes.append(
                f"kubeadm.controllerManagerExtraArgs.node-monitor-grace-period={grace} is shorter than "
                f"{SAFE_NODE_MONITOR_GRACE_SECONDS}s: healthy nodes will flap NotReady (the default is 50s)"
            )
        if "runtime-config" in self.kubeadm.api_server_extra_args and "all=true" in self.kubeadm.api_server_extra_args["runtime-config"]:
            notes.append("kubeadm.apiServerExtraArgs.runtime-config enables every alpha API: not for production")
        return notes


def covers_whole_internet(cidrs: list[str]) -> bool:
    """Whether these IPv4 CIDRs together hold every IPv4 address (``0.0.0.0/0``, or pieces of it)."""
    nets = [_network(cidr) for cidr in cidrs]
    return list(ipaddress.collapse_addresses(nets)) == [ipaddress.IPv4Network("0.0.0.0/0")]


def _prefix_for(addresses: int) -> int:
    """The longest IPv4 prefix holding this many addresses."""
    return 32 - max(0, addresses - 1).bit_length()


def helm_repositories_used(config: ClusterConfig) -> list[str]:
    """The chart repositories the stack's Helm releases come from (components/addons)."""
    used: list[str] = []
    if config.cni == "flannel":
        used.append(versions.FLANNEL_CHART_REPO)
    if config.cni == "calico":
        used.append(versions.CALICO_CHART_REPO)
    if config.dashboard.enabled and config.dashboard.kind == "headlamp":
        used.append(versions.HEADLAMP_CHART_REPO)
    if config.rook.enabled:
        used += [versions.ROOK_CHART_REPO, versions.CEPH_CSI_CHART_REPO]
    return [repo.rstrip("/") for repo in used]


def _seconds(text: str) -> float | None:
    match = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?", text)
    if match is None or not text:
        return None
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


@dataclass(frozen=True)
class GcpSettings:
    """The Google Cloud provider's own config (``gcp:project``, ``gcp:region``, ``gcp:zone``)."""

    project: str
    region: str
    zone: str


@dataclass(frozen=True)
class StackSettings:
    """Everything the program reads from config, read once."""

    cluster: ClusterConfig
    gcp: GcpSettings | None
    stack: str
    warnings: list[str] = field(default_factory=list)

    @property
    def name_prefix(self) -> str:
        """A DNS-label prefix for cloud resources and node names, derived from the stack name."""
        return cluster_name(self.stack)


#: The longest name prefix: node names (``<prefix>-<pool>-<i>-storage``), the service account ID
#: (``<prefix>-nodes``, at most 30 characters) and every GCE name stay within GCE's limits.
NAME_PREFIX_LENGTH = 20
#: Hex digits of the stack name's hash that keep a shortened prefix unique.
_NAME_HASH_LENGTH = 6


def cluster_name(stack: str) -> str:
    """The stack's DNS-label prefix of every cloud resource and node name.

    A name that is already a DNS label of at most 20 characters is kept as it is (so those stacks
    keep their resources). Any other name is made one (lower case, other characters as ``-``, a
    leading letter) and given a short hash of the whole stack name, cut to fit: two stacks whose
    names share their first 20 characters, or differ only in case or in ``_``/``.``/``-``
    (``dev_a`` and ``dev-a``), no longer get the same VPC, VMs and addresses in one project.
    """
    cleaned = re.sub(r"[^a-z0-9-]+", "-", stack.lower()).strip("-")
    if not cleaned or not cleaned[0].isalpha():
        cleaned = f"k8s-{cleaned}".rstrip("-")
    if cleaned == stack and len(cleaned) <= NAME_PREFIX_LENGTH:
        return cleaned
    digest = hashlib.sha256(stack.encode()).hexdigest()[:_NAME_HASH_LENGTH]
    return f"{cleaned[: NAME_PREFIX_LENGTH - _NAME_HASH_LENGTH - 1].rstrip('-')}-{digest}"


def _field_path(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item in ("function-after", "function-before", "function-wrap", "literal_error") or item.startswith("function-"):
            continue
        else:
            parts.append(("." if parts else "") + to_camel(item) if "_" in item else ("." if parts else "") + item)
    return "".join(parts)


#: Keys of a GCP machine that an own server (``existingHosts``) does not have: the host is the machine.
_MACHINE_KEYS = ("machineType", "diskSizeGb", "storageDiskSizeGb", "count")


def format_validation_error(err: ValidationError) -> str:
    return "invalid stack configuration:\n  " + "\n  ".join(_error_lines(err))


def _error_lines(err: ValidationError) -> list[str]:
    lines = []
    for item in err.errors(include_url=False):
        path = _field_path(tuple(item["loc"]))
        message = item["msg"].removeprefix("Value error, ")
        error = (item.get("ctx") or {}).get("error")
        if isinstance(error, _Problems):
            for sub_path, sub_message in error.problems:
                full = f"{path}.{sub_path}" if path else sub_path
                lines.append(f"{NAMESPACE}:{full}: {sub_message}")
            continue
        if item["type"] == "extra_forbidden":
            key = item["loc"][-1]
            if key in _MACHINE_KEYS and item["loc"][0] == "existingHosts":
                message = (
                    f"an own server is its own machine: {key} is no setting of a host (the node preflight checks "
                    "each host's CPUs, memory and disk against the hardware spec); remove it"
                )
            else:
                message = f"unknown key (a typo?); allowed keys here: {_allowed_keys(err, item['loc'])}"
        elif item["type"] == "literal_error":
            message = message.replace("Input should be", "must be one of:")
        elif item["type"] == "missing":
            message = "is required"
        elif item["type"].endswith("_type") and item.get("input") is None:
            message = f"is empty (YAML null, ~ or no value): remove the key for its default, or give {_shape(tuple(item['loc']))}"
        elif item["type"] in ("model_type", "model_attributes_type") or (
            item["type"] == "dict_type" and _model_at(tuple(item["loc"])) is not None
        ):
            message = _object_expected(err, tuple(item["loc"]), item.get("input"))
        elif item["type"] == "string_type" and isinstance(item.get("input"), bool):
            message = _quote_hint(tuple(item["loc"]), item["input"])
        elif item["type"] == "string_type" and isinstance(item.get("input"), (int, float)):
            shown = item["input"]
            unit = "; durations take a unit: \"10s\"" if _is_duration_at(tuple(item["loc"])) else ""
            message = f"is the number {shown}, not text: quote it (e.g. {_key_prefix(tuple(item['loc']))}\"{shown}\"{unit})"
        elif item["type"] == "list_type" and isinstance(item.get("input"), str):
            # One item written without its list: show the user's own value as a list.
            message = (
                f"is not a list (a YAML sequence); write it as a list, e.g. {_key_prefix(tuple(item['loc']))}"
                f"{json.dumps([item['input']])}"
            )
        elif item["type"] in _SHAPE_ERRORS:
            message = f"{_what(item['type'], item.get('input'))}; expected {_shape(tuple(item['loc']))}"
        where = f"{NAMESPACE}:{path}" if path else NAMESPACE
        lines.append(f"{where}: {message}")
    return lines


#: pydantic's wrong-shape errors, whose own wording ("Input should be a valid list") names Python
#: types and not what the stack file should hold: replaced by what the value is and a YAML example.
_SHAPE_ERRORS = frozenset({
    "int_from_float", "int_parsing", "int_type", "float_parsing", "float_type", "bool_parsing", "bool_type",
    "list_type", "string_type", "dict_type",
})


def _what(kind: str, given: Any) -> str:
    """What a wrongly shaped value is, in YAML words (``is a list``, ``is the number 2.5``)."""
    if kind == "int_from_float":
        return f"is the number {given}, which has a fraction"
    if isinstance(given, list):
        return "is a list"
    if isinstance(given, dict):
        return "is a mapping"
    if isinstance(given, bool):
        return f"is the boolean {str(given).lower()}"
    if isinstance(given, (int, float)):
        return f"is the number {given}"
    if isinstance(given, str):
        return f"is the text {given!r}"
    return "has the wrong shape"
#: YAML examples of settings whose shape a message explains (by path, list indices left out and
#: a map's keys written ``*``).
_YAML_EXAMPLES = {
    "adminCidrs": '["203.0.113.7/32"]',
    "controlPlane": "{count: 1, machineType: e2-standard-2}",
    "workerPools": "[{name: general, count: 2}]",
    "workerPools.labels": "{tier: general}",
    "workerPools.taints": '["dedicated=batch:NoSchedule"]',
    "kubernetesVersion": f'"{versions.KUBERNETES_DEFAULT_VERSION}"',
    "imageRepository": '"registry.example.com/k8s"',
    "mirrors.registries": '{docker.io: ["https://mirror.example.com"]}',
    "mirrors.registries.*": '["https://mirror.example.com"]',
    "mirrors.helmRepositories": '{"https://charts.rook.io/release": "https://mirror.example.com/rook"}',
    "mirrors.helmRepositories.*": '"https://mirror.example.com/rook"',
    "kubeadm.apiServerExtraArgs": '{request-timeout: "90s"}',
    "kubeadm.controllerManagerExtraArgs": '{node-monitor-grace-period: "40s"}',
    "existingHosts.controlPlane": "[{address: 192.0.2.10}]",
    "existingHosts.workers": "[{address: 192.0.2.11, pool: general}]",
}


def _schema_at(loc: tuple[int | str, ...]) -> tuple[Any, str, bool]:
    """What a location's value must be: its annotation (None when unknown), its path for
    ``_YAML_EXAMPLES``, and whether its last step is a map's key (``labels.gpu``)."""
    annotation: Any = ClusterConfig
    steps: list[str] = []
    map_key = False
    for item in loc:
        if isinstance(item, str) and (item.startswith("function-") or item in ("literal_error",)):
            continue
        while get_origin(annotation) is Annotated or (
            get_origin(annotation) in (Union, UnionType) and type(None) in get_args(annotation)
        ):
            annotation = next(a for a in get_args(annotation) if a is not type(None))
        map_key = False
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            info = _field_info(annotation, str(item))
            if info is None:
                return None, ".".join(steps), False
            steps.append(info.alias or str(item))
            annotation = info.annotation
        elif get_origin(annotation) is list:
            annotation = get_args(annotation)[0]
        elif get_origin(annotation) is dict:
            steps.append("*")
            annotation, map_key = get_args(annotation)[1], True
        else:
            return None, ".".join(steps), False
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation, ".".join(steps), map_key


def _example(annotation: Any) -> str:
    """A YAML example of a type (``[...]`` for a list of text)."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _example(get_args(annotation)[0])
    if origin is list:
        return f"[{_example(get_args(annotation)[0])}]"
    if origin is dict:
        return "{key: " + _example(get_args(annotation)[1]) + "}"
    if origin is Literal:
        return str(get_args(annotation)[0])
    if annotation is bool:
        return "true"
    if annotation in (int, float):
        return "3"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        first = next(iter(annotation.model_fields.items()))
        return "{" + f"{first[1].alias or first[0]}: ..." + "}"
    return '"..."'


def _key_prefix(loc: tuple[int | str, ...]) -> str:
    """``name: `` for a keyed value, nothing for a list item: how the user wrote the value."""
    last = loc[-1] if loc else ""
    return f"{last}: " if isinstance(last, str) and not last.startswith("function-") else ""


def _shape(loc: tuple[int | str, ...]) -> str:
    """What a location takes, as YAML: ``a list, e.g. adminCidrs: ["203.0.113.7/32"]``."""
    annotation, path, _ = _schema_at(loc)
    example = _YAML_EXAMPLES.get(path) or _example(annotation)
    origin = get_origin(annotation)
    kind = (
        "a list" if origin is list else
        "a mapping" if origin is dict or (isinstance(annotation, type) and issubclass(annotation, BaseModel)) else
        "a whole number" if annotation is int else
        "true or false" if annotation is bool else
        "text" if annotation is str else "a value"
    )
    return f"{kind}, e.g. {_key_prefix(loc)}{example}"


def _is_duration_at(loc: tuple[int | str, ...]) -> bool:
    """Whether the value at ``loc`` is a duration (a kubeadm duration flag, upgrade.drainTimeout)."""
    _, path, map_key = _schema_at(loc)
    if path == "upgrade.drainTimeout":
        return True
    return map_key and path.startswith("kubeadm.") and is_duration_flag(str(loc[-1]))


def _quote_hint(loc: tuple[int | str, ...], value: bool) -> str:
    """A YAML boolean where text belongs: quote it, shown with the user's own key."""
    words = "yes/on/true" if value else "no/off/false"
    word = "yes" if value else "no"
    return (
        f"is the boolean {str(value).lower()}, not text: YAML reads unquoted {words} as the boolean "
        f"{str(value).lower()}; quote the value (e.g. {_key_prefix(loc)}\"{word}\")"
    )


def _object_expected(err: ValidationError, loc: tuple[int | str, ...], given: Any) -> str:
    """An object key given a scalar (``rook: false``): say the YAML shape, not a Python class."""
    model = _model_at(loc)
    shown = json.dumps(given) if isinstance(given, (bool, int, float, str)) or given is None else type(given).__name__
    if model is None:
        return f"must be an object (a YAML mapping), not {shown}"
    keys = [f.alias or n for n, f in model.model_fields.items()]
    example = "{enabled: false}" if "enabled" in keys else "{" + f"{keys[0]}: ..." + "}"
    return f"must be an object (a YAML mapping) such as {example}, not {shown}; its keys: {', '.join(keys)}"


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model a location's value must be (``("rook",)`` -> RookConfig)."""
    model: type[BaseModel] = ClusterConfig
    for item in loc:
        if isinstance(item, int):
            continue
        info = _field_info(model, item)
        if info is None:
            return None
        candidate = _model_of(info.annotation)
        if candidate is None:
            return None
        model = candidate
    return model


def _allowed_keys(err: ValidationError, loc: tuple[int | str, ...]) -> str:
    model: type[BaseModel] = ClusterConfig
    for item in loc[:-1]:
        if isinstance(item, int):
            continue
        info = _field_info(model, item)
        if info is None:
            break
        candidate = _model_of(info.annotation)
        if candidate is None:
            break
        model = candidate
    return ", ".join(f.alias or n for n, f in model.model_fields.items())


def _field_info(model: type[BaseModel], key: str) -> FieldInfo | None:
    """The field of ``model`` a location's key names: by its Python name or its camelCase alias
    (None when there is none)."""
    return model.model_fields.get(key) or next((f for f in model.model_fields.values() if f.alias == key), None)


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def _decode(raw: str, key: str) -> Any:
    """Pulumi hands structured values over as JSON text and scalars as plain text."""
    info = ClusterConfig.model_fields.get(_snake(key))
    if info is not None and info.annotation in (str,):
        return raw
    try:
        return json.loads(raw)
    except (TypeError, ValueError):
        return raw


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", key).lower()


#: Keys of the namespace that are secrets and read apart from the model.
SECRET_KEYS = ("sshPrivateKey",)
#: What a secret value becomes in a message.
REDACTED = "[secret]"
#: Shorter strings of a secret value are not searched for in messages: they would blank ordinary
#: words, and a credential is longer.
_MIN_REDACTED_LENGTH = 4
#: A config key name (``helmRepositories``, a typo like ``helmRepository``), not a user's data.
_IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
#: The credential parts of a URL: its userinfo (``user:password@``) and its query string.
_URL_USERINFO = re.compile(r"://([^/?#\s]*)@")
_URL_QUERY = re.compile(r"://[^?#\s]*\?([^#\s]+)")


def secret_config_keys(namespace: str) -> frozenset[str]:
    """The keys of ``namespace`` (without it) that the stack holds encrypted.

    A value set with ``pulumi config set --secret`` is a secret key, and so is an object with any
    ``{secure: ...}`` part (``--secret --path mirrors.x``): pulumi/pulumi
    sdk/go/common/resource/config/value.go, ``hasSecureValue``. The CLI gives the language host
    the list (PULUMI_CONFIG_SECRET_KEYS, pulumi-language-python/main.go since v3.3.0), which
    ``pulumi-language-python-exec`` hands to ``set_all_config``; the mock engine's
    ``set_all_config(config, secret_keys)`` does the same.
    """
    from pulumi.runtime import config as runtime_config

    from_env = set(runtime_config.get_config_secret_keys_env())
    return frozenset(
        key
        for key in configured_keys(namespace)
        if runtime_config.is_config_secret(f"{namespace}:{key}") or f"{namespace}:{key}" in from_env
    )


def _field_names() -> frozenset[str]:
    """Every key name of the config models (``registries``, ``helmRepositories``...): in a secret
    object these are structure, not secret; every other key (a map's key) is the user's data."""
    names: set[str] = set()
    pending: list[type[BaseModel]] = [ClusterConfig]
    while pending:
        model = pending.pop()
        for name, info in model.model_fields.items():
            names.update({name, info.alias or name})
            sub = _model_of(info.annotation)
            if sub is not None and sub not in pending:
                pending.append(sub)
    return frozenset(names)


def _public_texts() -> frozenset[str]:
    """Public facts messages quote (the stack's chart repositories, which come from versions.py,
    and the registry names in examples): never blanked, even when a secret value equals one."""
    return frozenset({
        *(repo.rstrip("/") for repo in (
            versions.ROOK_CHART_REPO, versions.CEPH_CSI_CHART_REPO, versions.HEADLAMP_CHART_REPO,
            versions.FLANNEL_CHART_REPO, versions.CALICO_CHART_REPO,
        )),
        versions.UPSTREAM_IMAGE_REPOSITORY, "docker.io", "registry.k8s.io", "quay.io", "ghcr.io",
    })


def secret_strings(values: Mapping[str, str]) -> frozenset[str]:
    """What a message must not show of these secret ``key -> raw text`` values: each string the
    value holds (as written, as ``repr`` and JSON quote it, and each piece around a ``{minor}``
    placeholder), the userinfo and query of each URL, and every key of a map in it (a
    ``helmRepositories`` or ``registries`` key is the user's data too). ``redact`` matches them in
    any case, so a message built from a transformed value (lower-cased) hides it as well. Field
    names and the public texts of ``_public_texts`` are kept."""
    found: set[str] = set()
    fields, public = _field_names(), _public_texts()

    def add(text: str) -> None:
        parts = [text, text.rstrip("/"), repr(text)[1:-1], json.dumps(text)[1:-1], *re.split(r"\{[a-z]+\}", text)]
        for userinfo in _URL_USERINFO.findall(text):
            parts += [userinfo, userinfo.partition(":")[2]]  # and the password alone
        for query in _URL_QUERY.findall(text):
            parts += [query, *(item.partition("=")[2] for item in query.split("&"))]
        found.update(part for part in parts if len(part) >= _MIN_REDACTED_LENGTH and part not in public)

    def walk(value: Any, annotation: Any) -> None:
        while get_origin(annotation) is Annotated or (
            get_origin(annotation) in (Union, UnionType) and type(None) in get_args(annotation)
        ):
            annotation = next(a for a in get_args(annotation) if a is not type(None))
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
        if isinstance(value, str):
            add(value)
        elif isinstance(value, dict):
            for key, item in value.items():
                info = None if model is None else model.model_fields.get(_snake(str(key)))
                if info is not None:
                    walk(item, info.annotation)  # a field name: structure, shown
                    continue
                # A map's key (registries, helmRepositories, labels) is the user's data; so is an
                # unknown key that is no identifier (a URL written one level too high). A typo of
                # a field name stays readable in its "unknown key" message.
                if model is None or not _IDENTIFIER.match(str(key)):
                    add(str(key))
                walk(item, get_args(annotation)[1] if get_origin(annotation) is dict else None)
        elif isinstance(value, list):
            for item in value:
                walk(item, get_args(annotation)[0] if get_origin(annotation) is list else None)

    for key, raw in values.items():
        info = ClusterConfig.model_fields.get(_snake(key))
        walk(_decode(raw, key), info.annotation if info is not None else None)
    return frozenset(found - fields)


def redact(message: str, secrets: frozenset[str]) -> str:
    """``message`` with every secret string in it replaced by ``[secret]`` (longest first), in any
    case: ``Reg.Example.org/K8s`` is hidden where a message suggests ``reg.example.org/k8s``."""
    for text in sorted(secrets, key=len, reverse=True):
        message = re.sub(re.escape(text), REDACTED, message, flags=re.IGNORECASE)
    return message


def parse_cluster_config(values: Mapping[str, str], secret_keys: frozenset[str] = frozenset()) -> ClusterConfig:
    """Validate the raw ``key -> text`` values of the namespace (keys without the namespace).

    ``secret_keys``: the keys set with ``--secret``; what the program derives from them stays a
    secret (``ClusterConfig.is_secret``) and no message shows their values."""
    # An empty value (YAML null, ``~`` or nothing after the colon) reaches the program as empty
    # text: the CLI treats a null config value as "" (pulumi/pulumi#19483). It is read as null, so
    # the message says the value is empty and what the key takes ("'' is not a full version" did not).
    data = {key: None if raw == "" else _decode(raw, key) for key, raw in values.items() if key not in SECRET_KEYS}
    try:
        # The provider decides which rules apply (own servers: no GCP machine catalogue).
        cluster = ClusterConfig.model_validate(data, context={"provider": data.get("provider", "gcp")})
    except ValidationError as err:
        hidden = secret_strings({key: values[key] for key in secret_keys if key in values})
        raise ConfigError(redact(format_validation_error(err), hidden)) from None
    cluster._secret_keys = frozenset(secret_keys)  # a private attribute: not a config key, not validated
    return cluster


def ssh_private_key_problems(values: Mapping[str, str], secret_keys: frozenset[str], stack: str) -> list[str]:
    """``sshPrivateKey`` against the provider (raw values of the namespace): required, and
    encrypted, with ``provider: existing``; an error with ``provider: gcp`` (each GCP stack makes
    its own key). Lines of the config error; the key itself is never shown."""
    where = f"{NAMESPACE}:sshPrivateKey"
    provider, key = values.get("provider", "gcp"), values.get("sshPrivateKey")
    set_secret = f"pulumi config set --stack {stack} --secret sshPrivateKey < ~/.ssh/id_ed25519"
    if provider in ("gcp", "local") and key is not None:
        return [
            f"{where}: is only used with provider 'existing' (your own servers); with provider '{provider}' each "
            f"stack makes its own SSH key (stack output sshPrivateKey): remove it (pulumi config rm --stack "
            f"{stack} sshPrivateKey)"
        ]
    if provider != "existing":
        return []
    if not key:
        return [f"{where}: is required with provider 'existing' ({set_secret}, your key file in place of ~/.ssh/id_ed25519)"]
    if "sshPrivateKey" not in secret_keys:
        return [
            f"{where}: is stored in plain text in Pulumi.{stack}.yaml; store it encrypted: {set_secret} "
            "(your key file in place of ~/.ssh/id_ed25519; the stack file then shows {secure: ...})"
        ]
    return []


def gcp_settings_problems(values: Mapping[str, str]) -> list[str]:
    """Every problem of the Google provider's own keys (``project``, ``region``, ``zone``), as
    lines of the config error: shown together with the ``kubeadm-cluster:`` ones."""
    zone, region, project = values.get("zone"), values.get("region"), values.get("project")
    problems: list[str] = []
    if region and not _GCP_REGION.match(region):
        if _GCP_ZONE.match(region):
            problems.append(
                f"gcp:region: {region!r} is a zone name; gcp:region takes the region ({region.rsplit('-', 1)[0]}) "
                f"and gcp:zone the zone ({region})"
            )
        else:
            problems.append(f"gcp:region: {region!r} is not a region name like us-central1")
    if not zone:
        problems.append("gcp:zone: is required (e.g. us-central1-a)")
    elif not _GCP_ZONE.match(zone):
        problems.append(f"gcp:zone: {zone!r} is not a zone name like us-central1-a")
    elif region and _GCP_REGION.match(region) and region != zone.rsplit("-", 1)[0]:
        problems.append(
            f"gcp:zone: {zone} is not in gcp:region {region} (zones of {region} are named {region}-a, {region}-b, ...)"
        )
    if not project:
        problems.append("gcp:project: is required (pulumi config set gcp:project MY-PROJECT)")
    elif not _GCP_PROJECT_ID.match(project):
        problems.append(
            f"gcp:project: {project!r} is not a project ID: 6 to 30 lowercase letters, digits or hyphens, starting "
            "with a letter and not ending with a hyphen (the ID, not the display name: gcloud projects list)"
        )
    return problems


def parse_gcp_settings(values: Mapping[str, str]) -> GcpSettings:
    problems = gcp_settings_problems(values)
    if problems:
        raise ConfigError("invalid stack configuration:\n  " + "\n  ".join(problems))
    zone = values["zone"]
    return GcpSettings(project=values["project"], region=values.get("region") or zone.rsplit("-", 1)[0], zone=zone)


#: Config namespaces that are not this project's and are expected in a stack file.
_KNOWN_NAMESPACES = frozenset({NAMESPACE, "gcp", "pulumi", "command", "kubernetes", "tls", "random"})


def namespace_warnings() -> list[str]:
    """Config keys in a namespace that looks like a misspelling of ``kubeadm-cluster`` (such keys
    are not read: ``kubeadm-clusters:adminCidrs`` leaves adminCidrs unset or at its default)."""
    from pulumi.runtime import config as runtime_config

    keys = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    notes = []
    for key in sorted(keys):
        namespace, _, name = key.partition(":")
        if name and namespace not in _KNOWN_NAMESPACES and resembles_namespace(namespace):
            notes.append(
                f"config key {key!r} is ignored: its namespace {namespace!r} is not this project's; "
                f"did you mean {NAMESPACE}:{name}? (pulumi config rm {key}; pulumi config set {NAMESPACE}:{name} ...)"
            )
    return notes


def resembles_namespace(namespace: str) -> bool:
    """Close to ``kubeadm-cluster``: at most 3 edits away once case, '_' and '.' are set aside."""
    folded = re.sub(r"[-_.\s]+", "-", namespace.lower())
    return _edit_distance(folded, NAMESPACE) <= 3 or folded.replace("-", "") == NAMESPACE.replace("-", "")


def _edit_distance(left: str, right: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions)."""
    previous = list(range(len(right) + 1))
    for i, a in enumerate(left, 1):
        current = [i]
        for j, b in enumerate(right, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a != b)))
        previous = current
    return previous[-1]


def configured_keys(namespace: str) -> dict[str, str]:
    """Every ``namespace:key`` set for this stack, as raw text (what the engine handed over)."""
    from pulumi.runtime import config as runtime_config

    merged: dict[str, Any] = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    prefix = f"{namespace}:"
    return {key[len(prefix) :]: value for key, value in merged.items() if key.startswith(prefix)}


def load_settings(stack: str) -> StackSettings:
    """Read and validate the whole stack config once. Raises ConfigError, whose message (like the
    warnings) never shows a value set with ``--secret``."""
    values, secret_keys = configured_keys(NAMESPACE), secret_config_keys(NAMESPACE)
    gcp_values, gcp_secret_keys = configured_keys("gcp"), secret_config_keys("gcp")
    hidden = secret_strings({key: values[key] for key in secret_keys if key in values}) | secret_strings(
        {key: gcp_values[key] for key in gcp_secret_keys if key in gcp_values}
    )
    key_problems = ssh_private_key_problems(values, secret_keys, stack)
    # gcp:* problems are reported with the others, not only once the rest is right.
    key_problems += gcp_settings_problems(gcp_values) if values.get("provider", "gcp") == "gcp" else []
    try:
        cluster = parse_cluster_config(values, secret_keys)
        if key_problems:
            raise ConfigError("invalid stack configuration:\n  " + "\n  ".join(key_problems))
        gcp = parse_gcp_settings(gcp_values) if cluster.provider == "gcp" else None
    except ConfigError as error:
        message = str(error)
        if key_problems and not all(line in message for line in key_problems):
            message += "".join(f"\n  {line}" for line in key_problems)
        raise ConfigError(redact(message, hidden)) from None
    warnings = [redact(warning, hidden) for warning in cluster.warnings() + namespace_warnings()]
    return StackSettings(cluster=cluster, gcp=gcp, stack=stack, warnings=warnings)


#: Environment switch of a preview run from outside ``adminCidrs`` (the pull-request workflow on a
#: GitHub-hosted runner), where the API server cannot be reached: the Kubernetes provider gets a
#: kubeconfig naming no cluster, so it knows at once that the cluster is unreachable (nothing is
#: dialled, no timeout is waited for) and, with ``skipUpdateUnreachable``, keeps every Kubernetes
#: object as the state records it. Read once by ``__main__``; refused outside ``pulumi preview``.
SKIP_KUBERNETES_DIFF_ENV = "KUBEADM_CLUSTER_SKIP_KUBERNETES_DIFF"
SKIP_KUBERNETES_DIFF_NOTE = (
    f"{SKIP_KUBERNETES_DIFF_ENV} is set: this preview does not compare the Kubernetes objects (add-ons) "
    "with the cluster, whose API server this runner cannot reach (it is outside adminCidrs); the Kubernetes "
    "provider shows as updated in this preview only. Preview from a machine inside adminCidrs for their diff; "
    "the offline plan check runs the policy pack on every Kubernetes object"
)


def kubernetes_diff_skipped(environ: Mapping[str, str], dry_run: bool) -> bool:
    """Whether this run skips the Kubernetes diff (``SKIP_KUBERNETES_DIFF_ENV``). Raises ConfigError
    for a value other than true/false, and when set for anything but a preview: an update on a
    provider that cannot see the cluster would silently skip every Kubernetes change."""
    raw = environ.get(SKIP_KUBERNETES_DIFF_ENV, "").strip().lower()
    if raw in ("", "0", "false"):
        return False
    if raw not in ("1", "true"):
        raise ConfigError(f"invalid environment:\n  {SKIP_KUBERNETES_DIFF_ENV}: {raw!r} is not true or false")
    if not dry_run:
        raise ConfigError(
            f"invalid environment:\n  {SKIP_KUBERNETES_DIFF_ENV}=true is for `pulumi preview` only (it hides "
            "the cluster from the Kubernetes provider); unset it for `pulumi up`"
        )
    return True
