"""Rook-Ceph against upstream (tests/upstream/rook): the objects components/addons/rook.py
registers, held against Rook v1.20.6 and ceph-csi-operator v1.0.4 as they are (digests of their
files, tests/upstream/rook/SOURCES.yaml).

* Both charts: every value key exists in the chart's values.yaml (Helm ignores unknown keys
  silently: `csi.provisionerTolerations` was one), including the ceph-csi-operator subchart.
* The ceph-csi-drivers chart (required since Rook v1.20): installed, pinned to the release the
  rook-ceph chart's own CSI operator comes from, from the repository Rook documents, in the
  operator's namespace, after the operator and before the CephCluster, with Rook's recommended
  values and the RBD driver named as the StorageClass provisioner.
* The CephCluster, the CephBlockPool and the RBD Driver validate against their CRDs.
* Ceph as Rook v1.20.6 runs it: the image of its images.txt and cluster.yaml, the `rook` mgr
  module off, CSI cephx keys of the type kernels older than 7.0 can use.
* The StorageClass agrees with Rook's example (provisioner, clusterID, secrets).
* A cluster whose every node is tainted still schedules every Rook pod (a small model of the
  scheduler's taint check, over the tolerations each pod actually gets).
"""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest

from components import versions
from components.addons.common import desired_taints
from components.addons.rook import NAMESPACE
from components.config import Taint
from tests.addons_harness import Registered, Run, run_addons
from tests.addons_harness import plain as _plain
from tests.test_addons import STACKS
from tests.upstream_artifacts import (
    crd_problems,
    crd_schema,
    document,
    documents,
    facts,
    sources,
    unknown_value_keys,
)

AREA = "rook"
RELEASE = "kubernetes:helm.sh/v3:Release"
CEPH_CLUSTER = "kubernetes:ceph.rook.io/v1:CephCluster"
CEPH_POOL = "kubernetes:ceph.rook.io/v1:CephBlockPool"
STORAGE_CLASS = "kubernetes:storage.k8s.io/v1:StorageClass"
SUBCHART = "ceph-csi-operator"  # the alias of the rook-ceph chart's CSI operator dependency
DRIVERS_CHART = "ceph-csi-drivers"
#: The digests (tests/upstream/rook/SOURCES.yaml says of which upstream file).
OPERATOR_VALUES = "rook-ceph-values.digest.yaml"
SUBCHART_VALUES = "ceph-csi-operator-values.digest.yaml"
DRIVERS_VALUES = "ceph-csi-drivers-values.digest.yaml"
ROOK_DRIVERS_VALUES = "rook-ceph-csi-drivers-values.digest.yaml"
ROOK_CRDS = "crds-cephblockpool-cephcluster.digest.yaml"
DRIVER_CRD = "csi.ceph.io_drivers.digest.yaml"
STORAGE_CLASS_EXAMPLE = "rbd-storageclass.digest.yaml"

#: Every node tainted: the control plane keeps its taint, the only pool is tainted.
ALL_TAINTED: dict[str, Any] = {
    "controlPlane": {"schedulable": False},
    "workerPools": [
        {"name": "storage", "count": 3, "storageDiskSizeGb": 100, "taints": ["dedicated=storage:NoSchedule"]},
        {"name": "gpu", "count": 1, "taints": ["nvidia.com/gpu:NoExecute"]},
    ],
}
#: Every node tainted and the storage on the control plane alone.
ALL_TAINTED_CP_STORAGE: dict[str, Any] = {
    "controlPlane": {"schedulable": False, "storageDiskSizeGb": 50},
    "workerPools": [{"name": "batch", "count": 1, "taints": ["dedicated=batch:NoSchedule"]}],
}
RUN_STACKS: dict[str, dict[str, Any]] = {**STACKS, "all-tainted": ALL_TAINTED, "all-tainted-cp-storage": ALL_TAINTED_CP_STORAGE}


@cache
def run(stack: str) -> Run:
    return run_addons(RUN_STACKS[stack])


def _release(r: Run, chart: str) -> Registered:
    hint = (
        "; Rook v1.20's rook-ceph chart deploys no CSI driver, the ceph-csi-drivers chart is required "
        "(Rook's Documentation/Helm-Charts/csi-drivers-chart.md, tests/upstream/rook/csi-drivers-chart.digest.yaml)"
    )
    return r.release(chart, hint if chart == DRIVERS_CHART else "")


