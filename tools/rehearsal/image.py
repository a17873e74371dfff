"""The Debian base image the rehearsal VMs boot from, built once and cached on the machine.

The image itself (its recipe, the debootstrap build, the cache) is
``components.machines.localvm.image``, shared with ``provider: local``: one implementation. The
rehearsal's variant is the keyed one: the test key (made once into the cache, ``ssh_key``) is
baked into the ``kubeadm`` user's ``authorized_keys`` and is part of the image's name (an image
holding another key would boot into sshd refusing every login, then PerSourcePenalties refusing
every connection). Nothing of it ever goes into the repository.
"""

from __future__ import annotations

from pathlib import Path

from components.machines.localvm import image as _shared
from components.machines.localvm.image import (  # noqa: F401  (the rehearsal's names for them)
    CONFIGURE,
    DEBIAN_MIRROR,
    DISK_GB,
    PACKAGES,
    SEED_SCRIPT,
    SEED_UNIT,
    SUITES,
    USER,
    USER_NETWORK,
    BaseImage,
    ImageError,
    missing_tools,
)
from tools.rehearsal import cache_dir

__all__ = [
    "CONFIGURE", "DEBIAN_MIRROR", "DEFAULT_SUITE", "DISK_GB", "PACKAGES", "SEED_SCRIPT", "SEED_UNIT", "SUITES",
    "USER", "USER_NETWORK", "BaseImage", "ImageError", "build_image", "missing_tools", "public_key",
    "recipe_key", "ssh_key",
]

DEFAULT_SUITE = "bookworm"


def ssh_key() -> Path:
    """The test SSH private key (ed25519, made once into the cache); ``.pub`` beside it."""
    return _shared.ensure_ssh_key(cache_dir() / "ssh", "kubeadm-cluster-rehearsal")


def public_key() -> str:
    """The test key's public half, as the image's ``authorized_keys`` holds it."""
    return ssh_key().with_suffix(".pub").read_text().strip()


def recipe_key(suite: str) -> str:
    """Identifies what the image is made of, the test key included: a changed recipe or a new
    key builds a new image."""
    return _shared.recipe_key(suite, public_key())


def build_image(suite: str = DEFAULT_SUITE, mirror: str = DEBIAN_MIRROR, rebuild: bool = False) -> BaseImage:
    """The cached image of ``suite``, built first when missing (about 2 minutes)."""
    return _shared.build_image(
        suite, cache_dir() / "images", public_key(), mirror=mirror, rebuild=rebuild,
        rebuild_hint=f"python -m tools.rehearsal image --suite {suite}",
    )
