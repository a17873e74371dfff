"""One QEMU VM booted from a qcow2 overlay on a base image, and the switch of their private link.

Each VM has:

* a user-mode NIC (QEMU's NAT; PCI slot 3): SSH forwarded to 127.0.0.1:<port> on the host (and
  any other port asked for, such as the API server's 6443), the host's loopback reachable as
  10.0.2.2, Debian's mirror reachable;
* a NIC on one private link shared by its group (PCI slot 4): a ``vde_switch`` on a unix socket
  (or a QEMU ``socket`` listen/connect pair for two VMs without vde_switch), with a static
  address set by the image's first-boot seed (``kc.private=``);
* its own SMBIOS UUID and MAC addresses (machine-ids and product_uuids must differ);
* optionally a blank second disk for Ceph (PCI slot 8, serial ``ceph-osd``: the guest's udev names
  it /dev/disk/by-id/virtio-ceph-osd);
* its serial console logged to ``<dir>/<name>.console.log`` and a monitor socket.

A VM runs either as a child process (the rehearsal: it ends with the test session) or daemonized
with a pid file (``provider: local``: it outlives the ``pulumi up`` step that started it and is
stopped by the step's delete command). Used by both.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from components.machines.localvm import cloudimage
from components.machines.localvm.accel import TCG
from components.machines.localvm.image import USER, BaseImage

#: The rehearsal's private link: VM i gets PRIVATE_PREFIX.(10 + i).
PRIVATE_PREFIX = "192.168.77"
PRIVATE_PREFIX_LEN = 24
#: How the VMs reach the host's loopback through QEMU's user-mode network.
HOST_FROM_VM = "10.0.2.2"
#: QEMU's user-mode network inside every VM: no cluster range may overlap it.
USER_NETWORK_CIDR = "10.0.2.0/24"
#: The Ceph disk's serial and the path the guest's udev gives it.
STORAGE_SERIAL = "ceph-osd"
STORAGE_DEVICE = f"/dev/disk/by-id/virtio-{STORAGE_SERIAL}"
#: OpenSSH options of every probe: fresh VMs, fresh host keys, no prompts.
SSH_OPTIONS = (
    "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
    "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
)


#: Longest path a unix socket may have (sun_path holds 108 bytes with its terminating NUL); QEMU
#: refuses a longer monitor path ("UNIX socket path ... is too long") and exits.
SOCKET_PATH_MAX = 107
#: What a guest that will never answer SSH prints on its console: a kernel that panicked, or an
#: initramfs that could not mount the root disk and dropped to its shell.
BOOT_FAILURES = ("Kernel panic", "(initramfs)", "Failed to mount /dev/vda")


def socket_path(path: Path, room: int = 0) -> Path:
    """``path``, or a short stand-in under /tmp when it (plus ``room`` more characters for names
    inside it) would not fit a unix socket's path: a deep state directory must not stop a VM."""
    if len(str(path)) + room <= SOCKET_PATH_MAX:
        return path
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"kc-{digest}{path.suffix}"


