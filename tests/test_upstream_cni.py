"""The pod network against upstream (tests/upstream/cni): the objects components/addons/cni.py
registers, held against Calico v3.33 (tigera-operator chart and its operator), the rajch/weave
fork's v2.9.0 manifest and flannel's v0.28.8 chart as they are (digests of their files,
tests/upstream/cni/SOURCES.yaml).

* Both charts: every value key exists in the chart's values.yaml (Helm ignores unknown keys).
* Calico: since v3.32 the tigera-operator chart ships no CRDs, and the CRD chart cannot be a Helm
  release (its record exceeds the 1 MiB Secret limit). The operator creates the CRDs itself
  (``manageCRDs``); the release must render no custom resource (``helm install`` would fail with
  ``no matches for kind "Installation"``), and the program's Installation and APIServer come
  after the operator, validate against their CRDs, and are upstream's custom-resources.yaml
  with the cluster's pod range.
* Weave: the DaemonSet and RBAC equal the fork's manifest field by field (CHECKPOINT_DISABLE
  included), but for the differences listed here with their reasons.
* Flannel: the pod range reaches the chart's net-conf.json.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from typing import Any

import pytest

from components import versions
from components.addons.cni import CALICO_NAMESPACE, WEAVE_NAME, WEAVE_NAMESPACE
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

AREA = "cni"
RELEASE = "kubernetes:helm.sh/v3:Release"
DAEMONSET = "kubernetes:apps/v1:DaemonSet"
OPERATOR_API = "operator.tigera.io/v1"
OPERATOR_CHART = "tigera-operator"
#: The charts of Calico's CRDs (same Helm repository and version as tigera-operator).
CRD_CHARTS = ("crd.projectcalico.org.v1", "projectcalico.org.v3")
#: The digests (tests/upstream/cni/SOURCES.yaml says of which upstream file).
OPERATOR_VALUES = "tigera-operator-values.digest.yaml"
FLANNEL_VALUES = "flannel-values.digest.yaml"
CHART_CR_TEMPLATES = ("tigera-operator-custom-resources.digest.yaml", "tigera-operator-felixconfiguration.digest.yaml")
OPERATOR_DEPLOYMENT = "tigera-operator-deployment.digest.yaml"
OPERATOR_README = "tigera-operator-README.digest.yaml"
CRD_CHART_README = "crd-chart-README.digest.yaml"
OPERATOR_CRDS_GO = "tigera-operator-crds.digest.yaml"
CUSTOM_RESOURCES = "custom-resources.digest.yaml"
WEAVE_MANIFEST = "weave-daemonset-k8s-1.11.digest.yaml"
FLANNEL_CONFIG = "flannel-config.digest.yaml"

#: Stacks with each CNI; the pod ranges differ, so a hard-coded range would show.
CALICO_STACKS: dict[str, dict[str, Any]] = {
    "calico-default": {"cni": "calico"},
    "calico-ha": {**STACKS["ha"], "cni": "calico"},
}
FLANNEL_STACKS: dict[str, dict[str, Any]] = {
    "flannel-default": {"cni": "flannel", "network": {"podCidr": "10.244.0.0/16"}},
    "flannel-ha": {**STACKS["ha"], "cni": "flannel"},
}
WEAVE_STACKS: dict[str, dict[str, Any]] = {"weave-default": {}, "weave-ha": STACKS["ha"]}
ALL_STACKS = {**CALICO_STACKS, **FLANNEL_STACKS, **WEAVE_STACKS}


@cache
def run(stack: str) -> Run:
    return run_addons(ALL_STACKS[stack])


def _release(r: Run, chart: str) -> Registered:
    return r.release(chart)


def _values(release: Registered) -> dict[str, Any]:
    return _plain(release.get("values") or {})


def _lines(file: str, fact: str) -> list[str]:
    """The upstream lines (stripped) a facts digest of this area recorded for ``fact``."""
    return [m["text"] for m in facts(AREA, file)["lines"][fact]]


def _has(lines: list[str], fragment: str) -> bool:
    return any(fragment in line for line in lines)


def _operator_resources(r: Run) -> list[Registered]:
    return [x for x in r.resources if x.type.startswith(f"kubernetes:{OPERATOR_API}:")]


def _operator_resource(r: Run, kind: str) -> Registered:
    found = [x for x in _operator_resources(r) if x.get("kind") == kind]
    assert len(found) == 1, (
        f"expected one {OPERATOR_API} {kind} custom resource, found {len(found)} "
        f"(registered: {[x.get('kind') for x in _operator_resources(r)]}); Calico's operator starts "
        f"no calico-node without an Installation"
    )
    return found[0]


# --- chart values ---------------------------------------------------------------------------------
CHART_VALUES = {
    "calico": (OPERATOR_CHART, OPERATOR_VALUES, "calico-ha"),
    "flannel": ("flannel", FLANNEL_VALUES, "flannel-ha"),
}


@pytest.mark.parametrize("cni", list(CHART_VALUES))
def test_chart_values_exist_in_the_chart(cni: str) -> None:
    chart, upstream_file, stack = CHART_VALUES[cni]
    source = sources(AREA)[upstream_file]
    values = _values(_release(run(stack), chart))
    unknown = unknown_value_keys(values, document(AREA, upstream_file))
    assert not unknown, (
        f"{chart} chart values that {source.where()} does not have, which Helm ignores silently "
        f"(or, under `installation`, passes to a custom resource the chart cannot create): {unknown}"
    )


# --- Calico: CRDs before custom resources ---------------------------------------------------------
def _chart_custom_resources() -> dict[str, str]:
    """The custom resources the tigera-operator chart renders: kind -> the values key whose
    ``enabled`` guards it (from the chart's own templates: their digests hold the numbered
    ``if .Values.<key>.enabled`` lines and ``kind:`` lines; a block runs to the next guard)."""
    guarded: dict[str, str] = {}
    for file in CHART_CR_TEMPLATES:
        lines = facts(AREA, file)["lines"]
        guards = [(int(g["line"]), str(g["groups"][0])) for g in lines["guards"]]
        kinds = [(int(k["line"]), str(k["groups"][0])) for k in lines["kinds"]]
        ends = [line for line, _ in guards[1:]] + [1 << 30]
        blocks = [(key, [kind for line, kind in kinds if start < line < end]) for (start, key), end in zip(guards, ends)]
        assert kinds and guards and guards[0][0] < kinds[0][0] and all(len(inside) == 1 for _, inside in blocks), (
            f"tests/upstream/{AREA}/{file}: a custom resource without its own `enabled` guard "
            f"(guards {guards}, kinds {kinds})"
        )
        guarded.update({inside[0]: key for key, inside in blocks})
    return guarded


def test_the_chart_guards_every_custom_resource() -> None:
    """The artifact check the test below relies on: the chart's custom resources as upstream has them."""
    assert _chart_custom_resources() == {
        "Installation": "installation",
        "APIServer": "apiServer",
        "Goldmane": "goldmane",
        "Whisker": "whisker",
        "FelixConfiguration": "defaultFelixConfiguration",
    }


