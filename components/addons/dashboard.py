"""The web UI, never exposed: a ClusterIP Service reached through ``kubectl proxy``/port-forward.

kind ``kubernetes-dashboard`` installs Kubernetes Dashboard **v2.7.0** (its
``recommended.yaml``) as typed resources. Why v2.7.0 and not the archived 7.x line:

* v2.7.0 is the last *self-contained* release: one image serves the UI and the API over
  HTTPS (self-signed, ``--auto-generate-certificates``) with token login, plus the optional
  metrics-scraper. Its whole install is ~12 plain objects we can own and review.
* 7.x (final chart 7.14.0) splits into dashboard-api, -web, -auth and metrics-scraper and
  only works behind Kong, whose DB-less routing config, TLS and image the chart also
  generated. Its Helm repo is gone (404) and the chart cannot be used with helm.v3.Release
  from the original source; owning it means owning an unmaintained Kong gateway too.
* Both lines are archived (no security fixes either way); the exposure is bounded by
  never publishing the Service and by logging in with short-lived tokens. Headlamp
  (kind ``headlamp``) is the maintained successor and the better choice for new stacks.
* v2.7.0 still speaks ``batch/v1beta1`` for CronJobs in two places (its
  ``resource/cronjob/jobs.go`` and the ``cronjob`` entry of the resource verber in
  ``api/types.go``); the API server has served no ``batch/v1beta1`` since Kubernetes 1.25, so
  on 1.35/1.36 a CronJob's page cannot list the CronJob's Jobs, and editing, viewing as YAML or
  deleting a CronJob from the UI fails with 404. Listing CronJobs, their details and "Trigger"
  use ``batch/v1`` and work (tests/upstream/dashboard).

The objects are those of v2.7.0's ``aio/deploy/recommended.yaml`` (compared in
tests/test_upstream_dashboard.py), with three deliberate differences: the toleration names the
control-plane taint (``node-role.kubernetes.io/master``, which upstream tolerates, is gone since
1.25), the containers drop every capability and the pod runs as non-root (upstream's
``runAsUser: 1001`` already does), and ``imagePullPolicy: IfNotPresent`` for the pinned tag (so a
registry mirror or a pre-pulled image serves every restart).

kind ``headlamp`` installs the Headlamp chart with ``service.type: ClusterIP`` and without
the chart's cluster-admin binding of its own ServiceAccount (users log in with a token).
When every node is tainted (a non-schedulable control plane and tainted-only pools) Headlamp
tolerates the control-plane taint, as the Dashboard always does; otherwise it keeps the chart's
default (no tolerations).

With ``adminServiceAccount`` a ServiceAccount bound to ``cluster-admin`` is created; the
access instructions mint a one-hour token for it (``kubectl create token``), never a
long-lived Secret token.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components import versions
from components.addons.common import (
    CONTROL_PLANE_TAINT,
    MANAGED_BY,
    chart_release,
    toleration_values,
    tolerations,
)
from components.config import ClusterConfig, Taint

DASHBOARD_NAMESPACE = "kubernetes-dashboard"
DASHBOARD_NAME = "kubernetes-dashboard"
SCRAPER_NAME = "dashboard-metrics-scraper"
HEADLAMP_NAMESPACE = "headlamp"
HEADLAMP_NAME = "headlamp"
ADMIN_SERVICE_ACCOUNT = "dashboard-admin"
TOKEN_DURATION = "1h"


def access_instructions(config: ClusterConfig) -> str:
    """How to open the UI and log in: the text of the ``dashboardAccess`` output."""
    dash = config.dashboard
    if not dash.enabled:
        return ""
    if dash.kind == "kubernetes-dashboard":
        ns, svc = DASHBOARD_NAMESPACE, DASHBOARD_NAME
        lines = [
            "Kubernetes Dashboard v2.7.0 (ClusterIP only, never exposed). Open it through the API server:",
            "  kubectl proxy",
            f"  open http://localhost:8001/api/v1/namespaces/{ns}/services/https:{svc}:/proxy/",
            "or with a port-forward (self-signed certificate):",
            f"  kubectl -n {ns} port-forward svc/{svc} 8443:443   # then https://localhost:8443/",
            "Known gap: v2.7.0 reads CronJobs' Jobs and edits/deletes CronJobs through batch/v1beta1,",
            "gone since Kubernetes 1.25 (404). Use kubectl for those, or dashboard.kind headlamp.",
        ]
    else:
        ns, svc = HEADLAMP_NAMESPACE, HEADLAMP_NAME
        lines = [
            "Headlamp (ClusterIP only, never exposed). Open it with a port-forward:",
            f"  kubectl -n {ns} port-forward svc/{svc} 8080:80   # then http://localhost:8080/",
            "or through the API server:",
            "  kubectl proxy",
            f"  open http://localhost:8001/api/v1/namespaces/{ns}/services/http:{svc}:80/proxy/",
        ]
    if dash.admin_service_account:
        lines += [
            f"Log in with a short-lived token of the cluster-admin ServiceAccount {ADMIN_SERVICE_ACCOUNT}:",
            f"  kubectl -n {ns} create token {ADMIN_SERVICE_ACCOUNT} --duration={TOKEN_DURATION}",
        ]
    else:
        lines += [
            "Log in with a short-lived token of a ServiceAccount you have granted the rights you need:",
            f"  kubectl -n NAMESPACE create token SERVICE_ACCOUNT --duration={TOKEN_DURATION}",
            "(or set kubeadm-cluster:dashboard.adminServiceAccount true for a cluster-admin one)",
        ]
    return "\n".join(lines)


class Dashboard(pulumi.ComponentResource):
    """Kubernetes Dashboard v2.7.0 or Headlamp, ClusterIP only, optional admin ServiceAccount."""

    namespace: str
    service_name: str
    access: str

    def __init__(
        self,
        name: str,
        config: ClusterConfig,
        after: Sequence[pulumi.Resource] = (),
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("kubeadm-cluster:index:Dashboard", name, None, opts)
        child = pulumi.ResourceOptions(parent=self, depends_on=list(after))
        if config.dashboard.kind == "kubernetes-dashboard":
            self.namespace, self.service_name = DASHBOARD_NAMESPACE, DASHBOARD_NAME
            installed: list[pulumi.Resource] = self._kubernetes_dashboard(name, child)
        else:
            self.namespace, self.service_name = HEADLAMP_NAMESPACE, HEADLAMP_NAME
            installed = self._headlamp(name, config, child)
        if config.dashboard.admin_service_account:
            self._admin(name, child, installed)
        self.access = access_instructions(config)
        self.register_outputs({"namespace": self.namespace, "service": self.service_name})

    def _admin(self, name: str, opts: pulumi.ResourceOptions, installed: list[pulumi.Resource]) -> None:
        after = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=installed))
        sa = k8s.core.v1.ServiceAccount(
            f"{name}-admin-sa",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=ADMIN_SERVICE_ACCOUNT, namespace=self.namespace, labels=MANAGED_BY),
            # No token Secret: tokens are minted on demand with `kubectl create token` (1h).
            automount_service_account_token=False,
            opts=after,
        )
        k8s.rbac.v1.ClusterRoleBinding(
            f"{name}-admin-binding",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=f"{self.namespace}-{ADMIN_SERVICE_ACCOUNT}", labels=MANAGED_BY),
            role_ref=k8s.rbac.v1.RoleRefArgs(api_group="rbac.authorization.k8s.io", kind="ClusterRole", name="cluster-admin"),
            subjects=[
                k8s.rbac.v1.SubjectArgs(kind="ServiceAccount", name=ADMIN_SERVICE_ACCOUNT, namespace=self.namespace)
            ],
            opts=pulumi.ResourceOptions.merge(after, pulumi.ResourceOptions(depends_on=[sa])),
        )

    # --- Kubernetes Dashboard v2.7.0 (aio/deploy/recommended.yaml as typed resources) -------
    def _kubernetes_dashboard(self, name: str, opts: pulumi.ResourceOptions) -> list[pulumi.Resource]:
        ns_name = DASHBOARD_NAMESPACE
        labels = {"k8s-app": DASHBOARD_NAME, **MANAGED_BY}
        namespace = k8s.core.v1.Namespace(
            f"{name}-namespace", metadata=k8s.meta.v1.ObjectMetaArgs(name=ns_name, labels=MANAGED_BY), opts=opts
        )
        in_ns = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[namespace]))

        def meta(object_name: str, object_labels: dict[str, str] | None = None) -> k8s.meta.v1.ObjectMetaArgs:
            return k8s.meta.v1.ObjectMetaArgs(name=object_name, namespace=ns_name, labels=object_labels or labels)

        sa = k8s.core.v1.ServiceAccount(f"{name}-sa", metadata=meta(DASHBOARD_NAME), opts=in_ns)
        service = k8s.core.v1.Service(
            f"{name}-service",
            metadata=meta(DASHBOARD_NAME),
            spec=k8s.core.v1.ServiceSpecArgs(
                type="ClusterIP",
                ports=[k8s.core.v1.ServicePortArgs(port=443, target_port=8443, protocol="TCP")],
                selector={"k8s-app": DASHBOARD_NAME},
            ),
            opts=in_ns,
        )
        certs = k8s.core.v1.Secret(
            f"{name}-certs", metadata=meta("kubernetes-dashboard-certs"), type="Opaque", opts=in_ns
        )
        csrf = k8s.core.v1.Secret(
            f"{name}-csrf", metadata=meta("kubernetes-dashboard-csrf"), type="Opaque", data={"csrf": ""}, opts=in_ns
        )
        key_holder = k8s.core.v1.Secret(
            f"{name}-key-holder", metadata=meta("kubernetes-dashboard-key-holder"), type="Opaque", opts=in_ns
        )
        settings = k8s.core.v1.ConfigMap(f"{name}-settings", metadata=meta("kubernetes-dashboard-settings"), opts=in_ns)
        role = k8s.rbac.v1.Role(
            f"{name}-role",
            metadata=meta(DASHBOARD_NAME),
            rules=[
                # The dashboard's own secrets (key holder, certificates, CSRF token).
                k8s.rbac.v1.PolicyRuleArgs(
                    api_groups=[""],
                    resources=["secrets"],
                    resource_names=[
                        "kubernetes-dashboard-key-holder",
                        "kubernetes-dashboard-certs",
                        "kubernetes-dashboard-csrf",
                    ],
                    verbs=["get", "update", "delete"],
                ),
                k8s.rbac.v1.PolicyRuleArgs(
                    api_groups=[""],
                    resources=["configmaps"],
                    resource_names=["kubernetes-dashboard-settings"],
                    verbs=["get", "update"],
                ),
                # Metrics from the scraper.
                k8s.rbac.v1.PolicyRuleArgs(
                    api_groups=[""], resources=["services"], resource_names=["heapster", SCRAPER_NAME], verbs=["proxy"]
                ),
                k8s.rbac.v1.PolicyRuleArgs(
                    api_groups=[""],
                    resources=["services/proxy"],
                    resource_names=["heapster", "http:heapster:", "https:heapster:", SCRAPER_NAME, f"http:{SCRAPER_NAME}"],
                    verbs=["get"],
                ),
            ],
            opts=in_ns,
        )
        cluster_role = k8s.rbac.v1.ClusterRole(
            f"{name}-clusterrole",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=DASHBOARD_NAME, labels=labels),
            rules=[
                k8s.rbac.v1.PolicyRuleArgs(
                    api_groups=["metrics.k8s.io"], resources=["pods", "nodes"], verbs=["get", "list", "watch"]
                )
            ],
            opts=opts,
        )
        subject = k8s.rbac.v1.SubjectArgs(kind="ServiceAccount", name=DASHBOARD_NAME, namespace=ns_name)
        role_binding = k8s.rbac.v1.RoleBinding(
            f"{name}-rolebinding",
            metadata=meta(DASHBOARD_NAME),
            role_ref=k8s.rbac.v1.RoleRefArgs(api_group="rbac.authorization.k8s.io", kind="Role", name=DASHBOARD_NAME),
            subjects=[subject],
            opts=pulumi.ResourceOptions.merge(in_ns, pulumi.ResourceOptions(depends_on=[sa, role])),
        )
        cluster_role_binding = k8s.rbac.v1.ClusterRoleBinding(
            f"{name}-clusterrolebinding",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=DASHBOARD_NAME, labels=labels),
            role_ref=k8s.rbac.v1.RoleRefArgs(
                api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=DASHBOARD_NAME
            ),
            subjects=[subject],
            opts=pulumi.ResourceOptions.merge(in_ns, pulumi.ResourceOptions(depends_on=[sa, cluster_role])),
        )
        restricted = k8s.core.v1.SecurityContextArgs(
            allow_privilege_escalation=False,
            read_only_root_filesystem=True,
            run_as_user=1001,
            run_as_group=2001,
            capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
        )
        pod_security = k8s.core.v1.PodSecurityContextArgs(
            run_as_non_root=True, seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault")
        )
        # Like upstream (which tolerated the old master taint): may run on a control plane, so the
        # UI fits even when every node is tainted (the control plane carries no other taint).
        control_plane = tolerations([CONTROL_PLANE_TAINT])

        def one_pod(
            app: str, container: k8s.core.v1.ContainerArgs, volumes: list[k8s.core.v1.VolumeArgs]
        ) -> k8s.apps.v1.DeploymentSpecArgs:
            """One replica of ``container`` (label ``k8s-app: app``) as the Dashboard's
            ServiceAccount, on Linux, restricted, allowed on a control plane: both upstream pods."""
            return k8s.apps.v1.DeploymentSpecArgs(
                replicas=1,
                revision_history_limit=10,
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels={"k8s-app": app}),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels={"k8s-app": app}),
                    spec=k8s.core.v1.PodSpecArgs(
                        service_account_name=DASHBOARD_NAME,
                        security_context=pod_security,
                        node_selector={"kubernetes.io/os": "linux"},
                        tolerations=control_plane,
                        containers=[container],
                        volumes=volumes,
                    ),
                ),
            )

        tmp_volume = k8s.core.v1.VolumeArgs(name="tmp-volume", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs())
        deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=meta(DASHBOARD_NAME),
            spec=one_pod(
                DASHBOARD_NAME,
                k8s.core.v1.ContainerArgs(
                    name=DASHBOARD_NAME,
                    image=versions.DASHBOARD_IMAGE,
                    image_pull_policy="IfNotPresent",
                    args=["--auto-generate-certificates", f"--namespace={ns_name}"],
                    ports=[k8s.core.v1.ContainerPortArgs(container_port=8443, protocol="TCP")],
                    volume_mounts=[
                        k8s.core.v1.VolumeMountArgs(name="kubernetes-dashboard-certs", mount_path="/certs"),
                        k8s.core.v1.VolumeMountArgs(name="tmp-volume", mount_path="/tmp"),
                    ],
                    liveness_probe=k8s.core.v1.ProbeArgs(
                        http_get=k8s.core.v1.HTTPGetActionArgs(scheme="HTTPS", path="/", port=8443),
                        initial_delay_seconds=30,
                        timeout_seconds=30,
                    ),
                    security_context=restricted,
                ),
                [
                    k8s.core.v1.VolumeArgs(
                        name="kubernetes-dashboard-certs",
                        secret=k8s.core.v1.SecretVolumeSourceArgs(secret_name="kubernetes-dashboard-certs"),
                    ),
                    tmp_volume,
                ],
            ),
            opts=pulumi.ResourceOptions.merge(
                in_ns,
                pulumi.ResourceOptions(
                    depends_on=[sa, certs, csrf, key_holder, settings, role_binding, cluster_role_binding]
                ),
            ),
        )
        scraper_labels = {"k8s-app": SCRAPER_NAME, **MANAGED_BY}
        scraper_service = k8s.core.v1.Service(
            f"{name}-scraper-service",
            metadata=meta(SCRAPER_NAME, scraper_labels),
            spec=k8s.core.v1.ServiceSpecArgs(
                type="ClusterIP",
                ports=[k8s.core.v1.ServicePortArgs(port=8000, target_port=8000, protocol="TCP")],
                selector={"k8s-app": SCRAPER_NAME},
            ),
            opts=in_ns,
        )
        scraper = k8s.apps.v1.Deployment(
            f"{name}-scraper-deployment",
            metadata=meta(SCRAPER_NAME, scraper_labels),
            spec=one_pod(
                SCRAPER_NAME,
                k8s.core.v1.ContainerArgs(
                    name=SCRAPER_NAME,
                    image=versions.DASHBOARD_METRICS_SCRAPER_IMAGE,
                    ports=[k8s.core.v1.ContainerPortArgs(container_port=8000, protocol="TCP")],
                    liveness_probe=k8s.core.v1.ProbeArgs(
                        http_get=k8s.core.v1.HTTPGetActionArgs(scheme="HTTP", path="/", port=8000),
                        initial_delay_seconds=30,
                        timeout_seconds=30,
                    ),
                    volume_mounts=[k8s.core.v1.VolumeMountArgs(name="tmp-volume", mount_path="/tmp")],
                    security_context=restricted,
                ),
                [tmp_volume],
            ),
            opts=pulumi.ResourceOptions.merge(in_ns, pulumi.ResourceOptions(depends_on=[sa])),
        )
        return [namespace, service, deployment, scraper_service, scraper]

    # --- Headlamp -----------------------------------------------------------------------------
    def _headlamp(self, name: str, config: ClusterConfig, opts: pulumi.ResourceOptions) -> list[pulumi.Resource]:
        release = chart_release(
            f"{name}-headlamp",
            config,
            release=HEADLAMP_NAME,
            chart="headlamp",
            version=versions.HEADLAMP_CHART_VERSION,
            repo=versions.HEADLAMP_CHART_REPO,
            namespace=HEADLAMP_NAMESPACE,
            create_namespace=True,
            values=headlamp_values(config),
            opts=opts,
        )
        return [release]


def headlamp_values(config: ClusterConfig) -> dict[str, Any]:
    """Values of the Headlamp chart (keys checked against its values.yaml: tests/upstream/dashboard)."""
    values: dict[str, Any] = {
        "fullnameOverride": HEADLAMP_NAME,
        "service": {"type": "ClusterIP", "port": 80},
        # The chart binds cluster-admin to Headlamp's own ServiceAccount by default;
        # users log in with their own (short-lived) token instead.
        "clusterRoleBinding": {"create": False},
    }
    tolerated = ui_tolerations(config)
    if tolerated:
        values["tolerations"] = toleration_values(tolerated)
    return values


def ui_tolerations(config: ClusterConfig) -> list[Taint]:
    """What Headlamp tolerates: nothing while some node takes untolerating pods (the chart's
    default), else the control plane's taint, so it runs there as the Dashboard may. The control
    plane always exists and carries no other taint, so the UI always fits; the pools' taints stay
    untolerated (they dedicate nodes to other work)."""
    return [] if config.untainted_node_exists else [CONTROL_PLANE_TAINT]