def _values(release: Registered) -> dict[str, Any]:
    return _plain(release.get("values") or {})


def _coalesce(defaults: Any, ours: Any) -> Any:
    """Helm's merge of user values over a chart's values.yaml: maps deeply, anything else replaced."""
    if isinstance(defaults, dict) and isinstance(ours, dict):
        merged = dict(defaults)
        for key, value in ours.items():
            merged[key] = _coalesce(defaults.get(key), value)
        return merged
    return ours


def _leaves(value: Any, path: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_leaves(item, f"{path}.{key}" if path else str(key)))
        return out
    return {path: value}


def _dependency(name: str) -> dict[str, Any]:
    deps = [d for d in document(AREA, "rook-ceph-Chart.digest.yaml")["dependencies"] if d.get("alias", d["name"]) == name]
    assert len(deps) == 1, f"rook-ceph's Chart.yaml has no dependency {name!r}"
    return deps[0]


# --- chart values ---------------------------------------------------------------------------------
@pytest.mark.parametrize("stack", list(RUN_STACKS))
def test_operator_chart_values_exist_in_the_chart(stack: str) -> None:
    values = _values(_release(run(stack), "rook-ceph"))
    upstream = document(AREA, OPERATOR_VALUES)
    unknown = unknown_value_keys({k: v for k, v in values.items() if k != SUBCHART}, upstream)
    # The subchart's values: its own values.yaml, with what rook-ceph's values.yaml sets for it.
    subchart = _coalesce(document(AREA, SUBCHART_VALUES), upstream[SUBCHART])
    unknown += [f"{SUBCHART}.{k}" for k in unknown_value_keys(values.get(SUBCHART, {}), subchart)]
    assert not unknown, (
        f"rook-ceph chart values that rook-ceph {versions.ROOK_CHART_VERSION} (or its {SUBCHART} subchart) does "
        f"not have, which Helm ignores silently: {unknown}"
    )


#: The value each drivers-chart template binds its variable to: (digest, fact, bound to, by range).
TEMPLATE_VARIABLES = {
    "operatorConfig": ("ceph-csi-drivers-operatorConfig.digest.yaml", "config", ".Values.operatorConfig", False),
    "drivers": ("ceph-csi-drivers-driver.digest.yaml", "driver", ".Values.drivers", True),
}


def _read_by_drivers_template(path: str) -> bool:
    """Whether a ceph-csi-drivers template reads a value key values.yaml does not list
    (operatorConfig.yaml binds ``$config`` to ``.Values.operatorConfig``; driver.yaml ranges
    ``$driver`` over ``.Values.drivers``): the template reads ``$var.<rest>`` or a path below it."""
    head, _, rest = path.partition(".")
    if head not in TEMPLATE_VARIABLES or (head == "drivers" and "." not in rest):
        return False
    file, fact, bound_to, by_range = TEMPLATE_VARIABLES[head]
    variable = facts(AREA, file)["template-refs"][fact]
    assert (variable["bound_to"], variable["range"]) == (bound_to, by_range), (
        f"{file}: {variable['variable']} is now bound to {variable['bound_to']} (range: {variable['range']})")
    ref = rest.partition(".")[2] if by_range else rest
    return any(read == ref or read.startswith(ref + ".") for read in variable["refs"])


@pytest.mark.parametrize("stack", list(RUN_STACKS))
def test_drivers_chart_values_exist_in_the_chart(stack: str) -> None:
    values = _values(_release(run(stack), DRIVERS_CHART))
    unknown = [
        key
        for key in unknown_value_keys(values, document(AREA, DRIVERS_VALUES))
        if not _read_by_drivers_template(key)
    ]
    assert not unknown, (
        f"ceph-csi-drivers values that chart {versions.CEPH_CSI_DRIVERS_CHART_VERSION} neither lists nor reads: {unknown}"
    )