@pytest.mark.parametrize("stack", list(CALICO_STACKS))
def test_calico_release_renders_no_custom_resource(stack: str) -> None:
    """Helm maps every object of a release before creating any; since v3.32 the chart ships no
    CRD, so any custom resource in it fails the install on a fresh cluster."""
    values = _values(_release(run(stack), OPERATOR_CHART))
    upstream = document(AREA, OPERATOR_VALUES)
    assert _lines(OPERATOR_README, "crds_not_bundled"), "the tigera-operator chart's README no longer says it ships no CRDs"
    rendered = [
        kind
        for kind, key in _chart_custom_resources().items()
        if (values.get(key) or {}).get("enabled", (upstream.get(key) or {}).get("enabled"))
    ]
    assert not rendered, (
        f"the {OPERATOR_CHART} release renders {rendered}: since Calico v3.32 the chart ships no CRDs, so "
        f'`helm install` fails with `no matches for kind "{rendered[0]}"` and every node stays NotReady '
        f"(its README, tests/upstream/{AREA}/{OPERATOR_README}); create them after the operator instead"
    )


@pytest.mark.parametrize("stack", list(CALICO_STACKS))
def test_calico_crds_come_from_the_operator(stack: str) -> None:
    r = run(stack)
    values = _values(_release(r, OPERATOR_CHART))
    upstream = document(AREA, OPERATOR_VALUES)
    assert values.get("manageCRDs", upstream["manageCRDs"]) is True, (
        "manageCRDs is off: nothing installs Calico's CRDs (the chart ships none since v3.32)"
    )
    # The flag the value drives, and what the operator creates with it.
    assert _has(_lines(OPERATOR_DEPLOYMENT, "manage_crds"), "-manage-crds={{ .Values.manageCRDs }}"), (
        "the operator Deployment no longer passes manageCRDs as -manage-crds")
    created = {str(s["value"]) for s in facts(AREA, OPERATOR_CRDS_GO)["go-strings"]["calico_crd_names"]}
    assert created, f"tests/upstream/{AREA}/{OPERATOR_CRDS_GO}: no calicoCRDNames"
    ours = {str(x.get("kind")).lower() for x in _operator_resources(r)}
    assert ours, "no operator.tigera.io custom resource: nothing tells the operator to install Calico"
    assert ours <= created, f"the operator creates no CRD for {sorted(ours - created)}"


