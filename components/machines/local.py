"""QEMU VMs on the machine running ``pulumi up`` (``provider: local``): a cluster without a cloud.

Every VM is a resource of the stack: a ``command.local.Command`` whose create starts it (a QEMU
daemon that outlives the step) and waits until it answers SSH, and whose delete stops it and
removes its disks; a change of its shape, image or addresses replaces it (stopped first: the new
one takes the same name, ports and directory). Before them, two more steps: the base image
(built once per machine and shared by every local stack; ``pulumi destroy`` leaves it cached)
and the private link's switch (one per stack). The commands are
``python -m components.machines.localvm ...`` (components/machines/localvm), the same code the
VM rehearsal boots its VMs with.

The nodes reach each other on the private link, with addresses from ``network.subnetCidr``
(VM i: host address 10 + i); ``pulumi up`` reaches each VM's SSH on a forwarded loopback port
(``local.sshPortBase`` + i) and the API server on 127.0.0.1:6443 (forwarded to the control
plane). The stack makes its own SSH key (a secret), which each VM takes from its kernel command
line at boot, as a cloud VM takes it from its metadata.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TypedDict

import pulumi
import pulumi_tls as tls
from pulumi_command import local, remote

from components import hardware
from components.config import ClusterConfig
from components.machines import Endpoints, Machine
from components.machines.localvm import (
    CLOUD_IMAGES, IMAGE_SUITES, KEY_ENV, VM_DISK_GB_ENV, VM_MACHINE_TYPE_ENV, accel, cloudimage, local_cache_dir,
)
from components.machines.localvm.image import USER, recipe_key
from components.machines.localvm.vm import STORAGE_DEVICE
from components.nodes import NodeSpec

#: The project root: the steps run ``python -m components.machines.localvm`` from it.
ROOT = Path(__file__).resolve().parent.parent.parent
#: The API server's port, forwarded from the host's loopback to the first control plane.
API_SERVER_PORT = 6443
#: The first host address a VM takes in network.subnetCidr.
FIRST_HOST = 10
#: Ports one stack may use from its base (SSH of each VM).
PORTS_PER_STACK = 20


def ssh_port_base(config: ClusterConfig, stack: str) -> int:
    """``local.sshPortBase``, or a base derived from the stack name (20000-59980, steps of 20):
    two local stacks on one machine rarely collide, and a collision is refused at VM start."""
    if config.local.ssh_port_base:
        return config.local.ssh_port_base
    return 20000 + int(hashlib.sha256(stack.encode()).hexdigest()[:8], 16) % 2000 * PORTS_PER_STACK


def state_dir(config: ClusterConfig, stack: str) -> Path:
    """Where the stack's VMs keep their disks, consoles and pid files."""
    if config.local.state_dir:
        return Path(config.local.state_dir).expanduser()
    return local_cache_dir() / stack


def images_dir() -> Path:
    """The base images, shared by every local stack of this machine."""
    return local_cache_dir() / "images"


def cli(*arguments: str | int | Path) -> str:
    """The shell command running one localvm subcommand with this program's Python."""
    return shlex.join([sys.executable, "-m", "components.machines.localvm", *(str(a) for a in arguments)])


def local_nodes(nodes: Sequence[NodeSpec]) -> list[NodeSpec]:
    """The node plan with each VM's Ceph disk where the guest sees it (virtio serial ``ceph-osd``)."""
    return [
        dataclasses.replace(node, storage_device=STORAGE_DEVICE if node.storage_disk_size_gb else "")
        for node in nodes
    ]


def vm_shape_env(node: NodeSpec) -> dict[str, str]:
    """The shape the VM step starts the VM with: its machine type (vCPUs and memory) and boot disk."""
    return {VM_MACHINE_TYPE_ENV: node.machine_type, VM_DISK_GB_ENV: str(node.disk_size_gb)}


class LocalMachinesArgs(TypedDict):
    config: ClusterConfig
    nodes: Sequence[NodeSpec]
    stack: str


