"""The stack configuration contract: pydantic models, read once, validated before any resource.

Every key lives in the ``kubeadm-cluster:`` namespace and is camelCase; objects are Pulumi
structured config. Unknown keys (typos) are errors. ``load_config()`` returns a
``ClusterConfig`` or raises ``ConfigError`` whose message names every offending field;
``__main__`` turns that into a clean ``pulumi.RunError`` before registering anything.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from components import hardware, versions

NAMESPACE = "kubeadm-cluster"

_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_VERSION = re.compile(r"^v?1\.(\d+)\.(\d+)$")
_FLAG_NAME = re.compile(r"^[a-z0-9][-a-z0-9.]*$")
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


class ConfigError(ValueError):
    """Stack configuration that cannot build a cluster; the message names each field."""


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True, strict=False
    )


def _check_label_key(key: str) -> str | None:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        return f"label/taint key {key!r} has an invalid prefix (a DNS subdomain, like example.com)"
    if not name or len(name) > 63 or not _LABEL_NAME.match(name):
        return (
            f"label/taint key {key!r} is invalid: at most 63 characters, alphanumerics, '-', '_' "
            "or '.', starting and ending with an alphanumeric"
        )
    return None


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

    def __str__(self) -> str:
        return f"{self.key}={self.value}:{self.effect}" if self.value else f"{self.key}:{self.effect}"


def _machine_type_check(value: str) -> str:
    problems = hardware.machine_type_problems(value)
    if problems:
        raise ValueError("; ".join(problems))
    return value


def _disk_check(value: int) -> int:
    problems = hardware.disk_problems(value)
    if problems:
        raise ValueError(problems[0])
    return value


def _storage_disk_check(value: int) -> int:
    if value != 0 and value < 10:
        raise ValueError(f"storage disk of {value} GB: use 0 (no storage disk) or at least 10 GB")
    return value


MachineType = Annotated[str, Field(min_length=1)]


class ControlPlaneConfig(_Model):
    count: int = 1
    machine_type: MachineType = "e2-standard-2"
    disk_size_gb: int = 50
    schedulable: bool = False
    storage_disk_size_gb: int = 0

    @field_validator("count")
    @classmethod
    def _odd_count(cls, value: int) -> int:
        if value < 1 or value % 2 == 0 or value > 7:
            raise ValueError(
                f"control-plane count {value} is not allowed: use 1, 3, 5 or 7 (an odd number keeps etcd quorum)"
            )
        return value

    _mt = field_validator("machine_type")(_machine_type_check)
    _disk = field_validator("disk_size_gb")(_disk_check)
    _storage = field_validator("storage_disk_size_gb")(_storage_disk_check)


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
    def _count(cls, value: int) -> int:
        if value < 0 or value > 200:
            raise ValueError(f"pool count {value} is out of range: 0 to 200")
        return value

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        for key, label in value.items():
            for problem in (_check_label_key(key), _check_label_value(label)):
                if problem:
                    raise ValueError(problem)
        return value

    @field_validator("taints", mode="before")
    @classmethod
    def _taints(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        return [Taint.parse(item) if isinstance(item, str) else item for item in value]

    _mt = field_validator("machine_type")(_machine_type_check)
    _disk = field_validator("disk_size_gb")(_disk_check)
    _storage = field_validator("storage_disk_size_gb")(_storage_disk_check)


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
        _network(value)
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


def _default_controller_manager_args() -> dict[str, str]:
    return {"horizontal-pod-autoscaler-sync-period": "10s"}


class KubeadmConfig(_Model):
    controller_manager_extra_args: dict[str, str] = Field(default_factory=_default_controller_manager_args)
    api_server_extra_args: dict[str, str] = Field(default_factory=dict)

    @field_validator("controller_manager_extra_args", "api_server_extra_args")
    @classmethod
    def _flags(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            flag = name.removeprefix("--")
            if flag != name:
                raise ValueError(f"flag {name!r}: write it without the leading '--' ({flag!r})")
            if not _FLAG_NAME.match(flag):
                raise ValueError(f"{name!r} is not a flag name (lowercase letters, digits, '-' and '.')")
            if flag in REMOVED_FLAGS:
                raise ValueError(f"flag {flag!r} {REMOVED_FLAGS[flag]}; remove it")
        return value


_URL = re.compile(r"^https?://[^\s/$.?#][^\s]*$")
_REGISTRY_HOST = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?(:\d+)?$")


def _check_url(value: str, what: str) -> str:
    if not _URL.match(value):
        raise ValueError(f"{what} {value!r} is not an http(s) URL")
    return value.rstrip("/")


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
        return value

    @field_validator("helm_repositories")
    @classmethod
    def _helm(cls, value: dict[str, str]) -> dict[str, str]:
        for upstream, mirror in value.items():
            _check_url(upstream, "helm repository")
            _check_url(mirror, f"helm repository {upstream} mirror")
        return value

    def helm_repository(self, upstream: str) -> str:
        """The URL to fetch a chart repository from: its mirror when one is set."""
        return self.helm_repositories.get(upstream.rstrip("/"), self.helm_repositories.get(upstream, upstream))


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
        if count < 1 or count % 2 == 0:
            raise ValueError(
                f"existingHosts.controlPlane has {count} hosts: use 1, 3 or 5 (an odd number keeps etcd quorum)"
            )
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
        seen: set[str] = set()
        for host in [*self.control_plane, *self.workers]:
            if host.address in seen:
                raise ValueError(f"host {host.address} is listed twice in existingHosts")
            seen.add(host.address)
        return self


class ClusterConfig(_Model):
    """The whole ``kubeadm-cluster:`` namespace of a stack."""

    provider: Literal["gcp", "existing"] = "gcp"
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
    existing_hosts: ExistingHostsConfig | None = None

    @field_validator("kubernetes_version")
    @classmethod
    def _version(cls, value: str) -> str:
        match = _VERSION.match(value)
        supported = ", ".join(f"1.{m}" for m in versions.KUBERNETES_SUPPORTED_MINORS)
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
        return value

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
        if self.rook.enabled and not self.storage_node_count:
            raise ValueError(
                "rook.enabled is true but no node has a storage disk: set controlPlane.storageDiskSizeGb "
                "or a workerPools[].storageDiskSizeGb above 0 (existingHosts: storageDevice), "
                "or set rook.enabled to false"
            )
        return self

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

    def warnings(self) -> list[str]:
        """Advisories that do not stop the deploy."""
        notes: list[str] = []
        if not self.untainted_node_exists:
            notes.append(
                "every node is tainted (controlPlane.schedulable is false and every worker pool with "
                "workers has NoSchedule/NoExecute taints): the add-ons tolerate what they need, but your "
                "own pods need tolerations; set controlPlane.schedulable or add a pool without taints"
            )
        if self.provider == "gcp":
            for where, machine_type in [("controlPlane", self.control_plane.machine_type)] + [
                (f"workerPools[{pool.name}]", pool.machine_type) for pool in self.worker_pools
            ]:
                notes += [f"{where}.machineType: {text}" for text in hardware.machine_type_warnings(machine_type)]
        grace = self.kubeadm.controller_manager_extra_args.get("node-monitor-grace-period")
        if grace is not None and _seconds(grace) is not None and (_seconds(grace) or 0) < SAFE_NODE_MONITOR_GRACE_SECONDS:
            notes.append(
                f"kubeadm.controllerManagerExtraArgs.node-monitor-grace-period={grace} is shorter than "
                f"{SAFE_NODE_MONITOR_GRACE_SECONDS}s: healthy nodes will flap NotReady (the default is 50s)"
            )
        if "runtime-config" in self.kubeadm.api_server_extra_args and "all=true" in self.kubeadm.api_server_extra_args["runtime-config"]:
            notes.append("kubeadm.apiServerExtraArgs.runtime-config enables every alpha API: not for production")
        return notes


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


def cluster_name(stack: str) -> str:
    cleaned = re.sub(r"[^a-z0-9-]+", "-", stack.lower()).strip("-")
    if not cleaned or not cleaned[0].isalpha():
        cleaned = f"k8s-{cleaned}".rstrip("-")
    return cleaned[:20].rstrip("-")


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


def format_validation_error(err: ValidationError) -> str:
    lines = []
    for item in err.errors(include_url=False):
        path = _field_path(tuple(item["loc"]))
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = f"unknown key (a typo?); allowed keys here: {_allowed_keys(err, item['loc'])}"
        elif item["type"] == "literal_error":
            message = message.replace("Input should be", "must be one of:")
        elif item["type"] == "missing":
            message = "is required"
        where = f"{NAMESPACE}:{path}" if path else NAMESPACE
        lines.append(f"{where}: {message}")
    return "invalid stack configuration:\n  " + "\n  ".join(lines)


def _allowed_keys(err: ValidationError, loc: tuple[int | str, ...]) -> str:
    model: type[BaseModel] = ClusterConfig
    for item in loc[:-1]:
        if isinstance(item, int):
            continue
        info = model.model_fields.get(item) or next(
            (f for n, f in model.model_fields.items() if f.alias == item), None
        )
        if info is None:
            break
        candidate = _model_of(info.annotation)
        if candidate is None:
            break
        model = candidate
    return ", ".join(f.alias or n for n, f in model.model_fields.items())


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


def parse_cluster_config(values: Mapping[str, str]) -> ClusterConfig:
    """Validate the raw ``key -> text`` values of the namespace (keys without the namespace)."""
    data = {key: _decode(raw, key) for key, raw in values.items() if key not in SECRET_KEYS}
    try:
        return ClusterConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err)) from None


def parse_gcp_settings(values: Mapping[str, str]) -> GcpSettings:
    zone = values.get("zone")
    region = values.get("region")
    if not zone:
        raise ConfigError("invalid stack configuration:\n  gcp:zone: is required (e.g. us-central1-a)")
    if not re.fullmatch(r"[a-z]+-[a-z]+\d+-[a-z]", zone):
        raise ConfigError(f"invalid stack configuration:\n  gcp:zone: {zone!r} is not a zone name like us-central1-a")
    zone_region = zone.rsplit("-", 1)[0]
    if region and region != zone_region:
        raise ConfigError(
            f"invalid stack configuration:\n  gcp:zone: {zone} is not in gcp:region {region} "
            f"(zones of {region} are named {region}-a, {region}-b, ...)"
        )
    project = values.get("project")
    if not project:
        raise ConfigError("invalid stack configuration:\n  gcp:project: is required (pulumi config set gcp:project MY-PROJECT)")
    return GcpSettings(project=project, region=region or zone_region, zone=zone)


def configured_keys(namespace: str) -> dict[str, str]:
    """Every ``namespace:key`` set for this stack, as raw text (what the engine handed over)."""
    from pulumi.runtime import config as runtime_config

    merged: dict[str, Any] = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    prefix = f"{namespace}:"
    return {key[len(prefix) :]: value for key, value in merged.items() if key.startswith(prefix)}


def load_settings(stack: str) -> StackSettings:
    """Read and validate the whole stack config once. Raises ConfigError."""
    cluster = parse_cluster_config(configured_keys(NAMESPACE))
    gcp = parse_gcp_settings(configured_keys("gcp")) if cluster.provider == "gcp" else None
    if cluster.provider == "existing" and not configured_keys(NAMESPACE).get("sshPrivateKey"):
        raise ConfigError(
            "invalid stack configuration:\n  kubeadm-cluster:sshPrivateKey: is required with provider "
            "'existing' (pulumi config set --secret sshPrivateKey < ~/.ssh/id_ed25519)"
        )
    return StackSettings(cluster=cluster, gcp=gcp, stack=stack, warnings=cluster.warnings())
