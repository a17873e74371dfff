"""A real-node rehearsal: the program's own bootstrap bundles on real Debian VMs under QEMU.

Pieces, each usable alone (``python -m tools.rehearsal --help``):

* ``image``   builds (once, cached on the machine) a Debian base image shaped like a cloud
              image: sshd, a ``kubeadm`` user with passwordless sudo and the test SSH key.
* ``vms``     boots N VMs from qcow2 overlays on that image under QEMU's software emulation
              (never KVM: see ``vms.accelerator``), one private link between them, SSH forwarded
              on the host's loopback, serial consoles logged to files.
* ``mirror``  serves on the host's loopback what the node scripts download: an apt repository
              laid out like pkgs.k8s.io (signed with a test key) and containerd/runc release
              files laid out like GitHub releases, built from Debian's real binaries where a
              registry has them and from stand-ins (``standins/``) where none does.
* ``remote``  runs a bundle the way pulumi-command does: ``sudo bash -s`` with the bundle on
              stdin, through the first VM as jump host for the others.
* ``program`` runs the real program for a ``provider: existing`` stack pointed at the VMs and
              executes each remote step it registers, in the program's own dependency order
              (and each local step: a ``provider: local`` stack's image, switch and VMs).
* ``localstack`` the committed ``provider: local`` stack for real through the mirror: its own
              steps boot its VMs, its node steps run on them, then its destroy.

Everything large (root filesystems, images, packages) lives in the cache directory
(``cache_dir()``), never in the repository.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: Environment variable that moves the cache (default ~/.cache/kubeadm-cluster/rehearsal).
CACHE_ENV = "KC_REHEARSAL_CACHE"


def cache_dir() -> Path:
    """Where the rehearsal keeps its images, keys, packages and per-run files."""
    configured = os.environ.get(CACHE_ENV)
    path = Path(configured) if configured else Path.home() / ".cache" / "kubeadm-cluster" / "rehearsal"
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    """Adds the seconds the ``with`` block takes to ``timings[stage]`` (whatever its outcome)."""
    started = time.monotonic()
    try:
        yield
    finally:
        timings[stage] = round(timings.get(stage, 0.0) + time.monotonic() - started, 1)
