"""The real program, for a ``provider: existing`` stack pointed at the rehearsal VMs.

``run_live`` runs ``__main__.py`` under the mock engine of tools.mock_engine with one change: a
``pulumi-command`` ``remote.Command`` that has a ``create`` command is *executed* on its VM when
the program registers it (``remote.run``: ``sudo bash -s`` with its ``stdin`` bundle, through
its ``connection``, jump host included), and its real stdout becomes the resource's output. So
the engine's own rules decide what runs when, as in ``pulumi up``:

* a step starts only once every resource it depends on is registered, i.e. has run;
* independent steps run at the same time (the SDK registers resources from a thread pool): node
  prep on every node in parallel, the workers' tokens and joins in parallel;
* a step's inputs may come from an earlier step's real output (a join's configuration carries
  the token minted on the control plane), as in a real ``up``;
* a failed step fails its dependents, which never run;
* steps without a ``create`` (upgrades, node removal) do not run on create.

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
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime.settings import SETTINGS, set_root_resource
from pulumi.runtime.stack import wait_for_rpcs
from pulumi.runtime.sync_await import _sync_await

from components.bootstrap import scripts as bootstrap_scripts
from tools.mock_engine import PROGRAM, PROJECT, ClusterMocks, Plan, RecordingMonitor, engine_config, run_program
from tools.rehearsal import remote
from tools.rehearsal.image import USER

STACK = "rehearsal"
COMMAND_TYPE = "command:remote:Command"


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


@dataclass
class Step:
    """One remote step the program ran."""

    name: str
    target: str
    command: str
    stdin: str
    result: remote.Result
    started: float
    finished: float

    @property
    def seconds(self) -> float:
        return round(self.finished - self.started, 1)


@dataclass
class LiveRun:
    """What a live run did: every step in start order, the program's plan and error."""

    steps: list[Step] = field(default_factory=list)
    plan: Plan | None = None
    error: str | None = None
    started: float = 0.0
    finished: float = 0.0

    def step(self, name: str) -> Step:
        matches = [s for s in self.steps if s.name == name]
        if len(matches) != 1:
            raise KeyError(f"expected one step {name!r}, got {len(matches)}; steps: {[s.name for s in self.steps]}")
        return matches[0]

    def failed(self) -> list[Step]:
        return [s for s in self.steps if not s.result.ok]

    def explain(self) -> str:
        """Every step with its time and status, then the failures' stderr tails."""
        lines = [f"{s.name:40} {s.seconds:7.1f}s exit {s.result.returncode}  {s.target}" for s in self.steps]
        lines += [f"\n--- {s.name} failed ---\n{s.result.explain()}" for s in self.failed()]
        if self.error:
            lines.append(f"\nprogram error: {self.error}")
        return "\n".join(lines)


class StepFailed(RuntimeError):
    """A remote step exited non-zero (what pulumi-command reports; its dependents do not run)."""


Executor = Callable[[str, Mapping[str, Any]], remote.Result]


class LiveMocks(ClusterMocks):
    """ClusterMocks whose remote commands really run (on create), recording each step."""

    def __init__(self, live: LiveRun, execute: Executor, only: Callable[[str], bool] | None = None) -> None:
        super().__init__()
        self.live = live
        self.execute = execute
        self.only = only
        self.lock = threading.Lock()

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        if args.typ != COMMAND_TYPE or not args.inputs.get("create") or (self.only and not self.only(args.name)):
            return super().new_resource(args)
        started = time.monotonic()
        result = self.execute(args.name, args.inputs)
        step = Step(args.name, result.target, str(args.inputs["create"]), str(args.inputs.get("stdin") or ""),
                    result, started, time.monotonic())
        with self.lock:
            self.live.steps.append(step)
        if not result.ok:
            raise StepFailed(f"{args.name}: {result.explain(20)}")
        state = dict(args.inputs)
        state["stdout"], state["stderr"] = result.stdout, result.stderr
        return f"{args.name}-id", state


def execute_over_ssh(name: str, inputs: Mapping[str, Any]) -> remote.Result:
    """What pulumi-command does with a resource's inputs on create."""
    return remote.run(inputs["connection"], str(inputs["create"]), str(inputs.get("stdin") or ""))


@contextmanager
def scripts_from(directory: Path | None) -> Iterator[None]:
    """The node scripts read from ``directory`` instead of components/bootstrap/scripts (e.g. an
    older revision, to show what the rehearsal catches); nothing changes when ``None``."""
    if directory is None:
        yield
        return
    original = bootstrap_scripts.SCRIPTS_DIR
    bootstrap_scripts.SCRIPTS_DIR = directory
    bootstrap_scripts.script.cache_clear()
    try:
        yield
    finally:
        bootstrap_scripts.SCRIPTS_DIR = original
        bootstrap_scripts.script.cache_clear()


def scripts_at_revision(revision: str, directory: Path) -> Path:
    """The node scripts as git has them at ``revision`` (``git show``), written into ``directory``."""
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
) -> LiveRun:
    """Run the program for ``config``, executing every remote step it creates (``only``: those
    whose resource name passes; the others answer as under plain mocks). ``scripts_dir``: the
    node scripts to bundle instead of the checkout's (see ``scripts_from``)."""
    # Each run in a thread of its own: the SDK keeps its state in context variables and the
    # event loop of the thread, and a failed step leaves tasks and errors behind in them that
    # must not leak into the next run.
    results: list[LiveRun] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            results.append(_run_live(config, execute, only, secret_keys, workers))
        except BaseException as error:  # noqa: BLE001 - re-raised in the caller's thread
            failure.append(error)

    with scripts_from(scripts_dir):
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
) -> LiveRun:
    live = LiveRun(started=time.monotonic())
    mocks = LiveMocks(live, execute, only)
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
    live.finished = time.monotonic()
    live.plan = Plan(resources=list(monitor.registered), outputs={}, secret_outputs=set(), warnings=[], error=live.error)
    if live.failed() and live.error is None:
        live.error = f"{len(live.failed())} step(s) failed"
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
