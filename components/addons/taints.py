"""Node labels and taints from the stack config, as server-side-apply patches of the Nodes.

How ownership of ``spec.taints`` works, and why every node gets one patch that lists its
*complete* taint list:

* In the Node schema (``io.k8s.api.core.v1.NodeSpec``) ``taints`` is
  ``x-kubernetes-list-type: atomic``: server-side apply treats the whole list as one field
  with one owner, not as entries keyed by ``key``/``effect``.
* kubeadm registers control planes with ``node-role.kubernetes.io/control-plane:NoSchedule``
  (the kubelet's ``--register-with-taints``); afterwards the node lifecycle controller
  rewrites the list whenever it adds or drops its own condition taints
  (``node.kubernetes.io/not-ready`` ...). Each such update makes *that* manager the owner of
  the whole list.
* So "remove the control-plane taint" cannot be done by omitting it (SSA only prunes what
  the applier solely owns, and we never owned it), and deleting a patch to drop a taint is
  unreliable (by then the controller may own the list and nothing is pruned).
* Instead each Node gets exactly one ``NodePatch`` (field manager ``kubeadm-cluster``,
  ``pulumi.com/patchForce``) that always states the full desired list: ``[]`` on a
  schedulable control plane, ``[control-plane:NoSchedule]`` otherwise, the pool's taints on
  a worker. Applying an atomic list with force replaces it, so ``schedulable: true``
  really removes the taint, and turning it back to ``false`` changes the patch's input and
  puts the taint back. A condition taint the controller had set at that moment disappears
  with the apply and is re-added by the controller on the very next Node update event it
  sees (the apply itself), so only the stack's own taints persist from this patch.
* Labels are a map (granular): each key is owned separately, so pool labels coexist with
  the kubelet's and kubeadm's, and a label removed from the config is pruned (we own it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pulumi
import pulumi_kubernetes as k8s

from components.addons.common import desired_taints
from components.config import ClusterConfig
from components.nodes import NodeSpec

FIELD_MANAGER = "kubeadm-cluster"


class NodeTaints(pulumi.ComponentResource):
    """One NodePatch per node: pool labels and the node's complete taint list."""

    patches: dict[str, k8s.core.v1.NodePatch]

    def __init__(
        self,
        name: str,
        config: ClusterConfig,
        nodes: Sequence[NodeSpec],
        node_ready: Mapping[str, pulumi.Resource],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("kubeadm-cluster:index:NodeTaints", name, None, opts)
        self.patches = {}
        for node in nodes:
            taints = desired_taints(node, config)
            ready = node_ready.get(node.name)
            if ready is None:
                raise ValueError(f"node_ready has no resource for node {node.name!r}: its patch would race its join")
            self.patches[node.name] = k8s.core.v1.NodePatch(
                f"{name}-{node.name}",
                metadata=k8s.meta.v1.ObjectMetaPatchArgs(
                    name=node.name,
                    labels=dict(node.labels) or None,
                    annotations={
                        "pulumi.com/patchForce": "true",
                        "pulumi.com/patchFieldManager": FIELD_MANAGER,
                    },
                ),
                spec=k8s.core.v1.NodeSpecPatchArgs(
                    # Always sent, even empty: an explicit [] is what removes a taint (see above).
                    taints=[
                        k8s.core.v1.TaintPatchArgs(key=t.key, value=t.value or None, effect=t.effect)
                        for t in taints
                    ],
                ),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[ready]),
            )
        self.register_outputs({"nodes": sorted(self.patches)})
