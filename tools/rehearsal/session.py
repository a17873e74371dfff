"""One rehearsal: the image, the mirror, N VMs and the program's steps on them, with timings.

Used by tests/rehearsal and by ``python -m tools.rehearsal``::

    with Rehearsal(count=3) as rehearsal:      # builds/reuses the image and mirror, boots the VMs
        live = rehearsal.run()                 # the program's steps, in its dependency order
        rehearsal.sh(rehearsal.vms[1], "dpkg -l kubelet")
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tools.rehearsal import cache_dir, image, mirror, program, remote, vms
from tools.rehearsal import timed as rehearsal_timed

#: Host commands the rehearsal needs (package in parentheses).
HOST_TOOLS = {
    "qemu-system-x86_64": "qemu-system-x86",
    "qemu-img": "qemu-utils",
    "debootstrap": "debootstrap",
    "vde_switch": "vde2",
    "dpkg-deb": "dpkg",
    "gpg": "gpg",
    "gpgv": "gpgv",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "mkfs.ext4": "e2fsprogs",
}


def missing_requirements() -> list[str]:
    """What this machine lacks to run the rehearsal (empty: it can run)."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root (debootstrap and chroot build the base image)")
    for tool, package in HOST_TOOLS.items():
        if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists() and not Path("/sbin", tool).exists():
            missing.append(f"{tool} (apt-get install --no-install-recommends {package})")
    return missing


#: The Debian release of each VM by default: the control plane and the first worker on Debian 13,
#: the second worker on Debian 12 (both supported for ``provider: existing``; one mixed cluster
#: proves both in one run). ``KC_REHEARSAL_SUITES=trixie,trixie,trixie`` changes it.
DEFAULT_SUITES = ("trixie", "trixie", "bookworm")


def default_suites(count: int) -> tuple[str, ...]:
    """``KC_REHEARSAL_SUITES`` (comma-separated, one per VM; a single one for every VM) or
    DEFAULT_SUITES, cut or padded with Debian 13 to ``count`` VMs."""
    configured = [s.strip() for s in os.environ.get("KC_REHEARSAL_SUITES", "").split(",") if s.strip()]
    if len(configured) == 1:
        return tuple(configured * count)
    suites = list(configured or DEFAULT_SUITES)[:count]
    return tuple(suites + ["trixie"] * (count - len(suites)))


