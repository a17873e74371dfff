"""The add-ons stage (components/addons) under Pulumi's mocks: what it registers, with which
inputs, in which order, and whether the built-in objects are valid Kubernetes 1.36 objects."""

from __future__ import annotations

from functools import cache
from typing import Any

import kubernetes_validate
import pytest

from components import versions
from components.addons.rook import ceph_profile
from components.nodes import GCP_STORAGE_DEVICE
from tests.addons_harness import NODE_READY_TYPE, Registered, Run, run_addons
from tests.addons_harness import plain as _plain

DAEMONSET = "kubernetes:apps/v1:DaemonSet"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SERVICE = "kubernetes:core/v1:Service"
SERVICE_ACCOUNT = "kubernetes:core/v1:ServiceAccount"
CLUSTER_ROLE_BINDING = "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding"
NODE_PATCH = "kubernetes:core/v1:NodePatch"
RELEASE = "kubernetes:helm.sh/v3:Release"
CEPH_CLUSTER = "kubernetes:ceph.rook.io/v1:CephCluster"
CEPH_POOL = "kubernetes:ceph.rook.io/v1:CephBlockPool"
STORAGE_CLASS = "kubernetes:storage.k8s.io/v1:StorageClass"
CP_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
BATCH_TAINT = {"key": "dedicated", "value": "batch", "effect": "NoSchedule"}
K8S_SCHEMA_VERSION = "1.36.0"

STACKS: dict[str, dict[str, Any]] = {
    # Defaults: weave, 1 control plane, pool "general" of 2 workers with storage disks.
    "default": {},
    "single-node": {"controlPlane": {"schedulable": True, "storageDiskSizeGb": 50}, "workerPools": []},
    "ha": {
        "controlPlane": {"count": 3},
        "network": {"podCidr": "10.200.0.0/16"},
        "workerPools": [
            {"name": "general", "count": 3, "storageDiskSizeGb": 100, "labels": {"tier": "general"}},
            {"name": "batch", "count": 2, "storageDiskSizeGb": 100, "labels": {"workload": "batch"},
             "taints": ["dedicated=batch:NoSchedule"]},
        ],
        "dashboard": {"kind": "kubernetes-dashboard", "adminServiceAccount": True},
    },
}


@cache
def run(stack: str, **overrides: Any) -> Run:
    return run_addons({**STACKS[stack], **overrides})


def run_with(stack: str, **overrides: Any) -> Run:
    return run_addons({**STACKS[stack], **overrides})


def container(resource: Registered, name: str, init: bool = False) -> dict[str, Any]:
    key = "initContainers" if init else "containers"
    found = [c for c in resource.get(f"spec.template.spec.{key}", []) if c["name"] == name]
    assert len(found) == 1, f"{resource.name}: expected one {key[:-1]} {name!r}, found {[c['name'] for c in resource.get(f'spec.template.spec.{key}', [])]}"
    return found[0]


def env_of(c: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c.get("env", [])}


def depends(run_: Run, resource: Registered, other_urn: str) -> bool:
    return other_urn in run_.waits_for(resource)


# --- structure ---------------------------------------------------------------------------------
@pytest.mark.parametrize("stack", list(STACKS))
def test_components_and_provider(stack: str) -> None:
    r = run(stack)
    addons = [x for x in r.resources if x.type == "kubeadm-cluster:index:Addons"]
    assert len(addons) == 1
    inside = r.descendants(addons[0].urn)
    tokens = {x.type for x in inside if not x.custom}
    assert {"kubeadm-cluster:index:Cni", "kubeadm-cluster:index:NodeTaints", "kubeadm-cluster:index:Dashboard",
            "kubeadm-cluster:index:RookCeph"} <= tokens, tokens
    # Every Kubernetes resource lives under the component and uses the given provider.
    k8s_resources = [x for x in r.resources if x.type.startswith("kubernetes:")]
    assert {x.urn for x in k8s_resources} <= {x.urn for x in inside}
    wrong = [x.name for x in k8s_resources if not x.provider.startswith(r.provider_urn + "::")]
    assert not wrong, f"not on the cluster's provider: {wrong}"


@pytest.mark.parametrize("stack", list(STACKS))
def test_only_preview_safe_resource_kinds(stack: str) -> None:
    """helm.v4.Chart and yaml/v2 fail previews while the kubeconfig is unknown (issue 3027)."""
    bad = [x.type for x in run(stack).resources
           if x.type.startswith(("kubernetes:helm.sh/v4", "kubernetes:yaml"))]
    assert not bad, bad


