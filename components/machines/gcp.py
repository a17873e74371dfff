"""Google Cloud machines: network, firewall, NAT, SSH key, service account and VMs."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TypedDict

import pulumi
import pulumi_gcp as gcp
import pulumi_tls as tls
from pulumi_command import remote

from components import hardware, versions
from components.bootstrap import step_timeout
from components.bootstrap.scripts import RUN_BUNDLE, bundle, copy_scripts
from components.config import ClusterConfig, GcpSettings
from components.machines import Endpoints, Machine
from components.nodes import STORAGE_DEVICE_NAME, NodeSpec

#: The login the VMs get through instance metadata (the guest agent gives it sudo).
SSH_USER = "kubeadm"
API_SERVER_PORT = 6443
#: Roles the nodes' service account gets: write logs and metrics, nothing else.
NODE_SERVICE_ACCOUNT_ROLES = ("roles/logging.logWriter", "roles/monitoring.metricWriter")
#: The one role the nodes' service account has on the etcd backup bucket: create objects. It cannot
#: read, list, overwrite or delete them (Cloud Storage's roles/storage.objectCreator).
BACKUP_WRITER_ROLE = "roles/storage.objectCreator"
#: Days a replaced or expired backup's old version is kept in the versioned bucket.
BACKUP_NONCURRENT_DAYS = 7
#: Where Google's load-balancer health checks come from (internal and backend-service-based
#: external passthrough Network Load Balancers).
HEALTH_CHECK_RANGES = ("35.191.0.0/16", "130.211.0.0/22", "209.85.152.0/22", "209.85.204.0/22")
#: sshd's MaxStartups on the first control plane, the jump host (jump-host.sh): connections still
#: authenticating before sshd refuses some (start:rate:full). At most about two per node start at
#: the same moment (a node's own step, through this host, and a step on this host for that node:
#: its token, its wait), so 512 covers 250 nodes, more than a /24 subnet holds. The stock 10:30:100
#: refuses 30 % of them beyond 10 (sshd_config(5)).
SSHD_MAX_STARTUPS = "512:30:1024"
#: How often and how long a step's SSH connection tries to reach a node (pulumi-command's
#: dialErrorLimit and perDialTimeout, seconds): a booting VM answers within minutes.
DIAL_ERROR_LIMIT = 30
PER_DIAL_TIMEOUT = 30


def backup_bucket_name(project: str, prefix: str) -> str:
    """The etcd backup bucket's name: globally unique through the project ID, at most 56
    characters (a project ID has 30 at most, the prefix 20), lowercase letters, digits and '-'
    (a domain-scoped project's ':' and '.' become '-')."""
    return re.sub(r"[^a-z0-9-]", "-", f"{project}-{prefix}-etcd".lower())


def api_endpoint_name(prefix: str) -> str:
    """The DNS name of the cluster's API endpoint (kubeadm ``controlPlaneEndpoint``).

    It lives only in each node's /etc/hosts (``.internal`` is reserved for private use), so it
    can point workers at the load balancer and each control plane at its own API server.
    """
    return f"api.{prefix}.internal"


class NetworkArgs(TypedDict):
    config: ClusterConfig
    gcp: GcpSettings
    prefix: str


class Network(pulumi.ComponentResource):
    """A dedicated VPC and subnet, firewall rules, and Cloud NAT for the private nodes."""

    network: pulumi.Output[str]
    subnetwork: pulumi.Output[str]
    node_tag: str
    control_plane_tag: str

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("kubeadm-cluster:index:Network", name, None, opts)
        config, settings, prefix = args["config"], args["gcp"], args["prefix"]
        child = pulumi.ResourceOptions(parent=self)
        self.node_tag = f"{prefix}-node"
        self.control_plane_tag = f"{prefix}-control-plane"

        vpc = gcp.compute.Network(
            f"{name}-vpc",
            name=f"{prefix}-vpc",
            auto_create_subnetworks=False,
            description=f"kubeadm-cluster {prefix}",
            opts=child,
        )
        subnet = gcp.compute.Subnetwork(
            f"{name}-subnet",
            name=f"{prefix}-nodes",
            network=vpc.id,
            region=settings.region,
            ip_cidr_range=config.network.subnet_cidr,
            private_ip_google_access=True,
            opts=child,
        )
        # Node to node, and pod to pod: everything (CNIs use VXLAN, IP-in-IP, Weave's 6783/6784).
        gcp.compute.Firewall(
            f"{name}-internal",
            name=f"{prefix}-internal",
            network=vpc.id,
            direction="INGRESS",
            source_ranges=[config.network.subnet_cidr, config.network.pod_cidr],
            target_tags=[self.node_tag],
            allows=[gcp.compute.FirewallAllowArgs(protocol="all")],
            description="All traffic between the cluster's nodes and pods",
            opts=child,
        )
        # From outside: SSH and the API server, from the admin CIDRs only, to the control plane.
        gcp.compute.Firewall(
            f"{name}-admin",
            name=f"{prefix}-admin",
            network=vpc.id,
            direction="INGRESS",
            source_ranges=list(config.admin_cidrs),
            target_tags=[self.control_plane_tag],
            allows=[gcp.compute.FirewallAllowArgs(protocol="tcp", ports=["22", str(API_SERVER_PORT)])],
            description="SSH and the Kubernetes API from adminCidrs",
            opts=child,
        )
        router = gcp.compute.Router(
            f"{name}-router", name=f"{prefix}-router", network=vpc.id, region=settings.region, opts=child
        )
        gcp.compute.RouterNat(
            f"{name}-nat",
            name=f"{prefix}-nat",
            router=router.name,
            region=settings.region,
            nat_ip_allocate_option="AUTO_ONLY",
            source_subnetwork_ip_ranges_to_nat="ALL_SUBNETWORKS_ALL_IP_RANGES",
            log_config=gcp.compute.RouterNatLogConfigArgs(enable=True, filter="ERRORS_ONLY"),
            opts=child,
        )
        self.network = vpc.id
        self.subnetwork = subnet.id
        self.register_outputs({"network": self.network, "subnetwork": self.subnetwork})


class ApiLoadBalancerArgs(TypedDict):
    gcp: GcpSettings
    prefix: str
    network: pulumi.Input[str]
    subnetwork: pulumi.Input[str]
    control_plane_tag: str
    #: The control-plane VMs (the backends), by node name.
    instances: Mapping[str, gcp.compute.Instance]
    #: Static addresses of the two forwarding rules.
    internal_address: pulumi.Input[str]
    public_address: pulumi.Input[str]
    #: Resources the public forwarding rule waits for (the VM that held its address before).
    public_after: Sequence[pulumi.Resource]


class ApiLoadBalancer(pulumi.ComponentResource):
    """The HA API endpoint: passthrough TCP load balancers on 6443 in front of the control planes.

    One instance group of the control-plane VMs backs two regional backend services with one
    TCP health check on 6443: an internal load balancer (what nodes dial, through the endpoint
    name) and an external one on the static public address (what admins dial; the firewall
    still admits only ``adminCidrs``, since passthrough keeps the client's address).

    Each VM is in the group through an ``InstanceGroupMembership`` of its own, not the group's
    ``instances`` list: GCE drops a deleted VM from an unmanaged group, and a VM recreated under
    the same name has the same self link, so a group listing it sees no change and never adds it
    back (hashicorp/terraform-provider-google #4705, #18800; the provider's own answer is this
    resource, whose ``instance`` forces a new membership). The membership takes the VM's name, an
    output of the VM, as an input: when the VM is replaced (delete first, its name being fixed), Pulumi deletes the
    membership before the VM and creates it again for the new one; a VM deleted by hand is found
    missing by `pulumi refresh` (or `pulumi up --refresh`), and its membership with it.
    """

    def __init__(self, name: str, args: ApiLoadBalancerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("kubeadm-cluster:index:ApiLoadBalancer", name, None, opts)
        settings, prefix = args["gcp"], args["prefix"]
        child = pulumi.ResourceOptions(parent=self)
        group = gcp.compute.InstanceGroup(
            f"{name}-control-planes",
            name=f"{prefix}-control-planes",
            zone=settings.zone,
            network=args["network"],
            named_ports=[gcp.compute.InstanceGroupNamedPortArgs(name="kube-api", port=API_SERVER_PORT)],
            description="The control-plane VMs behind the Kubernetes API load balancers",
            opts=child,
        )
        for node_name, instance in args["instances"].items():
            gcp.compute.InstanceGroupMembership(
                f"{name}-member-{node_name}",
                instance_group=group.name,
                # The VM's name (the provider expands it in the group's zone) as an output of the VM:
                # what depends on the replaced VM is what Pulumi replaces with it.
                instance=instance.name,
                zone=settings.zone,
                opts=child,
            )
        health = gcp.compute.RegionHealthCheck(
            f"{name}-health",
            name=f"{prefix}-api-health",
            region=settings.region,
            tcp_health_check=gcp.compute.RegionHealthCheckTcpHealthCheckArgs(port=API_SERVER_PORT),
            check_interval_sec=5,
            timeout_sec=5,
            healthy_threshold=2,
            unhealthy_threshold=3,
            description="A control plane serves the API when it accepts connections on 6443",
            opts=child,
        )
        gcp.compute.Firewall(
            f"{name}-health-checks",
            name=f"{prefix}-api-health-checks",
            network=args["network"],
            direction="INGRESS",
            source_ranges=list(HEALTH_CHECK_RANGES),
            target_tags=[args["control_plane_tag"]],
            allows=[gcp.compute.FirewallAllowArgs(protocol="tcp", ports=[str(API_SERVER_PORT)])],
            description="Google's load-balancer health checks to the API servers",
            opts=child,
        )
        backend = gcp.compute.RegionBackendServiceBackendArgs(group=group.self_link, balancing_mode="CONNECTION")
        services: dict[str, gcp.compute.RegionBackendService] = {}
        for scheme in ("INTERNAL", "EXTERNAL"):
            services[scheme] = gcp.compute.RegionBackendService(
                f"{name}-backend-{scheme.lower()}",
                name=f"{prefix}-api-{scheme.lower()}",
                region=settings.region,
                load_balancing_scheme=scheme,
                protocol="TCP",
                health_checks=health.id,
                backends=[backend],
                connection_draining_timeout_sec=10,
                opts=child,
            )
        self.internal_rule = gcp.compute.ForwardingRule(
            f"{name}-rule-internal",
            name=f"{prefix}-api-internal",
            region=settings.region,
            load_balancing_scheme="INTERNAL",
            ip_address=args["internal_address"],
            ip_protocol="TCP",
            ports=[str(API_SERVER_PORT)],
            network=args["network"],
            subnetwork=args["subnetwork"],
            backend_service=services["INTERNAL"].id,
            opts=child,
        )
        self.public_rule = gcp.compute.ForwardingRule(
            f"{name}-rule-public",
            name=f"{prefix}-api-public",
            region=settings.region,
            load_balancing_scheme="EXTERNAL",
            ip_address=args["public_address"],
            ip_protocol="TCP",
            port_range=str(API_SERVER_PORT),
            backend_service=services["EXTERNAL"].id,
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args["public_after"])),
        )
        self.register_outputs(
            {"internalAddress": self.internal_rule.ip_address, "publicAddress": self.public_rule.ip_address}
        )