def test_template_lookup_refuses_a_key_no_template_reads() -> None:
    assert _read_by_drivers_template("operatorConfig.driverSpecDefaults.controllerPlugin.priorityClassName")
    assert _read_by_drivers_template("drivers.rbd.nodePlugin.tolerations")
    assert not _read_by_drivers_template("operatorConfig.driverSpecDefaults.controllerPlugin.priorityClass")
    assert not _read_by_drivers_template("drivers.rbd.nodePlugin.toleration")


def test_drivers_chart_is_pinned_to_the_release_rook_ships_its_csi_operator_from() -> None:
    release = _release(run("default"), DRIVERS_CHART)
    assert release.get("version") == versions.CEPH_CSI_DRIVERS_CHART_VERSION
    assert release.get("repositoryOpts.repo") == versions.CEPH_CSI_CHART_REPO
    dependency = _dependency(SUBCHART)
    assert versions.CEPH_CSI_DRIVERS_CHART_VERSION == dependency["version"], (
        f"ceph-csi-drivers {versions.CEPH_CSI_DRIVERS_CHART_VERSION} but rook-ceph {versions.ROOK_CHART_VERSION} "
        f"installs ceph-csi-operator {dependency['version']}: both charts come from one ceph-csi-operator release"
    )
    assert versions.CEPH_CSI_CHART_REPO == dependency["repository"].rstrip("/")
    documented = [m["groups"][0] for m in facts(AREA, "csi-drivers-chart.digest.yaml")["lines"]["helm_repo_add"]]
    assert documented == [versions.CEPH_CSI_CHART_REPO], documented
    # The repository serves that version, packaged from the tag the values were read at.
    entries = document(AREA, "ceph-csi-operator-index.digest.yaml")["entries"][DRIVERS_CHART]
    served = {e["version"]: e for e in entries}
    assert versions.CEPH_CSI_DRIVERS_CHART_VERSION in served, f"the repository serves {sorted(served)}"
    tag = sources(AREA)[DRIVERS_VALUES].ref
    assert f"/releases/download/{tag}/" in served[versions.CEPH_CSI_DRIVERS_CHART_VERSION]["urls"][0]


@pytest.mark.parametrize("stack", list(RUN_STACKS))
def test_drivers_release_is_in_the_operator_namespace_with_rooks_values(stack: str) -> None:
    r = run(stack)
    release = _release(r, DRIVERS_CHART)
    assert release.get("namespace") == NAMESPACE == _release(r, "rook-ceph").get("namespace")
    doc = facts(AREA, "csi-drivers-chart.digest.yaml")["lines"]
    assert [m["groups"][0] for m in doc["helm_install"]] == [NAMESPACE], f"Rook installs the drivers chart: {doc['helm_install']}"
    assert doc["defaults_fail"], "Rook's docs no longer say the drivers fail with the chart's defaults"
    ours = _values(release)
    rook = document(AREA, ROOK_DRIVERS_VALUES)
    # Rook's recommended values (its docs: the drivers fail with the chart defaults), except for
    # the drivers this stack turns off (block storage only).
    off = {name for name, driver in ours.get("drivers", {}).items() if driver.get("enabled") is False}
    ours_leaves = _leaves(ours)
    differ = {
        path: (value, ours_leaves.get(path))
        for path, value in _leaves(rook).items()
        if path.split(".")[:2] not in [["drivers", name] for name in off] and ours_leaves.get(path) != value
    }
    assert not differ, f"differs from Rook's recommended ceph-csi-drivers values (path: (Rook's, ours)): {differ}"
    assert ours["drivers"]["rbd"]["enabled"] is True


@pytest.mark.parametrize("stack", list(RUN_STACKS))
def test_rbd_driver_name_is_the_storage_class_provisioner(stack: str) -> None:
    r = run(stack)
    merged = _coalesce(document(AREA, DRIVERS_VALUES), _values(_release(r, DRIVERS_CHART)))
    storage_class = r.one(STORAGE_CLASS, "rook-ceph-block")
    upstream_class = document(AREA, STORAGE_CLASS_EXAMPLE)
    assert upstream_class["kind"] == "StorageClass"
    assert merged["drivers"]["rbd"]["enabled"] is True
    assert merged["drivers"]["rbd"]["name"] == storage_class.get("provisioner") == upstream_class["provisioner"], (
        "the Driver the chart creates, the StorageClass provisioner and Rook's example must name the same driver"
    )


