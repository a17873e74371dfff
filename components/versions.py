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
#: containerd's RELEASES.md: 2.1 is end of life (2026-07-03), 2.2 ends 2026-11-06, 2.3 is the
#: LTS branch (to 2028-04-30) and recommended for Kubernetes 1.36 (tests/upstream/containerd).
CONTAINERD_VERSION = "2.3.4"
#: The runc that containerd 2.3.4 is tested and released with (its script/setup/runc-version);
#: >= 1.3.6 / 1.4.3 for CVE-2026-41579 (and the 1.3.3 container-escape fixes).
RUNC_VERSION = "1.4.3"
CONTAINERD_RELEASE_URL = "https://github.com/containerd/containerd/releases/download"
RUNC_RELEASE_URL = "https://github.com/opencontainers/runc/releases/download"
#: The sandbox ("pause") image tag kubeadm pins, per Kubernetes minor (its constants.PauseVersion,
#: as `kubeadm config images list` prints it: tests/upstream/kubeadm). containerd must pin the
#: same image: with another one kubeadm warns of the mismatch and every node (and a mirror)
#: carries two pause images. A minor in KUBERNETES_SUPPORTED_MINORS needs its entry here.
PAUSE_VERSIONS: dict[int, str] = {35: "3.10.1", 36: "3.10.2"}
#: The pause image of KUBERNETES_DEFAULT_VERSION on the upstream registry.
PAUSE_IMAGE = f"registry.k8s.io/pause:{PAUSE_VERSIONS[int(KUBERNETES_DEFAULT_VERSION.split('.')[1])]}"

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
#: Calico through the Tigera operator (chart ``tigera-operator``, versions with ``v``). Since
#: v3.32 the chart ships no CRDs: the operator creates them (``manageCRDs``) and the program its
#: Installation (components/addons/cni.py, tests/upstream/cni).
CALICO_CHART_REPO = "https://docs.tigera.io/calico/charts"
CALICO_CHART_VERSION = "v3.33.0"
#: Kubernetes Dashboard (archived 2026-01-21): the last self-contained release, v2.7.0,
#: installed from its images (see components/addons/dashboard.py for why not 7.x), as its
#: aio/deploy/recommended.yaml pins them (tests/upstream/dashboard). Its CronJob pages still use
#: batch/v1beta1 (gone since Kubernetes 1.25): listing a CronJob's Jobs, editing and deleting
#: CronJobs fail with 404 on 1.35/1.36; Headlamp has no such gap.
DASHBOARD_IMAGE = "docker.io/kubernetesui/dashboard:v2.7.0"
DASHBOARD_METRICS_SCRAPER_IMAGE = "docker.io/kubernetesui/metrics-scraper:v1.0.8"
#: Headlamp, the Dashboard's successor (Kubernetes SIG UI): chart headlamp-helm-0.45.0
#: (2026-08-21, app v0.45.0: Go 1.26.7 stdlib and base-image security fixes over 0.43.0).
HEADLAMP_CHART_REPO = "https://kubernetes-sigs.github.io/headlamp/"
HEADLAMP_CHART_VERSION = "0.45.0"
#: Rook (operator chart ``rook-ceph``, versions with ``v``) and the Ceph release it runs.
ROOK_CHART_REPO = "https://charts.rook.io/release"
ROOK_CHART_VERSION = "v1.20.6"
#: The Ceph image Rook v1.20.6 pins (its deploy/examples/images.txt and cluster.yaml): v20.2.4
#: fixes CVE-2025-30156 (tests/upstream/rook).
CEPH_IMAGE = "quay.io/ceph/ceph:v20.2.4"
#: Since Rook v1.20 the rook-ceph chart deploys no CSI driver: the ``ceph-csi-drivers`` chart of
#: the ceph-csi-operator repository does (versions without ``v``). Same release as the
#: ceph-csi-operator subchart rook-ceph v1.20.6 depends on (its Chart.yaml: 1.0.4).
CEPH_CSI_CHART_REPO = "https://ceph.github.io/ceph-csi-operator"
CEPH_CSI_DRIVERS_CHART_VERSION = "1.0.4"