class LocalMachines(pulumi.ComponentResource):
    """One QEMU VM per planned node, on a private link, on this machine."""

    machines: dict[str, Machine]
    endpoints: Endpoints
    #: The node plan as the VMs realise it (their Ceph disk paths): what the add-ons read.
    nodes: list[NodeSpec]
    ssh_private_key: pulumi.Output[str]
    #: node name -> the loopback port its SSH is forwarded to.
    ssh_ports: dict[str, int]
    #: The accelerator probe's verdict at this run (the VM steps probe again when they start).
    probe: accel.Probe

    def __init__(self, name: str, args: LocalMachinesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("kubeadm-cluster:index:LocalMachines", name, None, opts)
        config, stack = args["config"], args["stack"]
        settings = config.local
        child = pulumi.ResourceOptions(parent=self)
        suite = IMAGE_SUITES[settings.image]
        state, images = state_dir(config, stack), images_dir()
        self.nodes = local_nodes(args["nodes"])

        # KVM only when the host really has it (``kvm`` was checked with the config); say so when
        # ``auto`` falls back to emulation. The VM steps probe again, booting a kernel under KVM.
        self.probe = accel.choose(settings.accelerator) if settings.accelerator != "kvm" else accel.Probe(accel.KVM, "")
        if self.probe.emulated and settings.accelerator == "auto":
            pulumi.log.warn(
                f"local VMs run under software emulation (QEMU TCG), 5-20x slower than the host: {self.probe.reason}",
                resource=self,
            )

        key = tls.PrivateKey(f"{name}-ssh-key", algorithm="ED25519", opts=child)
        self.ssh_private_key = pulumi.Output.secret(key.private_key_openssh)

        # What the image is: a change builds (or downloads) another one and replaces every VM.
        if settings.image in CLOUD_IMAGES:
            image_recipe = cloudimage.UBUNTU_2404.base_url + cloudimage.UBUNTU_2404.filename
        else:
            image_recipe = recipe_key(suite, None)
        image = local.Command(
            f"{name}-image",
            create=cli("image", "--suite", suite, "--images", images),
            dir=str(ROOT),
            triggers=[suite, image_recipe],
            opts=child,
        )
        network = local.Command(
            f"{name}-network",
            create=cli("network-start", "--dir", state),
            delete=cli("network-stop", "--dir", state),
            dir=str(ROOT),
            triggers=[str(state)],
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True),
        )

        subnet = ipaddress.IPv4Network(config.network.subnet_cidr)
        base_port = ssh_port_base(config, stack)
        self.machines, self.ssh_ports = {}, {}
        public_key = key.public_key_openssh.apply(lambda text: text.strip())
        for index, node in enumerate(self.nodes):
            spec = hardware.local_machine_spec(node.machine_type)
            assert spec is not None  # validated by ClusterConfig
            private_ip = str(subnet.network_address + FIRST_HOST + index)
            port = base_port + index
            forwards = [f"{API_SERVER_PORT}:{API_SERVER_PORT}"] if node.is_first_control_plane else []
            arguments: list[str | int | Path] = [
                "--dir", state / "vms" / node.name, "--name", node.name, "--index", index,
                "--vcpus", int(spec.vcpus), "--memory-mb", spec.memory_mb,
                "--disk-gb", node.disk_size_gb, "--storage-gb", node.storage_disk_size_gb,
                "--ssh-port", port, *[part for forward in forwards for part in ("--forward", forward)],
                "--private", f"{private_ip}/{subnet.prefixlen}", "--switch", state,
                "--suite", suite, "--images", images, "--accelerator", settings.accelerator,
            ]
            # What makes it another machine: a change replaces the VM (stopped and removed first).
            triggers: list[pulumi.Input[str | int]] = [
                node.machine_type, int(spec.vcpus), spec.memory_mb, node.disk_size_gb,
                node.storage_disk_size_gb, suite, image_recipe, private_ip, port, str(state), public_key,
            ]
            vm = local.Command(
                f"{node.name}-vm",
                create=public_key.apply(lambda text, a=arguments: cli("vm-start", *a, "--authorized-key", text)),
                delete=cli("vm-stop", "--dir", state / "vms" / node.name, "--name", node.name, "--remove"),
                dir=str(ROOT),
                # The VM's shape, readable at preview (the create command waits on the stack's key):
                # the policy pack checks it against the hardware minimums, as it does a GCE instance.
                environment={KEY_ENV: self.ssh_private_key, **vm_shape_env(node)},
                triggers=triggers,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[image, network], delete_before_replace=True),
            )
            connection = remote.ConnectionArgs(
                host="127.0.0.1",
                port=port,
                user=USER,
                private_key=self.ssh_private_key,
                dial_error_limit=30,
                per_dial_timeout=30,
            )
            # A replaced VM is a new, empty disk: its identity (the triggers that replace it) makes the
            # node's prep, token and join run again and removes its old Node object, as on GCE.
            identity = pulumi.Output.all(*triggers).apply(
                lambda values: hashlib.sha256(repr(values).encode()).hexdigest()[:16]
            )
            self.machines[node.name] = Machine(
                node=node, internal_ip=pulumi.Output.from_input(private_ip), connection=connection, resource=vm,
                identity=identity,
            )
            self.ssh_ports[node.name] = port

        first = next(node for node in self.nodes if node.is_first_control_plane)
        self.endpoints = Endpoints(
            internal=self.machines[first.name].internal_ip,
            # The API server of the first control plane, forwarded to this machine's loopback.
            public=pulumi.Output.from_input("127.0.0.1"),
        )
        self.register_outputs({
            "sshPorts": self.ssh_ports,
            "sshPrivateKey": self.ssh_private_key,
            "stateDir": str(state),
            "accelerator": self.probe.accelerator,
        })
