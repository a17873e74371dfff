"""The pod network: Weave Net (default, typed resources we own), Flannel or Calico (Helm).

Weave Net is the rajch/weave fork's 2.9.0 DaemonSet manifest written out as typed
resources (upstream weaveworks is archived; its last manifest cannot be fetched at preview
time anyway); tests/test_upstream_cni.py holds it field by field against the fork's manifest.
Flannel is a ``helm.v3.Release`` of its chart; Calico is the Tigera operator's chart plus the
operator's ``Installation`` and ``APIServer`` custom resources (see ``_calico`` for why the
chart creates none). Each variant takes the pod range from ``network.podCidr`` (it must equal
kubeadm's podSubnet) and runs on every node, tainted or not: the CNI itself is what makes
nodes Ready.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components import versions
from components.addons.common import MANAGED_BY, TOLERATE_EVERYTHING, chart_release
from components.config import ClusterConfig

WEAVE_NAME = "weave-net"
WEAVE_NAMESPACE = "kube-system"
FLANNEL_NAMESPACE = "kube-flannel"
CALICO_NAMESPACE = "tigera-operator"
#: The API group and version of the Tigera operator's custom resources.
CALICO_API_VERSION = "operator.tigera.io/v1"
#: Helm waits for the release's workloads; a CNI on a fresh cluster can take a while.
RELEASE_TIMEOUT_SECONDS = 600


def _host_path(name: str, path: str, type_: str | None = None) -> k8s.core.v1.VolumeArgs:
    return k8s.core.v1.VolumeArgs(name=name, host_path=k8s.core.v1.HostPathVolumeSourceArgs(path=path, type=type_))


def _mount(name: str, path: str, read_only: bool | None = None) -> k8s.core.v1.VolumeMountArgs:
    return k8s.core.v1.VolumeMountArgs(name=name, mount_path=path, read_only=read_only)


_NODE_NAME_ENV = k8s.core.v1.EnvVarArgs(
    name="HOSTNAME",
    value_from=k8s.core.v1.EnvVarSourceArgs(
        field_ref=k8s.core.v1.ObjectFieldSelectorArgs(api_version="v1", field_path="spec.nodeName")
    ),
)


class Cni(pulumi.ComponentResource):
    """The cluster's CNI plugin, chosen by ``config.cni``."""

    kind: str

    def __init__(
        self,
        name: str,
        config: ClusterConfig,
        after: Sequence[pulumi.Resource] = (),
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("kubeadm-cluster:index:Cni", name, None, opts)
        self.kind = config.cni
        # Children carry the dependencies themselves (a component's depends_on is not
        # recorded on its children, so it would be missing from the state's graph).
        child = pulumi.ResourceOptions(parent=self, depends_on=list(after))
        if config.cni == "weave":
            self._weave(name, config, child)
        elif config.cni == "flannel":
            self._flannel(name, config, child)
        else:
            self._calico(name, config, child)
        self.register_outputs({"kind": config.cni})

    # --- Weave Net (rajch/weave 2.9.0) ----------------------------------------------------
    def _weave(self, name: str, config: ClusterConfig, opts: pulumi.ResourceOptions) -> None:
        labels = {"name": WEAVE_NAME, **MANAGED_BY}
        meta = k8s.meta.v1.ObjectMetaArgs(name=WEAVE_NAME, namespace=WEAVE_NAMESPACE, labels=labels)
        cluster_meta = k8s.meta.v1.ObjectMetaArgs(name=WEAVE_NAME, labels=labels)
        subject = k8s.rbac.v1.SubjectArgs(kind="ServiceAccount", name=WEAVE_NAME, namespace=WEAVE_NAMESPACE)
        sa = k8s.core.v1.ServiceAccount(f"{name}-weave-sa", metadata=meta, opts=opts)
        cluster_role = k8s.rbac.v1.ClusterRole(
            f"{name}-weave-clusterrole",
            metadata=cluster_meta,
            rules=[
                k8s.rbac.v1.PolicyRuleArgs(
                    api_groups=[""], resources=["pods", "namespaces", "nodes"], verbs=["get", "list", "watch"]
                ),
                k8s.rbac.v1.PolicyRuleArgs(
                    api_groups=["networking.k8s.io"], resources=["networkpolicies"], verbs=["get", "list", "watch"]
                ),
                k8s.rbac.v1.PolicyRuleArgs(api_groups=[""], resources=["nodes/status"], verbs=["patch", "update"]),
            ],
            opts=opts,
        )
        cluster_binding = k8s.rbac.v1.ClusterRoleBinding(
            f"{name}-weave-clusterrolebinding",
            metadata=cluster_meta,
            role_ref=k8s.rbac.v1.RoleRefArgs(api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=WEAVE_NAME),
            subjects=[subject],
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[sa, cluster_role])),
        )
        role = k8s.rbac.v1.Role(
            f"{name}-weave-role",
            metadata=meta,
            rules=[
                # Weave's peer list lives in the ConfigMap weave-net.
                k8s.rbac.v1.PolicyRuleArgs(
                    api_groups=[""], resources=["configmaps"], resource_names=[WEAVE_NAME], verbs=["get", "update"]
                ),
                k8s.rbac.v1.PolicyRuleArgs(api_groups=[""], resources=["configmaps"], verbs=["create"]),
            ],
            opts=opts,
        )
        binding = k8s.rbac.v1.RoleBinding(
            f"{name}-weave-rolebinding",
            metadata=meta,
            role_ref=k8s.rbac.v1.RoleRefArgs(api_group="rbac.authorization.k8s.io", kind="Role", name=WEAVE_NAME),
            subjects=[subject],
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[sa, role])),
        )
        privileged = k8s.core.v1.SecurityContextArgs(privileged=True)
        xtables = _mount("xtables-lock", "/run/xtables.lock", read_only=False)
        self.daemonset = k8s.apps.v1.DaemonSet(
            f"{name}-weave-daemonset",
            metadata=meta,
            spec=k8s.apps.v1.DaemonSetSpecArgs(
                min_ready_seconds=5,
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels={"name": WEAVE_NAME}),
                update_strategy=k8s.apps.v1.DaemonSetUpdateStrategyArgs(type="RollingUpdate"),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels={"name": WEAVE_NAME}),
                    spec=k8s.core.v1.PodSpecArgs(
                        service_account_name=WEAVE_NAME,
                        host_network=True,
                        host_pid=False,
                        dns_policy="ClusterFirstWithHostNet",
                        priority_class_name="system-node-critical",
                        restart_policy="Always",
                        node_selector={"kubernetes.io/os": "linux"},
                        # Every node runs the CNI: control planes and tainted pools included.
                        tolerations=TOLERATE_EVERYTHING,
                        init_containers=[
                            k8s.core.v1.ContainerArgs(
                                name="weave-init",
                                image=versions.WEAVE_KUBE_IMAGE,
                                command=["/home/weave/init.sh"],
                                security_context=privileged,
                                volume_mounts=[
                                    _mount("cni-bin", "/host/opt"),
                                    _mount("cni-bin2", "/host/home"),
                                    _mount("cni-conf", "/host/etc"),
                                    _mount("lib-modules", "/lib/modules"),
                                    xtables,
                                ],
                            )
                        ],
                        containers=[
                            k8s.core.v1.ContainerArgs(
                                name="weave",
                                image=versions.WEAVE_KUBE_IMAGE,
                                command=["/home/weave/launch.sh"],
                                env=[
                                    k8s.core.v1.EnvVarArgs(name="INIT_CONTAINER", value="true"),
                                    _NODE_NAME_ENV,
                                    # As the fork's manifest: without it weaver calls Weaveworks' defunct
                                    # version-check service (checkpoint-api.weave.works) every 6 hours
                                    # with details of the cluster (go-checkpoint: any non-empty value).
                                    k8s.core.v1.EnvVarArgs(name="CHECKPOINT_DISABLE", value="1"),
                                    # Must equal kubeadm's podSubnet (Weave's own default is 10.32.0.0/12).
                                    k8s.core.v1.EnvVarArgs(name="IPALLOC_RANGE", value=config.network.pod_cidr),
                                ],
                                readiness_probe=k8s.core.v1.ProbeArgs(
                                    http_get=k8s.core.v1.HTTPGetActionArgs(host="127.0.0.1", path="/status", port=6784)
                                ),
                                resources=k8s.core.v1.ResourceRequirementsArgs(requests={"cpu": "50m"}),
                                security_context=privileged,
                                volume_mounts=[
                                    _mount("weavedb", "/weavedb"),
                                    _mount("dbus", "/host/var/lib/dbus", read_only=True),
                                    _mount("cni-machine-id", "/host/etc/machine-id", read_only=True),
                                    xtables,
                                ],
                            ),
                            k8s.core.v1.ContainerArgs(
                                name="weave-npc",
                                image=versions.WEAVE_NPC_IMAGE,
                                env=[_NODE_NAME_ENV],
                                resources=k8s.core.v1.ResourceRequirementsArgs(requests={"cpu": "50m"}),
                                security_context=privileged,
                                volume_mounts=[xtables],
                            ),
                        ],
                        volumes=[
                            _host_path("weavedb", "/var/lib/weave"),
                            _host_path("cni-bin", "/opt"),
                            _host_path("cni-bin2", "/home"),
                            _host_path("cni-conf", "/etc"),
                            _host_path("cni-machine-id", "/etc/machine-id"),
                            _host_path("dbus", "/var/lib/dbus"),
                            _host_path("lib-modules", "/lib/modules"),
                            _host_path("xtables-lock", "/run/xtables.lock", "FileOrCreate"),
                        ],
                    ),
                ),
            ),
            opts=pulumi.ResourceOptions.merge(
                opts, pulumi.ResourceOptions(depends_on=[sa, cluster_binding, binding])
            ),
        )

    # --- Flannel ---------------------------------------------------------------------------
    def _flannel(self, name: str, config: ClusterConfig, opts: pulumi.ResourceOptions) -> None:
        namespace = k8s.core.v1.Namespace(
            f"{name}-flannel-namespace",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=FLANNEL_NAMESPACE,
                # flanneld is privileged and uses the host network.
                labels={"pod-security.kubernetes.io/enforce": "privileged", **MANAGED_BY},
            ),
            opts=opts,
        )
        self.release = chart_release(
            f"{name}-flannel",
            config,
            release="flannel",
            chart="flannel",
            version=versions.FLANNEL_CHART_VERSION,
            repo=versions.FLANNEL_CHART_REPO,
            namespace=FLANNEL_NAMESPACE,
            values={
                "podCidr": config.network.pod_cidr,
                "flannel": {"backend": "vxlan", "tolerations": [{"operator": "Exists"}]},
            },
            timeout=RELEASE_TIMEOUT_SECONDS,
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[namespace])),
        )

    # --- Calico (Tigera operator) ----------------------------------------------------------
    def _calico(self, name: str, config: ClusterConfig, opts: pulumi.ResourceOptions) -> None:
        # Since v3.32 the tigera-operator chart ships no CRDs, and the chart that does
        # (crd.projectcalico.org.v1) cannot be a Helm release: its release record is larger than
        # the 1 MiB a Secret may hold (upstream installs it with `helm template | kubectl apply`).
        # The operator creates every Calico and operator.tigera.io CRD itself when it starts
        # (`-manage-crds`, values.yaml's `manageCRDs`), so the release carries the operator only,
        # as upstream's own tigera-operator.yaml does: a chart custom resource would make
        # `helm install` fail with `no matches for kind "Installation"` before any CRD exists.
        self.release = chart_release(
            f"{name}-calico",
            config,
            release="calico",
            chart="tigera-operator",
            version=versions.CALICO_CHART_VERSION,
            repo=versions.CALICO_CHART_REPO,
            namespace=CALICO_NAMESPACE,
            create_namespace=True,
            values={
                "manageCRDs": True,
                "installation": {"enabled": False},
                "apiServer": {"enabled": False},
                "goldmane": {"enabled": False},
                "whisker": {"enabled": False},
                # The operator pod itself; the calico-node DaemonSet it deploys tolerates every taint.
                "tolerations": [{"operator": "Exists"}],
            },
            timeout=RELEASE_TIMEOUT_SECONDS,
            opts=opts,
        )
        # The custom resources come after the operator (Helm waits for its Deployment). A create
        # whose kind is not served yet is retried by pulumi-kubernetes for about 30 s, backing off,
        # which covers the moment between the operator starting and its CRDs being established.
        after_operator = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[self.release]))
        # The operator reconciles only the resources named "default".
        self.installation = k8s.apiextensions.CustomResource(
            f"{name}-calico-installation",
            api_version=CALICO_API_VERSION,
            kind="Installation",
            metadata=k8s.meta.v1.ObjectMetaArgs(name="default", labels=MANAGED_BY),
            spec=calico_installation_spec(config),
            opts=after_operator,
        )
        # Calico's API server (projectcalico.org/v3 through kubectl), as upstream installs it.
        self.api_server = k8s.apiextensions.CustomResource(
            f"{name}-calico-apiserver",
            api_version=CALICO_API_VERSION,
            kind="APIServer",
            metadata=k8s.meta.v1.ObjectMetaArgs(name="default", labels=MANAGED_BY),
            spec={},
            opts=after_operator,
        )


