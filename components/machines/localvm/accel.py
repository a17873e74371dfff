"""Which QEMU accelerator a local VM gets: hardware (KVM) only when the host really has it.

``/dev/kvm`` existing proves little: on nested cloud machines it is often PVM (``kvm_pvm``), a
nested hypervisor that only runs specially built guest kernels. With ``-enable-kvm`` a stock
Debian or Ubuntu kernel then hangs at 100 % CPU with no output and no error, so QEMU's own
kvm->tcg fallback never triggers (measured: shared/LOCAL-VMS.md). So the choice is a probe:

1. static: ``/dev/kvm`` present and usable by this user, no ``/sys/module/kvm_pvm``, and a
   hardware KVM module loaded (``kvm_intel`` or ``kvm_amd``); any miss means TCG;
2. then (``boot_probe``) a stock kernel must print its first line under ``-accel kvm`` within a
   few seconds, or TCG it is.

Otherwise software emulation: ``-accel tcg,thread=multi`` (one host thread per vCPU), 5-20x
slower than the host for CPU work, but it boots every kernel.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

#: Software emulation, one host thread per vCPU.
TCG = "tcg,thread=multi"
KVM = "kvm"
#: The choices a stack may make (``local.accelerator``).
CHOICES = ("auto", "tcg", "kvm")
#: Hardware KVM modules (Intel VT-x, AMD-V); PVM's module names the trap.
HARDWARE_MODULES = ("kvm_intel", "kvm_amd")
PVM_MODULE = "kvm_pvm"
#: Where the probe looks (tests point these at a fake tree).
SYS_ROOT = Path("/sys")
DEV_ROOT = Path("/dev")


@dataclass(frozen=True)
class Probe:
    """The probe's verdict: the ``-accel`` value and why."""

    accelerator: str
    reason: str

    @property
    def emulated(self) -> bool:
        return self.accelerator != KVM


def static_probe(sys_root: Path | None = None, dev_root: Path | None = None) -> Probe:
    """What the host's files say about KVM (no VM started)."""
    sys_root = sys_root or SYS_ROOT
    dev_root = dev_root or DEV_ROOT
    device = dev_root / "kvm"
    if not device.exists():
        return Probe(TCG, f"{device} does not exist (no hardware virtualisation exposed to this machine)")
    if (sys_root / "module" / PVM_MODULE).exists():
        return Probe(
            TCG,
            f"{device} is PVM ({sys_root}/module/{PVM_MODULE}): a nested hypervisor under which a stock kernel "
            "hangs without output",
        )
    loaded = [module for module in HARDWARE_MODULES if (sys_root / "module" / module).exists()]
    if not loaded:
        return Probe(TCG, f"{device} exists but neither {' nor '.join(HARDWARE_MODULES)} is loaded")
    if not os.access(device, os.R_OK | os.W_OK):
        return Probe(TCG, f"{device} is not readable and writable by this user (add it to the kvm group)")
    return Probe(KVM, f"{device} with {loaded[0]}")


def kvm_problems(sys_root: Path | None = None, dev_root: Path | None = None) -> list[str]:
    """Why ``accelerator: kvm`` cannot work on this host (empty: the static probe allows it)."""
    probe = static_probe(sys_root, dev_root)
    return [] if probe.accelerator == KVM else [probe.reason]


def boot_probe(kernel: Path, initrd: Path | None = None, seconds: float = 20.0) -> bool:
    """Whether a stock ``kernel`` prints its first line under ``-accel kvm`` within ``seconds``."""
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        return False
    with tempfile.TemporaryDirectory(prefix="kc-kvm-probe-") as tmp:
        console = Path(tmp) / "console.log"
        command = [qemu, "-accel", "kvm", "-nodefaults", "-no-user-config", "-display", "none", "-m", "256",
                   "-kernel", str(kernel), "-append", "console=ttyS0 panic=-1", "-no-reboot",
                   "-serial", f"file:{console}"]
        if initrd is not None:
            command += ["-initrd", str(initrd)]
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + seconds
        try:
            while time.monotonic() < deadline and process.poll() is None:
                if console.exists() and "Linux version" in console.read_text(errors="replace"):
                    return True
                time.sleep(0.5)
            return False
        finally:
            process.kill()
            process.wait(10)


def choose(requested: str, kernel: Path | None = None, initrd: Path | None = None,
           sys_root: Path | None = None, dev_root: Path | None = None) -> Probe:
    """The accelerator for ``requested`` (``auto``, ``tcg`` or ``kvm``).

    ``kvm`` asked for on a host where the static probe says no is an error (the stack config
    refuses it before any resource; here it is refused again at VM start). ``auto`` takes KVM
    only when both probes pass (the boot probe when a kernel is given)."""
    if requested not in CHOICES:
        raise ValueError(f"accelerator {requested!r} is not one of {', '.join(CHOICES)}")
    if requested == "tcg":
        return Probe(TCG, "software emulation asked for (local.accelerator: tcg)")
    probe = static_probe(sys_root, dev_root)
    if requested == "kvm":
        if probe.accelerator != KVM:
            raise ValueError(f"local.accelerator is kvm but {probe.reason}")
        return Probe(KVM, "kvm asked for (local.accelerator: kvm)")
    if probe.accelerator != KVM:
        return probe
    if kernel is not None and not boot_probe(kernel, initrd):
        return Probe(TCG, f"{probe.reason}, but a stock kernel printed nothing under -accel kvm (a nested or "
                          "restricted hypervisor)")
    return probe
