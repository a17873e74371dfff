"""Stage 1 (config), across runs: a ``kubernetesVersion`` change must be a kubeadm upgrade.

kubeadm upgrades one minor at a time and never downgrades. Config validation alone cannot
know the version a stack runs, so the stack keeps it in a tiny resource of its own: a Pulumi
dynamic resource whose provider's ``check`` compares the configured version with the one
recorded at the last successful upgrade. ``pulumi preview`` fails there, naming the field (and so
does `pulumi up`, which previews first); on the nodes, the first control plane checks the live
cluster again before the upgrade touches a node (``scripts/check-version.sh``).

The record is registered after every upgrade step (``after``): the engine updates it only once
they all succeeded. A failed upgrade leaves the version that was running recorded, so the next
`pulumi up` with the same target resumes the upgrade (its failed steps run again), and setting
``kubernetesVersion`` back to the recorded version is accepted, as it should be: the cluster
never moved (check-version.sh still refuses it if the cluster itself already runs the newer one).

The provider is serialized into the state and run by the engine's Python dynamic-provider
host, which does not import this project: the provider class is therefore built inside a
function (serialized by value) and uses nothing but the standard library and ``pulumi``.
"""

from __future__ import annotations

import types
from collections.abc import Sequence
from typing import Any, NotRequired, TypedDict

import pulumi
from pulumi.dynamic import ResourceProvider

#: The config key the gate checks (what its failure names).
FIELD = "kubernetesVersion"
#: The file name the provider's serialized code carries, whatever the checkout's path.
PORTABLE_FILENAME = "kubeadm-cluster/components/version_gate.py"


def _make_provider() -> ResourceProvider:
    """A provider instance whose class is local to this function (so dill pickles it by value)."""
    import re

    from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, DiffResult, UpdateResult

    class KubernetesVersionGateProvider(ResourceProvider):
        """Stores the deployed version; refuses a change kubeadm cannot upgrade in one step."""

        @staticmethod
        def problem(old: str | None, new: str | None) -> str | None:
            pattern = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)$")
            if not old or not new:
                return None
            before, after = pattern.match(str(old)), pattern.match(str(new))
            if before is None or after is None:
                return None
            a = tuple(int(g) for g in before.groups())
            b = tuple(int(g) for g in after.groups())
            if b < a:
                return (
                    f"{new} is older than {old}, the version this stack deployed: kubeadm cannot "
                    f"downgrade a cluster; set kubeadm-cluster:{FIELD} back to {old} or later"
                )
            if b[0] != a[0] or b[1] > a[1] + 1:
                return (
                    f"{new} skips a minor version: this stack runs {old}, and kubeadm upgrades one "
                    f"minor at a time; set kubeadm-cluster:{FIELD} to a 1.{a[1] + 1}.x release first, "
                    "run pulumi up, then go on"
                )
            return None

        def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
            problem = self.problem((_olds or {}).get(FIELD), news.get(FIELD))
            return CheckResult(news, [CheckFailure(FIELD, problem)] if problem else [])

        def diff(self, _id: str, _olds: dict[str, Any], _news: dict[str, Any]) -> DiffResult:
            changed = _olds.get(FIELD) != _news.get(FIELD)
            return DiffResult(changes=changed, replaces=[], delete_before_replace=False)

        def create(self, props: dict[str, Any]) -> CreateResult:
            return CreateResult("kubernetes-version", {FIELD: props.get(FIELD)})

        def update(self, _id: str, _olds: dict[str, Any], _news: dict[str, Any]) -> UpdateResult:
            return UpdateResult({FIELD: _news.get(FIELD)})

    # The engine stores the pickled provider as an input: its code objects must not carry this
    # checkout's absolute path, or every checkout (a laptop, CI) would see the gate as changed.
    for attribute, value in list(vars(KubernetesVersionGateProvider).items()):
        function = value.__func__ if isinstance(value, staticmethod) else value
        if isinstance(function, types.FunctionType):
            function.__code__ = _portable(function.__code__)
            if isinstance(value, staticmethod):
                setattr(KubernetesVersionGateProvider, attribute, staticmethod(function))
    return KubernetesVersionGateProvider()


def _portable(code: types.CodeType) -> types.CodeType:
    """``code`` (and the code nested in it) with a file name that is the same in every checkout."""
    consts = tuple(_portable(c) if isinstance(c, types.CodeType) else c for c in code.co_consts)
    return code.replace(co_filename=PORTABLE_FILENAME, co_consts=consts)


class _VersionRecord(pulumi.dynamic.Resource):
    """The Kubernetes version this stack deployed last; a change to it is checked at preview."""

    def __init__(self, name: str, kubernetes_version: str, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(_make_provider(), name, {FIELD: kubernetes_version}, opts)


class VersionGateArgs(TypedDict):
    kubernetes_version: str
    #: What must have succeeded before the version is recorded: the version check and every
    #: upgrade step (KubeadmCluster.upgrade_steps).
    after: NotRequired[Sequence[pulumi.Resource]]


class VersionGate(pulumi.ComponentResource):
    """Refuses, at preview, a ``kubernetesVersion`` change kubeadm cannot upgrade in one step, and
    records a version once the upgrade steps (``after``) succeeded."""

    record: pulumi.Resource

    def __init__(self, name: str, args: VersionGateArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("kubeadm-cluster:index:VersionGate", name, None, opts)
        self.record = _VersionRecord(
            f"{name}-kubernetes-version",
            args["kubernetes_version"],
            pulumi.ResourceOptions(parent=self, depends_on=list(args.get("after", []))),
        )
        self.register_outputs({FIELD: args["kubernetes_version"]})