# --- order ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("stack", list(RUN_STACKS))
def test_install_order_operator_then_drivers_then_cluster(stack: str) -> None:
    r = run(stack)
    operator, drivers = _release(r, "rook-ceph"), _release(r, DRIVERS_CHART)
    cluster = r.one(CEPH_CLUSTER, "rook-ceph")
    assert operator.urn in r.waits_for(drivers), "ceph-csi-drivers needs the CRDs and image set of rook-ceph"
    assert drivers.urn in r.waits_for(cluster), "Rook's order: rook-ceph, ceph-csi-drivers, then the cluster"
    for resource in (r.one(CEPH_POOL, "replicapool"), r.one(STORAGE_CLASS, "rook-ceph-block")):
        assert drivers.urn in r.waits_for(resource), f"{resource.name} does not wait for the CSI drivers"


def test_no_drivers_without_rook() -> None:
    r = run_addons({"rook": {"enabled": False}})
    assert not [x for x in r.of_type(RELEASE) if x.get("chart") in ("rook-ceph", DRIVERS_CHART)]


def test_drivers_chart_repository_can_be_mirrored() -> None:
    mirror = "https://charts.example.com/ceph-csi"
    r = run_addons({"mirrors": {"helmRepositories": {versions.CEPH_CSI_CHART_REPO: mirror}}})
    assert _release(r, DRIVERS_CHART).get("repositoryOpts.repo") == mirror
    assert _release(r, "rook-ceph").get("repositoryOpts.repo") == versions.ROOK_CHART_REPO


# --- custom resources against their CRDs ----------------------------------------------------------
def _driver_from_values(values: dict[str, Any], name: str) -> dict[str, Any]:
    """The parts of the Driver the chart renders from ``drivers.<name>`` that this stack sets or
    that the chart always writes (tolerations), with the chart's defaults under ours."""
    merged = _coalesce(document(AREA, DRIVERS_VALUES), values)["drivers"][name]
    spec: dict[str, Any] = {}
    for plugin in ("nodePlugin", "controllerPlugin"):
        spec[plugin] = {"tolerations": merged[plugin]["tolerations"]}
        if merged[plugin].get("priorityClassName"):
            spec[plugin]["priorityClassName"] = merged[plugin]["priorityClassName"]
    return {"apiVersion": "csi.ceph.io/v1", "kind": "Driver", "metadata": {"name": merged["name"]}, "spec": spec}


@pytest.mark.parametrize("stack", list(RUN_STACKS))
def test_custom_resources_validate_against_their_crds(stack: str) -> None:
    r = run(stack)
    rook_crds = documents(AREA, ROOK_CRDS)
    problems: list[str] = []
    for type_, name, kind in ((CEPH_CLUSTER, "rook-ceph", "CephCluster"), (CEPH_POOL, "replicapool", "CephBlockPool")):
        resource = r.one(type_, name)
        crd = next(d for d in rook_crds if d["spec"]["names"]["kind"] == kind)
        assert resource.get("apiVersion") == f"{crd['spec']['group']}/v1" and resource.get("kind") == kind
        assert resource.get("metadata.namespace") == NAMESPACE, f"{kind} outside the operator's namespace"
        manifest = _plain({k: resource.inputs[k] for k in ("apiVersion", "kind", "metadata", "spec")})
        problems += [f"{kind}: {p}" for p in crd_problems(manifest, crd_schema(rook_crds, kind, "v1"))]
    # What the drivers chart turns our values into: the RBD Driver, and the OperatorConfig's
    # driverSpecDefaults (the same DriverSpec type, tests/upstream/rook/SOURCES.yaml).
    driver_schema = crd_schema(documents(AREA, DRIVER_CRD), "Driver", "v1")
    values = _values(_release(r, DRIVERS_CHART))
    problems += [f"Driver: {p}" for p in crd_problems(_driver_from_values(values, "rbd"), driver_schema)]
    defaults = values["operatorConfig"]["driverSpecDefaults"]
    as_driver = {"apiVersion": "csi.ceph.io/v1", "kind": "Driver", "metadata": {"name": "x"}, "spec": defaults}
    problems += [f"OperatorConfig.spec.driverSpecDefaults: {p}" for p in crd_problems(as_driver, driver_schema)]
    assert not problems, "\n".join(problems)