def test_no_release_of_a_calico_crd_chart() -> None:
    """The CRD chart's Helm release record (~1.16 MB) exceeds the 1 MiB a Secret may hold:
    `helm install` fails with `data: Too long` (tests/upstream/cni/SOURCES.yaml, crd-chart-README.digest.yaml)."""
    for stack in CALICO_STACKS:
        charts = [x.get("chart") for x in run(stack).of_type(RELEASE)]
        assert not set(charts) & set(CRD_CHARTS), (
            f"{stack}: a Calico CRD chart as a helm.v3.Release fails on the Secret size limit; the operator "
            f"installs the CRDs (manageCRDs)"
        )
    assert _has(_lines(CRD_CHART_README, "crds_install"), "helm template calico-crds"), (
        "the CRD chart's README no longer installs it with `helm template | kubectl apply`")


@pytest.mark.parametrize("stack", list(CALICO_STACKS))
def test_calico_custom_resources_wait_for_the_operator(stack: str) -> None:
    r = run(stack)
    release = _release(r, OPERATOR_CHART)
    assert release.get("namespace") == CALICO_NAMESPACE
    assert release.get("version") == versions.CALICO_CHART_VERSION
    assert release.get("repositoryOpts.repo") == versions.CALICO_CHART_REPO
    resources = _operator_resources(r)
    assert {x.get("kind") for x in resources} >= {"Installation"}, (
        f"no Calico Installation: the operator deploys nothing without one (registered: "
        f"{[x.get('kind') for x in resources]})"
    )
    for resource in resources:
        assert resource.k8s_name == "default", f"the operator reconciles only '{resource.get('kind')}/default'"
        assert release.urn in r.waits_for(resource), (
            f"{resource.get('kind')} does not wait for the {OPERATOR_CHART} release, whose operator creates its CRD"
        )


# --- Calico: the custom resources against their CRDs and upstream's defaults ------------------------
CRD_FILES = {"Installation": "operator.tigera.io_installations.digest.yaml", "APIServer": "operator.tigera.io_apiservers.digest.yaml"}


@cache
def _crd_schema(kind: str) -> dict[str, Any]:
    return crd_schema(documents(AREA, CRD_FILES[kind]), kind, "v1")


@pytest.mark.parametrize("stack", list(CALICO_STACKS))
def test_calico_custom_resources_validate_against_their_crds(stack: str) -> None:
    r = run(stack)
    problems: list[str] = []
    for kind in CRD_FILES:
        manifest = _plain(_operator_resource(r, kind).inputs)
        problems += [f"{kind}: {p}" for p in crd_problems(manifest, _crd_schema(kind))]
    assert not problems, "\n".join(problems)


