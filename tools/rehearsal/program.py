"""The real program, for a ``provider: existing`` stack pointed at the rehearsal VMs.

``run_live`` runs ``__main__.py`` under the mock engine of tools.mock_engine with one change: a
``pulumi-command`` ``remote.Command`` is *executed* on its VM the way pulumi-command's provider
does it (``remote.run``: ``sudo bash -s`` with its ``stdin`` bundle, through its
``connection``, jump host included), and its real stdout becomes the resource's output; a
``remote.CopyToRemote`` (the node scripts every bundle sources) really copies its source over
SFTP through the same connection (``remote.copy``). So the
engine's own rules decide what runs when, as in ``pulumi up``:

* a step starts only once every resource it depends on is registered, i.e. has run;
* independent steps run at the same time (the SDK registers resources from a thread pool): node
  prep on every node in parallel, the workers' tokens and joins in parallel;
* a step's inputs may come from an earlier step's real output (a join's configuration carries
  the token minted on the control plane), as in a real ``up``;
* a failed step fails its dependents, which never run.

What runs for a resource is what pulumi-command v1.2.1 runs (provider/pkg/provider/remote/
commandController.go, common/inputs.go), given the stack's state from an earlier run
(``LiveRun.state``; none: every resource is new):

* a new resource: its ``create`` (nothing when it has none: the upgrade steps);
* a resource whose inputs are unchanged: nothing; its outputs are the recorded ones;
* changed inputs: its ``update``, or its ``create`` when it has no ``update`` (``Update``);
* changed ``triggers`` (``replaceOnChanges``): a replacement: the new one's ``create`` now, the
  old one's ``delete`` with the deletions below;
* a copy copies when it is created or replaced, and on an update only when its source's hash or
  its remote path changed (copyController.go); it deletes nothing;
* a recorded resource the program no longer registers: its recorded ``delete`` (with its
  recorded ``stdin`` and ``connection``), after the program has finished, in the engine's
  order: pulumi's ``ScheduleDeletes`` (pkg/resource/deploy/step_generator.go) peels the
  condemned resources into antichains (those with no condemned dependency first), reverses the
  list, and runs one antichain after the other, each in parallel; a failed delete keeps what it
  depends on. Nothing is deleted when the program or a step failed.

``plan`` runs the program under the plain mocks (nothing executes) to read what it registers.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import runpy
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime.settings import SETTINGS, set_root_resource
from pulumi.runtime.stack import wait_for_rpcs
from pulumi.runtime.sync_await import _sync_await

from components.bootstrap import maintenance
from components.bootstrap import scripts as bootstrap_scripts
from tools.mock_engine import PROGRAM, PROJECT, ClusterMocks, Plan, RecordingMonitor, engine_config, run_program
from tools.rehearsal import remote
from tools.rehearsal.image import USER

STACK = "rehearsal"
COMMAND_TYPE = "command:remote:Command"
COPY_TYPE = "command:remote:CopyToRemote"
#: What a step record names a copy's run with (the executor copies when given it).
COPY_COMMAND = "sftp-copy"
REMOTE_TYPES = (COMMAND_TYPE, COPY_TYPE)


def stack_config(
    jump_port: int,
    private_ips: list[str],
    private_key: str,
    mirrors: Mapping[str, Any],
    **extra: Any,
) -> dict[str, Any]:
    """A ``provider: existing`` stack: the first VM is the control plane and the SSH bastion
    (reached on the host's loopback), the others are workers reached through it."""
    control_plane, *workers = private_ips
    config: dict[str, Any] = {
        "provider": "existing",
        "adminCidrs": ["127.0.0.1/32"],
        "existingHosts": {
            "bastion": {"address": "127.0.0.1", "port": jump_port, "user": USER},
            "controlPlane": [{"address": control_plane, "user": USER}],
            "workers": [{"address": ip, "user": USER, "pool": "general"} for ip in workers],
        },
        "workerPools": [{"name": "general", "count": 0}],
        "rook": {"enabled": False},
        "sshPrivateKey": private_key,
        "mirrors": dict(mirrors),
    }
    config.update(extra)
    return config


#: What pulumi-command does with a resource in a run (see the module's docstring).
CREATE, UPDATE, REPLACE, SAME, DELETE = "create", "update", "replace", "same", "delete"


@dataclass(frozen=True)
class Recorded:
    """A remote command as the stack's state keeps it after a run: what the provider's Diff,
    Update and Delete read the next time (inputs, outputs, the URNs it depends on)."""

    name: str
    urn: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    dependencies: tuple[str, ...]


#: The stack's state of remote commands, by resource name.
State = dict[str, Recorded]


def _present(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """Inputs as the provider compares them: an unset (None) input is an absent one."""
    return {key: value for key, value in inputs.items() if value is not None}


def operation(old: Recorded | None, inputs: Mapping[str, Any]) -> str:
    """What the engine and pulumi-command do with a registered command given its recorded
    state: ``create`` (new), ``same`` (inputs unchanged), ``replace`` (``triggers`` changed:
    replaceOnChanges) or ``update`` (any other input changed)."""
    if old is None:
        return CREATE
    before, after = _present(old.inputs), _present(inputs)
    if before.get("triggers") != after.get("triggers"):
        return REPLACE
    return SAME if before == after else UPDATE


def command_for(op: str, inputs: Mapping[str, Any], old: Mapping[str, Any] | None = None) -> str | None:
    """The command pulumi-command runs for ``op`` (None: nothing runs); for a copy (it has a
    ``remotePath``), COPY_COMMAND when it copies."""
    if "remotePath" in inputs:
        if op in (CREATE, REPLACE):
            return COPY_COMMAND
        if op == UPDATE and old is not None and (
            (old.get("source") or {}).get("hash") != (inputs.get("source") or {}).get("hash")
            or old.get("remotePath") != inputs.get("remotePath")
        ):
            return COPY_COMMAND
        return None
    if op in (CREATE, REPLACE):
        return inputs.get("create") or None
    if op == UPDATE:
        return inputs.get("update") or inputs.get("create") or None
    if op == DELETE:
        return inputs.get("delete") or None
    return None


def delete_schedule(condemned: Mapping[str, Recorded]) -> list[list[str]]:
    """pulumi's ScheduleDeletes: antichains of the condemned resources, each deletable in
    parallel, in the order they run (what depends on a resource goes in an earlier one)."""
    by_urn = {recorded.urn: name for name, recorded in condemned.items()}
    left = set(condemned)
    chains: list[list[str]] = []
    while left:
        chain = sorted(name for name in left
                       if not {by_urn.get(urn) for urn in condemned[name].dependencies} & left)
        if not chain:
            raise RuntimeError(f"a dependency cycle among the condemned resources: {sorted(left)}")
        left -= set(chain)
        chains.append(chain)
    chains.reverse()
    return chains


@dataclass
class Step:
    """One remote step the program ran (``op``: create, update, replace or delete)."""

    name: str
    target: str
    command: str
    stdin: str
    result: remote.Result
    started: float
    finished: float
    op: str = CREATE

    @property
    def seconds(self) -> float:
        return round(self.finished - self.started, 1)


@dataclass
class LiveRun:
    """What a live run did: every step in start order, the commands left alone (inputs
    unchanged), the stack's state after it, the program's plan and error."""

    steps: list[Step] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    state: State = field(default_factory=dict)
    plan: Plan | None = None
    error: str | None = None
    started: float = 0.0
    finished: float = 0.0

    def step(self, name: str, op: str | None = None) -> Step:
        matches = [s for s in self.steps if s.name == name and (op is None or s.op == op)]
        if len(matches) != 1:
            raise KeyError(f"expected one step {name!r}{f' ({op})' if op else ''}, got {len(matches)}; "
                           f"steps: {[(s.name, s.op) for s in self.steps]}")
        return matches[0]

    def ran(self, op: str | None = None) -> set[str]:
        """The names of the steps that ran (``op``: of that kind only)."""
        return {s.name for s in self.steps if op is None or s.op == op}

    def failed(self) -> list[Step]:
        return [s for s in self.steps if not s.result.ok]

    def explain(self) -> str:
        """Every step with its time and status, then the failures' stderr tails."""
        lines = [f"{s.name:40} {s.op:8} {s.seconds:7.1f}s exit {s.result.returncode}  {s.target}" for s in self.steps]
        lines += [f"\n--- {s.name} ({s.op}) failed ---\n{s.result.explain()}" for s in self.failed()]
        if self.error:
            lines.append(f"\nprogram error: {self.error}")
        return "\n".join(lines)


class StepFailed(RuntimeError):
    """A remote step exited non-zero (what pulumi-command reports; its dependents do not run)."""


#: Runs ``command`` for the resource ``name`` with its inputs (``connection``, ``stdin``).
Executor = Callable[[str, str, Mapping[str, Any]], remote.Result]


class LiveMocks(ClusterMocks):
    """ClusterMocks whose remote commands really run, as pulumi-command runs them given the
    recorded ``state`` (None: a new stack), recording each step."""

    def __init__(self, live: LiveRun, execute: Executor, only: Callable[[str], bool] | None = None,
                 state: State | None = None) -> None:
        super().__init__()
        self.live = live
        self.execute = execute
        self.only = only
        self.state = state or {}
        #: Recorded resources replaced in this run: their delete runs with the deletions.
        self.replaced: State = {}
        self.lock = threading.Lock()

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        if args.typ not in REMOTE_TYPES or (self.only and not self.only(args.name)):
            return super().new_resource(args)
        old = self.state.get(args.name)
        op = operation(old, args.inputs)
        if op == SAME and old is not None:
            with self.lock:
                self.live.unchanged.append(args.name)
            return f"{args.name}-id", dict(old.outputs)
        if op == REPLACE and old is not None:
            with self.lock:
                self.replaced[args.name] = old
        state = dict(args.inputs)
        command = command_for(op, args.inputs, old.inputs if old is not None else None)
        if command is None:
            # pulumi-command records the resource (with the previous outputs on an update).
            previous = old.outputs if old is not None and op == UPDATE else {}
            state["stdout"], state["stderr"] = previous.get("stdout", ""), previous.get("stderr", "")
            return f"{args.name}-id", state
        result = self.run(args.name, op, command, args.inputs)
        if not result.ok:
            raise StepFailed(f"{args.name} ({op}): {result.explain(20)}")
        state["stdout"], state["stderr"] = result.stdout, result.stderr
        return f"{args.name}-id", state

    def run(self, name: str, op: str, command: str, inputs: Mapping[str, Any]) -> remote.Result:
        started = time.monotonic()
        result = self.execute(name, command, inputs)
        step = Step(name, result.target, command, str(inputs.get("stdin") or ""), result, started,
                    time.monotonic(), op)
        with self.lock:
            self.live.steps.append(step)
        return step.result

    def delete(self, condemned: State, workers: int) -> set[str]:
        """The recorded deletes of ``condemned`` in the engine's order; returns the names of
        the resources deleted (a failed delete keeps itself and what it depends on)."""
        kept: set[str] = set()
        deleted: set[str] = set()
        by_urn = {recorded.urn: name for name, recorded in condemned.items()}

        def keep(name: str) -> None:
            todo = [name]
            while todo:
                current = todo.pop()
                if current not in kept:
                    kept.add(current)
                    todo += [by_urn[urn] for urn in condemned[current].dependencies if urn in by_urn]

        def one(name: str) -> None:
            command = command_for(DELETE, condemned[name].inputs)
            if command is not None and not self.run(name, DELETE, command, condemned[name].inputs).ok:
                keep(name)

        with concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="delete") as pool:
            for chain in delete_schedule(condemned):
                todo = [name for name in chain if name not in kept]
                list(pool.map(one, todo))
                deleted |= {name for name in todo if name not in kept}
        return deleted


def execute_over_ssh(name: str, command: str, inputs: Mapping[str, Any]) -> remote.Result:
    """What pulumi-command does with a command of a resource: over its ``connection``, with
    its ``stdin``; a copy's (COPY_COMMAND): its ``source`` directory to its ``remotePath``."""
    if command == COPY_COMMAND:
        return remote.copy(inputs["connection"], Path(str(inputs["source"]["path"])), str(inputs["remotePath"]))
    return remote.run(inputs["connection"], command, str(inputs.get("stdin") or ""))


def scripts_at_revision(revision: str, directory: Path) -> Path:
    """The node scripts as git has them at ``revision`` (``git show``), written into
    ``directory``/scripts (the name a node's copy of them has), which is returned."""
    directory = directory / "scripts"
    directory.mkdir(parents=True, exist_ok=True)
    root = Path(PROGRAM).parent
    names = subprocess.run(["git", "-C", str(root), "ls-tree", "--name-only", f"{revision}:components/bootstrap/scripts"],
                           check=True, capture_output=True, text=True).stdout.split()
    for name in names:
        text = subprocess.run(["git", "-C", str(root), "show", f"{revision}:components/bootstrap/scripts/{name}"],
                              check=True, capture_output=True, text=True).stdout
        (directory / name).write_text(text)
    return directory


def run_live(
    config: Mapping[str, Any],
    execute: Executor = execute_over_ssh,
    only: Callable[[str], bool] | None = None,
    secret_keys: tuple[str, ...] = ("kubeadm-cluster:sshPrivateKey",),
    workers: int = 32,
    scripts_dir: Path | None = None,
    state: State | None = None,
    now: datetime | None = None,
) -> LiveRun:
    """Run the program for ``config``, executing its remote commands as pulumi-command does
    given the stack's recorded ``state`` (None: a new stack, every command is created; see the
    module's docstring). ``only``: only the commands whose resource name passes run (the
    others answer as under plain mocks). ``scripts_dir``: the node scripts to bundle instead
    of the checkout's (see ``components.bootstrap.scripts.scripts_from``). ``now``: the clock the
    program reads (the join-token and kubeconfig refresh windows); None: the real one, as in
    ``pulumi up``. Runs compared step by step pass one instant, or a run that crosses a window
    boundary re-mints the join tokens (as a real ``up`` then does)."""
    # Each run in a thread of its own: the SDK keeps its state in context variables and the
    # event loop of the thread, and a failed step leaves tasks and errors behind in them that
    # must not leak into the next run.
    results: list[LiveRun] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            results.append(_run_live(config, execute, only, secret_keys, workers, state, now))
        except BaseException as error:  # noqa: BLE001 - re-raised in the caller's thread
            failure.append(error)

    with bootstrap_scripts.scripts_from(scripts_dir):
        thread = threading.Thread(target=target, name="rehearsal-program")
        thread.start()
        thread.join()
    if failure:
        raise failure[0]
    return results[0]


def _run_live(
    config: Mapping[str, Any],
    execute: Executor,
    only: Callable[[str], bool] | None,
    secret_keys: tuple[str, ...],
    workers: int,
    state: State | None,
    now: datetime | None,
) -> LiveRun:
    real_clock = maintenance.utcnow
    if now is not None:
        maintenance.utcnow = lambda: now
    try:
        return _run_live_at(config, execute, only, secret_keys, workers, state)
    finally:
        maintenance.utcnow = real_clock


def _run_live_at(
    config: Mapping[str, Any],
    execute: Executor,
    only: Callable[[str], bool] | None,
    secret_keys: tuple[str, ...],
    workers: int,
    state: State | None,
) -> LiveRun:
    live = LiveRun(started=time.monotonic())
    mocks = LiveMocks(live, execute, only, state)
    monitor = RecordingMonitor(mocks)
    logger = logging.getLogger(f"kubeadm-cluster.rehearsal.{STACK}")
    logger.handlers = [logging.NullHandler()]
    logger.propagate = False
    # A loop of its own: after a failed step the SDK leaves tasks behind (the failed resource's
    # dependents), which must not surface in the next run.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    # A failed step is reported in the LiveRun; asyncio need not log it again when it drops it.
    loop.set_exception_handler(
        lambda loop, context: None if isinstance(context.get("exception"), StepFailed)
        else loop.default_exception_handler(context)
    )
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="step")
    loop.set_default_executor(executor)
    pulumi.runtime.set_all_config(engine_config(config), list(secret_keys))
    set_root_resource(None)  # type: ignore[arg-type]
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=STACK, preview=False, logger=logger, monitor=monitor)
    _forget_outputs()
    try:
        runpy.run_path(str(PROGRAM), run_name="__main__")
        _sync_await(wait_for_rpcs())
    except Exception as error:  # noqa: BLE001 - a failed step surfaces as whatever the SDK raises
        live.error = f"{type(error).__name__}: {error}"
    finally:
        # Steps already running finish (the engine waits for them too); nothing new starts.
        executor.shutdown(wait=True, cancel_futures=True)
        leftovers = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in leftovers:
            task.cancel()
        if leftovers:
            loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
        _forget_outputs()
        loop.close()
        asyncio.set_event_loop(None)
    live.plan = Plan(resources=list(monitor.registered), outputs={}, secret_outputs=set(), warnings=[], error=live.error)
    if live.failed() and live.error is None:
        live.error = f"{len(live.failed())} step(s) failed"
    # The state after the run: what was registered now, over what was recorded (a failed step
    # or one that never started keeps its record, as the engine keeps it).
    registered = {
        r.name: Recorded(r.name, r.urn, dict(r.inputs), dict(r.outputs),
                         tuple(r.dependencies) + tuple(u for urns in r.property_dependencies.values() for u in urns))
        for r in monitor.registered if r.type in REMOTE_TYPES
    }
    live.state = {**(state or {}), **registered}
    if live.error is None and state is not None and only is None:
        condemned = {name: recorded for name, recorded in state.items() if name not in registered}
        condemned.update({f"{name} (replaced)": old for name, old in mocks.replaced.items()})
        deleted = mocks.delete(condemned, workers)
        live.state = {name: recorded for name, recorded in live.state.items() if name not in deleted}
        if live.failed():
            live.error = f"{len(live.failed())} delete(s) failed"
    live.finished = time.monotonic()
    return live


def _forget_outputs() -> None:
    """Drop the SDK's pending-output set: it outlives a run (a failed run leaves tasks of its
    closed event loop in it, which the next run's ``wait_for_rpcs`` would await)."""
    settings: Any = SETTINGS  # its context properties are invisible to the type checker
    with settings.lock:
        settings.outputs.clear()


def plan(config: Mapping[str, Any]) -> Plan:
    """The program's registrations for ``config`` under the plain mocks (nothing runs)."""
    result = run_program(config, stack=STACK, secret_keys=["kubeadm-cluster:sshPrivateKey"])
    if result.error:
        raise RuntimeError(f"the program failed under mocks: {result.error}")
    return result
