"""The Debian base image local VMs boot from, built once and cached on the machine.

Shaped like a cloud image: a minimal Debian with systemd, sshd and a ``kubeadm`` user who has
passwordless sudo; no SSH host keys and an empty machine-id (each VM makes its own at first
boot); DHCP on the user-mode NIC; the VM's host name and private address come from the kernel
command line at first boot (what cloud-init's metadata does on a cloud).
python3 and python3-yaml are there as on Debian's and Ubuntu's cloud images (cloud-init needs
them); the rehearsal's kubeadm/kubelet stand-ins use them.

Two variants of one recipe:

* **keyed** (the VM rehearsal, ``tools/rehearsal``): the test key is baked into the user's
  ``authorized_keys`` and is part of the image's name: an image holding another key would boot
  into sshd refusing every login (and OpenSSH 9.8+'s PerSourcePenalties then refusing every
  connection from the host).
* **cloud** (``provider: local``): no key in the image; each VM gets its stack's key from the
  kernel command line at every boot (``kc.authkey=`` base64), as a cloud VM gets it from its
  metadata, and grows its root filesystem to its disk (``diskSizeGb``). One image serves every
  local stack of the machine, whatever its key.

The root filesystem is made by ``debootstrap --variant=minbase`` from Debian's mirror, then
written into a sparse raw disk with ``mkfs.ext4 -d`` (no loop mount); the kernel and initrd are
copied out for QEMU's direct kernel boot. Nothing of it ever goes into the repository.
The Pulumi program's local commands and the rehearsal both use it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

#: Debian's package mirror (reachable from this machine and from the VMs through QEMU's NAT).
DEBIAN_MIRROR = "http://deb.debian.org/debian"
#: Debian 12 and 13: the releases the rehearsal boots.
SUITES = ("bookworm", "trixie")
DEFAULT_SUITE = "bookworm"
#: The user the program's stack logs in as (``existingHosts[].user``).
USER = "kubeadm"
#: Root filesystem size: the node preflight wants 30 GB nominal (minus its 10 % tolerance).
DISK_GB = 32

#: What a cloud image has and the node scripts expect to find (everything else they install).
PACKAGES = (
    "systemd-sysv", "udev", "dbus", "openssh-server", "linux-image-amd64", "ca-certificates",
    "iproute2", "sudo", "curl", "kmod", "gnupg", "procps", "systemd-resolved", "openssl",
    "python3", "python3-yaml", "less", "iputils-ping",
)

#: First-boot seed (what cloud-init does from the metadata): host name, /etc/hosts, the private
#: NIC's static address, the SSH host key. Reads ``kc.hostname=`` and ``kc.private=ADDR/LEN``.
SEED_SCRIPT = r"""#!/bin/sh
# kubeadm-cluster rehearsal: per-VM first-boot settings from the kernel command line.
set -eu
host=""
private=""
for arg in $(cat /proc/cmdline); do
  case $arg in
    kc.hostname=*) host=${arg#kc.hostname=} ;;
    kc.private=*) private=${arg#kc.private=} ;;
  esac
done
if [ ! -e /var/lib/kc-seed/done ]; then
  if [ -n "$host" ]; then
    echo "$host" >/etc/hostname
    printf '127.0.0.1 localhost\n127.0.1.1 %s\n::1 localhost ip6-localhost ip6-loopback\n' "$host" >/etc/hosts
  fi
  if [ -n "$private" ]; then
    printf '[Match]\nPath=pci-0000:00:04.0\n\n[Network]\nAddress=%s\nLinkLocalAddressing=no\n' "$private" \
      >/etc/systemd/network/20-private.network
  fi
  mkdir -p /var/lib/kc-seed
  touch /var/lib/kc-seed/done
fi
[ -z "$host" ] || hostname "$(cat /etc/hostname)"
# One ed25519 host key, made once: ssh-keygen -A would also make an RSA key, which takes tens of
# seconds under software emulation while three VMs boot at once.
key=/etc/ssh/ssh_host_ed25519_key
[ -s "$key" ] || ssh-keygen -q -t ed25519 -N '' -f "$key"
"""

SEED_UNIT = """[Unit]
Description=kubeadm-cluster rehearsal first-boot seed (host name, private address, SSH host key)
DefaultDependencies=no
After=local-fs.target
Before=systemd-networkd.service network-pre.target ssh.service sysinit.target
Wants=network-pre.target

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/kc-seed
RemainAfterExit=yes

[Install]
WantedBy=sysinit.target
"""

USER_NETWORK = """[Match]
Path=pci-0000:00:03.0

[Network]
DHCP=ipv4
"""

#: Shell run on the host with ROOTFS, USER and PUBKEY set: turns the debootstrap tree into the image.
CONFIGURE = r"""
set -euo pipefail
r=$ROOTFS
echo localhost >"$r/etc/hostname"
printf '127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n' >"$r/etc/hosts"
printf 'LABEL=root / ext4 errors=remount-ro 0 1\n' >"$r/etc/fstab"
# Each VM makes its own machine-id (empty file: systemd's first boot) and SSH host keys.
: >"$r/etc/machine-id"
rm -f "$r/var/lib/dbus/machine-id" "$r"/etc/ssh/ssh_host_*
install -D -m 0755 /dev/stdin "$r/usr/local/sbin/kc-seed" <<<"$SEED_SCRIPT"
install -D -m 0644 /dev/stdin "$r/etc/systemd/system/kc-seed.service" <<<"$SEED_UNIT"
install -D -m 0644 /dev/stdin "$r/etc/systemd/network/10-user.network" <<<"$USER_NETWORK"
chroot "$r" systemctl enable kc-seed.service systemd-networkd.service systemd-resolved.service >/dev/null 2>&1
ln -sf ../run/systemd/resolve/stub-resolv.conf "$r/etc/resolv.conf"
# The cloud user: passwordless sudo, the test key, no password login.
chroot "$r" useradd -m -s /bin/bash -G sudo "$USER"
install -D -m 0440 /dev/stdin "$r/etc/sudoers.d/90-cloud-user" <<<"$USER ALL=(ALL) NOPASSWD:ALL"
uid=$(chroot "$r" id -u "$USER")
install -d -m 0700 -o "$uid" -g "$uid" "$r/home/$USER/.ssh"
install -m 0600 -o "$uid" -g "$uid" /dev/stdin "$r/home/$USER/.ssh/authorized_keys" <<<"$PUBKEY"
printf 'PasswordAuthentication no\nUseDNS no\nHostKey /etc/ssh/ssh_host_ed25519_key\n' >"$r/etc/ssh/sshd_config.d/50-cloud.conf"
# Package sources as on a cloud image: the release, its updates and security; lists left empty.
cat >"$r/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb ${MIRROR%/debian}/debian-security $SUITE-security main
EOF
rm -rf "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/archives/*.deb
"""


#: The cloud variant's extra packages: resize2fs grows the root filesystem to the VM's disk.
CLOUD_PACKAGES = ("e2fsprogs",)

#: The cloud variant's boot step (cloud-init's ssh-keys and growpart/resizefs modules, from the
#: kernel command line): ``kc.authkey=`` is the base64 of the user's authorized_keys line.
CLOUD_SEED_SCRIPT = r"""#!/bin/sh
# kubeadm-cluster local VM: the stack's SSH key and the root filesystem's size, at every boot.
set -eu
key=""
for arg in $(cat /proc/cmdline); do
  case $arg in
    kc.authkey=*) key=${arg#kc.authkey=} ;;
  esac
done
if [ -n "$key" ]; then
  home=$(getent passwd kubeadm | cut -d: -f6)
  install -d -m 0700 -o kubeadm -g kubeadm "$home/.ssh"
  printf '%s\n' "$key" | base64 -d >"$home/.ssh/authorized_keys.new"
  chown kubeadm:kubeadm "$home/.ssh/authorized_keys.new"
  chmod 0600 "$home/.ssh/authorized_keys.new"
  mv "$home/.ssh/authorized_keys.new" "$home/.ssh/authorized_keys"
fi
resize2fs /dev/vda >/dev/null 2>&1 || true
"""

CLOUD_SEED_UNIT = """[Unit]
Description=kubeadm-cluster local VM seed (the stack's SSH key, root filesystem size)
After=kc-seed.service local-fs.target
Before=ssh.service

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/kc-cloud-seed
RemainAfterExit=yes

[Install]
WantedBy=multi-user.target
"""

#: Run after CONFIGURE for the cloud variant (same variables, plus the two texts above).
CONFIGURE_CLOUD = r"""
set -euo pipefail
r=$ROOTFS
: >"$r/home/$USER/.ssh/authorized_keys"
install -D -m 0755 /dev/stdin "$r/usr/local/sbin/kc-cloud-seed" <<<"$CLOUD_SEED_SCRIPT"
install -D -m 0644 /dev/stdin "$r/etc/systemd/system/kc-cloud-seed.service" <<<"$CLOUD_SEED_UNIT"
chroot "$r" systemctl enable kc-cloud-seed.service >/dev/null 2>&1
"""


@dataclass(frozen=True)
class BaseImage:
    """A built image: the raw root disk, the kernel and initrd for direct boot."""

    suite: str
    directory: Path
    disk: Path
    kernel: Path
    initrd: Path
    build_seconds: float
    #: ``raw``: a debootstrap image booted by QEMU's direct kernel boot; ``qcow2``: a downloaded
    #: cloud image that boots through its own boot loader (no kernel or initrd here).
    disk_format: str = "raw"

    @property
    def kernel_version(self) -> str:
        return self.kernel.name.removeprefix("vmlinuz-")

    @property
    def keyed(self) -> bool:
        """Whether the image holds a key of its own (the rehearsal's); else VMs get theirs at boot."""
        return self.disk_format == "raw" and not self.directory.name.startswith(f"{self.suite}-cloud-")

    def to_json(self) -> dict[str, str]:
        """What the CLI's ``image`` command prints."""
        return {"suite": self.suite, "directory": str(self.directory), "disk": str(self.disk),
                "kernel": str(self.kernel), "initrd": str(self.initrd), "format": self.disk_format}


class ImageError(RuntimeError):
    """The base image could not be built (the message names the step and the log)."""


_KEY_LOCK = threading.Lock()


def ensure_ssh_key(directory: Path, comment: str) -> Path:
    """An ed25519 key ``directory/id_ed25519`` (made once); ``.pub`` beside it.

    Made under a lock (images of two suites build in parallel threads; two processes may race
    too) into a temporary name, the public half renamed into place before the private one: a key
    file that exists always has its own ``.pub`` beside it."""
    directory.mkdir(parents=True, exist_ok=True)
    key = directory / "id_ed25519"
    with _KEY_LOCK, (directory / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not key.exists() or not key.with_suffix(".pub").exists():
            tmp = directory / f".id_ed25519.{os.getpid()}"
            for stale in (tmp, tmp.with_suffix(tmp.suffix + ".pub")):
                stale.unlink(missing_ok=True)
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(tmp)],
                check=True, stdin=subprocess.DEVNULL,
            )
            tmp.with_suffix(tmp.suffix + ".pub").replace(key.with_suffix(".pub"))
            tmp.replace(key)
    return key


def recipe_key(suite: str, public_key: str | None) -> str:
    """Identifies what the image is made of: a changed recipe builds a new image.

    ``public_key``: the key baked into the image (the rehearsal's), part of the recipe: an image
    whose ``authorized_keys`` holds another key would boot into sshd refusing every login. None:
    the cloud variant (no key; each VM gets its own at boot)."""
    parts: list[object] = [suite, PACKAGES, SEED_SCRIPT, SEED_UNIT, USER_NETWORK, CONFIGURE, DISK_GB, USER]
    if public_key is None:
        parts += ["", CLOUD_PACKAGES, CLOUD_SEED_SCRIPT, CLOUD_SEED_UNIT, CONFIGURE_CLOUD]
    else:
        parts.append(public_key)
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:12]


def image_directory(root: Path, suite: str, public_key: str | None) -> Path:
    """Where the image of this recipe lives under ``root``."""
    variant = "" if public_key is not None else "cloud-"
    return root / f"{suite}-{variant}{recipe_key(suite, public_key)}"


def missing_tools() -> list[str]:
    """Host commands the image build needs and this machine lacks."""
    tools = ["debootstrap", "mkfs.ext4", "ssh-keygen", "chroot"]
    return [tool for tool in tools if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists()]


def _run(command: list[str], log: Path, what: str, env: dict[str, str] | None = None, stdin: str | None = None) -> None:
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(command)}\n")
        out.flush()
        result = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=env, input=stdin, text=True)
    if result.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        raise ImageError(f"{what} failed (exit {result.returncode}); log {log}:\n{tail}")


