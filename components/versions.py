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

# --- Add-ons --------------------------------------------------------------------------
# Everything the add-ons stage installs into the cluster. Charts are installed with
# helm.v3.Release (previews work while the kubeconfig is still unknown); upstream manifests
# the project owns (Weave Net, Kubernetes Dashboard) are typed resources using these images.

#: Weave Net: upstream (weaveworks) is archived and 2.8.1 breaks on iptables-nft >= 1.8.8;
#: rajch/weave is the maintained fork (nft backend by default).
WEAVE_VERSION = "2.9.0"
WEAVE_KUBE_IMAGE = f"docker.io/rajchaudhuri/weave-kube:{WEAVE_VERSION}"
WEAVE_NPC_IMAGE = f"docker.io/rajchaudhuri/weave-npc:{WEAVE_VERSION}"
#: Flannel (chart ``flannel``; the chart's versions carry the leading ``v``).
FLANNEL_CHART_REPO = "https://flannel-io.github.io/flannel/"
FLANNEL_CHART_VERSION = "v0.28.8"
#: Calico through the Tigera operator (chart ``tigera-operator``, versions with ``v``).
CALICO_CHART_REPO = "https://docs.tigera.io/calico/charts"
CALICO_CHART_VERSION = "v3.33.0"
#: Kubernetes Dashboard (archived 2026-01-21): the last self-contained release, v2.7.0,
#: installed from its images (see components/addons/dashboard.py for why not 7.x).
DASHBOARD_IMAGE = "docker.io/kubernetesui/dashboard:v2.7.0"
DASHBOARD_METRICS_SCRAPER_IMAGE = "docker.io/kubernetesui/metrics-scraper:v1.0.8"
#: Headlamp, the Dashboard's successor (Kubernetes SIG UI).
HEADLAMP_CHART_REPO = "https://kubernetes-sigs.github.io/headlamp/"
HEADLAMP_CHART_VERSION = "0.43.0"
#: Rook (operator chart ``rook-ceph``, versions with ``v``) and the Ceph release it runs.
ROOK_CHART_REPO = "https://charts.rook.io/release"
ROOK_CHART_VERSION = "v1.20.6"
# v20.2.2: v20.2.0 has a data-corruption bug with read affinity.
CEPH_IMAGE = "quay.io/ceph/ceph:v20.2.2"
