"""kubeadm-cluster: `pulumi up` turns a stack's config into a working kubeadm cluster.

config -> machines -> bootstrap -> add-ons; each stage is a ComponentResource in components/.
"""

from __future__ import annotations

import os

import pulumi

from components.addons import Addons, AddonsArgs
from components.bootstrap import KubeadmCluster, KubeadmClusterArgs
from components.config import SKIP_KUBERNETES_DIFF_NOTE, ConfigError, kubernetes_diff_skipped, load_settings
from components.machines.existing import ExistingMachines, ExistingMachinesArgs
from components.machines.gcp import SSH_USER, GcpMachines, GcpMachinesArgs
from components.machines.local import LocalMachines, LocalMachinesArgs
from components.machines.localvm.image import USER as LOCAL_SSH_USER
from components.nodes import plan_nodes
from components.version_gate import VersionGate, VersionGateArgs

# 1. Config: read once, validated before any resource is registered.
try:
    settings = load_settings(pulumi.get_stack())
    # A preview from a runner outside adminCidrs (the pull-request workflow) skips the Kubernetes diff.
    skip_kubernetes_diff = kubernetes_diff_skipped(os.environ, pulumi.runtime.is_dry_run())
except ConfigError as error:
    raise pulumi.RunError(str(error)) from None
for warning in settings.warnings + ([SKIP_KUBERNETES_DIFF_NOTE] if skip_kubernetes_diff else []):
    pulumi.log.warn(warning)
config = settings.cluster
prefix = settings.name_prefix
nodes = plan_nodes(config, settings.stack)

# 2. Machines.
if config.provider == "gcp":
    assert settings.gcp is not None
    machines = GcpMachines(
        prefix, GcpMachinesArgs(config=config, gcp=settings.gcp, nodes=nodes, prefix=prefix)
    )
    hosts, endpoints = machines.machines, machines.endpoints
    backup_bucket_url: pulumi.Output[str] | None = machines.backup_bucket_url
    # Break-glass access: the first control plane is the SSH jump host of every other node.
    pulumi.export("sshHost", machines.ssh_host)
    pulumi.export("sshUser", SSH_USER)
    pulumi.export("sshPrivateKey", machines.ssh_private_key)
elif config.provider == "local":
    vms = LocalMachines(prefix, LocalMachinesArgs(config=config, nodes=nodes, stack=settings.stack))
    hosts, endpoints = vms.machines, vms.endpoints
    nodes = vms.nodes  # the plan with the VMs' Ceph disk paths, which the add-ons read
    backup_bucket_url = None
    # Each VM's SSH on this machine's loopback: ssh -i key -p <port> kubeadm@127.0.0.1
    pulumi.export("sshHost", "127.0.0.1")
    pulumi.export("sshPorts", vms.ssh_ports)
    pulumi.export("sshUser", LOCAL_SSH_USER)
    pulumi.export("sshPrivateKey", vms.ssh_private_key)
else:
    secret_key = pulumi.Config("kubeadm-cluster").require_secret("sshPrivateKey")
    own = ExistingMachines(prefix, ExistingMachinesArgs(config=config, nodes=nodes, ssh_private_key=secret_key))
    hosts, endpoints = own.machines, own.endpoints
    backup_bucket_url = None

# 3. Bootstrap.
cluster = KubeadmCluster(
    prefix,
    KubeadmClusterArgs(
        config=config,
        cluster_name=prefix,
        machines=hosts,
        endpoints=endpoints,
        skip_kubernetes_diff=skip_kubernetes_diff,
        backup_bucket_url=backup_bucket_url,
    ),
)
# ... and across runs: a kubernetesVersion change must be one kubeadm can upgrade, checked at
# preview against the version this stack recorded, which it records only once every upgrade step
# succeeded (a failed upgrade is resumed, or the version set back).
VersionGate(prefix, VersionGateArgs(kubernetes_version=config.kubernetes_version, after=cluster.upgrade_steps))

# 4. Add-ons, on a Kubernetes provider made from the cluster's kubeconfig.
addons = Addons(
    prefix,
    AddonsArgs(config=config, nodes=nodes, provider=cluster.provider, node_ready=cluster.node_ready),
)

# Outputs.
pulumi.export("kubeconfig", cluster.kubeconfig)
pulumi.export("joinCommand", cluster.join_command)
pulumi.export("controlPlaneEndpoint", cluster.control_plane_endpoint)
pulumi.export("nodes", cluster.nodes)
pulumi.export("etcdBackups", cluster.etcd_backups)
pulumi.export("storageClass", addons.storage_class)
pulumi.export("dashboardAccess", addons.dashboard_access)
pulumi.export(
    "nextSteps",
    "pulumi stack output kubeconfig --show-secrets > kubeconfig.yaml && "
    "KUBECONFIG=$PWD/kubeconfig.yaml kubectl get nodes -o wide",
)