def test_crd_check_catches_a_wrong_field() -> None:
    bad = {
        "apiVersion": OPERATOR_API,
        "kind": "Installation",
        "metadata": {"name": "default"},
        "spec": {"calicoNetwork": {"ipPools": [{"cidr": "10.0.0.0/16", "encapsulation": "VXLANAlways"}], "bgpp": "x"}},
    }
    problems = crd_problems(bad, _crd_schema("Installation"))
    assert any("VXLANAlways" in p for p in problems) and any("bgpp" in p for p in problems), problems
    # A part the digest prunes (SOURCES.yaml `prune`) takes no value: the check says so.
    pruned = {**bad, "spec": {"typhaDeployment": {"spec": {"minReadySeconds": 5}}}}
    assert [p for p in crd_problems(pruned, _crd_schema("Installation")) if "prunes" in p], pruned


def _upstream_custom_resources() -> dict[str, dict[str, Any]]:
    return {doc["kind"]: doc for doc in documents(AREA, CUSTOM_RESOURCES)}


#: Where the program's Installation deliberately differs from upstream's custom-resources.yaml.
INSTALLATION_DIFFERENCES = {
    "spec.calicoNetwork.ipPools[default-ipv4-ippool].cidr": "the cluster's pod range (kubeadm's podSubnet)",
    "spec.calicoNetwork.ipPools[default-ipv4-ippool].encapsulation": (
        "VXLAN everywhere: VXLANCrossSubnet sends traffic within a subnet unencapsulated, which a GCP VPC drops"
    ),
    "spec.calicoNetwork.bgp": "VXLAN needs no BGP; with it, calico-node is not Ready until TCP 179 peers",
    "spec.calicoNetwork.nodeAddressAutodetectionV4.kubernetes": "the address kubeadm registers (node-ip)",
    "spec.kubeletVolumePluginPath": "the chart's default (values.yaml): no Calico CSI driver",
    "metadata.labels[app.kubernetes.io/managed-by]": "every object the add-ons stage owns carries it",
}
#: Upstream's custom resources the program does not create.
NOT_CREATED = {
    "Goldmane": "the flow-log aggregator of the optional Whisker UI: not part of the pod network",
    "Whisker": "an optional observability UI: not part of the pod network",
}


@pytest.mark.parametrize("stack", list(CALICO_STACKS))
def test_calico_custom_resources_are_upstreams_defaults(stack: str) -> None:
    r = run(stack)
    upstream = _upstream_custom_resources()
    ours = {str(x.get("kind")): _plain(x.inputs) for x in _operator_resources(r)}
    assert set(ours) == set(upstream) - set(NOT_CREATED), (
        f"custom resources {sorted(ours)} vs upstream's {sorted(upstream)} (not created on purpose: {NOT_CREATED})"
    )
    installation = ours["Installation"]
    pools = installation["spec"]["calicoNetwork"]["ipPools"]
    assert [p["cidr"] for p in pools] == [r.config.network.pod_cidr], (
        f"Calico's IP pools {[p['cidr'] for p in pools]} are not kubeadm's podSubnet {r.config.network.pod_cidr}: "
        "the operator refuses pools outside it"
    )
    diff = _differences(upstream["Installation"], installation)
    assert set(diff) == set(INSTALLATION_DIFFERENCES), (
        "the Installation differs from upstream's custom-resources.yaml beyond the listed reasons:\n"
        + "\n".join(f"  {p}: upstream {u!r}, ours {o!r}" for p, (u, o) in diff.items() if p not in INSTALLATION_DIFFERENCES)
        + "".join(f"\n  listed but no longer different: {p}" for p in INSTALLATION_DIFFERENCES if p not in diff)
    )
    for kind in set(ours) - {"Installation"}:
        extra = {p: d for p, d in _differences(upstream[kind], ours[kind]).items() if not p.startswith("metadata.labels")}
        assert not extra, f"{kind} differs from upstream's: {extra}"


# --- Weave: the fork's manifest, field by field ---------------------------------------------------
def _weave_version() -> str:
    return sources(AREA)[WEAVE_MANIFEST].ref.removeprefix("v")