def cached_image(root: Path, suite: str, public_key: str | None) -> BaseImage | None:
    """The image of this recipe if it is built already (None otherwise)."""
    directory = image_directory(root, suite, public_key)
    manifest = directory / "manifest.json"
    if not manifest.exists():
        return None
    data = json.loads(manifest.read_text())
    return BaseImage(
        suite=suite, directory=directory, disk=directory / "disk.raw", kernel=directory / data["kernel"],
        initrd=directory / data["initrd"], build_seconds=0.0,
    )


def build_image(
    suite: str,
    root: Path,
    public_key: str | None,
    mirror: str = DEBIAN_MIRROR,
    rebuild: bool = False,
    rebuild_hint: str = "",
) -> BaseImage:
    """The cached image of ``suite`` under ``root``, built first when missing (about 2 minutes).

    Builds run one at a time per image (a file lock): two stacks, or a stack and a rehearsal,
    asking for the same image at once get one build."""
    if suite not in SUITES:
        raise ImageError(f"suite {suite!r} is not one of {', '.join(SUITES)}")
    root.mkdir(parents=True, exist_ok=True)
    directory = image_directory(root, suite, public_key)
    if not rebuild and (found := cached_image(root, suite, public_key)) is not None:
        return found
    with (root / f".{directory.name}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not rebuild and (found := cached_image(root, suite, public_key)) is not None:
            return found
        return _build(suite, root, directory, public_key, mirror, rebuild_hint)


def _build(suite: str, root: Path, directory: Path, public_key: str | None, mirror: str, hint: str) -> BaseImage:
    if os.geteuid() != 0:
        raise ImageError(
            "building the base image needs root (debootstrap, chroot), once per machine"
            + (f": {hint}" if hint else "")
        )
    missing = missing_tools()
    if missing:
        raise ImageError(f"missing host tools: {', '.join(missing)} (apt-get install debootstrap e2fsprogs openssh-client)")
    started = time.monotonic()
    work = root / f".build-{suite}-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    log = work / "build.log"
    rootfs = work / "rootfs"
    packages = PACKAGES + (CLOUD_PACKAGES if public_key is None else ())
    try:
        _run(
            ["nice", "-n", "10", "debootstrap", "--variant=minbase", f"--include={','.join(packages)}",
             "--components=main", suite, str(rootfs), mirror],
            log, f"debootstrap {suite}",
        )
        env = {
            **os.environ, "ROOTFS": str(rootfs), "USER": USER, "SUITE": suite, "MIRROR": mirror,
            "PUBKEY": public_key or "",
            "SEED_SCRIPT": SEED_SCRIPT, "SEED_UNIT": SEED_UNIT, "USER_NETWORK": USER_NETWORK,
            "CLOUD_SEED_SCRIPT": CLOUD_SEED_SCRIPT, "CLOUD_SEED_UNIT": CLOUD_SEED_UNIT,
        }
        _run(["bash", "-c", CONFIGURE], log, "configuring the root filesystem", env=env)
        if public_key is None:
            _run(["bash", "-c", CONFIGURE_CLOUD], log, "configuring the cloud seed", env=env)
        kernels = sorted((rootfs / "boot").glob("vmlinuz-*"))
        if not kernels:
            raise ImageError(f"no kernel in {rootfs}/boot (linux-image-amd64 missing?)")
        kernel = kernels[-1]
        initrd = rootfs / "boot" / f"initrd.img-{kernel.name.removeprefix('vmlinuz-')}"
        if not initrd.exists():
            raise ImageError(f"no initrd {initrd.name} beside {kernel.name}")
        shutil.copy2(kernel, work / kernel.name)
        shutil.copy2(initrd, work / initrd.name)
        disk = work / "disk.raw"
        _run(["truncate", "-s", f"{DISK_GB}G", str(disk)], log, "creating the disk")
        _run(
            ["nice", "-n", "10", "mkfs.ext4", "-q", "-F", "-L", "root", "-d", str(rootfs), str(disk)],
            log, "mkfs.ext4 -d",
        )
        shutil.rmtree(rootfs)
        seconds = round(time.monotonic() - started, 1)
        (work / "manifest.json").write_text(
            json.dumps({"suite": suite, "kernel": kernel.name, "initrd": initrd.name, "packages": packages,
                        "authorized_key": public_key or "",
                        "build_seconds": seconds, "built": time.strftime("%Y-%m-%dT%H:%M:%S")}, indent=2)
        )
        shutil.rmtree(directory, ignore_errors=True)
        work.rename(directory)
    except BaseException:
        shutil.rmtree(rootfs, ignore_errors=True)
        raise
    return BaseImage(
        suite=suite, directory=directory, disk=directory / "disk.raw", kernel=directory / kernel.name,
        initrd=directory / initrd.name, build_seconds=seconds,
    )
