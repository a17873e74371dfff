"""The node plan: which nodes the stack has, derived from config alone (no cloud calls).

Every stage reads the same plan: the machines stage creates (or adopts) one machine per
``NodeSpec``, the bootstrap stage prepares and joins it, and the add-ons stage labels and
taints it by the same name. Names are stable so adding a worker never renames another.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from components.config import (
    ClusterConfig,
    ControlPlaneConfig,
    ExistingHost,
    Taint,
    WorkerPoolConfig,
    cluster_name,
)
from components.hardware import lookup_machine_type

CONTROL_PLANE_POOL = "control-plane"
#: The GCE device name of the blank Ceph disk: it appears as /dev/disk/by-id/google-<name>.
STORAGE_DEVICE_NAME = "ceph-osd"
GCP_STORAGE_DEVICE = f"/dev/disk/by-id/google-{STORAGE_DEVICE_NAME}"

Role = Literal["control-plane", "worker"]


@dataclass(frozen=True)
class NodeSpec:
    """One Kubernetes node as the stack config asks for it."""

    name: str  # the machine's hostname and the Kubernetes Node name
    role: Role
    pool: str
    index: int  # position within its pool (control plane: 0 is the one that runs kubeadm init)
    machine_type: str = ""  # GCP machine type ("" for existing hosts)
    disk_size_gb: int = 0
    storage_disk_size_gb: int = 0
    storage_device: str = ""  # raw device for a Ceph OSD, "" when the node has none
    arch: str = "x86_64"
    labels: dict[str, str] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    # Existing hosts only: how to reach the machine, and its IP in the cluster network.
    address: str = ""
    internal_ip: str = ""
    ssh_user: str = ""
    ssh_port: int = 22

    @property
    def is_control_plane(self) -> bool:
        return self.role == "control-plane"

    @property
    def is_first_control_plane(self) -> bool:
        return self.is_control_plane and self.index == 0


def plan_nodes(config: ClusterConfig, stack: str) -> list[NodeSpec]:
    """The nodes of a stack, control planes first, in a stable order."""
    prefix = cluster_name(stack)
    if config.provider == "existing":
        return _existing_nodes(config, prefix)
    nodes: list[NodeSpec] = []
    cp = config.control_plane
    for i in range(cp.count):
        nodes.append(
            NodeSpec(
                name=f"{prefix}-cp-{i}", role="control-plane", pool=CONTROL_PLANE_POOL, index=i, **_vm_fields(cp)
            )
        )
    for pool in config.worker_pools:
        for i in range(pool.count):
            nodes.append(
                NodeSpec(
                    name=f"{prefix}-{pool.name}-{i}",
                    role="worker",
                    pool=pool.name,
                    index=i,
                    labels=dict(pool.labels),
                    taints=tuple(pool.taints),
                    **_vm_fields(pool),
                )
            )
    return nodes


def _vm_fields(group: ControlPlaneConfig | WorkerPoolConfig) -> dict[str, Any]:
    """What a GCP node takes from its group (the control plane or its pool): the VM's shape."""
    spec = lookup_machine_type(group.machine_type)
    return {
        "machine_type": group.machine_type,
        "disk_size_gb": group.disk_size_gb,
        "storage_disk_size_gb": group.storage_disk_size_gb,
        "storage_device": GCP_STORAGE_DEVICE if group.storage_disk_size_gb else "",
        "arch": spec.arch if spec else "x86_64",
    }


def _host_fields(host: ExistingHost) -> dict[str, Any]:
    """What an existing node takes from its host entry: how to reach it, its IP, its Ceph device."""
    return {
        "storage_device": host.storage_device,
        "address": host.address,
        "internal_ip": host.node_ip,
        "ssh_user": host.user,
        "ssh_port": host.port,
    }


def _existing_nodes(config: ClusterConfig, prefix: str) -> list[NodeSpec]:
    hosts = config.existing_hosts
    assert hosts is not None  # guaranteed by ClusterConfig validation
    pools = {pool.name: pool for pool in config.worker_pools}
    nodes: list[NodeSpec] = []
    for i, host in enumerate(hosts.control_plane):
        nodes.append(
            NodeSpec(
                name=f"{prefix}-cp-{i}", role="control-plane", pool=CONTROL_PLANE_POOL, index=i, **_host_fields(host)
            )
        )
    counters: dict[str, int] = {}
    for host in hosts.workers:
        pool = pools[host.pool]
        index = counters.get(pool.name, 0)
        counters[pool.name] = index + 1
        nodes.append(
            NodeSpec(
                name=f"{prefix}-{pool.name}-{index}",
                role="worker",
                pool=pool.name,
                index=index,
                labels=dict(pool.labels),
                taints=tuple(pool.taints),
                **_host_fields(host),
            )
        )
    return nodes
