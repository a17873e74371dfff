"""The local stack (``provider: local``) for real, as far as the rehearsal goes.

The committed ``Pulumi.local.yaml`` with the rehearsal mirror's ``mirrors`` (the registries here
cannot serve Kubernetes: the mirror's stand-ins take kubeadm's and the kubelet's place) runs under
the live engine (``program.run_live``): its own ``command.local`` steps build the base image,
start the private link's switch and boot its three VMs on this machine, then its remote steps
(prepare, init, tokens, joins, kubeconfig) run on those VMs over the stack's own SSH key, in the
program's dependency order; ``destroy`` runs every recorded delete, as ``pulumi destroy`` does
(the steps on the nodes, then the VMs with their disks, then the switch)::

    with LocalStack(state_dir) as stack:      # builds or reuses the mirror and serves it
        created = stack.up()                  # image, switch, VMs, then the node steps
        stack.sh("cp-0", "cat /etc/kubernetes/admin.conf")
        destroyed = stack.destroy()

What it keeps apart from the VM rehearsal: the base image is the local provider's (shared by
every local stack, in ``~/.cache/kubeadm-cluster/local/images``: the ``cloud`` variant, no test
key in it), the VMs live in ``state_dir``; from the rehearsal's cache it only reads the mirror
(built there once, reused) and, as every live run, writes the connection's key file beside the
rehearsal's, which ``close`` removes again.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tools import mock_engine
from tools.rehearsal import mirror, program, remote
from tools.rehearsal import timed as rehearsal_timed

#: The stack's name: its nodes are ``localrehearsal-cp-0``, ... and its SSH ports derive from it
#: (not ``local``: a user's own local stack of that name may run on this machine).
STACK = "localrehearsal"
NAMESPACE = "kubeadm-cluster"


def stack_config(mirrors: Mapping[str, Any], state_dir: Path, **local: Any) -> dict[str, Any]:
    """The committed local stack (``Pulumi.local.yaml``) with ``mirrors`` and its VMs in
    ``state_dir`` (``local.stateDir``; ``local``: more ``local`` settings)."""
    config = mock_engine.config_from_stack_file(mock_engine.stack_file("local"))
    config[f"{NAMESPACE}:mirrors"] = dict(mirrors)
    config[f"{NAMESPACE}:local"] = {**config.get(f"{NAMESPACE}:local", {}), "stateDir": str(state_dir), **local}
    return config


@dataclass
class LocalStack:
    """The mirror serving, the local stack's runs and their state. ``timings``: seconds per stage."""

    state_dir: Path
    stack: str = STACK
    timings: dict[str, float] = field(default_factory=dict)
    #: The program's clock in every run (runs compared step by step never straddle a token window).
    clock: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    server: mirror.MirrorServer | None = None
    #: The stack's state after the last run (what ``destroy`` deletes).
    state: program.State = field(default_factory=dict)
    #: The last ``up``'s run (its outputs: ``created.plan.outputs``).
    created: program.LiveRun | None = None
    #: The stack's SSH private key (from its outputs), once it is up.
    private_key: str = ""

    def timed(self, stage: str) -> AbstractContextManager[None]:
        """The ``with`` block's seconds, added to ``timings[stage]``."""
        return rehearsal_timed(self.timings, stage)

    def __enter__(self) -> "LocalStack":
        with self.timed("mirror (build or reuse)"):
            self.server = mirror.MirrorServer(mirror.build_mirror()).start()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def config(self, **local: Any) -> dict[str, Any]:
        assert self.server is not None, "enter the LocalStack first"
        return stack_config(self.server.stack_mirrors(), self.state_dir, **local)

    def up(self, stage: str = "up") -> program.LiveRun:
        """``pulumi up``: the program with the stack's state (none at first)."""
        with self.timed(stage):
            live = program.run_live(self.config(), stack=self.stack, state=self.state or None, now=self.clock)
        self.state = live.state
        self.created = live
        key = (live.plan.outputs if live.plan else {}).get("sshPrivateKey")
        if key:
            self.private_key = str(key)
        return live

    def destroy(self, stage: str = "destroy") -> program.LiveRun:
        """``pulumi destroy``: every recorded delete, in the engine's order."""
        with self.timed(stage):
            live = program.destroy(self.state)
        self.state = live.state
        return live

    def ports(self) -> dict[str, int]:
        """Node name (without the stack's prefix) -> its forwarded SSH port (the ``sshPorts`` output)."""
        assert self.created is not None and self.created.plan is not None, "up first"
        ports = self.created.plan.outputs.get("sshPorts") or {}
        return {name.removeprefix(f"{self.stack}-"): int(port) for name, port in ports.items()}

    def sh(self, node: str, script: str, timeout: float = 300) -> remote.Result:
        """``script`` as root on ``node`` (``cp-0``, ``general-0``, ...) with the stack's own key."""
        connection = {**remote.direct(self.ports()[node]), "privateKey": self.private_key}
        return remote.run(connection, "sudo bash -s", "set -euo pipefail\n" + script, timeout=timeout)

    def close(self) -> None:
        """Destroy what is left (a failed run's VMs must not outlive it), stop the mirror, and
        remove the stack key's file the SSH connections left in the rehearsal's cache."""
        try:
            if self.state:
                self.destroy("destroy (left over)")
        finally:
            if self.server is not None:
                self.server.stop()
                self.server = None
            if self.private_key:
                forget_key(self.private_key)


def forget_key(private_key: str) -> list[Path]:
    """Remove the files ``remote`` wrote for connections with ``private_key`` (the key, and the
    ssh_config naming it) from the rehearsal's cache; returns them. The rehearsal's own test key
    and every other file there stay."""
    if not private_key.strip():
        return []  # remote's file for "no key" is the rehearsal's own test key: never removed
    key = remote._key_file(private_key)  # noqa: SLF001 - where remote keeps it, not re-derived here
    if key.parent.name != "connections":
        return []
    gone = [key, *key.parent.parent.glob(f"config-{key.name}-*")]
    for path in gone:
        path.unlink(missing_ok=True)
    return gone