def missing_tools(switch: bool = False) -> list[str]:
    """Host commands booting VMs needs and this machine lacks (``switch``: vde_switch too)."""
    needed = ["qemu-system-x86_64", "qemu-img", "ssh"] + (["vde_switch"] if switch else [])
    return [tool for tool in needed if shutil.which(tool) is None]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def port_taken(port: int) -> bool:
    """Whether something on this host already listens on 127.0.0.1:``port``."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


class VMError(RuntimeError):
    """A VM did not start or did not answer in time (the message carries its console tail)."""


def pid_alive(pid: int, needle: str = "qemu") -> bool:
    """Whether process ``pid`` runs and its command line holds ``needle`` (not a reused pid)."""
    try:
        os.kill(pid, 0)
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        status = Path(f"/proc/{pid}/status").read_text()
    except (OSError, ValueError):
        return False
    return needle.encode() in cmdline and "\nState:\tZ" not in status


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


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
    #: The ``-accel`` value.
    accelerator: str = TCG
    #: Prefix length of ``private_ip``'s network.
    private_prefix_len: int = PRIVATE_PREFIX_LEN
    #: Root disk size in GB (0: the base image's own size).
    disk_gb: int = 0
    #: Size of a blank Ceph disk in GB (0: none).
    storage_gb: int = 0
    #: The authorized_keys line a cloud image gets at boot ("" for a keyed image).
    authorized_key: str = ""
    #: Further host ports forwarded to the guest: host port -> guest port (on 127.0.0.1).
    forwards: dict[int, int] = field(default_factory=dict)
    #: UUID seed: the UUID is derived from the name and this (the group's directory by default).
    uuid_seed: str = ""
    nice: int = 10
    #: A cloud image's NoCloud seed directory (cloudimage.write_seed), given as a ``cidata`` disk.
    seed: Path | None = None
    #: ``-cpu`` model ("": QEMU's default, qemu64).
    cpu: str = ""

    @property
    def overlay(self) -> Path:
        return self.directory / f"{self.name}.qcow2"

    @property
    def storage(self) -> Path:
        return self.directory / f"{self.name}-storage.qcow2"

    @property
    def console(self) -> Path:
        return self.directory / f"{self.name}.console.log"

    @property
    def monitor(self) -> Path:
        return socket_path(self.directory / f"{self.name}.monitor")

    @property
    def pidfile(self) -> Path:
        return self.directory / f"{self.name}.pid"

    @property
    def qemu_log(self) -> Path:
        return self.directory / f"{self.name}.qemu.log"

    def files(self) -> list[Path]:
        """Every file the VM leaves in its directory (disks, console, logs, sockets)."""
        return [self.overlay, self.storage, self.console, self.monitor, self.pidfile, self.qemu_log]

    def console_tail(self, lines: int = 40) -> str:
        """The last lines of the serial console (what the VM printed while booting)."""
        try:
            text = self.console.read_text(errors="replace")
        except FileNotFoundError:
            return "(no console output yet)"
        return "\n".join(text.replace("\r", "").splitlines()[-lines:])

    def console_text(self) -> str:
        try:
            return self.console.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def pid(self) -> int | None:
        """The QEMU process id: the child's, or the daemon's from its pid file."""
        if self.process is not None:
            return self.process.pid
        return read_pid(self.pidfile)

    def running(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        pid = read_pid(self.pidfile)
        return pid is not None and pid_alive(pid)

    def exit_code(self) -> int | None:
        return self.process.returncode if self.process is not None else None

    def wait_exit(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for QEMU to end; whether it did."""
        if self.process is not None:
            try:
                self.process.wait(timeout)
                return True
            except subprocess.TimeoutExpired:
                return False
        deadline = time.monotonic() + timeout
        while self.running():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)
        return True


def cpu_model(accelerator: str) -> str:
    """The CPU a cluster node gets: every feature the accelerator offers. QEMU's default model
    (qemu64) lacks SSE4.2 and POPCNT, i.e. x86-64-v2, which images built on RHEL 9 or CentOS
    Stream 9 (Ceph's among them) require; TCG's ``max`` emulates them, KVM's ``host`` passes the
    host CPU's through."""
    return "host" if accelerator == "kvm" else "max"


def kernel_command_line(vm: VM) -> str:
    """The guest kernel's command line: root disk, console, and the first-boot seed's settings."""
    parts = [
        "root=/dev/vda rw console=ttyS0,115200 net.ifnames=1",
        f"kc.hostname={vm.name} kc.private={vm.private_ip}/{vm.private_prefix_len}",
    ]
    if vm.authorized_key:
        parts.append("kc.authkey=" + base64.b64encode(vm.authorized_key.strip().encode()).decode())
    return " ".join(parts)


def qemu_command(vm: VM, private_netdev: str, daemonize: bool = False) -> list[str]:
    """The QEMU command line of ``vm`` on the private link ``private_netdev`` (a -netdev value)."""
    image = vm.image
    user_net = f"user,id=u0,hostfwd=tcp:127.0.0.1:{vm.ssh_port}-:22" + "".join(
        f",hostfwd=tcp:127.0.0.1:{host}-:{guest}" for host, guest in sorted(vm.forwards.items())
    )
    command = [
        "nice", "-n", str(vm.nice), "qemu-system-x86_64",
        "-name", vm.name, "-nodefaults", "-no-user-config", "-display", "none",
        "-accel", vm.accelerator, *(["-cpu", vm.cpu] if vm.cpu else []),
        "-machine", "pc", "-smp", str(vm.vcpus), "-m", str(vm.memory_mb),
        "-uuid", str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{vm.name}.{vm.uuid_seed or vm.directory}")),
        *(["-kernel", str(image.kernel), "-initrd", str(image.initrd), "-append", kernel_command_line(vm)]
          if image.disk_format == "raw" else []),
        "-drive", f"file={vm.overlay},if=none,id=d0,format=qcow2,cache=unsafe,discard=unmap",
        "-device", "virtio-blk-pci,drive=d0,addr=0x5",
        "-netdev", user_net,
        "-device", f"virtio-net-pci,netdev=u0,mac=52:54:00:77:00:{vm.index:02x},addr=0x3",
        "-device", "virtio-rng-pci,addr=0x6",
        # The balloon lets a test shrink a running VM's memory (a host below the spec).
        "-device", "virtio-balloon-pci,id=balloon0,addr=0x7",
        "-serial", f"file:{vm.console}",
        "-monitor", f"unix:{vm.monitor},server,nowait",
    ]
    if vm.storage_gb:
        command += ["-drive", f"file={vm.storage},if=none,id=d1,format=qcow2,cache=unsafe,discard=unmap",
                    "-device", f"virtio-blk-pci,drive=d1,serial={STORAGE_SERIAL},addr=0x8"]
    if vm.seed is not None:
        command += cloudimage.seed_drive(vm.seed)
    command += ["-netdev", private_netdev,
                "-device", f"virtio-net-pci,netdev=p0,mac=52:54:00:77:01:{vm.index:02x},addr=0x4"]
    if daemonize:
        command += ["-daemonize", "-pidfile", str(vm.pidfile)]
    return command