def _released(value: Any) -> Any:
    """The template's data as original/bin/release publishes it: `:latest` -> the version (in
    the image references), every `imagePullPolicy: Always` deleted."""
    if isinstance(value, dict):
        return {k: _released(v) for k, v in value.items() if not (k == "imagePullPolicy" and v == "Always")}
    if isinstance(value, list):
        return [_released(v) for v in value]
    if isinstance(value, str):
        return value.replace(":latest", f":{_weave_version()}", 1)
    return value


def _upstream_weave() -> dict[str, dict[str, Any]]:
    """The fork's release asset (the template, released: :func:`_released`), by kind."""
    items = _released(document(AREA, WEAVE_MANIFEST))["items"]
    return {item["kind"]: item for item in items}


def _ours_weave(r: Run) -> dict[str, dict[str, Any]]:
    found = {
        str(x.get("kind")): _plain(x.inputs)
        for x in r.resources
        if x.type.startswith("kubernetes:") and x.k8s_name == WEAVE_NAME
    }
    return found


def _image(reference: str) -> str:
    """A Docker reference in full (``rajchaudhuri/x:1`` is ``docker.io/rajchaudhuri/x:1``)."""
    if "/" not in reference:
        return f"docker.io/library/{reference}"
    first = reference.split("/", 1)[0]
    return reference if ("." in first or ":" in first or first == "localhost") else f"docker.io/{reference}"


