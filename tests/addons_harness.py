"""Run the Addons component alone under Pulumi's mocks and record every registration.

Each run gets its own Mocks and recording monitor (those of ``tools.mock_engine``) (no cloud, no Pulumi CLI): the record
holds each resource's type, name, parent, provider reference, explicit dependencies and
inputs (camelCase wire names, secrets unwrapped), and the component's outputs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
from pulumi.runtime.settings import set_root_resource
from pulumi.runtime.stack import wait_for_rpcs
from pulumi.runtime.sync_await import _sync_await

from components.addons import Addons, AddonsArgs
from components.config import ClusterConfig
from components.nodes import NodeSpec, plan_nodes
from tools.mock_engine import ClusterMocks, RecordingMonitor, Registered

NODE_READY_TYPE = "test:index:NodeReady"


@dataclass
class Run:
    config: ClusterConfig
    nodes: list[NodeSpec]
    resources: list[Registered]
    outputs: dict[str, Any]
    provider_urn: str
    ready_urns: dict[str, str]  # node name -> URN of its node_ready stand-in
    errors: list[str] = field(default_factory=list)

    def of_type(self, type_: str) -> list[Registered]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str, k8s_name: str) -> Registered:
        found = [r for r in self.of_type(type_) if r.k8s_name == k8s_name or r.get("name") == k8s_name]
        assert len(found) == 1, (
            f"expected one {type_} named {k8s_name!r}, found {len(found)}; "
            f"{type_} registered: {[r.k8s_name or r.get('name') for r in self.of_type(type_)]}"
        )
        return found[0]

    def release(self, chart: str, hint: str = "") -> Registered:
        """The one helm.v3.Release of ``chart`` (``hint`` is added to the failure message)."""
        found = [r for r in self.of_type("kubernetes:helm.sh/v3:Release") if r.get("chart") == chart]
        assert len(found) == 1, (
            f"expected one helm.v3.Release of chart {chart!r}, found {len(found)} "
            f"(charts installed: {[r.get('chart') for r in self.of_type('kubernetes:helm.sh/v3:Release')]})" + hint
        )
        return found[0]

    def by_urn(self) -> dict[str, Registered]:
        return {r.urn: r for r in self.resources}

    def waits_for(self, resource: Registered) -> set[str]:
        """URNs a resource waits for through explicit dependencies, transitively."""
        index = self.by_urn()
        seen: set[str] = set()
        todo = list(resource.dependencies)
        while todo:
            urn = todo.pop()
            if urn in seen:
                continue
            seen.add(urn)
            if urn in index:
                todo += index[urn].dependencies
        return seen

    def descendants(self, urn: str) -> list[Registered]:
        children = [r for r in self.resources if r.parent == urn]
        return children + [d for c in children for d in self.descendants(c.urn)]


class _NodeReady(pulumi.CustomResource):
    """Stands in for a node's kubeadm init/join command."""

    def __init__(self, name: str) -> None:
        super().__init__(NODE_READY_TYPE, name, {})


def run_addons(config_values: dict[str, Any], stack: str = "dev", preview: bool = False) -> Run:
    """Build Addons for a stack config (camelCase keys, as in Pulumi.<stack>.yaml)."""
    config = ClusterConfig.model_validate({"adminCidrs": ["203.0.113.7/32"], **config_values})
    nodes = plan_nodes(config, stack)
    mocks = ClusterMocks()
    monitor = RecordingMonitor(mocks)
    set_root_resource(None)  # type: ignore[arg-type]
    pulumi.runtime.set_mocks(mocks, project="kubeadm-cluster", stack=stack, preview=preview, monitor=monitor)
    provider = k8s.Provider("k8s", kubeconfig=pulumi.Output.secret("apiVersion: v1\nkind: Config\n"))
    ready: dict[str, pulumi.Resource] = {node.name: _NodeReady(f"{node.name}-ready") for node in nodes}
    addons = Addons("addons", AddonsArgs(config=config, nodes=nodes, provider=provider, node_ready=ready))
    outputs = {
        "storage_class": _sync_await(addons.storage_class.future()),
        "dashboard_access": _sync_await(addons.dashboard_access.future()),
    }
    _sync_await(wait_for_rpcs())
    provider_urn = _sync_await(provider.urn.future()) or ""
    ready_urns = {name: _sync_await(res.urn.future()) or "" for name, res in ready.items()}
    return Run(config, nodes, list(monitor.registered), outputs, provider_urn, ready_urns)


def names(resources: Iterable[Registered]) -> list[str]:
    return sorted(r.k8s_name or r.name for r in resources)


def plain(value: Any) -> Any:
    """Mock inputs as a manifest: integral floats (protobuf numbers) back to ints."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value
