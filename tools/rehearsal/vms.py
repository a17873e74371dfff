"""Boot N Debian VMs from qcow2 overlays on the base image, under QEMU's software emulation.

The VM itself (its QEMU command line, disks, SSH wait, monitor, stop) and the private link's
switch are ``components.machines.localvm.vm``, shared with ``provider: local``: one
implementation. Here the rehearsal's group of VMs: child processes that end with the test
session, on one private link (192.168.77.10, .11, ...), SSH forwarded to free loopback ports,
consoles and monitors in a per-run directory.

Never KVM: on this kind of machine /dev/kvm is PVM, under which a stock Debian kernel hangs
with no output (see shared/LOCAL-VMS.md). QEMU runs with ``-accel tcg,thread=multi`` under
``nice``, so the machine stays usable for other work.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from components.machines.localvm import vm as _shared
from components.machines.localvm.accel import TCG
from components.machines.localvm.vm import (  # noqa: F401  (the rehearsal's names for them)
    HOST_FROM_VM,
    PRIVATE_PREFIX,
    PRIVATE_PREFIX_LEN,
    VM,
    VMError,
    free_port,
    missing_tools,
)
from tools.rehearsal import cache_dir
from tools.rehearsal.image import USER, BaseImage, ssh_key

__all__ = [
    "ACCELERATOR", "HOST_FROM_VM", "PRIVATE_PREFIX", "PRIVATE_PREFIX_LEN", "VM", "VMError", "VMGroup",
    "accelerator", "free_port", "missing_tools",
]

#: Software emulation, one host thread per vCPU. Never "kvm" here (PVM: stock kernels hang).
ACCELERATOR = TCG


def accelerator() -> str:
    """The ``-accel`` value: always TCG. /dev/kvm may exist and still be PVM (``/sys/module/kvm_pvm``)
    or plain nested KVM; neither is used, so a run behaves the same on every machine."""
    return ACCELERATOR


@dataclass
class VMGroup:
    """N VMs on one private link. Use as a context manager, or call ``start`` and ``stop``.
    ``images``: the base image of each VM (e.g. Debian 13 and 12 side by side), else ``image``."""

    image: BaseImage
    count: int = 3
    memory_mb: int = 4096
    vcpus: int = 2
    names: Sequence[str] = ()
    images: Sequence[BaseImage] = ()
    directory: Path | None = None
    nice: int = 10
    vms: list[VM] = field(default_factory=list)
    switch: subprocess.Popen[bytes] | None = None
    #: The VMs booted once more after a kernel panic at boot (``wait_booted``), in order.
    restarts: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.directory is None:
            self.directory = cache_dir() / "runs" / time.strftime(f"%Y%m%d-%H%M%S-{os.getpid()}")
        self.directory.mkdir(parents=True, exist_ok=True)
        names = list(self.names) or [f"node-{i}" for i in range(self.count)]
        if len(names) != self.count:
            raise ValueError(f"{self.count} VMs but {len(names)} names")
        images = list(self.images) or [self.image] * self.count
        if len(images) != self.count:
            raise ValueError(f"{self.count} VMs but {len(images)} images")
        self.vms = [
            VM(name=name, index=i, private_ip=f"{PRIVATE_PREFIX}.{10 + i}", ssh_port=free_port(),
               directory=self.directory, memory_mb=self.memory_mb, vcpus=self.vcpus, image=images[i],
               accelerator=accelerator(), nice=self.nice)
            for i, name in enumerate(names)
        ]

    # --- the private link ------------------------------------------------------------------
    def _private_netdev(self, vm: VM) -> str:
        assert self.directory is not None
        if shutil.which("vde_switch"):
            return _shared.vde_netdev(self.directory)
        if self.count > 2:
            raise VMError("more than two VMs need vde_switch for their private link (apt-get install vde2)")
        port = self.vms[0].ssh_port + 10000 if self.vms[0].ssh_port < 55000 else self.vms[0].ssh_port - 10000
        return _shared.socket_pair_netdev(vm.index, port)

    def _start_switch(self) -> None:
        assert self.directory is not None
        if shutil.which("vde_switch"):
            self.switch = _shared.start_switch(self.directory)

    # --- one VM ----------------------------------------------------------------------------
    def command(self, vm: VM) -> list[str]:
        """The QEMU command line of ``vm``."""
        return _shared.qemu_command(vm, self._private_netdev(vm))

    def _start_vm(self, vm: VM) -> None:
        _shared.launch(vm, self._private_netdev(vm))

    def start(self, timeout: float = 300) -> None:
        """Boot every VM (all at once) and wait until each answers SSH."""
        missing = missing_tools()
        if missing:
            raise VMError(f"missing host tools: {', '.join(missing)} (apt-get install qemu-system-x86 qemu-utils openssh-client)")
        self._start_switch()
        # The socket pair's listener first.
        for vm in self.vms:
            self._start_vm(vm)
            if vm.index == 0 and self.count == 2 and not self.switch:
                time.sleep(0.5)
        for vm in self.vms:
            self.wait_booted(vm, timeout)

    def wait_booted(self, vm: VM, timeout: float = 300) -> None:
        """``wait_ssh``, with one cold restart of ``vm`` when its kernel panicked while booting.

        QEMU's multi-threaded software emulation can run a stale translation of kernel text that
        another vCPU is patching (the guest's int3-based text_poke): a CI run's VM died 4 s into
        its boot with ``Oops: int3`` in ``sched_clock_cpu``. That is the emulator's race, not the
        node's; a second boot of the same disk passes. A second panic fails (with the console)."""
        try:
            self.wait_ssh(vm, timeout)
        except VMError as error:
            if "('Kernel panic' on its console)" not in str(error):
                raise
            print(f"{vm.name}: its kernel panicked while booting (emulator race); booting it once more:\n"
                  f"{vm.console_tail()}", file=sys.stderr, flush=True)
            self.restarts.append(vm.name)
            self.stop_vm(vm, grace=0)
            self._start_vm(vm)
            self.wait_ssh(vm, timeout)

    def wait_ssh(self, vm: VM, timeout: float = 300, kernel_timeout: float = 90) -> None:
        """Wait until ``vm`` runs a command over SSH; a clear error with its console tail otherwise."""
        from tools.rehearsal.remote import ssh_base  # here: remote imports this module

        def refused(stderr: str) -> str:
            return (
                f"{vm.name} refused the test key ({stderr}): the authorized_keys of "
                f"{vm.image.directory} holds another key than {ssh_key()}.pub; rebuild it "
                f"(python -m tools.rehearsal image --suite {vm.image.suite} --rebuild)"
            )

        _shared.wait_ssh(
            vm, lambda: [*ssh_base(port=vm.ssh_port, connect_timeout=5), f"{USER}@127.0.0.1"],
            timeout=timeout, kernel_timeout=kernel_timeout, refused=refused,
        )

    def monitor_command(self, vm: VM, command: str) -> str:
        """One human-monitor command (e.g. ``set_link p0 off``); returns what the monitor printed."""
        return _shared.monitor_command(vm, command)

    def set_memory(self, vm: VM, megabytes: int) -> None:
        """Inflate or deflate ``vm``'s balloon so that the guest has ``megabytes`` of RAM
        (its MemTotal follows: the virtio balloon driver gives the pages back to the host)."""
        self.monitor_command(vm, f"balloon {megabytes}")

    def reboot(self, vm: VM, timeout: float = 300) -> None:
        """Reboot ``vm`` from inside (systemd's orderly reboot) and wait for SSH again."""
        from tools.rehearsal.remote import close_shared, ssh_base

        close_shared(vm.ssh_port)
        subprocess.run(
            [*ssh_base(port=vm.ssh_port, connect_timeout=5), f"{USER}@127.0.0.1", "sudo systemctl reboot"],
            stdin=subprocess.DEVNULL, capture_output=True,
        )
        # Wait until sshd is gone, then for it to come back.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            probe = subprocess.run(
                [*ssh_base(port=vm.ssh_port, connect_timeout=3), f"{USER}@127.0.0.1", "true"],
                stdin=subprocess.DEVNULL, capture_output=True,
            )
            if probe.returncode != 0:
                break
            time.sleep(1)
        vm.started = time.monotonic()
        self.wait_booted(vm, timeout)

    def stop_vm(self, vm: VM, grace: float = 60) -> None:
        """ACPI power-off, then QEMU's ``quit``, then SIGKILL: whichever ends the VM first."""
        _shared.stop(vm, grace)

    def stop(self, grace: float = 60) -> None:
        """Stop every VM and the switch (the overlays stay until ``remove``)."""
        from tools.rehearsal.remote import close_shared

        for vm in self.vms:
            close_shared(vm.ssh_port)
            if vm.running():
                try:
                    self.monitor_command(vm, "system_powerdown")
                except OSError:
                    pass
        for vm in self.vms:
            self.stop_vm(vm, grace)
        if self.switch is not None:
            assert self.directory is not None
            _shared.stop_switch(self.directory, self.switch)
        self.switch = None

    def remove(self) -> None:
        """Delete the run directory (overlays, consoles): after ``stop``."""
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> "VMGroup":
        try:
            self.start()
        except BaseException:
            self.stop(grace=5)
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