@dataclass
class Rehearsal:
    """Images + mirror + VMs. ``timings`` collects the seconds of each stage."""

    count: int = 3
    #: The Debian release of each VM (empty: ``default_suites``).
    suites: tuple[str, ...] = ()
    memory_mb: int = 4096
    vcpus: int = 2
    keep: bool = False
    timings: dict[str, float] = field(default_factory=dict)
    #: The clock every run of the program reads (the join-token and kubeconfig refresh windows):
    #: the rehearsal's start, so scenarios that compare runs step by step never straddle a window
    #: by accident (a CI run did, and re-minted the tokens); a scenario that moves it on shows
    #: what a new window does.
    clock: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    images: dict[str, image.BaseImage] = field(default_factory=dict)
    content: mirror.MirrorContent | None = None
    server: mirror.MirrorServer | None = None
    group: vms.VMGroup | None = None

    def timed(self, stage: str) -> AbstractContextManager[None]:
        """The ``with`` block's seconds, added to ``timings[stage]``."""
        return rehearsal_timed(self.timings, stage)

    # --- set-up ----------------------------------------------------------------------------
    def __post_init__(self) -> None:
        self.suites = tuple(self.suites) or default_suites(self.count)
        if len(self.suites) != self.count:
            raise ValueError(f"{self.count} VMs but {len(self.suites)} suites: {self.suites}")
        unknown = sorted(set(self.suites) - set(image.SUITES))
        if unknown:
            raise ValueError(f"unknown Debian suite(s) {unknown}: the rehearsal boots {', '.join(image.SUITES)}")

    def prepare_host(self) -> None:
        """Build (or reuse) the base image of each suite and the mirror, all at once (network and
        disk bound: they overlap well on 2 cores); serve the mirror."""
        suites = sorted(set(self.suites))

        def build(suite: str) -> tuple[str, image.BaseImage, float]:
            started = time.monotonic()
            return suite, image.build_image(suite), round(time.monotonic() - started, 1)

        def build_mirror() -> tuple[mirror.MirrorContent, float]:
            started = time.monotonic()
            return mirror.build_mirror(), round(time.monotonic() - started, 1)

        with self.timed("images + mirror (build or reuse, at once)"), ThreadPoolExecutor(len(suites) + 1) as pool:
            content = pool.submit(build_mirror)
            for suite, built, seconds in pool.map(build, suites):
                self.images[suite] = built
                self.timings[f"  of which: image {suite}"] = seconds
            self.content, self.timings["  of which: mirror"] = content.result()
        self.server = mirror.MirrorServer(self.content).start()

    def boot(self) -> None:
        assert self.images, "prepare_host first"
        per_vm = [self.images[suite] for suite in self.suites]
        self.group = vms.VMGroup(per_vm[0], count=self.count, memory_mb=self.memory_mb, vcpus=self.vcpus,
                                 images=per_vm)
        with self.timed("boot"):
            try:
                self.group.start()
            except BaseException:
                self.group.stop(grace=5)
                raise

    def __enter__(self) -> "Rehearsal":
        try:
            self.prepare_host()
            self.boot()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        if self.group is not None:
            with self.timed("shutdown"):
                self.group.stop()
            if not self.keep:
                self.group.remove()
        if self.server is not None:
            self.server.stop()
            self.server = None

    # --- the VMs ---------------------------------------------------------------------------
    @property
    def vms(self) -> list[vms.VM]:
        assert self.group is not None, "boot first"
        return self.group.vms

    def config(self, **extra: Any) -> dict[str, Any]:
        """The ``provider: existing`` stack for these VMs and this mirror."""
        assert self.server is not None
        return program.stack_config(
            self.vms[0].ssh_port, [vm.private_ip for vm in self.vms], image.ssh_key().read_text(),
            self.server.stack_mirrors(), **extra,
        )

    def run(self, stage: str = "program run", config: Mapping[str, Any] | None = None,
            only: Callable[[str], bool] | None = None, state: program.State | None = None) -> program.LiveRun:
        """The program's remote steps on the VMs (``only``: those whose name passes; ``state``:
        the stack's state from an earlier run, see program.run_live), the program's clock at
        ``self.clock``."""
        with self.timed(stage):
            return program.run_live(config if config is not None else self.config(), only=only, state=state,
                                    now=self.clock)

    def sh(self, vm: vms.VM, script: str, timeout: float = 300) -> remote.Result:
        """``script`` as root on ``vm`` (directly through its forwarded port, over one SSH connection
        per VM that the tests' checks share)."""
        return remote.run(remote.direct(vm.ssh_port, shared=True), "sudo bash -s", "set -euo pipefail\n" + script,
                          timeout=timeout)

    def sh_all(self, script: str, timeout: float = 300) -> list[remote.Result]:
        with ThreadPoolExecutor(len(self.vms)) as pool:
            return list(pool.map(lambda vm: self.sh(vm, script, timeout), self.vms))

    def reboot_all(self) -> None:
        assert self.group is not None
        group = self.group
        with self.timed("reboot"), ThreadPoolExecutor(len(self.vms)) as pool:
            list(pool.map(group.reboot, self.vms))

    def write_timings(self, path: Path | None = None) -> Path:
        path = path or cache_dir() / "timings.json"
        path.write_text(json.dumps({"suites": list(self.suites), "vms": self.count, "stages": self.timings,
                                    "when": time.strftime("%Y-%m-%dT%H:%M:%S")}, indent=2))
        return path