def test_crd_check_catches_a_wrong_field() -> None:
    schema = crd_schema(documents(AREA, ROOK_CRDS), "CephCluster", "v1")
    bad = {"apiVersion": "ceph.rook.io/v1", "kind": "CephCluster", "metadata": {"name": "x"},
           "spec": {"mgr": {"modules": [{"name": "rook", "enable": True}]}, "security": {"cephx": {"csi": {"keyType": "des"}}}}}
    problems = crd_problems(bad, schema)
    assert any("enable" in p for p in problems) and any("des" in p for p in problems), problems


def test_crd_check_refuses_what_the_digest_prunes() -> None:
    """Parts of a CRD the digest leaves out (`prune` in SOURCES.yaml) take no value: a resource
    that starts setting one fails until the part is put back, it never passes unchecked."""
    schema = crd_schema(documents(AREA, ROOK_CRDS), "CephCluster", "v1")
    pruned = {"apiVersion": "ceph.rook.io/v1", "kind": "CephCluster", "metadata": {"name": "x"},
              "spec": {"healthCheck": {"daemonHealth": {}}, "placement": {"all": {"nodeAffinity": {}}}}}
    problems = crd_problems(pruned, schema)
    assert len([p for p in problems if "the digest prunes this part" in p]) == 2, problems


# --- Ceph as Rook v1.20.6 runs it -----------------------------------------------------------------
def _upstream_cluster(fact: str) -> Any:
    """A value of Rook's example cluster.yaml (spec.cephVersion.image, spec.mgr.modules, spec.security.cephx)."""
    return facts(AREA, "cluster.digest.yaml")["yaml-paths"][fact]["value"]


def test_ceph_image_is_the_one_rook_pins() -> None:
    ceph = [m["groups"][0] for m in facts(AREA, "images.digest.yaml")["lines"]["ceph_images"]]
    assert versions.CEPH_IMAGE in ceph, f"CEPH_IMAGE {versions.CEPH_IMAGE} is not Rook's ({ceph})"
    assert versions.CEPH_IMAGE == _upstream_cluster("ceph_image")
    for stack in RUN_STACKS:
        assert run(stack).one(CEPH_CLUSTER, "rook-ceph").get("spec.cephVersion.image") == versions.CEPH_IMAGE


@pytest.mark.parametrize("stack", list(RUN_STACKS))
def test_rook_mgr_module_is_off(stack: str) -> None:
    modules = run(stack).one(CEPH_CLUSTER, "rook-ceph").get("spec.mgr.modules") or []
    assert not [m for m in modules if m["name"] == "rook" and m.get("enabled")], (
        "the rook mgr module is enabled: Rook v1.20.6 turns it off (mgr memory leak on Ceph v20.2.2, crash on "
        "v20.2.3/v20.2.4)"
    )
    upstream = [m for m in _upstream_cluster("mgr_modules") if m["name"] == "rook"]
    assert [m for m in modules if m["name"] == "rook"] == upstream, "listed off as in Rook's cluster.yaml"


@pytest.mark.parametrize("stack", list(RUN_STACKS))
def test_csi_cephx_keys_suit_kernels_older_than_7(stack: str) -> None:
    cephx = run(stack).one(CEPH_CLUSTER, "rook-ceph").get("spec.security.cephx") or {}
    upstream = _upstream_cluster("cephx")
    # the reason the setting exists upstream (its comment in cluster.yaml)
    assert facts(AREA, "cluster.digest.yaml")["lines"]["csi_key_type_reason"], "cluster.yaml's keyType comment changed"
    assert cephx.get("csi") == upstream["csi"] == {"keyType": "aes"}, (
        f"spec.security.cephx.csi is {cephx.get('csi')}: Rook's cluster.yaml sets {upstream['csi']} while the "
        "nodes' kernels are older than 7.0 (Ubuntu 24.04: 6.8; Debian 12: 6.1; Debian 13: 6.12)"
    )
    assert "allowedCiphers" not in cephx, "allowedCiphers [aes256k] is for nodes on Linux 7.0+"


