"""Dependency-graph measures of a mock run: the longest chain of remote commands."""

from __future__ import annotations

from functools import cache

from tools.mock_engine import Plan, Registered

REMOTE = "command:remote:Command"


def command_chain(plan: Plan) -> list[str]:
    """The longest sequence of remote commands where each waits for the one before it.

    Every remote step is an SSH session that must finish before its dependants start, so
    this is the number of sequential remote round-trips from an empty stack to the end.
    A command without a ``create`` command (it runs only on update or delete) opens no
    session when it is created: it is not counted, but what waits for it waits for its
    own ancestors.
    """
    index = plan.by_urn()
    commands = {r.urn: r for r in plan.resources if r.type == REMOTE and r.inputs.get("create")}

    def direct(resource: Registered) -> set[str]:
        deps = set(resource.dependencies)
        for urns in resource.property_dependencies.values():
            deps.update(urns)
        return deps

    @cache
    def command_ancestors(urn: str) -> frozenset[str]:
        """The nearest remote commands this resource waits for (through any other resource)."""
        found: set[str] = set()
        for dep in direct(index[urn]) if urn in index else ():
            if dep in commands:
                found.add(dep)
            elif dep in index:
                found |= command_ancestors(dep)
        return frozenset(found)

    @cache
    def longest(urn: str) -> tuple[str, ...]:
        # Of equally long chains the first by name: the same answer on every run (set order
        # follows string hashing, which changes per process).
        candidates = [longest(dep) for dep in command_ancestors(urn)]
        best = min(candidates, key=lambda chain: (-len(chain), chain), default=())
        return best + (commands[urn].name,)

    chains = [longest(urn) for urn in commands]
    return list(min(chains, key=lambda chain: (-len(chain), chain))) if chains else []