# --- CNI ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("stack", list(STACKS))
def test_weave_ipalloc_range_is_the_pod_cidr(stack: str) -> None:
    r = run(stack)
    ds = r.one(DAEMONSET, "weave-net")
    assert ds.get("metadata.namespace") == "kube-system"
    weave = container(ds, "weave")
    assert env_of(weave)["IPALLOC_RANGE"] == r.config.network.pod_cidr
    assert weave["image"] == versions.WEAVE_KUBE_IMAGE
    assert container(ds, "weave-npc")["image"] == versions.WEAVE_NPC_IMAGE
    assert container(ds, "weave-init", init=True)["image"] == versions.WEAVE_KUBE_IMAGE


def test_weave_runs_on_every_node_including_tainted_ones() -> None:
    r = run("ha")
    spec = r.one(DAEMONSET, "weave-net").get("spec.template.spec")
    assert spec["hostNetwork"] is True
    assert spec["serviceAccountName"] == "weave-net"
    assert {"operator": "Exists"} in spec["tolerations"], spec["tolerations"]
    for kind in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"):
        found = [x for x in r.resources if x.get("kind") == kind and x.k8s_name == "weave-net"]
        assert len(found) == 1, f"weave-net {kind}: {len(found)}"


def test_flannel_replaces_weave() -> None:
    r = run_with("default", cni="flannel", network={"podCidr": "10.244.0.0/16"})
    assert not r.of_type(DAEMONSET), "weave must not be installed with flannel"
    release = r.one(RELEASE, "flannel")
    assert release.get("chart") == "flannel"
    assert release.get("version") == versions.FLANNEL_CHART_VERSION
    assert release.get("repositoryOpts.repo") == versions.FLANNEL_CHART_REPO
    assert release.get("values.podCidr") == "10.244.0.0/16"


def test_calico_replaces_weave() -> None:
    r = run_with("default", cni="calico", network={"podCidr": "192.168.0.0/16"})
    assert not r.of_type(DAEMONSET)
    release = r.one(RELEASE, "calico")
    assert release.get("chart") == "tigera-operator"
    assert release.get("version") == versions.CALICO_CHART_VERSION
    assert release.get("repositoryOpts.repo") == versions.CALICO_CHART_REPO
    # The pod range reaches Calico through the operator's Installation (tests/test_upstream_cni.py).
    installation = [x for x in r.resources if x.type == "kubernetes:operator.tigera.io/v1:Installation"]
    assert len(installation) == 1
    assert installation[0].get("spec.calicoNetwork.ipPools.0.cidr") == "192.168.0.0/16"


def test_helm_repository_mirror_is_used() -> None:
    mirror = "https://charts.example.com/rook"
    r = run_with("default", mirrors={"helmRepositories": {versions.ROOK_CHART_REPO: mirror}})
    assert r.one(RELEASE, "rook-ceph").get("repositoryOpts.repo") == mirror


# --- node labels and taints --------------------------------------------------------------------
def patches(r: Run) -> dict[str, Registered]:
    return {p.k8s_name: p for p in r.of_type(NODE_PATCH)}


@pytest.mark.parametrize("stack", list(STACKS))
def test_one_forced_patch_per_node_after_its_node_is_ready(stack: str) -> None:
    r = run(stack)
    found = patches(r)
    assert sorted(found) == sorted(n.name for n in r.nodes)
    for name, patch in found.items():
        assert patch.get("metadata.annotations") == {
            "pulumi.com/patchForce": "true", "pulumi.com/patchFieldManager": "kubeadm-cluster"}
        assert "taints" in patch.get("spec", {}), f"{name}: the complete taint list must always be sent"
        assert depends(r, patch, r.ready_urns[name]), f"NodePatch {name} does not wait for its node"
        others = [u for n, u in r.ready_urns.items() if n != name]
        assert not any(depends(r, patch, u) for u in others), f"NodePatch {name} waits for other nodes"


def test_control_plane_taint_kept_when_not_schedulable() -> None:
    for stack in ("default", "ha"):
        r = run(stack)
        for node in r.nodes:
            if node.is_control_plane:
                assert patches(r)[node.name].get("spec.taints") == [CP_TAINT], node.name