@pytest.mark.parametrize("stack", list(RUN_STACKS))
def test_storage_class_agrees_with_rooks_example(stack: str) -> None:
    ours = run(stack).one(STORAGE_CLASS, "rook-ceph-block")
    upstream = document(AREA, STORAGE_CLASS_EXAMPLE)
    assert ours.get("provisioner") == upstream["provisioner"]
    params = ours.get("parameters")
    differ = {k: (v, params.get(k)) for k, v in upstream["parameters"].items() if params.get(k) != v}
    assert not differ, f"StorageClass parameters unlike Rook's example (parameter: (Rook's, ours)): {differ}"
    assert ours.get("reclaimPolicy") == upstream["reclaimPolicy"]
    assert ours.get("allowVolumeExpansion") == upstream["allowVolumeExpansion"]


# --- every node tainted ---------------------------------------------------------------------------
def _tolerates(tolerations: list[dict[str, Any]], taint: Taint) -> bool:
    """Kubernetes' rule (ToleratesTaint) for one taint."""
    for t in tolerations:
        if t.get("effect") and t["effect"] != taint.effect:
            continue
        operator = t.get("operator", "Equal")
        if operator == "Exists" and (not t.get("key") or t["key"] == taint.key):
            return True
        if operator == "Equal" and t.get("key") == taint.key and (t.get("value") or "") == (taint.value or ""):
            return True
    return False


def _fits(r: Run, tolerations: list[dict[str, Any]]) -> list[str]:
    """The nodes a pod with these tolerations may be scheduled on (taint-wise)."""
    return [
        node.name
        for node in r.nodes
        if all(_tolerates(tolerations, t) for t in desired_taints(node, r.config) if t.effect != "PreferNoSchedule")
    ]


@pytest.mark.parametrize("stack", list(RUN_STACKS))
def test_every_rook_pod_fits_a_node(stack: str) -> None:
    """What each pod really gets: Helm merges our values into the charts' defaults; the chart
    writes every Driver with its own tolerations, so the operator's driverSpecDefaults never fill them."""
    r = run(stack)
    operator = _coalesce(document(AREA, OPERATOR_VALUES), _values(_release(r, "rook-ceph")))
    subchart = _coalesce(document(AREA, SUBCHART_VALUES), operator[SUBCHART])
    drivers = _coalesce(document(AREA, DRIVERS_VALUES), _values(_release(r, DRIVERS_CHART)))
    rbd = drivers["drivers"]["rbd"]
    ceph = r.one(CEPH_CLUSTER, "rook-ceph").get("spec.placement.all.tolerations") or []
    pods = {
        "rook-ceph-operator (chart value tolerations)": operator["tolerations"] or [],
        "ceph-csi-operator (ceph-csi-operator.controllerManager.tolerations)": subchart["controllerManager"]["tolerations"] or [],
        "RBD provisioner (drivers.rbd.controllerPlugin.tolerations)": rbd["controllerPlugin"]["tolerations"] or [],
        "Ceph mon/mgr (CephCluster placement.all)": ceph,
    }
    nowhere = {pod: tolerations for pod, tolerations in pods.items() if not _fits(r, tolerations)}
    assert not nowhere, f"pods no node accepts (every node's taints: {_taints(r)}): {nowhere}"
    # OSDs run on every storage node; the RBD node plugin on every node workloads run on.
    storage = {n.name for n in r.nodes if n.storage_device}
    assert storage <= set(_fits(r, ceph)), f"OSDs cannot run on {storage - set(_fits(r, ceph))}"
    workloads = {n.name for n in r.nodes if not desired_taints(n, r.config) or not n.is_control_plane}
    node_plugin = set(_fits(r, rbd["nodePlugin"]["tolerations"] or []))
    assert workloads <= node_plugin, f"no RBD node plugin (volume mounts) on {sorted(workloads - node_plugin)}"


def _taints(r: Run) -> dict[str, list[str]]:
    return {n.name: [str(t) for t in desired_taints(n, r.config)] for n in r.nodes}


def test_all_tainted_stacks_are_all_tainted() -> None:
    for stack in ("all-tainted", "all-tainted-cp-storage"):
        r = run(stack)
        untainted = [n for n, taints in _taints(r).items() if not taints]
        assert not untainted, f"{stack}: {untainted} carry no taint"