def create_disks(vm: VM) -> None:
    """The VM's overlay on the base image (grown to ``disk_gb``) and its blank Ceph disk, if missing."""
    vm.directory.mkdir(parents=True, exist_ok=True)
    if not vm.overlay.exists():
        # Never smaller than the base disk: its filesystem would not fit ("bad geometry") and the
        # guest would stop in its initramfs. A larger disk is grown into at boot (resize2fs).
        base = vm.image.disk.stat().st_size if vm.image.disk_format == "raw" else 0
        size = [str(max(vm.disk_gb * 1024**3, base))] if vm.disk_gb else []
        subprocess.run(
            ["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(vm.image.disk), "-F", vm.image.disk_format, str(vm.overlay), *size],
            check=True,
        )
    if vm.storage_gb and not vm.storage.exists():
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(vm.storage), f"{vm.storage_gb}G"], check=True)


def launch(vm: VM, private_netdev: str, daemonize: bool = False) -> None:
    """Create the disks if needed and start QEMU: a child process, or a daemon with a pid file
    (in its own session, so that the step which started it may end)."""
    create_disks(vm)
    vm.console.unlink(missing_ok=True)
    vm.pidfile.unlink(missing_ok=True)
    log = vm.qemu_log.open("wb")
    command = qemu_command(vm, private_netdev, daemonize)
    vm.started = time.monotonic()
    if not daemonize:
        vm.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        return
    # QEMU forks after setting the VM up and its first process exits: 0 means the daemon runs.
    result = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    log.close()
    if result.returncode != 0:
        raise VMError(f"QEMU of {vm.name} did not start (exit {result.returncode}):\n"
                      f"{vm.qemu_log.read_text(errors='replace')[-2000:]}")


def ssh_command(port: int, key: Path, connect_timeout: int = 5, user: str = USER) -> list[str]:
    """``ssh`` to a VM's forwarded port with ``key`` (the remote command still to add)."""
    return ["ssh", *SSH_OPTIONS, "-o", f"ConnectTimeout={connect_timeout}", "-i", str(key), "-p", str(port),
            f"{user}@127.0.0.1"]