def test_control_plane_taint_removed_when_schedulable() -> None:
    r = run("single-node")
    assert patches(r)["dev-cp-0"].get("spec.taints") == []
    r3 = run_with("ha", controlPlane={"count": 3, "schedulable": True})
    assert [patches(r3)[f"dev-cp-{i}"].get("spec.taints") for i in range(3)] == [[], [], []]


def test_pool_labels_and_taints() -> None:
    found = patches(run("ha"))
    for i in range(2):
        assert found[f"dev-batch-{i}"].get("spec.taints") == [BATCH_TAINT]
        assert found[f"dev-batch-{i}"].get("metadata.labels") == {"workload": "batch"}
    for i in range(3):
        assert found[f"dev-general-{i}"].get("spec.taints") == []
        assert found[f"dev-general-{i}"].get("metadata.labels") == {"tier": "general"}
    assert found["dev-cp-0"].get("metadata.labels") is None


# --- dashboard ---------------------------------------------------------------------------------
def test_dashboard_is_cluster_ip_only_and_admin_sa_only_when_asked() -> None:
    plain, admin = run("default"), run("ha")
    for r in (plain, admin):
        services = r.of_type(SERVICE)
        assert services, "no dashboard Service"
        assert all(s.get("spec.type") == "ClusterIP" for s in services), [s.get("spec.type") for s in services]
        deployment = r.one(DEPLOYMENT, "kubernetes-dashboard")
        assert container(deployment, "kubernetes-dashboard")["image"] == versions.DASHBOARD_IMAGE
    assert "dashboard-admin" not in [s.k8s_name for s in plain.of_type(SERVICE_ACCOUNT)]
    assert not [b for b in plain.of_type(CLUSTER_ROLE_BINDING) if b.get("roleRef.name") == "cluster-admin"]
    sa = admin.one(SERVICE_ACCOUNT, "dashboard-admin")
    assert sa.get("metadata.namespace") == "kubernetes-dashboard"
    bindings = [b for b in admin.of_type(CLUSTER_ROLE_BINDING) if b.get("roleRef.name") == "cluster-admin"]
    assert len(bindings) == 1
    assert bindings[0].get("subjects") == [
        {"kind": "ServiceAccount", "name": "dashboard-admin", "namespace": "kubernetes-dashboard"}]


def test_dashboard_access_instructions() -> None:
    text = run("ha").outputs["dashboard_access"]
    assert "kubectl proxy" in text
    assert "http://localhost:8001/api/v1/namespaces/kubernetes-dashboard/services/https:kubernetes-dashboard:/proxy/" in text
    assert "kubectl -n kubernetes-dashboard create token dashboard-admin --duration=1h" in text
    assert "create token" in run("default").outputs["dashboard_access"]


def test_headlamp() -> None:
    r = run_with("default", dashboard={"kind": "headlamp", "adminServiceAccount": True})
    assert not r.of_type(DEPLOYMENT), "headlamp must not install the Kubernetes Dashboard"
    release = r.one(RELEASE, "headlamp")
    assert release.get("version") == versions.HEADLAMP_CHART_VERSION
    assert release.get("repositoryOpts.repo") == versions.HEADLAMP_CHART_REPO
    assert release.get("values.service.type") == "ClusterIP"
    assert release.get("values.clusterRoleBinding.create") is False
    assert r.one(SERVICE_ACCOUNT, "dashboard-admin").get("metadata.namespace") == "headlamp"
    assert "kubectl -n headlamp create token dashboard-admin --duration=1h" in r.outputs["dashboard_access"]


def test_dashboard_disabled() -> None:
    r = run_with("default", dashboard={"enabled": False})
    assert not [x for x in r.resources if x.type == "kubeadm-cluster:index:Dashboard"]
    assert not r.of_type(DEPLOYMENT) and not r.of_type(SERVICE)
    assert r.outputs["dashboard_access"] == ""


