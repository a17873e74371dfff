"""Dependency-graph measures of a mock run: the longest chain of remote steps, and which steps a
change runs (two runs of the program compared)."""

from __future__ import annotations

from collections.abc import Collection
from functools import cache

from tools.mock_engine import Plan, Registered

REMOTE = "command:remote:Command"
#: pulumi-command's copy of a local file or directory to a node over SFTP (a remote step too).
COPY = "command:remote:CopyToRemote"
#: The resource types that open an SSH session on a node when they run.
REMOTE_STEPS = (REMOTE, COPY)


def _direct(resource: Registered) -> set[str]:
    deps = set(resource.dependencies)
    for urns in resource.property_dependencies.values():
        deps.update(urns)
    return deps


def longest_chain(plan: Plan, counted: Collection[str]) -> list[str]:
    """The longest sequence of the resources ``counted`` (URNs) where each waits for the one before
    it, directly or through resources not counted; their names."""
    index = plan.by_urn()
    counted = set(counted)

    @cache
    def ancestors(urn: str) -> frozenset[str]:
        """The nearest counted resources this resource waits for (through any other resource)."""
        found: set[str] = set()
        for dep in _direct(index[urn]) if urn in index else ():
            if dep in counted:
                found.add(dep)
            elif dep in index:
                found |= ancestors(dep)
        return frozenset(found)

    @cache
    def longest(urn: str) -> tuple[str, ...]:
        # Of equally long chains the first by name: the same answer on every run (set order
        # follows string hashing, which changes per process).
        candidates = [longest(dep) for dep in ancestors(urn)]
        best = min(candidates, key=lambda chain: (-len(chain), chain), default=())
        return best + (index[urn].name,)

    chains = [longest(urn) for urn in counted if urn in index]
    return list(min(chains, key=lambda chain: (-len(chain), chain))) if chains else []


def command_chain(plan: Plan) -> list[str]:
    """The longest sequence of remote steps where each waits for the one before it, on a new stack.

    Every remote step is an SSH session that must finish before its dependants start, so
    this is the number of sequential remote round-trips from an empty stack to the end.
    A command without a ``create`` command (it runs only on update or delete) opens no
    session when it is created: it is not counted, but what waits for it waits for its
    own ancestors. A copy to a node (CopyToRemote) is a session too.
    """
    return longest_chain(plan, [urn for urn, resource in plan.by_urn().items() if _creates(resource)])


def _creates(resource: Registered) -> bool:
    """Whether creating ``resource`` opens an SSH session on a node."""
    if resource.type == COPY:
        return True
    return resource.type == REMOTE and bool(resource.inputs.get("create"))


def compared_inputs(resource: Registered) -> dict[str, object]:
    """The inputs the engine diffs: those in ``ignoreChanges`` keep their recorded value."""
    return {key: value for key, value in resource.inputs.items() if key not in resource.ignore_changes}


def _runs_on_change(old: Registered, new: Registered) -> bool:
    """Whether ``pulumi up`` from ``old`` to ``new`` opens an SSH session for this resource.

    pulumi-command 1.2.1: a change of ``triggers`` replaces the resource (its ``create`` runs); a
    change of another input updates it, which runs ``update``, or ``create`` when there is no
    ``update`` (provider/pkg/provider/remote/commandController.go); a Command with neither (a
    delete-only step) runs nothing. A CopyToRemote copies again on replacement, or on an update
    whose source hash or remote path changed (copyController.go), which the program ties to its
    triggers."""
    if compared_inputs(old) == compared_inputs(new):
        return False
    if new.type == COPY:
        return True
    if old.inputs.get("triggers") != new.inputs.get("triggers"):
        return bool(new.inputs.get("create"))
    return bool(new.inputs.get("update") or new.inputs.get("create"))


def steps_run(before: Plan, after: Plan) -> list[str]:
    """URNs of the remote steps ``pulumi up`` from ``before`` to ``after`` runs on the nodes:
    created ones that run on create, and changed ones (``_runs_on_change``)."""
    old = before.by_urn()
    run: list[str] = []
    for resource in after.resources:
        if resource.type not in REMOTE_STEPS:
            continue
        previous = old.get(resource.urn)
        if (previous is None and _creates(resource)) or (previous is not None and _runs_on_change(previous, resource)):
            run.append(resource.urn)
    return run


def change_cost(before: Plan, after: Plan) -> tuple[list[str], list[str]]:
    """The names of the steps a change runs, and the longest chain of them (sequential SSH steps)."""
    run = steps_run(before, after)
    index = after.by_urn()
    return sorted(index[urn].name for urn in run), longest_chain(after, run)
