"""QEMU VMs on this machine: one implementation for ``provider: local`` and the VM rehearsal.

* ``image``  builds (once, cached) a Debian base image shaped like a cloud image;
* ``vm``     boots a VM from a qcow2 overlay on it (a child process, or a daemon that outlives
             the command which started it), waits for SSH, stops it; the private link's switch;
* ``accel``  chooses the accelerator by a probe (never by the mere presence of /dev/kvm);
* ``python -m components.machines.localvm``: the commands the stack's ``command.local.Command``
  steps run (image, network-start/-stop, vm-start/-stop, probe).

Its modules use the standard library only (the parent package, ``components.machines``, imports
the Pulumi SDK, which the project's venv has): the Pulumi program, its local commands and
``tools/rehearsal`` import it.
"""

from __future__ import annotations

import os
from pathlib import Path

#: The environment variable through which ``vm-start`` gets the SSH private key to log in with.
KEY_ENV = "KC_SSH_PRIVATE_KEY"
#: A VM step's environment variables naming its shape: what the policy pack checks against the
#: hardware minimums at preview (the step's create command waits on the stack's key, unknown then).
VM_MACHINE_TYPE_ENV, VM_DISK_GB_ENV = "KC_VM_MACHINE_TYPE", "KC_VM_DISK_GB"
#: What each ``local.image`` name is to the CLI's ``--suite``: a Debian suite, or the cloud image.
IMAGE_SUITES = {"debian-13": "trixie", "debian-12": "bookworm", "ubuntu-24.04": "ubuntu-24.04"}
#: The ``local.image`` names that are downloaded cloud images (the rest: built with debootstrap).
CLOUD_IMAGES = ("ubuntu-24.04",)

#: Environment variable that moves the local provider's cache (default ~/.cache/kubeadm-cluster/local).
CACHE_ENV = "KC_LOCAL_CACHE"


def local_cache_dir() -> Path:
    """Where ``provider: local`` keeps its base images and, by default, each stack's VMs."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured) if configured else Path.home() / ".cache" / "kubeadm-cluster" / "local"
