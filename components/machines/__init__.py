"""Stage 2: machines. Google Cloud VMs (``gcp``) or servers you already own (``existing``).

Whatever the provider, the stage hands the bootstrap stage the same thing: one ``Machine``
per planned node (how to reach it over SSH, its internal address) plus the cluster's
stable API endpoints.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_command import remote

from components.nodes import NodeSpec


@dataclass(frozen=True)
class Machine:
    """A node's machine as the bootstrap stage needs it."""

    node: NodeSpec
    internal_ip: pulumi.Output[str]
    #: SSH connection (the SDK marks it secret: it carries the private key).
    connection: remote.ConnectionArgs
    #: The resource whose creation makes the machine exist (the VM), if any.
    resource: pulumi.Resource | None = None
    #: What tells this machine from an earlier one behind the same node name (GCE: the instance's
    #: id, new whenever the VM is recreated). When it changes the node's steps run again and the
    #: old machine's Node object is removed. None: not known (own servers).
    identity: pulumi.Input[str] | None = None
    #: The copy of the node scripts to this machine (components.bootstrap.scripts.copy_scripts)
    #: when the machines stage made it (its own steps on the machine need them); else the
    #: bootstrap stage makes one.
    scripts: pulumi.Resource | None = None


@dataclass(frozen=True)
class Endpoints:
    """Where the Kubernetes API server is reached."""

    #: Address the nodes use (kubeadm ``controlPlaneEndpoint``): stable, inside the network.
    internal: pulumi.Output[str]
    #: Address admins use (the exported kubeconfig): reachable from ``adminCidrs``.
    public: pulumi.Output[str]
    #: DNS name of the API endpoint (kubeadm ``controlPlaneEndpoint``), resolved on every node
    #: through /etc/hosts: to ``internal`` on workers, to the node's own API server on a joined
    #: control plane (never through GCE's load-balancer hairpin). None: the endpoint is ``internal``.
    name: str | None = None