# --- Rook-Ceph ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("stack", "storage_nodes", "mons", "multi", "size"),
    [("default", 2, 3, True, 2), ("single-node", 1, 1, True, 1), ("ha", 5, 3, False, 3)],
)
def test_ceph_sizing(stack: str, storage_nodes: int, mons: int, multi: bool, size: int) -> None:
    r = run(stack)
    assert r.config.storage_node_count == storage_nodes
    spec = r.one(CEPH_CLUSTER, "rook-ceph").get("spec")
    assert spec["mon"] == {"count": mons, "allowMultiplePerNode": multi}
    assert spec["mgr"]["count"] == ceph_profile(storage_nodes).mgr_count
    assert spec["cephVersion"]["image"] == versions.CEPH_IMAGE
    assert spec["dataDirHostPath"] == "/var/lib/rook"
    pool = r.one(CEPH_POOL, "replicapool").get("spec")
    assert pool["failureDomain"] == "host"
    assert pool["replicated"] == {"size": size, "requireSafeReplicaSize": size > 1}
    single = spec.get("cephConfig", {}).get("global", {}).get("osd_pool_default_size")
    assert single == ("1" if size == 1 else "2" if size == 2 else None)


@pytest.mark.parametrize("stack", list(STACKS))
def test_ceph_uses_only_the_storage_disks(stack: str) -> None:
    r = run(stack)
    storage = r.one(CEPH_CLUSTER, "rook-ceph").get("spec.storage")
    assert storage["useAllNodes"] is False and storage["useAllDevices"] is False
    expected = [{"name": n.name, "devices": [{"name": n.storage_device}]} for n in r.nodes if n.storage_device]
    assert storage["nodes"] == expected
    assert all(d["devices"][0]["name"] == GCP_STORAGE_DEVICE for d in storage["nodes"])
    no_disk = {n.name for n in r.nodes if not n.storage_device}
    assert not no_disk & {d["name"] for d in storage["nodes"]}, "a node without a storage disk got an OSD"


def test_ceph_and_csi_tolerate_the_pool_taints() -> None:
    r = run("ha")
    toleration = {"key": "dedicated", "operator": "Equal", "value": "batch", "effect": "NoSchedule"}
    assert toleration in r.one(CEPH_CLUSTER, "rook-ceph").get("spec.placement.all.tolerations")
    # The CSI driver comes from the ceph-csi-drivers chart since Rook v1.20 (tests/test_upstream_rook.py).
    drivers = r.one(RELEASE, "ceph-csi-drivers")
    assert toleration in drivers.get("values.drivers.rbd.nodePlugin.tolerations")
    assert toleration in drivers.get("values.drivers.rbd.controllerPlugin.tolerations")
    release = r.one(RELEASE, "rook-ceph")
    assert toleration in release.get("values.tolerations")
    assert release.get("chart") == "rook-ceph" and release.get("version") == versions.ROOK_CHART_VERSION
    assert release.get("repositoryOpts.repo") == versions.ROOK_CHART_REPO
    assert release.get("namespace") == "rook-ceph"


@pytest.mark.parametrize("stack", list(STACKS))
def test_default_storage_class(stack: str) -> None:
    r = run(stack)
    sc = r.one(STORAGE_CLASS, "rook-ceph-block")
    assert sc.get("metadata.annotations") == {"storageclass.kubernetes.io/is-default-class": "true"}
    assert sc.get("provisioner") == "rook-ceph.rbd.csi.ceph.com"
    assert sc.get("reclaimPolicy") == "Delete" and sc.get("allowVolumeExpansion") is True
    params = sc.get("parameters")
    assert params["clusterID"] == "rook-ceph" and params["pool"] == "replicapool"
    assert params["imageFormat"] == "2" and params["imageFeatures"] == "layering"
    assert params["csi.storage.k8s.io/fstype"] == "ext4"
    for step, secret in (("provisioner", "rook-csi-rbd-provisioner"), ("controller-expand", "rook-csi-rbd-provisioner"),
                         ("node-stage", "rook-csi-rbd-node")):
        assert params[f"csi.storage.k8s.io/{step}-secret-name"] == secret
        assert params[f"csi.storage.k8s.io/{step}-secret-namespace"] == "rook-ceph"
    assert r.outputs["storage_class"] == "rook-ceph-block"


def test_rook_disabled() -> None:
    r = run_with("default", rook={"enabled": False})
    assert not [x for x in r.resources if "ceph" in x.type or x.type == STORAGE_CLASS]
    assert not [x for x in r.of_type(RELEASE) if x.get("chart") in ("rook-ceph", "ceph-csi-drivers")]
    assert r.outputs["storage_class"] == ""


