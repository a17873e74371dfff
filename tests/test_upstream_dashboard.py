"""The web UIs against upstream (tests/upstream/dashboard): Headlamp's chart at the pinned
version, and the Kubernetes Dashboard v2.7.0 whose objects components/addons/dashboard.py owns
(digests of their files, tests/upstream/dashboard/SOURCES.yaml).

* Headlamp: every value key exists in the chart's values.yaml (Helm ignores unknown keys
  silently), and the merged values pass the chart's values.schema.json (Helm refuses them
  otherwise).
* Every node tainted (a non-schedulable control plane and tainted-only pools): Headlamp got no
  tolerations and its release timed out (defect 8). Each UI pod now fits a node, by a small
  model of the scheduler's taint check over the tolerations the pod really gets.
* The Dashboard's objects are those of v2.7.0's aio/deploy/recommended.yaml (images, args,
  ports, volumes, probes, RBAC, security contexts), with the documented differences only.
* Dashboard v2.7.0 reads CronJobs through batch/v1beta1 (gone since Kubernetes 1.25), in the
  places the access instructions name (defect 9).
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

import jsonschema
import pytest

from components import versions
from components.config import ClusterConfig
from tests.addons_harness import Registered, Run, run_addons
from tests.addons_harness import plain as _plain
from tests.test_upstream_rook import ALL_TAINTED, _fits, _taints
from tests.upstream_artifacts import document, documents, facts, unknown_value_keys

AREA = "dashboard"
RELEASE = "kubernetes:helm.sh/v3:Release"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
HEADLAMP = {"kind": "headlamp"}
DASHBOARD = {"kind": "kubernetes-dashboard"}
#: The digests (tests/upstream/dashboard/SOURCES.yaml says of which upstream file).
HEADLAMP_CHART = "headlamp-Chart.digest.yaml"
HEADLAMP_VALUES = "headlamp-values.digest.yaml"
HEADLAMP_SCHEMA = "headlamp-values.schema.digest.yaml"
HEADLAMP_DEPLOYMENT = "headlamp-deployment.digest.yaml"
RECOMMENDED = "recommended.digest.yaml"
CP_TOLERATION = {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}

#: Stacks by name: (config without the dashboard, whether every node is tainted).
STACKS: dict[str, tuple[dict[str, Any], bool]] = {
    "default": ({}, False),
    "single-node": ({"controlPlane": {"schedulable": True, "storageDiskSizeGb": 50}, "workerPools": []}, False),
    "all-tainted": (ALL_TAINTED, True),
    # No worker at all and the control plane keeps its taint.
    "control-plane-only": ({"workerPools": [], "rook": {"enabled": False}}, True),
    # A pool whose taint only steers the scheduler: its workers take untolerating pods.
    "prefer-no-schedule": (
        {"workerPools": [{"name": "soft", "count": 2, "storageDiskSizeGb": 50, "taints": ["tier=soft:PreferNoSchedule"]}]},
        False,
    ),
    # Existing hosts: the untainted pool has no host, so every node is tainted.
    "existing-all-tainted": (
        {
            "provider": "existing",
            "existingHosts": {
                "controlPlane": [{"address": "10.0.0.10"}],
                "workers": [{"address": "10.0.0.11", "pool": "gpu", "storageDevice": "/dev/sdb"}],
            },
            "workerPools": [
                {"name": "general"},
                {"name": "gpu", "taints": ["nvidia.com/gpu:NoSchedule"]},
            ],
        },
        True,
    ),
}


@cache
def run(stack: str, kind: str) -> Run:
    return run_addons({**STACKS[stack][0], "dashboard": {"kind": kind}})


def _merge(base: Any, ours: Any) -> Any:
    """Helm's coalescing of user values into the chart's defaults (maps merge, the rest replace)."""
    if isinstance(base, dict) and isinstance(ours, dict):
        merged = dict(base)
        for key, value in ours.items():
            merged[key] = _merge(base.get(key), value) if key in base else value
        return merged
    return copy.deepcopy(ours)


def _lines(file: str, fact: str) -> list[dict[str, Any]]:
    """The upstream lines (``{line, text[, groups]}``) a facts digest of this area recorded for ``fact``."""
    return list(facts(AREA, file)["lines"][fact])


def _headlamp_values(r: Run) -> dict[str, Any]:
    release = r.one(RELEASE, "headlamp")
    assert release.get("chart") == "headlamp" and release.get("version") == versions.HEADLAMP_CHART_VERSION
    return _plain(release.get("values"))


# --- Headlamp against its chart -------------------------------------------------------------------
@pytest.mark.parametrize("stack", list(STACKS))
def test_headlamp_value_keys_exist_in_the_chart(stack: str) -> None:
    values = _headlamp_values(run(stack, "headlamp"))
    unknown = unknown_value_keys(values, document(AREA, HEADLAMP_VALUES))
    assert not unknown, f"Headlamp chart {versions.HEADLAMP_CHART_VERSION} has no such values (Helm ignores them): {unknown}"


@pytest.mark.parametrize("stack", list(STACKS))
def test_headlamp_values_pass_the_charts_schema(stack: str) -> None:
    merged = _merge(document(AREA, HEADLAMP_VALUES), _headlamp_values(run(stack, "headlamp")))
    schema = document(AREA, HEADLAMP_SCHEMA)
    errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in jsonschema.Draft7Validator(schema).iter_errors(merged)]
    assert not errors, f"helm would refuse these values (values.schema.json): {errors}"


def test_headlamp_chart_is_the_pinned_one() -> None:
    chart = document(AREA, HEADLAMP_CHART)
    assert (chart["name"], chart["version"]) == ("headlamp", versions.HEADLAMP_CHART_VERSION), chart


def test_headlamp_tolerations_reach_its_pod() -> None:
    """The chart's deployment.yaml: ``{{- with .Values.tolerations }}`` and on the next line the
    pod spec's ``tolerations:`` (indented 6, as the pod spec's other keys)."""
    withs = [m["line"] for m in _lines(HEADLAMP_DEPLOYMENT, "with_tolerations")]
    keys = {m["line"]: m["groups"][0] for m in _lines(HEADLAMP_DEPLOYMENT, "tolerations_key")}
    assert any(keys.get(line + 1) == " " * 6 for line in withs), (
        f"the chart no longer renders .Values.tolerations into the pod spec (`with` at lines {withs}, "
        f"`tolerations:` at {sorted(keys)})")


def test_headlamp_is_cluster_ip_without_its_cluster_admin_binding() -> None:
    values = _headlamp_values(run("default", "headlamp"))
    chart = document(AREA, HEADLAMP_VALUES)
    assert chart["clusterRoleBinding"] == {"create": True, "clusterRoleName": "cluster-admin", "annotations": {}}, (
        "the chart's default binding changed: review what clusterRoleBinding.create: false turns off")
    assert values["clusterRoleBinding"] == {"create": False}
    assert values["service"]["type"] == "ClusterIP"


# --- every node tainted ---------------------------------------------------------------------------
def _ui_pods(r: Run, kind: str) -> dict[str, list[dict[str, Any]]]:
    """Each UI pod and the tolerations it really gets."""
    if kind == "headlamp":
        merged = _merge(document(AREA, HEADLAMP_VALUES), _headlamp_values(r))
        return {"headlamp (chart value tolerations)": merged["tolerations"] or []}
    return {
        name: _plain(r.one(DEPLOYMENT, name).get("spec.template.spec.tolerations")) or []
        for name in ("kubernetes-dashboard", "dashboard-metrics-scraper")
    }


@pytest.mark.parametrize("kind", ["headlamp", "kubernetes-dashboard"])
@pytest.mark.parametrize("stack", list(STACKS))
def test_every_ui_pod_fits_a_node(stack: str, kind: str) -> None:
    """Defect 8: with every node tainted Headlamp had no tolerations and its release timed out."""
    r = run(stack, kind)
    assert (not _fits(r, [])) == STACKS[stack][1], f"{stack}: every node tainted? {_taints(r)}"
    nowhere = {pod: tolerations for pod, tolerations in _ui_pods(r, kind).items() if not _fits(r, tolerations)}
    assert not nowhere, f"{stack}: UI pods no node accepts (every node's taints: {_taints(r)}): {nowhere}"


@pytest.mark.parametrize("stack", list(STACKS))
def test_headlamp_tolerates_the_control_plane_only_when_every_node_is_tainted(stack: str) -> None:
    """Where an untainted node exists the chart's default stands; the pools' taints are never
    tolerated (they dedicate nodes to other work)."""
    r = run(stack, "headlamp")
    assert r.config.untainted_node_exists != STACKS[stack][1], f"{stack}: {_taints(r)}"
    values = _headlamp_values(r)
    if STACKS[stack][1]:
        assert values.get("tolerations") == [CP_TOLERATION], values.get("tolerations")
    else:
        assert "tolerations" not in values, values.get("tolerations")


def test_all_tainted_config_gets_a_warning_not_a_refusal() -> None:
    from components.addons.dashboard import headlamp_values

    config = ClusterConfig.model_validate({"adminCidrs": ["203.0.113.7/32"], **ALL_TAINTED})
    assert any("every node is tainted" in w for w in config.warnings()), config.warnings()
    assert headlamp_values(config)["tolerations"] == [CP_TOLERATION]
    untainted = ClusterConfig.model_validate({"adminCidrs": ["203.0.113.7/32"]})
    assert not any("every node is tainted" in w for w in untainted.warnings())


# --- the Dashboard against v2.7.0's recommended.yaml ----------------------------------------------
def _upstream() -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"]["name"]): d for d in documents(AREA, RECOMMENDED)}


def _ours(r: Run) -> dict[tuple[str, str], Registered]:
    found: dict[tuple[str, str], Registered] = {}
    for resource in r.resources:
        kind, name = resource.get("kind"), resource.k8s_name
        if kind and name and ("dashboard" in name):
            found[(kind, name)] = resource
    return found


def test_dashboard_has_every_object_of_recommended_yaml() -> None:
    ours = _ours(run("default", "kubernetes-dashboard"))
    missing = sorted(set(_upstream()) - set(ours))
    assert not missing, f"objects of v2.7.0's recommended.yaml the program does not create: {missing}"
    for key, doc in _upstream().items():
        namespace = doc["metadata"].get("namespace")
        assert ours[key].get("metadata.namespace") == namespace, f"{key}: namespace {ours[key].get('metadata.namespace')}"


def _image(upstream: str) -> str:
    return f"docker.io/{upstream}"


@pytest.mark.parametrize("name", ["kubernetes-dashboard", "dashboard-metrics-scraper"])
def test_dashboard_deployments_follow_recommended_yaml(name: str) -> None:
    ours = _plain(run("default", "kubernetes-dashboard").one(DEPLOYMENT, name).get("spec"))
    up = _upstream()[("Deployment", name)]["spec"]
    assert ours["selector"] == up["selector"] and ours["replicas"] == up["replicas"]
    assert ours["template"]["metadata"]["labels"] == up["template"]["metadata"]["labels"]
    pod, up_pod = ours["template"]["spec"], up["template"]["spec"]
    for key in ("serviceAccountName", "nodeSelector", "volumes"):
        assert pod[key] == up_pod[key], f"{name}: pod {key} {pod[key]} vs upstream {up_pod[key]}"
    differ = {k: v for k, v in up_pod["securityContext"].items() if pod["securityContext"].get(k) != v}
    assert not differ, f"{name}: pod securityContext lacks upstream's {differ}"
    # Upstream tolerates node-role.kubernetes.io/master, which no node carries since 1.25.
    assert [t["key"] for t in up_pod["tolerations"]] == ["node-role.kubernetes.io/master"]
    assert pod["tolerations"] == [CP_TOLERATION], pod["tolerations"]
    (container,) = pod["containers"]
    (up_container,) = up_pod["containers"]
    assert container["image"] == _image(up_container["image"])
    for key in ("name", "ports", "livenessProbe", "volumeMounts"):
        assert container.get(key) == up_container.get(key), f"{name}: {key} {container.get(key)} vs upstream {up_container.get(key)}"
    assert container.get("args") == up_container.get("args"), f"{name}: args"
    differ = {k: v for k, v in up_container["securityContext"].items() if container["securityContext"].get(k) != v}
    assert not differ, f"{name}: container securityContext lacks upstream's {differ}"


def test_dashboard_images_are_the_pins_of_recommended_yaml() -> None:
    images = {c["image"] for d in documents(AREA, RECOMMENDED) if d["kind"] == "Deployment"
              for c in d["spec"]["template"]["spec"]["containers"]}
    assert {_image(i) for i in images} == {versions.DASHBOARD_IMAGE, versions.DASHBOARD_METRICS_SCRAPER_IMAGE}


def test_dashboard_rbac_services_and_secrets_follow_recommended_yaml() -> None:
    ours = _ours(run("default", "kubernetes-dashboard"))
    for (kind, name), doc in _upstream().items():
        mine = _plain(ours[(kind, name)].inputs)
        if kind in ("Role", "ClusterRole"):
            assert mine["rules"] == doc["rules"], f"{kind} {name}: rules differ from v2.7.0's"
        elif kind in ("RoleBinding", "ClusterRoleBinding"):
            assert (mine["roleRef"], mine["subjects"]) == (doc["roleRef"], doc["subjects"]), f"{kind} {name}"
        elif kind == "Service":
            ports = [{k: v for k, v in p.items() if k != "protocol"} for p in mine["spec"]["ports"]]
            assert ports == doc["spec"]["ports"] and mine["spec"]["selector"] == doc["spec"]["selector"], name
            assert mine["spec"]["type"] == "ClusterIP"
        elif kind == "Secret":
            assert (mine.get("type"), mine.get("data")) == (doc.get("type"), doc.get("data")), name


# --- defect 9: CronJobs through batch/v1beta1 ------------------------------------------------------
def test_dashboard_v2_7_0_reads_cronjobs_through_batch_v1beta1() -> None:
    """The evidence, in v2.7.0's own source: a CronJob's Jobs, and the raw get/edit/delete of a
    CronJob, go through batch/v1beta1, which Kubernetes stopped serving in 1.25. The digests
    hold the lines of those functions that say so (tests/upstream/dashboard/SOURCES.yaml)."""
    assert _lines("cronjob-jobs.digest.yaml", "get_cronjob_jobs") and _lines("cronjob-jobs.digest.yaml", "cronjob_get"), (
        "GetCronJobJobs no longer reads the CronJob through client.BatchV1beta1()")
    assert [m["text"] for m in _lines("api-types.digest.yaml", "cronjob_mapping")] == [
        'ResourceKindCronJob:                  {"cronjobs", ClientTypeBetaBatchClient, true},'
    ], "KindToAPIMapping no longer sends cronjob to the batch/v1beta1 client"
    cases = [m["line"] for m in _lines("client-verber.digest.yaml", "beta_batch_case")]
    returns = [m["line"] for m in _lines("client-verber.digest.yaml", "beta_batch_return")]
    assert any(line + 1 in returns for line in cases), (
        f"the verber no longer returns betaBatchClient for ClientTypeBetaBatchClient (case {cases}, return {returns})")
    assert _lines("client-manager.digest.yaml", "verber_beta_batch"), (
        "VerberClient no longer builds a client from k8sClient.BatchV1beta1().RESTClient()")
    assert versions.KUBERNETES_SUPPORTED_MINORS and min(versions.KUBERNETES_SUPPORTED_MINORS) >= 25


def test_access_instructions_say_so_and_name_headlamp() -> None:
    text_ = run("default", "kubernetes-dashboard").outputs["dashboard_access"]
    assert "batch/v1beta1" in text_ and "404" in text_ and "headlamp" in text_, text_
    assert "batch/v1beta1" not in run("default", "headlamp").outputs["dashboard_access"]
