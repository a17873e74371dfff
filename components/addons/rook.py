"""Rook-Ceph block storage: the operator (Helm), the Ceph-CSI RBD driver (Helm), a CephCluster
on the stack's blank disks, the ``replicapool`` CephBlockPool and the default StorageClass
``rook-ceph-block``.

Since Rook v1.20 the ``rook-ceph`` chart deploys no CSI driver: it installs the
ceph-csi-operator (a subchart) and its CRDs, and the ``ceph-csi-drivers`` chart creates the
``Driver`` that makes the operator run the RBD provisioner and node plugin. Without it every
PVC stays Pending. Order, as Rook's Helm-Charts/operator-chart.md installs them: the
``rook-ceph`` release, then ``ceph-csi-drivers`` (it needs the csi.ceph.io CRDs and the image
set ConfigMap of the first), then the CephCluster, pool and StorageClass.

Tolerations, so that a cluster whose every node is tainted (tainted-only pools and a
non-schedulable control plane) still schedules storage:

- Ceph's daemons (``placement.all``), the Rook operator, the ceph-csi-operator and the CSI
  provisioner tolerate what the storage nodes carry (``ceph_tolerations``): the pools' taints,
  and the control plane's when it is not schedulable and holds a storage disk. The storage
  nodes always exist (config refuses Rook without one), so these pods always fit somewhere,
  and they go nowhere Ceph's own daemons may not.
- The CSI node plugin (a DaemonSet) tolerates the pools' taints: volumes are mounted wherever
  workloads run, and workloads run on the pools (and on the control plane only when it is
  schedulable, i.e. untainted).

Sizing follows the number of storage nodes (nodes with a ``storage_device``):

====================  ==========  ====================  ===  =========  ====================
storage nodes         mons        mon multi-per-node    mgr  pool size  requireSafeReplica
====================  ==========  ====================  ===  =========  ====================
1 (single node)       1           true                  1    1          false (+ global
                                                                         osd_pool_default_size 1)
2                     3           true                  2    2          true
>= 3                  3           false                 2    3          true
====================  ==========  ====================  ===  =========  ====================

Two storage nodes: 3 mons with ``allowMultiplePerNode`` (2 + 1 across the nodes) rather
than 1 or 2. An even mon count gains nothing; a single mon makes every mon restart
(upgrades, a node reboot) a full storage outage, while 3 keep quorum through the loss of
any one mon and, in the best case, of the node holding one. Losing the node with two mons
still stops I/O, which no 2-node layout avoids; the pool keeps 2 replicas (one per host)
and ``osd_pool_default_size`` is set to 2 so Ceph's own pools (``.mgr``) are not undersized.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components import versions
from components.addons.common import CONTROL_PLANE_TAINT, MANAGED_BY, chart_release, pool_taints, toleration_values
from components.config import ClusterConfig, Taint
from components.nodes import NodeSpec

NAMESPACE = "rook-ceph"
CLUSTER_NAME = "rook-ceph"
POOL_NAME = "replicapool"
STORAGE_CLASS = "rook-ceph-block"
#: The RBD CSI driver's name: Rook expects its operator namespace as the prefix (its
#: deploy/charts/ceph-csi-drivers/values.yaml); also the StorageClass provisioner.
PROVISIONER = f"{NAMESPACE}.rbd.csi.ceph.com"
#: The Ceph credentials Rook writes for the RBD driver (in the CephCluster's namespace).
RBD_PROVISIONER_SECRET = "rook-csi-rbd-provisioner"
RBD_NODE_SECRET = "rook-csi-rbd-node"
#: The ConfigMap the rook-ceph chart writes with the CSI images of its ``csi.*`` values.
CSI_IMAGE_SET = "rook-csi-operator-image-set-configmap"
DRIVERS_RELEASE = "ceph-csi-drivers"
DATA_DIR_HOST_PATH = "/var/lib/rook"
#: The operator's CRDs, webhooks and its first reconcile can be slow on a fresh cluster.
RELEASE_TIMEOUT_SECONDS = 900


@dataclass(frozen=True)
class CephProfile:
    """How many Ceph daemons and replicas a given number of storage nodes can carry."""

    storage_nodes: int
    mon_count: int
    mon_multiple_per_node: bool
    mgr_count: int
    mgr_multiple_per_node: bool
    pool_size: int

    @property
    def require_safe_replica_size(self) -> bool:
        return self.pool_size > 1

    @property
    def ceph_config(self) -> dict[str, dict[str, str]]:
        """``cephConfig`` (central config database) for small clusters; empty at >= 3 nodes."""
        if self.pool_size >= 3:
            return {}
        settings = {"osd_pool_default_size": str(self.pool_size)}
        if self.pool_size == 1:
            settings["mon_warn_on_pool_no_redundancy"] = "false"
        return {"global": settings}


def ceph_profile(storage_nodes: int) -> CephProfile:
    if storage_nodes < 1:
        raise ValueError("Rook needs at least one node with a storage device")
    if storage_nodes == 1:
        return CephProfile(1, mon_count=1, mon_multiple_per_node=True, mgr_count=1, mgr_multiple_per_node=True, pool_size=1)
    if storage_nodes == 2:
        return CephProfile(2, mon_count=3, mon_multiple_per_node=True, mgr_count=2, mgr_multiple_per_node=False, pool_size=2)
    return CephProfile(
        storage_nodes, mon_count=3, mon_multiple_per_node=False, mgr_count=2, mgr_multiple_per_node=False, pool_size=3
    )


def ceph_tolerations(config: ClusterConfig, nodes: Sequence[NodeSpec]) -> list[Taint]:
    """Taints Ceph's daemons must tolerate: the pools', and the control plane's when a
    non-schedulable control plane carries a storage disk (its OSD must run there). The Rook
    operator, the ceph-csi-operator and the CSI provisioner tolerate the same, so they always
    fit on a storage node."""
    taints = pool_taints(nodes)
    if not config.control_plane.schedulable and any(n.is_control_plane and n.storage_device for n in nodes):
        taints.append(CONTROL_PLANE_TAINT)
    return taints


def cluster_spec(config: ClusterConfig, nodes: Sequence[NodeSpec]) -> dict[str, Any]:
    """The CephCluster spec (wire names)."""
    storage_nodes = [n for n in nodes if n.storage_device]
    profile = ceph_profile(len(storage_nodes))
    spec: dict[str, Any] = {
        "cephVersion": {"image": versions.CEPH_IMAGE, "allowUnsupported": False},
        "dataDirHostPath": DATA_DIR_HOST_PATH,
        "mon": {"count": profile.mon_count, "allowMultiplePerNode": profile.mon_multiple_per_node},
        "mgr": {
            "count": profile.mgr_count,
            "allowMultiplePerNode": profile.mgr_multiple_per_node,
            # Off, as in Rook v1.20.6's cluster.yaml: the module leaks memory on Ceph v20.2.2 and
            # crashes the mgr on v20.2.3/v20.2.4. Listed (not omitted) so a cluster that had it
            # on gets it turned off.
            "modules": [{"name": "rook", "enabled": False}],
        },
        # CSI keys of the AES type: the AES256K keys Ceph v20.2.4 can make need Linux 7.0+ to
        # mount, and the nodes run older kernels (Ubuntu 24.04: 6.8; Debian 12/13: 6.1/6.12).
        "security": {"cephx": {"csi": {"keyType": "aes"}}},
        # Ceph's own dashboard is not needed (and would be one more UI to protect).
        "dashboard": {"enabled": False},
        "crashCollector": {"disable": False},
        "priorityClassNames": {
            "mon": "system-node-critical",
            "osd": "system-node-critical",
            "mgr": "system-cluster-critical",
        },
        "disruptionManagement": {"managePodBudgets": True},
        "storage": {
            "useAllNodes": False,
            "useAllDevices": False,
            # Only the blank disk each node was given, by its stable path: never the boot disk.
            "nodes": [{"name": n.name, "devices": [{"name": n.storage_device}]} for n in storage_nodes],
        },
    }
    taints = ceph_tolerations(config, nodes)
    if taints:
        spec["placement"] = {"all": {"tolerations": toleration_values(taints)}}
    if profile.ceph_config:
        spec["cephConfig"] = profile.ceph_config
    return spec


def pool_spec(storage_nodes: int) -> dict[str, Any]:
    profile = ceph_profile(storage_nodes)
    return {
        "failureDomain": "host",
        "replicated": {"size": profile.pool_size, "requireSafeReplicaSize": profile.require_safe_replica_size},
    }


def operator_values(config: ClusterConfig, nodes: Sequence[NodeSpec]) -> dict[str, Any]:
    """Values of the rook-ceph chart: the Rook operator and the ceph-csi-operator (its subchart,
    values under ``ceph-csi-operator``) tolerate what the storage nodes carry."""
    tolerations = toleration_values(ceph_tolerations(config, nodes))
    return {
        "crds": {"enabled": True},
        "tolerations": tolerations,
        # Helm merges this into the subchart's defaults (and Rook's own settings for it).
        "ceph-csi-operator": {"controllerManager": {"tolerations": tolerations}},
        "monitoring": {"enabled": False},
    }


def drivers_values(config: ClusterConfig, nodes: Sequence[NodeSpec]) -> dict[str, Any]:
    """Values of the ceph-csi-drivers chart: Rook's recommended values (deploy/charts/
    ceph-csi-drivers/values.yaml at the Rook pin) with only the RBD driver, and tolerations.

    The tolerations are set on the driver, not in ``operatorConfig.driverSpecDefaults``: the
    chart renders every Driver with its own ``tolerations: []`` default, and the operator
    copies a default only into a field that is unset (nil), so defaults would never apply.
    """
    return {
        "operatorConfig": {
            "namespace": NAMESPACE,
            "driverSpecDefaults": {
                "imageSet": {"name": CSI_IMAGE_SET},
                "nodePlugin": {"priorityClassName": "system-node-critical"},
                "controllerPlugin": {"priorityClassName": "system-cluster-critical"},
            },
        },
        "drivers": {
            "rbd": {
                "enabled": True,
                "name": PROVISIONER,
                "nodePlugin": {"tolerations": toleration_values(pool_taints(nodes))},
                "controllerPlugin": {"tolerations": toleration_values(ceph_tolerations(config, nodes))},
            },
            # Block storage only: no CephFilesystem, NFS or NVMe-oF gateway is created, so their
            # drivers would be DaemonSets on every node serving nothing.
            "cephfs": {"enabled": False},
            "nfs": {"enabled": False},
            "nvmeof": {"enabled": False},
        },
    }


class RookCeph(pulumi.ComponentResource):
    """The Rook operator, the RBD CSI driver, one CephCluster, the block pool and the default StorageClass."""

    storage_class: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        config: ClusterConfig,
        nodes: Sequence[NodeSpec],
        after: Sequence[pulumi.Resource] = (),
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("kubeadm-cluster:index:RookCeph", name, None, opts)
        child = pulumi.ResourceOptions(parent=self, depends_on=list(after))
        storage_nodes = sum(1 for n in nodes if n.storage_device)
        self.operator = chart_release(
            f"{name}-operator",
            config,
            release="rook-ceph",
            chart="rook-ceph",
            version=versions.ROOK_CHART_VERSION,
            repo=versions.ROOK_CHART_REPO,
            namespace=NAMESPACE,
            create_namespace=True,
            values=operator_values(config, nodes),
            timeout=RELEASE_TIMEOUT_SECONDS,
            opts=child,
        )
        after_operator = pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[self.operator]))
        # Needs the csi.ceph.io CRDs and the image set ConfigMap the operator release brings.
        self.drivers = chart_release(
            f"{name}-csi-drivers",
            config,
            release=DRIVERS_RELEASE,
            chart="ceph-csi-drivers",
            version=versions.CEPH_CSI_DRIVERS_CHART_VERSION,
            repo=versions.CEPH_CSI_CHART_REPO,
            namespace=NAMESPACE,
            values=drivers_values(config, nodes),
            opts=after_operator,
        )
        after_drivers = pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[self.drivers]))
        self.cluster = k8s.apiextensions.CustomResource(
            f"{name}-cluster",
            api_version="ceph.rook.io/v1",
            kind="CephCluster",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=CLUSTER_NAME, namespace=NAMESPACE, labels=MANAGED_BY),
            spec=cluster_spec(config, nodes),
            opts=after_drivers,
        )
        self.pool = k8s.apiextensions.CustomResource(
            f"{name}-replicapool",
            api_version="ceph.rook.io/v1",
            kind="CephBlockPool",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=POOL_NAME, namespace=NAMESPACE, labels=MANAGED_BY),
            spec=pool_spec(storage_nodes),
            opts=pulumi.ResourceOptions.merge(after_drivers, pulumi.ResourceOptions(depends_on=[self.cluster])),
        )
        # As Rook's deploy/examples/csi/rbd/storageclass.yaml: the secrets are in the cluster's namespace.
        secrets = {
            "csi.storage.k8s.io/provisioner-secret-name": RBD_PROVISIONER_SECRET,
            "csi.storage.k8s.io/provisioner-secret-namespace": NAMESPACE,
            "csi.storage.k8s.io/controller-expand-secret-name": RBD_PROVISIONER_SECRET,
            "csi.storage.k8s.io/controller-expand-secret-namespace": NAMESPACE,
            "csi.storage.k8s.io/controller-publish-secret-name": RBD_PROVISIONER_SECRET,
            "csi.storage.k8s.io/controller-publish-secret-namespace": NAMESPACE,
            "csi.storage.k8s.io/node-stage-secret-name": RBD_NODE_SECRET,
            "csi.storage.k8s.io/node-stage-secret-namespace": NAMESPACE,
        }
        self.storage_class_resource = k8s.storage.v1.StorageClass(
            f"{name}-storageclass",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=STORAGE_CLASS,
                labels=MANAGED_BY,
                annotations={"storageclass.kubernetes.io/is-default-class": "true"},
            ),
            provisioner=PROVISIONER,
            parameters={
                "clusterID": NAMESPACE,  # the namespace of the CephCluster
                "pool": POOL_NAME,
                "imageFormat": "2",
                "imageFeatures": "layering",
                **secrets,
                "csi.storage.k8s.io/fstype": "ext4",
            },
            reclaim_policy="Delete",
            allow_volume_expansion=True,
            volume_binding_mode="Immediate",
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[self.pool])),
        )
        self.storage_class = self.storage_class_resource.metadata.apply(lambda m: m.name or STORAGE_CLASS)
        self.register_outputs({"storageClass": self.storage_class})
