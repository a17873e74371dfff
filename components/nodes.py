"""The node plan: which nodes the stack has, derived from config alone (no cloud calls).

Every stage reads the same plan: the machines stage creates (or adopts) one machine per
``NodeSpec``, the bootstrap stage prepares and joins it, and the add-ons stage labels and
taints it by the same name. Names are stable so adding a worker never renames another.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from components.config import ClusterConfig, Taint, cluster_name
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
    cp_spec = lookup_machine_type(cp.machine_type)
    for i in range(cp.count):
        nodes.append(
            NodeSpec(
                name=f"{prefix}-cp-{i}",
                role="control-plane",
                pool=CONTROL_PLANE_POOL,
                index=i,
                machine_type=cp.machine_type,
                disk_size_gb=cp.disk_size_gb,
                storage_disk_size_gb=cp.storage_disk_size_gb,
                storage_device=GCP_STORAGE_DEVICE if cp.storage_disk_size_gb else "",
                arch=cp_spec.arch if cp_spec else "x86_64",
            )
        )
    for pool in config.worker_pools:
        spec = lookup_machine_type(pool.machine_type)
        for i in range(pool.count):
            nodes.append(
                NodeSpec(
                    name=f"{prefix}-{pool.name}-{i}",
                    role="worker",
                    pool=pool.name,
                    index=i,
                    machine_type=pool.machine_type,
                    disk_size_gb=pool.disk_size_gb,
                    storage_disk_size_gb=pool.storage_disk_size_gb,
                    storage_device=GCP_STORAGE_DEVICE if pool.storage_disk_size_gb else "",
                    arch=spec.arch if spec else "x86_64",
                    labels=dict(pool.labels),
                    taints=tuple(pool.taints),
                )
            )
    return nodes


def _existing_nodes(config: ClusterConfig, prefix: str) -> list[NodeSpec]:
    hosts = config.existing_hosts
    assert hosts is not None  # guaranteed by ClusterConfig validation
    pools = {pool.name: pool for pool in config.worker_pools}
    nodes: list[NodeSpec] = []
    for i, host in enumerate(hosts.control_plane):
        nodes.append(
            NodeSpec(
                name=f"{prefix}-cp-{i}",
                role="control-plane",
                pool=CONTROL_PLANE_POOL,
                index=i,
                storage_device=host.storage_device,
                address=host.address,
                internal_ip=host.node_ip,
                ssh_user=host.user,
                ssh_port=host.port,
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
                storage_device=host.storage_device,
                labels=dict(pool.labels),
                taints=tuple(pool.taints),
                address=host.address,
                internal_ip=host.node_ip,
                ssh_user=host.user,
                ssh_port=host.port,
            )
        )
    return nodes
