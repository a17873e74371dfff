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
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.rehearsal import cache_dir, image, mirror, program, remote, vms

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


@dataclass
class Rehearsal:
    """Image + mirror + VMs. ``timings`` collects the seconds of each stage."""

    count: int = 3
    suite: str = os.environ.get("KC_REHEARSAL_SUITE", "trixie")
    memory_mb: int = 4096
    vcpus: int = 2
    keep: bool = False
    timings: dict[str, float] = field(default_factory=dict)
    base: image.BaseImage | None = None
    content: mirror.MirrorContent | None = None
    server: mirror.MirrorServer | None = None
    group: vms.VMGroup | None = None

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.timings[stage] = round(self.timings.get(stage, 0.0) + time.monotonic() - started, 1)

    # --- set-up ----------------------------------------------------------------------------
    def prepare_host(self) -> None:
        """Build (or reuse) the base image and the mirror; serve the mirror."""
        with self.timed("image (build or reuse)"):
            self.base = image.build_image(self.suite)
        with self.timed("mirror (build or reuse)"):
            self.content = mirror.build_mirror()
        self.server = mirror.MirrorServer(self.content).start()

    def boot(self) -> None:
        assert self.base is not None, "prepare_host first"
        self.group = vms.VMGroup(self.base, count=self.count, memory_mb=self.memory_mb, vcpus=self.vcpus)
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
            only: Callable[[str], bool] | None = None) -> program.LiveRun:
        """The program's remote steps on the VMs (``only``: those whose name passes)."""
        with self.timed(stage):
            return program.run_live(config if config is not None else self.config(), only=only)

    def sh(self, vm: vms.VM, script: str, timeout: float = 300) -> remote.Result:
        """``script`` as root on ``vm`` (directly through its forwarded port)."""
        return remote.run(remote.direct(vm.ssh_port), "sudo bash -s", "set -euo pipefail\n" + script, timeout=timeout)

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
        path.write_text(json.dumps({"suite": self.suite, "vms": self.count, "stages": self.timings,
                                    "when": time.strftime("%Y-%m-%dT%H:%M:%S")}, indent=2))
        return path