def wait_ssh(
    vm: VM,
    ssh: Callable[[], Sequence[str]],
    timeout: float = 300,
    kernel_timeout: float = 90,
    refused: Callable[[str], str] | None = None,
) -> None:
    """Wait until ``vm`` runs ``true`` over SSH (``ssh()``: the command without ``true``); a clear
    error with its console tail otherwise. Fails at once when the guest refuses the key: waiting
    would not help, and each refused login adds to sshd's per-source penalty (OpenSSH 9.8+) until
    it drops every connection from the host. ``refused``: the message for that case."""
    deadline = vm.started + timeout
    while True:
        if not vm.running():
            tail = vm.qemu_log.read_text(errors="replace")[-2000:] if vm.qemu_log.exists() else ""
            raise VMError(f"QEMU of {vm.name} exited (code {vm.exit_code()}):\n{tail}\nconsole:\n{vm.console_tail()}")
        now = time.monotonic()
        console = vm.console_text()
        failure = next((sign for sign in BOOT_FAILURES if sign in console), None)
        if failure is not None:
            raise VMError(f"{vm.name} failed to boot ({failure!r} on its console):\n{vm.console_tail()}")
        if now - vm.started > kernel_timeout and "Linux version" not in console:
            raise VMError(
                f"{vm.name} printed no kernel line in {kernel_timeout:.0f}s (a hung accelerator? QEMU runs "
                f"-accel {vm.accelerator}):\n{vm.console_tail()}"
            )
        result = subprocess.run([*ssh(), "true"], stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if result.returncode == 0:
            vm.boot_seconds = round(time.monotonic() - vm.started, 1)
            return
        if "Permission denied" in result.stderr:
            raise VMError(refused(result.stderr.strip()) if refused else
                          f"{vm.name} refused the key ({result.stderr.strip()})")
        if now > deadline:
            raise VMError(
                f"{vm.name} did not answer SSH on 127.0.0.1:{vm.ssh_port} within {timeout:.0f}s "
                f"(last ssh error: {result.stderr.strip() or result.returncode}); console tail:\n{vm.console_tail()}"
            )
        time.sleep(2)


def monitor_command(vm: VM, command: str) -> str:
    """One human-monitor command (e.g. ``set_link p0 off``); returns what the monitor printed."""
    with socket.socket(socket.AF_UNIX) as conn:
        conn.settimeout(10)
        conn.connect(str(vm.monitor))
        conn.recv(4096)
        conn.sendall(command.encode() + b"\n")
        time.sleep(0.3)
        return conn.recv(65536).decode(errors="replace")


def stop(vm: VM, grace: float = 60) -> None:
    """ACPI power-off, then QEMU's ``quit``, then SIGKILL: whichever ends the VM first."""
    if not vm.running():
        return
    for action in ("system_powerdown", "quit"):
        try:
            monitor_command(vm, action)
        except OSError:
            pass
        if vm.wait_exit(grace if action == "system_powerdown" else 10):
            return
    pid = vm.pid()
    if pid is not None and vm.running():
        os.kill(pid, signal.SIGKILL)
    vm.wait_exit(10)


def remove_files(vm: VM) -> None:
    """Delete the VM's disks, console, logs and sockets (after ``stop``)."""
    for path in vm.files():
        path.unlink(missing_ok=True)


# --- the private link ------------------------------------------------------------------------
def switch_socket(directory: Path) -> Path:
    """The switch's socket directory (its ``ctl`` and one socket per port, ~20 characters, inside)."""
    return socket_path(directory / "switch", room=24)


def vde_netdev(directory: Path) -> str:
    return f"vde,id=p0,sock={switch_socket(directory)}"


def socket_pair_netdev(index: int, port: int) -> str:
    """Two VMs without vde_switch: the first listens on ``port``, the second connects."""
    side = "listen" if index == 0 else "connect"
    return f"socket,id=p0,{side}=127.0.0.1:{port}"


def start_switch(directory: Path, daemon: bool = False, timeout: float = 10) -> subprocess.Popen[bytes] | None:
    """A ``vde_switch`` hub on ``directory/switch``: a child process, or (``daemon``) a daemon
    with ``directory/switch.pid``. Every frame goes to every port (no MAC learning surprises
    after a reboot)."""
    directory.mkdir(parents=True, exist_ok=True)
    sock = switch_socket(directory)
    command = ["vde_switch", "-sock", str(sock), "-hub", "-mod", "0700"]
    log = (directory / "switch.log").open("wb")
    process: subprocess.Popen[bytes] | None = None
    if daemon:
        command += ["-daemon", "-pidfile", str(directory / "switch.pid")]
        result = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        if result.returncode != 0:
            raise VMError(f"vde_switch did not start: {(directory / 'switch.log').read_text(errors='replace')}")
    else:
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while not (sock / "ctl").exists():
        if (process is not None and process.poll() is not None) or time.monotonic() > deadline:
            raise VMError(f"vde_switch did not start: {(directory / 'switch.log').read_text(errors='replace')}")
        time.sleep(0.1)
    return process


def switch_running(directory: Path) -> bool:
    pid = read_pid(directory / "switch.pid")
    return pid is not None and pid_alive(pid, "vde_switch") and (switch_socket(directory) / "ctl").exists()


def stop_switch(directory: Path, process: subprocess.Popen[bytes] | None = None) -> None:
    """End the switch (the child ``process``, or the daemon of ``directory/switch.pid``)."""
    if process is not None:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        return
    pid = read_pid(directory / "switch.pid")
    if pid is not None and pid_alive(pid, "vde_switch"):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while pid_alive(pid, "vde_switch") and time.monotonic() < deadline:
            time.sleep(0.1)
        if pid_alive(pid, "vde_switch"):
            os.kill(pid, signal.SIGKILL)