def _walk(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Leaves of a manifest by path. Lists of named objects are keyed by name, other lists of
    objects by their content (order is not meaning there: rules, tolerations, subjects), lists
    of scalars are values. Empty maps, empty lists and nulls are left out: the API server treats
    them as unset (the fork's `env:` with no items, `seLinuxOptions: {}`)."""
    if isinstance(value, dict):
        for key, item in value.items():
            part = f"[{key}]" if ("." in key or "/" in key) else (f".{key}" if path else key)
            yield from _walk(item, f"{path}{part}")
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for item in value:
            if "name" in item:
                yield from _walk({k: v for k, v in item.items() if k != "name"}, f"{path}[{item['name']}]")
            else:  # an item without a name is a leaf: present or not
                yield f"{path}[{json.dumps(item, sort_keys=True)}]", True
    elif value is None or value == [] or value == {}:
        return
    else:
        yield path, _image(value) if path.endswith(".image") and isinstance(value, str) else value


def _differences(upstream: Any, ours: Any) -> dict[str, tuple[Any, Any]]:
    """Path -> (upstream value, our value) wherever they differ (None: absent on that side)."""
    theirs, mine = dict(_walk(upstream)), dict(_walk(ours))
    return {p: (theirs.get(p), mine.get(p)) for p in sorted(set(theirs) | set(mine)) if theirs.get(p) != mine.get(p)}


_EVERYTHING = json.dumps({"operator": "Exists"}, sort_keys=True)
#: Where the program deliberately differs from the fork's manifest: (kind, path) -> why.
WEAVE_DIFFERENCES: dict[tuple[str, str], str] = {
    **{
        (kind, "metadata.labels[app.kubernetes.io/managed-by]"): "every object the add-ons stage owns carries it"
        for kind in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "DaemonSet")
    },
    ("ClusterRole", 'rules[{"apiGroups": ["extensions"], "resources": ["networkpolicies"], '
     '"verbs": ["get", "list", "watch"]}]'): (
        "the extensions API group serves no NetworkPolicy since Kubernetes 1.16: the rule grants nothing"
    ),
    ("DaemonSet", "spec.template.spec.containers[weave].env[IPALLOC_RANGE].value"): (
        "Weave's default 10.32.0.0/12 must be kubeadm's podSubnet (network.podCidr)"
    ),
    ("DaemonSet", "spec.template.spec.nodeSelector[kubernetes.io/os]"): "the images are Linux-only",
    ("DaemonSet", 'spec.template.spec.tolerations[{"effect": "NoSchedule", "operator": "Exists"}]'): (
        "replaced by one toleration with operator Exists and no effect, which tolerates every taint"
    ),
    ("DaemonSet", 'spec.template.spec.tolerations[{"effect": "NoExecute", "operator": "Exists"}]'): (
        "(the same: covered by the toleration of every taint)"
    ),
    ("DaemonSet", f"spec.template.spec.tolerations[{_EVERYTHING}]"): (
        "tolerates every taint (any key, any effect): the fork's two and more, as every node agent here"
    ),
}


@pytest.mark.parametrize("stack", list(WEAVE_STACKS))
def test_weave_disables_the_checkpoint_call(stack: str) -> None:
    ds = run(stack).one(DAEMONSET, WEAVE_NAME)
    weave = [c for c in ds.get("spec.template.spec.containers") if c["name"] == "weave"][0]
    env = {e["name"]: e.get("value") for e in weave.get("env", [])}
    assert env.get("CHECKPOINT_DISABLE") == "1", (
        "weave has no CHECKPOINT_DISABLE=1 (the fork's manifest sets it): every node calls Weaveworks' defunct "
        "checkpoint-api.weave.works every 6 hours with details of the cluster"
    )


@pytest.mark.parametrize("stack", list(WEAVE_STACKS))
def test_weave_matches_the_forks_manifest(stack: str) -> None:
    r = run(stack)
    upstream, ours = _upstream_weave(), _ours_weave(r)
    assert set(ours) == set(upstream), f"weave-net objects: ours {sorted(ours)}, the fork's {sorted(upstream)}"
    found: dict[tuple[str, str], tuple[Any, Any]] = {}
    for kind in upstream:
        found.update({(kind, p): d for p, d in _differences(upstream[kind], ours[kind]).items()})
    unexpected = {k: d for k, d in found.items() if k not in WEAVE_DIFFERENCES}
    gone = [k for k in WEAVE_DIFFERENCES if k not in found]
    assert not unexpected and not gone, (
        f"weave-net differs from the fork's v2.9.0 manifest (tests/upstream/cni/{WEAVE_MANIFEST}):\n"
        + "\n".join(f"  {kind} {p}: fork {u!r}, ours {o!r}" for (kind, p), (u, o) in unexpected.items())
        + "".join(f"\n  listed in WEAVE_DIFFERENCES but no longer different: {kind} {p}" for kind, p in gone)
    )
    ds = ours["DaemonSet"]
    assert ds["metadata"]["namespace"] == WEAVE_NAMESPACE
    env = {e["name"]: e.get("value") for e in ds["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["IPALLOC_RANGE"] == r.config.network.pod_cidr


def test_weave_images_are_the_forks_release() -> None:
    upstream = _upstream_weave()["DaemonSet"]["spec"]["template"]["spec"]
    images = {_image(c["image"]) for c in [*upstream["containers"], *upstream["initContainers"]]}
    assert images == {versions.WEAVE_KUBE_IMAGE, versions.WEAVE_NPC_IMAGE}, images


def test_weave_comparison_catches_a_difference() -> None:
    upstream = _upstream_weave()["DaemonSet"]
    changed = json.loads(json.dumps(upstream))
    changed["spec"]["template"]["spec"]["containers"][0]["env"].pop()  # CHECKPOINT_DISABLE
    changed["spec"]["template"]["spec"]["volumes"][0]["hostPath"]["path"] = "/var/lib/weave2"
    assert set(_differences(upstream, changed)) == {
        "spec.template.spec.containers[weave].env[CHECKPOINT_DISABLE].value",
        "spec.template.spec.volumes[weavedb].hostPath.path",
    }


# --- Flannel --------------------------------------------------------------------------------------
@pytest.mark.parametrize("stack", list(FLANNEL_STACKS))
def test_flannel_pod_range_reaches_net_conf(stack: str) -> None:
    r = run(stack)
    values = _values(_release(r, "flannel"))
    assert _has(_lines(FLANNEL_CONFIG, "network"), '"Network": {{ .Values.podCidr | quote }}'), (
        "flannel's chart no longer takes the pod range from `podCidr`"
    )
    assert values.get("podCidr") == r.config.network.pod_cidr
    assert _release(r, "flannel").get("version") == versions.FLANNEL_CHART_VERSION
