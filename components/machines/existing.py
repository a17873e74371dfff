"""Servers you already own (``provider: existing``): no cloud resources, only connections."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict

import pulumi
from pulumi_command import remote

from components.config import ClusterConfig
from components.machines import Endpoints, Machine
from components.nodes import NodeSpec


class ExistingMachinesArgs(TypedDict):
    config: ClusterConfig
    nodes: Sequence[NodeSpec]
    ssh_private_key: pulumi.Output[str]


class ExistingMachines(pulumi.ComponentResource):
    """Adopts the hosts listed in ``existingHosts``; the node preflight is their hardware gate."""

    machines: dict[str, Machine]
    endpoints: Endpoints

    def __init__(self, name: str, args: ExistingMachinesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("kubeadm-cluster:index:ExistingMachines", name, None, opts)
        config = args["config"]
        hosts = config.existing_hosts
        assert hosts is not None  # validated by ClusterConfig
        private_key = pulumi.Output.secret(args["ssh_private_key"])
        bastion = hosts.bastion
        proxy = (
            remote.ProxyConnectionArgs(
                host=bastion.address,
                user=bastion.user,
                port=bastion.port,
                private_key=private_key,
                dial_error_limit=10,
                per_dial_timeout=30,
            )
            if bastion is not None
            else None
        )
        self.machines = {}
        for node in args["nodes"]:
            connection = remote.ConnectionArgs(
                host=node.address,
                user=node.ssh_user,
                port=node.ssh_port,
                private_key=private_key,
                proxy=proxy,
                dial_error_limit=10,
                per_dial_timeout=30,
            )
            self.machines[node.name] = Machine(
                node=node, internal_ip=pulumi.Output.from_input(node.internal_ip or node.address), connection=connection
            )
        first = next(node for node in args["nodes"] if node.is_first_control_plane)
        # Your load balancer in front of the control planes (HA), else the first control plane.
        address = pulumi.Output.from_input(hosts.api_load_balancer or first.internal_ip or first.address)
        self.endpoints = Endpoints(internal=address, public=address)
        self.register_outputs({"publicEndpoint": address})
