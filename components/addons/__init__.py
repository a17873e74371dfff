"""Stage 4: add-ons. The CNI, node labels/taints, the web UI and Rook-Ceph storage.

Everything is a typed pulumi-kubernetes resource or a ``helm.v3.Release`` (never
``helm.v4.Chart`` / ``yaml.v2``: those fail previews while the kubeconfig is still unknown,
pulumi-kubernetes issue 3027), on the provider built from the admin kubeconfig, with every
version pinned in ``components.versions``. Order:

    node_ready[first control plane] -> CNI
    node_ready[node]                -> that node's NodePatch (labels + taints)
    CNI + all NodePatches           -> dashboard, Rook operator -> CSI drivers -> CephCluster -> pool
                                       -> StorageClass

Workers may join before the CNI exists (they stay NotReady until it runs); whatever needs
Ready nodes and the final taints (dashboard, Rook) waits for both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypedDict

import pulumi
import pulumi_kubernetes

from components.addons.cni import Cni
from components.addons.dashboard import Dashboard
from components.addons.rook import RookCeph
from components.addons.taints import NodeTaints
from components.config import ClusterConfig
from components.nodes import NodeSpec

__all__ = ["Addons", "AddonsArgs", "Cni", "Dashboard", "NodeTaints", "RookCeph"]


class AddonsArgs(TypedDict):
    config: ClusterConfig
    nodes: Sequence[NodeSpec]
    #: Built from the admin kubeconfig (secret).
    provider: pulumi_kubernetes.Provider
    #: node name -> the resource after which that Node exists in the API (its kubeadm init/join).
    node_ready: Mapping[str, pulumi.Resource]


class Addons(pulumi.ComponentResource):
    """Everything installed into the cluster once kubeadm has built it."""

    storage_class: pulumi.Output[str]
    dashboard_access: pulumi.Output[str]

    def __init__(self, name: str, args: AddonsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        provider = args["provider"]
        super().__init__(
            "kubeadm-cluster:index:Addons",
            name,
            None,
            # Children inherit the provider through their parent: nothing uses an ambient kubeconfig.
            pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(providers=[provider])),
        )
        config, nodes, node_ready = args["config"], list(args["nodes"]), args["node_ready"]
        first = next((n for n in nodes if n.is_first_control_plane), None)
        if first is None or first.name not in node_ready:
            raise ValueError("Addons needs the first control plane in nodes and its resource in node_ready")

        self.cni = Cni(f"{name}-cni", config, after=[node_ready[first.name]], opts=pulumi.ResourceOptions(parent=self))
        self.taints = NodeTaints(f"{name}-nodes", config, nodes, node_ready, opts=pulumi.ResourceOptions(parent=self))
        # Workloads come after the network and after the nodes carry their final taints
        # (NoSchedule does not evict a pod that was scheduled before its node was tainted).
        after_network: list[pulumi.Resource] = [self.cni, self.taints]

        self.dashboard: Dashboard | None = None
        if config.dashboard.enabled:
            self.dashboard = Dashboard(f"{name}-dashboard", config, after=after_network, opts=pulumi.ResourceOptions(parent=self))
            self.dashboard_access = pulumi.Output.from_input(self.dashboard.access)
        else:
            self.dashboard_access = pulumi.Output.from_input("")

        self.rook: RookCeph | None = None
        if config.rook.enabled:
            self.rook = RookCeph(f"{name}-rook", config, nodes, after=after_network, opts=pulumi.ResourceOptions(parent=self))
            self.storage_class = self.rook.storage_class
        else:
            self.storage_class = pulumi.Output.from_input("")

        self.register_outputs({"storageClass": self.storage_class, "dashboardAccess": self.dashboard_access})
