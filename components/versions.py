"""Every version this project installs on a node or into the cluster, in one place.

Bump a version here and nowhere else: the bootstrap scripts receive these values as
inline variables, the kubeadm config and the add-ons read them from this module.
"""

from __future__ import annotations

# --- Kubernetes -----------------------------------------------------------------------
#: The Kubernetes release a stack gets when it does not set ``kubernetesVersion``.
KUBERNETES_DEFAULT_VERSION = "1.36.4"
#: Minor versions this project supports (1.35 is the oldest still supported upstream;
#: Rook v1.20 supports Kubernetes up to 1.36, so 1.37 is not offered yet).
KUBERNETES_SUPPORTED_MINORS: tuple[int, ...] = (35, 36)
#: The apt repository of one Kubernetes minor (``{minor}`` is e.g. ``v1.36``).
KUBERNETES_APT_REPO = "https://pkgs.k8s.io/core:/stable:/{minor}/deb/"

# --- Container runtime ----------------------------------------------------------------
#: Kubernetes 1.36 needs containerd >= 2.0; Ubuntu 24.04 ships 1.7, so the upstream
#: release tarball is installed (its published sha256 is verified before unpacking).
CONTAINERD_VERSION = "2.1.4"
RUNC_VERSION = "1.3.0"
CONTAINERD_RELEASE_URL = "https://github.com/containerd/containerd/releases/download"
RUNC_RELEASE_URL = "https://github.com/opencontainers/runc/releases/download"
#: The sandbox ("pause") image kubeadm 1.36 expects.
PAUSE_IMAGE = "registry.k8s.io/pause:3.10.1"

# --- Machine images (Google Cloud) ----------------------------------------------------
#: Ubuntu 24.04 LTS image families, by CPU architecture.
GCP_IMAGES: dict[str, str] = {
    "x86_64": "ubuntu-os-cloud/ubuntu-2404-lts-amd64",
    "arm64": "ubuntu-os-cloud/ubuntu-2404-lts-arm64",
}

#: Upstream registry of the control-plane images (overridable with ``imageRepository``).
UPSTREAM_IMAGE_REPOSITORY = "registry.k8s.io"
