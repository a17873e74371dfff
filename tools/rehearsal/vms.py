"""Boot N Debian VMs from qcow2 overlays on the base image, under QEMU's software emulation.

Each VM has:

* a user-mode NIC (QEMU's NAT; PCI slot 3): SSH forwarded to 127.0.0.1:<port> on the host, the
  host's loopback reachable as 10.0.2.2 (where the mirror listens), Debian's mirror reachable;
* a NIC on one private link shared by all VMs (PCI slot 4): a ``vde_switch`` on a unix socket
  (a QEMU ``socket`` listen/connect pair when there are two VMs and no vde_switch), with a
  static address (192.168.77.10, .11, ...) set by the image's first-boot seed;
* its own SMBIOS UUID and MAC addresses (machine-ids and product_uuids must differ);
* its serial console logged to ``<run>/<name>.console.log`` and a monitor socket.

Never KVM: on this kind of machine /dev/kvm is PVM, under which a stock Debian kernel hangs
with no output (see shared/LOCAL-VMS.md). QEMU runs with ``-accel tcg,thread=multi`` under
``nice``, so the machine stays usable for other work.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tools.rehearsal import cache_dir
from tools.rehearsal.image import USER, BaseImage, ssh_key

#: The private link's network: VM i gets PRIVATE_PREFIX.(10 + i).
PRIVATE_PREFIX = "192.168.77"
PRIVATE_PREFIX_LEN = 24
#: How the VMs reach the host's loopback through QEMU's user-mode network.
HOST_FROM_VM = "10.0.2.2"
#: Software emulation, one host thread per vCPU. Never "kvm" here (PVM: stock kernels hang).
ACCELERATOR = "tcg,thread=multi"


def accelerator() -> str:
    """The ``-accel`` value: always TCG. /dev/kvm may exist and still be PVM (``/sys/module/kvm_pvm``)
    or plain nested KVM; neither is used, so a run behaves the same on every machine."""
    return ACCELERATOR


def missing_tools() -> list[str]:
    """Host commands booting VMs needs and this machine lacks."""
    needed = ["qemu-system-x86_64", "qemu-img", "ssh"]
    return [tool for tool in needed if shutil.which(tool) is None]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class VM:
    """One running (or stopped) VM."""

    name: str
    index: int
    private_ip: str
    ssh_port: int
    directory: Path
    memory_mb: int
    vcpus: int
    #: The base image it boots (its overlay's backing disk, kernel and initrd).
    image: BaseImage
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    boot_seconds: float = 0.0

    @property
    def overlay(self) -> Path:
        return self.directory / f"{self.name}.qcow2"

    @property
    def console(self) -> Path:
        return self.directory / f"{self.name}.console.log"

    @property
    def monitor(self) -> Path:
        return self.directory / f"{self.name}.monitor"

    def console_tail(self, lines: int = 40) -> str:
        """The last lines of the serial console (what the VM printed while booting)."""
        try:
            text = self.console.read_text(errors="replace")
        except FileNotFoundError:
            return "(no console output yet)"
        return "\n".join(text.replace("\r", "").splitlines()[-lines:])

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class VMError(RuntimeError):
    """A VM did not start or did not answer in time (the message carries its console tail)."""


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
               directory=self.directory, memory_mb=self.memory_mb, vcpus=self.vcpus, image=images[i])
            for i, name in enumerate(names)
        ]

    # --- the private link ------------------------------------------------------------------
    def _private_netdev(self, vm: VM) -> str:
        assert self.directory is not None
        if shutil.which("vde_switch"):
            return f"vde,id=p0,sock={self.directory / 'switch'}"
        if self.count > 2:
            raise VMError("more than two VMs need vde_switch for their private link (apt-get install vde2)")
        port = self.vms[0].ssh_port + 10000 if self.vms[0].ssh_port < 55000 else self.vms[0].ssh_port - 10000
        side = "listen" if vm.index == 0 else "connect"
        return f"socket,id=p0,{side}=127.0.0.1:{port}"

    def _start_switch(self) -> None:
        assert self.directory is not None
        if not shutil.which("vde_switch"):
            return
        sock = self.directory / "switch"
        # -hub: every frame to every port (three VMs; no MAC learning surprises after a reboot).
        self.switch = subprocess.Popen(
            ["vde_switch", "-sock", str(sock), "-hub", "-mod", "0700"],
            stdin=subprocess.PIPE, stdout=(self.directory / "switch.log").open("wb"), stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while not (sock / "ctl").exists():
            if self.switch.poll() is not None or time.monotonic() > deadline:
                raise VMError(f"vde_switch did not start: {(self.directory / 'switch.log').read_text(errors='replace')}")
            time.sleep(0.1)

    # --- one VM ----------------------------------------------------------------------------
    def command(self, vm: VM) -> list[str]:
        """The QEMU command line of ``vm``."""
        image = vm.image
        append = " ".join([
            "root=/dev/vda rw console=ttyS0,115200 net.ifnames=1",
            f"kc.hostname={vm.name} kc.private={vm.private_ip}/{PRIVATE_PREFIX_LEN}",
        ])
        command = [
            "nice", "-n", str(self.nice), "qemu-system-x86_64",
            "-name", vm.name, "-nodefaults", "-no-user-config", "-display", "none",
            "-accel", accelerator(), "-machine", "pc", "-smp", str(vm.vcpus), "-m", str(vm.memory_mb),
            "-uuid", str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{vm.name}.{self.directory}")),
            "-kernel", str(image.kernel), "-initrd", str(image.initrd), "-append", append,
            "-drive", f"file={vm.overlay},if=none,id=d0,format=qcow2,cache=unsafe,discard=unmap",
            "-device", "virtio-blk-pci,drive=d0,addr=0x5",
            "-netdev", f"user,id=u0,hostfwd=tcp:127.0.0.1:{vm.ssh_port}-:22",
            "-device", f"virtio-net-pci,netdev=u0,mac=52:54:00:77:00:{vm.index:02x},addr=0x3",
            "-device", "virtio-rng-pci,addr=0x6",
            # The balloon lets a test shrink a running VM's memory (a host below the spec).
            "-device", "virtio-balloon-pci,id=balloon0,addr=0x7",
            "-serial", f"file:{vm.console}",
            "-monitor", f"unix:{vm.monitor},server,nowait",
        ]
        command += ["-netdev", self._private_netdev(vm),
                    "-device", f"virtio-net-pci,netdev=p0,mac=52:54:00:77:01:{vm.index:02x},addr=0x4"]
        return command

    def _start_vm(self, vm: VM) -> None:
        if not vm.overlay.exists():
            subprocess.run(
                ["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(vm.image.disk), "-F", "raw", str(vm.overlay)],
                check=True,
            )
        vm.console.unlink(missing_ok=True)
        log = (vm.directory / f"{vm.name}.qemu.log").open("wb")
        vm.process = subprocess.Popen(self.command(vm), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        vm.started = time.monotonic()

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
            self.wait_ssh(vm, timeout)

    def wait_ssh(self, vm: VM, timeout: float = 300, kernel_timeout: float = 90) -> None:
        """Wait until ``vm`` runs a command over SSH; a clear error with its console tail otherwise."""
        from tools.rehearsal.remote import ssh_base  # here: remote imports this module

        deadline = vm.started + timeout
        while True:
            if not vm.running():
                code = vm.process.returncode if vm.process else None
                qemu_log = (vm.directory / f"{vm.name}.qemu.log").read_text(errors="replace")[-2000:]
                raise VMError(f"QEMU of {vm.name} exited (code {code}):\n{qemu_log}\nconsole:\n{vm.console_tail()}")
            now = time.monotonic()
            if now - vm.started > kernel_timeout and "Linux version" not in self._console_text(vm):
                raise VMError(
                    f"{vm.name} printed no kernel line in {kernel_timeout:.0f}s (a hung accelerator? QEMU runs "
                    f"-accel {accelerator()}):\n{vm.console_tail()}"
                )
            result = subprocess.run(
                [*ssh_base(port=vm.ssh_port, connect_timeout=5), f"{USER}@127.0.0.1", "true"],
                stdin=subprocess.DEVNULL, capture_output=True, text=True,
            )
            if result.returncode == 0:
                vm.boot_seconds = round(time.monotonic() - vm.started, 1)
                return
            if "Permission denied" in result.stderr:
                # Waiting on would not help: each refused login also adds to sshd's per-source
                # penalty (OpenSSH 9.8+), until it drops every connection from the host.
                raise VMError(
                    f"{vm.name} refused the test key ({result.stderr.strip()}): the authorized_keys of "
                    f"{vm.image.directory} holds another key than {ssh_key()}.pub; rebuild it "
                    f"(python -m tools.rehearsal image --suite {vm.image.suite} --rebuild)"
                )
            if now > deadline:
                raise VMError(
                    f"{vm.name} did not answer SSH on 127.0.0.1:{vm.ssh_port} within {timeout:.0f}s "
                    f"(last ssh error: {result.stderr.strip() or result.returncode}); console tail:\n{vm.console_tail()}"
                )
            time.sleep(2)

    @staticmethod
    def _console_text(vm: VM) -> str:
        try:
            return vm.console.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def monitor_command(self, vm: VM, command: str) -> str:
        """One human-monitor command (e.g. ``set_link p0 off``); returns what the monitor printed."""
        with socket.socket(socket.AF_UNIX) as conn:
            conn.settimeout(10)
            conn.connect(str(vm.monitor))
            conn.recv(4096)
            conn.sendall(command.encode() + b"\n")
            time.sleep(0.3)
            return conn.recv(65536).decode(errors="replace")

    def set_memory(self, vm: VM, megabytes: int) -> None:
        """Inflate or deflate ``vm``'s balloon so that the guest has ``megabytes`` of RAM
        (its MemTotal follows: the virtio balloon driver gives the pages back to the host)."""
        self.monitor_command(vm, f"balloon {megabytes}")

    def reboot(self, vm: VM, timeout: float = 300) -> None:
        """Reboot ``vm`` from inside (systemd's orderly reboot) and wait for SSH again."""
        from tools.rehearsal.remote import ssh_base

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
        self.wait_ssh(vm, timeout)

    def stop_vm(self, vm: VM, grace: float = 60) -> None:
        """ACPI power-off, then QEMU's ``quit``, then SIGKILL: whichever ends the VM first."""
        process = vm.process
        if process is None or process.poll() is not None:
            return
        for action in ("system_powerdown", "quit"):
            try:
                self.monitor_command(vm, action)
            except OSError:
                pass
            try:
                process.wait(grace if action == "system_powerdown" else 10)
                return
            except subprocess.TimeoutExpired:
                continue
        process.send_signal(signal.SIGKILL)
        process.wait(10)

    def stop(self, grace: float = 60) -> None:
        """Stop every VM and the switch (the overlays stay until ``remove``)."""
        for vm in self.vms:
            if vm.running():
                try:
                    self.monitor_command(vm, "system_powerdown")
                except OSError:
                    pass
        for vm in self.vms:
            self.stop_vm(vm, grace)
        if self.switch is not None and self.switch.poll() is None:
            self.switch.terminate()
            try:
                self.switch.wait(10)
            except subprocess.TimeoutExpired:
                self.switch.kill()
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