# --- order -------------------------------------------------------------------------------------
@pytest.mark.parametrize("stack", list(STACKS))
def test_dependencies(stack: str) -> None:
    r = run(stack)
    operator = r.one(RELEASE, "rook-ceph")
    for type_, name in ((CEPH_CLUSTER, "rook-ceph"), (CEPH_POOL, "replicapool"), (STORAGE_CLASS, "rook-ceph-block")):
        assert depends(r, r.one(type_, name), operator.urn), f"{name} does not wait for the Rook operator"
    assert depends(r, r.one(CEPH_POOL, "replicapool"), r.one(CEPH_CLUSTER, "rook-ceph").urn)
    weave = r.one(DAEMONSET, "weave-net")
    first_cp = r.ready_urns["dev-cp-0"]
    assert depends(r, weave, first_cp), "the CNI does not wait for kubeadm init"
    for workload in (operator, r.one(DEPLOYMENT, "kubernetes-dashboard"), r.one(DEPLOYMENT, "dashboard-metrics-scraper")):
        assert depends(r, workload, weave.urn), f"{workload.name} does not wait for the CNI"
        for patch in r.of_type(NODE_PATCH):
            assert depends(r, workload, patch.urn), f"{workload.name} does not wait for {patch.name}"
    # The CNI must not wait for workers: they only become Ready once it runs.
    workers = [r.ready_urns[n.name] for n in r.nodes if not n.is_control_plane]
    assert not any(depends(r, weave, u) for u in workers)


def test_dashboard_waits_for_flannel_release() -> None:
    r = run_with("default", cni="flannel")
    flannel = r.one(RELEASE, "flannel")
    assert depends(r, r.one(DEPLOYMENT, "kubernetes-dashboard"), flannel.urn)
    assert depends(r, r.one(RELEASE, "rook-ceph"), flannel.urn)


# --- schemas -----------------------------------------------------------------------------------
def _is_builtin(resource: Registered) -> bool:
    api_version = str(resource.inputs.get("apiVersion", ""))
    group = api_version.split("/")[0] if "/" in api_version else ""
    return bool(api_version) and (group == "" or "." not in group or group.endswith(".k8s.io"))


VARIANTS: list[dict[str, Any]] = [
    *STACKS.values(),
    {**STACKS["default"], "cni": "flannel", "dashboard": {"kind": "headlamp", "adminServiceAccount": True}},
]


@pytest.mark.parametrize("variant", range(len(VARIANTS)))
def test_builtin_objects_match_the_kubernetes_schema(variant: int) -> None:
    r = run_addons(VARIANTS[variant])
    checked = 0
    failures = []
    for resource in r.resources:
        if not resource.type.startswith("kubernetes:") or not _is_builtin(resource):
            continue
        manifest = _plain(resource.inputs)
        try:
            kubernetes_validate.validate(manifest, K8S_SCHEMA_VERSION, strict=True)
        except kubernetes_validate.ValidationError as err:
            where = "/".join(str(p) for p in err.absolute_path)
            failures.append(f"{resource.type} {resource.name}: {err.message} at {where}")
        checked += 1
    assert not failures, "\n".join(failures)
    assert checked >= 3


def test_schema_validation_catches_mistakes() -> None:
    bad = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}, "spec": {"tpye": "ClusterIP"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_SCHEMA_VERSION, strict=True)


# The CephCluster and CephBlockPool are validated against Rook's own CRDs (openAPI schema) in
# tests/test_upstream_rook.py.


def test_images_and_charts_are_pinned_in_versions() -> None:
    pinned = {v for k, v in vars(versions).items() if k.isupper() and isinstance(v, str)}
    for variant in VARIANTS:
        r = run_addons(variant)
        for resource in r.resources:
            spec = resource.get("spec.template.spec") or {}
            for c in [*spec.get("containers", []), *spec.get("initContainers", [])]:
                assert c["image"] in pinned, f"{resource.name}: image {c['image']} is not from components/versions.py"
            if resource.type == RELEASE:
                assert resource.get("version") in pinned, f"{resource.name}: chart version not pinned"


def test_preview_builds_the_same_resources() -> None:
    """A preview of a new stack (unknown kubeconfig) registers the same add-ons."""
    up, preview = run("ha"), run_addons(STACKS["ha"], preview=True)
    assert sorted((x.type, x.name) for x in preview.resources) == sorted((x.type, x.name) for x in up.resources)
    assert len([x for x in preview.resources if x.type == NODE_READY_TYPE]) == len(preview.nodes)