class GcpMachinesArgs(TypedDict):
    config: ClusterConfig
    gcp: GcpSettings
    nodes: Sequence[NodeSpec]
    prefix: str


class GcpMachines(pulumi.ComponentResource):
    """One VM per planned node, plus everything the VMs need around them."""

    machines: dict[str, Machine]
    endpoints: Endpoints
    ssh_private_key: pulumi.Output[str]
    ssh_public_key: pulumi.Output[str]
    #: Where SSH reaches the first control plane (the jump host of the other nodes).
    ssh_host: pulumi.Output[str]
    #: ``gs://<bucket>``: where the control planes upload their etcd backups.
    backup_bucket_url: pulumi.Output[str]

    def __init__(self, name: str, args: GcpMachinesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("kubeadm-cluster:index:GcpMachines", name, None, opts)
        config, settings, prefix = args["config"], args["gcp"], args["prefix"]
        child = pulumi.ResourceOptions(parent=self)

        network = Network(f"{name}-network", NetworkArgs(config=config, gcp=settings, prefix=prefix), opts=child)
        key = tls.PrivateKey(f"{name}-ssh-key", algorithm="ED25519", opts=child)
        self.ssh_private_key = pulumi.Output.secret(key.private_key_openssh)
        self.ssh_public_key = key.public_key_openssh

        account = gcp.serviceaccount.Account(
            f"{name}-nodes-sa",
            account_id=f"{prefix}-nodes"[:30],
            display_name=f"kubeadm-cluster {prefix} nodes",
            project=settings.project,
            opts=child,
        )
        member = account.email.apply(lambda email: f"serviceAccount:{email}")
        for role in NODE_SERVICE_ACCOUNT_ROLES:
            gcp.projects.IAMMember(
                f"{name}-nodes-sa-{role.split('.')[-1]}",
                project=settings.project,
                role=role,
                member=member,
                opts=child,
            )

        # The etcd backups (etcd-snapshot.sh uploads each one): private (uniform bucket-level access,
        # public access prevention enforced), versioned, expired after backup.bucketRetentionDays
        # (an expired backup's version goes BACKUP_NONCURRENT_DAYS later), written only by the nodes'
        # service account, which can only create objects. Not force-destroyed: `pulumi destroy`
        # stops at a bucket that still holds backups (delete them yourself to let it go).
        bucket = gcp.storage.Bucket(
            f"{name}-etcd-backups",
            name=backup_bucket_name(settings.project, prefix),
            project=settings.project,
            location=settings.region,
            uniform_bucket_level_access=True,
            public_access_prevention="enforced",
            versioning=gcp.storage.BucketVersioningArgs(enabled=True),
            lifecycle_rules=[
                gcp.storage.BucketLifecycleRuleArgs(
                    action=gcp.storage.BucketLifecycleRuleActionArgs(type="Delete"),
                    condition=gcp.storage.BucketLifecycleRuleConditionArgs(
                        age=config.backup.bucket_retention_days, with_state="LIVE"
                    ),
                ),
                gcp.storage.BucketLifecycleRuleArgs(
                    action=gcp.storage.BucketLifecycleRuleActionArgs(type="Delete"),
                    condition=gcp.storage.BucketLifecycleRuleConditionArgs(
                        days_since_noncurrent_time=BACKUP_NONCURRENT_DAYS, with_state="ARCHIVED"
                    ),
                ),
            ],
            force_destroy=False,
            labels={"kubeadm-cluster": prefix, "purpose": "etcd-backups"},
            opts=child,
        )
        gcp.storage.BucketIAMMember(
            f"{name}-etcd-backups-writer",
            bucket=bucket.name,
            role=BACKUP_WRITER_ROLE,
            member=member,
            opts=child,
        )
        self.backup_bucket_url = bucket.name.apply(lambda bucket_name: f"gs://{bucket_name}")

        nodes = list(args["nodes"])
        first_cp = next(node for node in nodes if node.is_first_control_plane)
        ha = config.highly_available
        public_ip = gcp.compute.Address(
            f"{name}-api-public",
            name=f"{prefix}-api-public",
            region=settings.region,
            address_type="EXTERNAL",
            description="Public address of the Kubernetes API (and, with one control plane, its SSH)",
            opts=child,
        )
        internal_ip = gcp.compute.Address(
            f"{name}-api-internal",
            name=f"{prefix}-api-internal",
            region=settings.region,
            address_type="INTERNAL",
            subnetwork=network.subnetwork,
            description="Stable internal address of the first control plane",
            opts=child,
        )
        # HA: the public address moves to the API load balancer; the first control plane keeps
        # SSH (and is the jump host) on an address of its own, and nodes reach the API through
        # an internal load balancer.
        ssh_ip = (
            gcp.compute.Address(
                f"{name}-ssh-public",
                name=f"{prefix}-ssh-public",
                region=settings.region,
                address_type="EXTERNAL",
                description="SSH to the first control plane (the jump host of the others)",
                opts=child,
            )
            if ha
            else public_ip
        )
        lb_internal_ip = (
            gcp.compute.Address(
                f"{name}-api-lb-internal",
                name=f"{prefix}-api-lb-internal",
                region=settings.region,
                address_type="INTERNAL",
                subnetwork=network.subnetwork,
                description="Internal address of the Kubernetes API load balancer",
                opts=child,
            )
            if ha
            else internal_ip
        )
        self.endpoints = Endpoints(
            internal=lb_internal_ip.address, public=public_ip.address, name=api_endpoint_name(prefix)
        )
        self.ssh_host = ssh_ip.address

        metadata = key.public_key_openssh.apply(
            lambda public_key: {
                "ssh-keys": f"{SSH_USER}:{public_key.strip()} {SSH_USER}",
                "block-project-ssh-keys": "TRUE",
                "enable-oslogin": "FALSE",
            }
        )
        private_key = self.ssh_private_key
        jump = remote.ProxyConnectionArgs(
            host=ssh_ip.address,
            user=SSH_USER,
            private_key=private_key,
            dial_error_limit=DIAL_ERROR_LIMIT,
            per_dial_timeout=PER_DIAL_TIMEOUT,
        )
        # Steps of the machines stage on the first control plane (all direct, no jump host).
        on_first = remote.ConnectionArgs(
            host=ssh_ip.address,
            user=SSH_USER,
            private_key=private_key,
            dial_error_limit=DIAL_ERROR_LIMIT,
            per_dial_timeout=PER_DIAL_TIMEOUT,
        )

        def step(
            resource_name: str,
            script: str,
            env: dict[str, pulumi.Input[str]],
            after: Sequence[pulumi.Resource],
            on_change_only: bool = False,
            triggers: list[pulumi.Input[str]] | None = None,
            standalone: bool = False,
        ) -> remote.Command:
            """A step on the first control plane (as components.bootstrap runs its steps: a bundle
            on stdin that sources the script from the node's copy, bounded in time).
            ``on_change_only``: it runs when its inputs change, not when it is created. Every step
            waits for the first control plane's copy of the scripts once there is one: only the
            first control plane's own resize drain, which runs before its VM changes (and so
            before that copy), finds the copy an earlier `up` left there. ``standalone``: the
            bundle carries its scripts and the step does not wait for the copy (the jump host's
            sshd settings, which the copies to the other nodes need: off the create chain); its
            stdin, which carries the scripts' text, is then no reason to run again (ignored: a
            release runs at most a node's copy and prep), only its ``triggers`` are."""
            waits = [first_scripts] if first_scripts is not None and not standalone else []
            # Before the first control plane's copy exists (its own resize drain): a node with no
            # copy yet (the first `up` of a stack made before the copies) skips the step instead
            # of failing the `up`: nothing to drain for then, unless its machine type changes in
            # that same `up` (README: change machine types in an `up` of their own).
            early = first_scripts is None and not standalone
            return remote.Command(
                resource_name,
                connection=on_first,
                create=None if on_change_only else RUN_BUNDLE,
                update=RUN_BUNDLE if on_change_only else None,
                stdin=bundle(
                    script, {**env, "KC_STEP_TIMEOUT": step_timeout(script)}, standalone=standalone, skip_without_copy=early
                ),
                triggers=triggers,
                add_previous_output_in_env=False,
                opts=pulumi.ResourceOptions(
                    parent=self,
                    depends_on=list(after) + waits,
                    ignore_changes=["stdin"] if standalone else None,
                ),
            )

        self.machines = {}
        first_scripts: pulumi.Resource | None = None
        instances: dict[str, gcp.compute.Instance] = {}
        # The first control plane's VM first: the other nodes' steps go through it.
        nodes.sort(key=lambda planned: not planned.is_first_control_plane)
        first_resized: pulumi.Resource | None = None
        sshd: pulumi.Resource | None = None
        for node in nodes:
            # The series decides: N4, C4 and C4A take Hyperdisk only, boot disk included.
            disk_type = hardware.disk_type(node.machine_type)
            attached: list[gcp.compute.InstanceAttachedDiskArgs] = []
            if node.storage_disk_size_gb:
                disk = gcp.compute.Disk(
                    f"{node.name}-storage",
                    name=f"{node.name}-storage",
                    zone=settings.zone,
                    size=node.storage_disk_size_gb,
                    type=disk_type,
                    description="Blank disk for a Ceph OSD (Rook)",
                    opts=child,
                )
                attached.append(gcp.compute.InstanceAttachedDiskArgs(source=disk.id, device_name=STORAGE_DEVICE_NAME))
            first = node.name == first_cp.name
            access = [gcp.compute.InstanceNetworkInterfaceAccessConfigArgs(nat_ip=ssh_ip.address)] if first else []
            tags = [network.node_tag] + ([network.control_plane_tag] if node.is_control_plane else [])
            # A machine type change: GCE stops the VM to apply it (allow_stopping_for_update), and
            # Pulumi would update every VM of a pool at once. So each VM's update waits for its
            # node's drain, and the drains take turns (a lease on the first control plane,
            # resize-node.sh): one node at a time is out of service. The first control plane goes
            # first and alone (the others' steps run through it). These steps run nothing when they
            # are created, nor when only something else changes (see resize-node.sh).
            spec = hardware.lookup_machine_type(node.machine_type)
            resize_env: dict[str, pulumi.Input[str]] = {
                "NODE_NAME": node.name,
                "MACHINE_TYPE": node.machine_type,
                "MACHINE_VCPUS": str(int(spec.vcpus)) if spec else "1",
                "MACHINE_MEMORY_MB": str(spec.memory_mb) if spec else "1",
            }
            resize_drain = step(
                f"{node.name}-resize-drain",
                "resize-node.sh",
                {"ACTION": "drain", **resize_env},
                [first_resized] if first_resized is not None else [],
                on_change_only=True,
            )
            instance = gcp.compute.Instance(
                node.name,
                name=node.name,
                zone=settings.zone,
                machine_type=node.machine_type,
                boot_disk=gcp.compute.InstanceBootDiskArgs(
                    auto_delete=True,
                    initialize_params=gcp.compute.InstanceBootDiskInitializeParamsArgs(
                        image=versions.GCP_IMAGES[node.arch], size=node.disk_size_gb, type=disk_type
                    ),
                ),
                attached_disks=attached,
                network_interfaces=[
                    gcp.compute.InstanceNetworkInterfaceArgs(
                        subnetwork=network.subnetwork,
                        network_ip=internal_ip.address if first else None,
                        access_configs=access,
                    )
                ],
                shielded_instance_config=gcp.compute.InstanceShieldedInstanceConfigArgs(
                    enable_secure_boot=True, enable_vtpm=True, enable_integrity_monitoring=True
                ),
                service_account=gcp.compute.InstanceServiceAccountArgs(
                    email=account.email, scopes=["https://www.googleapis.com/auth/cloud-platform"]
                ),
                metadata=metadata,
                tags=tags,
                labels={"kubeadm-cluster": prefix, "pool": node.pool, "role": node.role},
                allow_stopping_for_update=True,
                # A VM is replaced (a new boot disk or image) delete first: its name is fixed.
                opts=pulumi.ResourceOptions(parent=self, depends_on=[resize_drain], delete_before_replace=True),
            )
            # GCE's id of this very VM: a VM recreated under the same name has another one.
            identity = instance.instance_id.apply(lambda value: str(value or ""))
            if first:
                # The node scripts on the first control plane, for its steps here and in bootstrap.
                first_scripts = copy_scripts(f"{node.name}-scripts", on_first, identity, [instance], self)
            resize_uncordon = step(
                f"{node.name}-resize-uncordon",
                "resize-node.sh",
                {"ACTION": "uncordon", **resize_env},
                [instance],
                on_change_only=True,
            )
            ip = instance.network_interfaces.apply(lambda nics: str(nics[0].network_ip or ""))
            connection = remote.ConnectionArgs(
                host=ssh_ip.address if first else ip,
                user=SSH_USER,
                private_key=private_key,
                proxy=None if first else jump,
                dial_error_limit=DIAL_ERROR_LIMIT,
                per_dial_timeout=PER_DIAL_TIMEOUT,
            )
            ready: pulumi.Resource = instance
            if first:
                first_resized = resize_uncordon
                # The jump host accepts as many starting SSH connections as `up` opens through it.
                sshd = step(
                    f"{node.name}-sshd",
                    "jump-host.sh",
                    {"SSHD_MAX_STARTUPS": SSHD_MAX_STARTUPS},
                    [instance],
                    # Applied again on a new VM, or when the limit it sets changes.
                    triggers=[identity, f"MaxStartups {SSHD_MAX_STARTUPS}"],
                    standalone=True,
                )
            else:
                # Reached through the jump host: its first step waits until it accepts the key.
                ready = step(
                    f"{node.name}-reachable",
                    "wait-ssh.sh",
                    {
                        "NODE_NAME": node.name,
                        "NODE_ADDRESS": ip,
                        "SSH_USER": SSH_USER,
                        "SSH_PUBLIC_KEY": key.public_key_openssh.apply(str.strip),
                    },
                    [instance] + ([sshd] if sshd is not None else []),
                    triggers=[identity],
                )
            self.machines[node.name] = Machine(
                node=node,
                internal_ip=ip,
                connection=connection,
                resource=ready,
                identity=identity,
                scripts=first_scripts if first else None,
            )
            instances[node.name] = instance

        if ha:
            control_planes = {n: i for n, i in instances.items() if self.machines[n].node.is_control_plane}
            ApiLoadBalancer(
                f"{name}-api",
                ApiLoadBalancerArgs(
                    gcp=settings,
                    prefix=prefix,
                    network=network.network,
                    subnetwork=network.subnetwork,
                    control_plane_tag=network.control_plane_tag,
                    instances=control_planes,
                    internal_address=lb_internal_ip.address,
                    public_address=public_ip.address,
                    public_after=[instances[first_cp.name]],
                ),
                opts=child,
            )

        self.register_outputs(
            {
                "sshHost": self.ssh_host,
                "publicEndpoint": self.endpoints.public,
                "internalEndpoint": self.endpoints.internal,
                "sshPrivateKey": self.ssh_private_key,
                "etcdBackups": self.backup_bucket_url,
            }
        )