def calico_installation_spec(config: ClusterConfig) -> dict[str, Any]:
    """The spec of Calico's ``Installation`` (operator.tigera.io/v1): upstream's
    manifests/custom-resources.yaml with the cluster's pod range and a plain VXLAN overlay."""
    return {
        "calicoNetwork": {
            # Felix programs VXLAN routes itself: BGP (BIRD) is not needed, and with it on,
            # calico-node is not Ready until BGP sessions come up on TCP 179 between all nodes.
            "bgp": "Disabled",
            # The address the kubelet registers (kubeadm's node-ip), not the first interface found.
            "nodeAddressAutodetectionV4": {"kubernetes": "NodeInternalIP"},
            "ipPools": [
                {
                    "name": "default-ipv4-ippool",
                    # Must equal kubeadm's podSubnet (the operator checks pools against it).
                    "cidr": config.network.pod_cidr,
                    "blockSize": 26,
                    # VXLAN (UDP 4789) works on any L3 network (GCP VPC or the owner's servers);
                    # upstream's VXLANCrossSubnet leaves traffic within a subnet unencapsulated,
                    # which needs a network that forwards pod addresses (GCP's does not).
                    "encapsulation": "VXLAN",
                    "natOutgoing": "Enabled",
                    "nodeSelector": "all()",
                }
            ],
        },
        # As the chart's own Installation (its values.yaml): no Calico CSI driver, which only
        # serves application-layer policy.
        "kubeletVolumePluginPath": "None",
    }
