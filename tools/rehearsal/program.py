"""The real program, for a ``provider: existing`` stack pointed at the rehearsal VMs, or for a
``provider: local`` stack whose own steps boot its VMs.

``run_live`` runs ``__main__.py`` under the mock engine of tools.mock_engine with these changes: a
``pulumi-command`` ``remote.Command`` is *executed* on its VM the way pulumi-command's provider
does it (``remote.run``: ``sudo bash -s`` with its ``stdin`` bundle, through its
``connection``, jump host included), a ``remote.CopyToRemote`` (the node scripts every bundle
sources) really copies its source over SFTP through the same connection (``remote.copy``), a
``local.Command`` is executed on this machine the way its local provider does it
(``execute_locally``: the VMs of a ``provider: local`` stack are such commands), and their real
stdout becomes the resource's output; a ``tls`` private key is a real one (``make_key``: the
local VMs let in, and the remote steps log in with, the same key). So the engine's own rules
decide what runs when, as in ``pulumi up``:

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
  old one's ``delete`` with the deletions below (a ``deleteBeforeReplace`` resource, such as a
  local VM, is deleted first by Pulumi, with its replaced dependents: not modelled, the run fails
  saying so);
* a copy copies when it is created or replaced, and on an update only when its source's hash or
  its remote path changed (copyController.go); it deletes nothing;
* a recorded resource the program no longer registers: its recorded ``delete`` (with its
  recorded ``stdin`` and ``connection``), after the program has finished, in the engine's
  order: pulumi's ``ScheduleDeletes`` (pkg/resource/deploy/step_generator.go) peels the
  condemned resources into antichains (those with no condemned dependency first), reverses the
  list, and runs one antichain after the other, each in parallel; a failed delete keeps what it
  depends on. Nothing is deleted when the program or a step failed.

``destroy`` is ``pulumi destroy``: the program does not run; every recorded resource's delete
runs, in that same order (a local stack: the steps on the nodes, then its VMs, then its switch).

``plan`` runs the program under the plain mocks (nothing executes) to read what it registers.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import runpy
import subprocess
import tempfile
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

from components.bootstrap import scripts as bootstrap_scripts
from tools.mock_engine import (
    PROGRAM,
    PROJECT,
    ClusterMocks,
    Plan,
    RecordingMonitor,
    engine_config,
    program_clock,
    run_program,
)
from tools.rehearsal import remote
from tools.rehearsal.image import USER

STACK = "rehearsal"
COMMAND_TYPE = "command:remote:Command"
COPY_TYPE = "command:remote:CopyToRemote"
#: What a step record names a copy's run with (the executor copies when given it).
COPY_COMMAND = "sftp-copy"
REMOTE_TYPES = (COMMAND_TYPE, COPY_TYPE)
#: pulumi-command's local Command: run on the machine running ``pulumi up`` (``provider: local``'s VMs).
LOCAL_COMMAND_TYPE = "command:local:Command"
#: pulumi-tls's private key: the local stack's SSH key (a real one in a live run).
KEY_TYPE = "tls:index/privateKey:PrivateKey"
#: What a live run executes (or makes for real) and keeps in the stack's state between runs.
RECORDED_TYPES = (*REMOTE_TYPES, LOCAL_COMMAND_TYPE, KEY_TYPE)
#: The environment variables pulumi-command's local provider gives an update or delete with the
#: resource's previous stdout and stderr (provider/pkg/provider/util/util.go, v1.2.1), unless
#: ``addPreviousOutputInEnv`` is false.
PREVIOUS_STDOUT_ENV, PREVIOUS_STDERR_ENV = "PULUMI_COMMAND_STDOUT", "PULUMI_COMMAND_STDERR"


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
    """A command (or key) as the stack's state keeps it after a run: what the provider's Diff,
    Update and Delete read the next time (inputs, outputs, the URNs it depends on, its type)."""

    name: str
    urn: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    dependencies: tuple[str, ...]
    type: str = COMMAND_TYPE


#: The stack's state of its commands (remote and local) and keys, by resource name.
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
#: Runs ``command`` of the local command ``name`` with its inputs and its previous outputs
#: (empty on create).
LocalExecutor = Callable[[str, str, Mapping[str, Any], Mapping[str, Any]], remote.Result]
#: Makes the outputs of a ``tls`` private key from its inputs.
KeyMaker = Callable[[Mapping[str, Any]], dict[str, Any]]


def make_key(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """A real key, as pulumi-tls makes one: ``privateKeyOpenssh`` and ``publicKeyOpenssh`` (an
    authorized_keys line ending in a newline). ED25519 only (what the program asks for)."""
    algorithm = str(inputs.get("algorithm") or "RSA")
    if algorithm != "ED25519":
        raise ValueError(f"the live engine makes ED25519 keys only, not {algorithm}")
    with tempfile.TemporaryDirectory(prefix="kc-key-") as directory:
        path = Path(directory) / "key"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(path)], check=True)
        private, public = path.read_text(), path.with_suffix(".pub").read_text()
    return {"privateKeyOpenssh": private, "publicKeyOpenssh": " ".join(public.split()[:2]) + "\n"}


def execute_locally(name: str, command: str, inputs: Mapping[str, Any], previous: Mapping[str, Any],
                    timeout: float = 3600) -> remote.Result:
    """What pulumi-command's local provider does with a command of a resource (v1.2.1,
    provider/pkg/provider/local/commandOutputs.go ``run``): ``interpreter`` (default
    ``/bin/sh -c``) with the command as its last argument, in ``dir`` (default: the current
    directory), with this process's environment plus ``environment``, plus the previous stdout
    and stderr (``PULUMI_COMMAND_STDOUT``/``_STDERR``, when not empty and unless
    ``addPreviousOutputInEnv`` is false), ``stdin`` on its standard input; one trailing newline
    is cut from stdout and stderr."""
    interpreter = [str(part) for part in inputs.get("interpreter") or ["/bin/sh", "-c"]]
    env = {**os.environ, **{key: str(value) for key, value in (inputs.get("environment") or {}).items()}}
    if inputs.get("addPreviousOutputInEnv") is not False:
        for key, output in ((PREVIOUS_STDOUT_ENV, "stdout"), (PREVIOUS_STDERR_ENV, "stderr")):
            if previous.get(output):
                env[key] = str(previous[output])
    started = time.monotonic()
    try:
        done = subprocess.run([*interpreter, command], cwd=str(inputs.get("dir") or os.getcwd()), env=env,
                              input=str(inputs.get("stdin") or ""), capture_output=True, text=True, timeout=timeout)
        code, out, err = done.returncode, done.stdout, done.stderr
    except subprocess.TimeoutExpired as expired:
        code = 124
        out = expired.stdout.decode(errors="replace") if isinstance(expired.stdout, bytes) else (expired.stdout or "")
        err = expired.stderr.decode(errors="replace") if isinstance(expired.stderr, bytes) else (expired.stderr or "")
        err += f"\n(timed out after {timeout:.0f}s)"
    return remote.Result("localhost", command, code, out.removesuffix("\n"), err.removesuffix("\n"),
                         round(time.monotonic() - started, 1))


class LiveMocks(ClusterMocks):
    """ClusterMocks whose commands really run, as pulumi-command runs them given the recorded
    ``state`` (None: a new stack), recording each step: remote ones through ``execute``, local
    ones through ``execute_local``; ``tls`` keys are real ones (``keys``), kept across runs."""

    def __init__(self, live: LiveRun, execute: Executor, only: Callable[[str], bool] | None = None,
                 state: State | None = None, execute_local: LocalExecutor = execute_locally,
                 keys: KeyMaker = make_key) -> None:
        super().__init__()
        self.live = live
        self.execute = execute
        self.execute_local = execute_local
        self.keys = keys
        self.only = only
        self.state = state or {}
        #: Recorded resources replaced in this run: their delete runs with the deletions.
        self.replaced: State = {}
        #: Resources registered with ``deleteBeforeReplace`` (``LiveMonitor`` notes them).
        self.delete_first: set[str] = set()
        self.lock = threading.Lock()

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        if args.typ == KEY_TYPE:
            return self.key(args)
        if args.typ not in (*REMOTE_TYPES, LOCAL_COMMAND_TYPE) or (self.only and not self.only(args.name)):
            return super().new_resource(args)
        old = self.state.get(args.name)
        op = operation(old, args.inputs)
        if op == SAME and old is not None:
            with self.lock:
                self.live.unchanged.append(args.name)
            return f"{args.name}-id", dict(old.outputs)
        if op == REPLACE and args.name in self.delete_first:
            # Pulumi deletes such a resource (and first the resources depending on it that are
            # replaced too) before the create; this engine deletes after the run: a local VM's new
            # create would find the old VM on its name and ports. Refused, not rehearsed wrongly.
            raise StepFailed(f"{args.name}: the replacement of a deleteBeforeReplace resource is not modelled by the "
                             "live engine (Pulumi deletes it, and its replaced dependents, before the create)")
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
        # An update runs with the outputs it had (pulumi-command's local provider passes them on).
        previous = old.outputs if old is not None and op == UPDATE else {}
        result = self.run(args.name, op, command, args.inputs, args.typ, previous)
        if not result.ok:
            raise StepFailed(f"{args.name} ({op}): {result.explain(20)}")
        # Both providers keep the output less one trailing newline (pulumi-command v1.2.1,
        # remote/commandOutputs.go and local/commandOutputs.go: strings.TrimSuffix(..., "\n")).
        state["stdout"], state["stderr"] = result.stdout.removesuffix("\n"), result.stderr.removesuffix("\n")
        return f"{args.name}-id", state

    def key(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        """A private key: the recorded one while its inputs are unchanged, else a new real one."""
        old = self.state.get(args.name)
        if old is not None and operation(old, args.inputs) == SAME:
            with self.lock:
                self.live.unchanged.append(args.name)
            return f"{args.name}-id", dict(old.outputs)
        return f"{args.name}-id", {**args.inputs, **self.keys(args.inputs)}

    def run(self, name: str, op: str, command: str, inputs: Mapping[str, Any], typ: str = COMMAND_TYPE,
            previous: Mapping[str, Any] | None = None) -> remote.Result:
        started = time.monotonic()
        if typ == LOCAL_COMMAND_TYPE:
            result = self.execute_local(name, command, inputs, previous or {})
        else:
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
            recorded = condemned[name]
            command = command_for(DELETE, recorded.inputs) if recorded.type != KEY_TYPE else None
            if command is not None and not self.run(name, DELETE, command, recorded.inputs, recorded.type,
                                                    recorded.outputs).ok:
                keep(name)

        with concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="delete") as pool:
            for chain in delete_schedule(condemned):
                todo = [name for name in chain if name not in kept]
                list(pool.map(one, todo))
                deleted |= {name for name in todo if name not in kept}
        return deleted


class LiveMonitor(RecordingMonitor):
    """The recording monitor, telling the live mocks which resources are ``deleteBeforeReplace``
    (the mocks' arguments do not carry it)."""

    def __init__(self, mocks: LiveMocks) -> None:
        super().__init__(mocks)
        self.live_mocks = mocks

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 (the gRPC method's name)
        if request.deleteBeforeReplace:
            with self.live_mocks.lock:
                self.live_mocks.delete_first.add(request.name)
        return super().RegisterResource(request)


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
    stack: str = STACK,
    execute_local: LocalExecutor = execute_locally,
    keys: KeyMaker = make_key,
) -> LiveRun:
    """Run the program for ``config``, executing its remote commands as pulumi-command does
    given the stack's recorded ``state`` (None: a new stack, every command is created; see the
    module's docstring). ``only``: only the commands whose resource name passes run (the
    others answer as under plain mocks). ``scripts_dir``: the node scripts to bundle instead
    of the checkout's (see ``components.bootstrap.scripts.scripts_from``). ``now``: the clock the
    program reads (the join-token and kubeconfig refresh windows); None: the real one, as in
    ``pulumi up``. Runs compared step by step pass one instant, or a run that crosses a window
    boundary re-mints the join tokens (as a real ``up`` then does). ``stack``: the stack's name
    (a local stack's names, ports and directories derive from it). ``execute_local``: runs the
    local commands (a local stack's image, switch and VMs); ``keys``: makes its SSH key."""
    # Each run in a thread of its own: the SDK keeps its state in context variables and the
    # event loop of the thread, and a failed step leaves tasks and errors behind in them that
    # must not leak into the next run.
    results: list[LiveRun] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            mocks = LiveMocks(LiveRun(started=time.monotonic()), execute, only, state, execute_local, keys)
            with program_clock(now):
                results.append(_run_live(config, mocks, secret_keys, workers, state, stack))
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
    mocks: LiveMocks,
    secret_keys: tuple[str, ...],
    workers: int,
    state: State | None,
    stack: str,
) -> LiveRun:
    live, only = mocks.live, mocks.only
    monitor = LiveMonitor(mocks)
    logger = logging.getLogger(f"kubeadm-cluster.rehearsal.{stack}")
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
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False, logger=logger, monitor=monitor)
    _forget_outputs()
    outputs: dict[str, Any] = {}
    secret_outputs: set[str] = set()
    try:
        runpy.run_path(str(PROGRAM), run_name="__main__")
        _sync_await(wait_for_rpcs())
        # The stack's outputs (the kubeconfig a user reads with ``pulumi stack output``).
        root = pulumi.runtime.settings.get_root_resource()
        for name, value in (getattr(root, "outputs", None) or {}).items():
            output = pulumi.Output.from_input(value)
            outputs[name] = _sync_await(output.future())
            if _sync_await(output.is_secret()):
                secret_outputs.add(name)
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
    live.plan = Plan(resources=list(monitor.registered), outputs=outputs, secret_outputs=secret_outputs, warnings=[],
                     error=live.error)
    if live.failed() and live.error is None:
        live.error = f"{len(live.failed())} step(s) failed"
    # The state after the run: what was registered now, over what was recorded (a failed step
    # or one that never started keeps its record, as the engine keeps it).
    registered = {
        r.name: Recorded(r.name, r.urn, dict(r.inputs), dict(r.outputs),
                         tuple(r.dependencies) + tuple(u for urns in r.property_dependencies.values() for u in urns),
                         r.type)
        for r in monitor.registered if r.type in RECORDED_TYPES
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


def destroy(
    state: State,
    execute: Executor = execute_over_ssh,
    execute_local: LocalExecutor = execute_locally,
    workers: int = 32,
) -> LiveRun:
    """``pulumi destroy`` of a stack whose state is ``state``: the program does not run; every
    recorded resource's delete runs (with its recorded inputs and outputs), in the engine's
    order (see ``delete_schedule``). ``state`` after it: what a failed delete kept."""
    live = LiveRun(started=time.monotonic())
    mocks = LiveMocks(live, execute, state=state, execute_local=execute_local)
    deleted = mocks.delete(dict(state), workers)
    live.state = {name: recorded for name, recorded in state.items() if name not in deleted}
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
