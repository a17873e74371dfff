"""Helpers shared by the add-on components: names, labels and tolerations."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.config import ClusterConfig, Taint
from components.nodes import NodeSpec

#: The taint kubeadm registers on control-plane nodes (unless ``nodeRegistration.taints: []``).
CONTROL_PLANE_TAINT = Taint(key="node-role.kubernetes.io/control-plane", effect="NoSchedule")
#: Labels every object this stage owns carries (``kubectl get all -l app.kubernetes.io/managed-by=...``).
MANAGED_BY = {"app.kubernetes.io/managed-by": "kubeadm-cluster"}


def pool_taints(nodes: Sequence[NodeSpec]) -> list[Taint]:
    """Every distinct taint of the worker pools, in first-seen order."""
    seen: dict[str, Taint] = {}
    for node in nodes:
        for taint in node.taints:
            seen.setdefault(str(taint), taint)
    return list(seen.values())


def desired_taints(node: NodeSpec, config: ClusterConfig) -> list[Taint]:
    """The complete taint list a node must carry: its pool's, or the control plane's."""
    if node.is_control_plane:
        return [] if config.control_plane.schedulable else [CONTROL_PLANE_TAINT]
    return list(node.taints)


def toleration_values(taints: Iterable[Taint]) -> list[dict[str, Any]]:
    """Tolerations (plain wire-format dicts, for Helm values and custom resources) matching taints."""
    result: list[dict[str, Any]] = []
    for taint in taints:
        item: dict[str, Any] = {"key": taint.key, "effect": taint.effect}
        if taint.value:
            item.update(operator="Equal", value=taint.value)
        else:
            item["operator"] = "Exists"
        result.append(item)
    return result


def tolerations(taints: Iterable[Taint]) -> list[k8s.core.v1.TolerationArgs]:
    """Typed tolerations matching taints."""
    return [
        k8s.core.v1.TolerationArgs(
            key=item["key"], operator=item["operator"], value=item.get("value"), effect=item["effect"]
        )
        for item in toleration_values(taints)
    ]


#: Tolerates every taint (any key, any effect): for node agents that must run everywhere.
TOLERATE_EVERYTHING = [k8s.core.v1.TolerationArgs(operator="Exists")]


def chart_release(
    resource_name: str,
    config: ClusterConfig,
    *,
    release: str,
    chart: str,
    version: str,
    repo: str,
    namespace: str,
    values: dict[str, Any],
    opts: pulumi.ResourceOptions,
    create_namespace: bool = False,
    timeout: int | None = None,
) -> k8s.helm.v3.Release:
    """A pinned ``helm.v3.Release`` fetched from ``repo`` or from its configured mirror.

    helm.v3.Release (not helm.v4.Chart) because it previews against a cluster whose
    kubeconfig is not known yet (pulumi-kubernetes issue 3027).
    """
    source: pulumi.Input[str] = config.mirrors.helm_repository(repo)
    if config.is_secret("mirrors"):  # set with --secret: the mirror URL may hold credentials
        source = pulumi.Output.secret(source)
    return k8s.helm.v3.Release(
        resource_name,
        name=release,
        chart=chart,
        version=version,
        repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=source),
        namespace=namespace,
        create_namespace=create_namespace or None,
        values=values,
        timeout=timeout,
        opts=opts,
    )
