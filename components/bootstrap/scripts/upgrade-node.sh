#!/usr/bin/env bash
# Upgrades this node to K8S_VERSION the kubeadm way (runs on the node; prepare-node.sh has already
# pointed its apt source list at the version's minor):
#   1. kubeadm to K8S_VERSION (unheld, installed, held again);
#   2. the first control plane: `kubeadm upgrade apply vK8S_VERSION` (the cluster's version);
#      the other control planes and the workers: `kubeadm upgrade node`;
#   3. a control plane drains itself (a worker was drained beforehand from the first control
#      plane by upgrade-drain.sh, which also uncordons it afterwards);
#   4. kubelet and kubectl to K8S_VERSION, kubelet restarted;
#   5. a control plane uncordons itself and waits until its Node reports the new kubelet.
#
# Idempotent: a node whose kubelet, kubeadm and kubectl are all at K8S_VERSION (and, on the first
# control plane, whose cluster is at vK8S_VERSION) is left alone; a node that has not joined yet
# has nothing to upgrade (node prep installs the right version before it joins). A run that
# stopped half-way picks up where it stopped: /var/lib/kubeadm-cluster/upgrading-to marks an
# upgrade in progress, so that a node whose packages are already new still gets its kubelet
# restarted and (a control plane) uncordoned.
#
# Inputs: NODE_NAME; K8S_VERSION (x.y.z); UPGRADE_ROLE (first-control-plane | control-plane |
#         worker); optional DRAIN_TIMEOUT (else kc_drain_timeout: the settings ConfigMap, or 300s); optional KC_READY_ATTEMPTS (30) bounds the wait
#         for the Node's new kubelet version.
# Stdout: nothing.
set -euo pipefail
if ! declare -F kc_log >/dev/null 2>&1; then
  # shellcheck source=lib.sh
  . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
fi
KC_STEP=upgrade-node

: "${NODE_NAME:?NODE_NAME is required}"
: "${K8S_VERSION:?K8S_VERSION is required (the target version, e.g. 1.36.4)}"
: "${UPGRADE_ROLE:?UPGRADE_ROLE is required (first-control-plane, control-plane or worker)}"
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-}
KC_READY_ATTEMPTS=${KC_READY_ATTEMPTS:-30}
kc_check_version K8S_VERSION "$K8S_VERSION"
[[ -z $DRAIN_TIMEOUT ]] || kc_check_duration DRAIN_TIMEOUT "$DRAIN_TIMEOUT"
case $UPGRADE_ROLE in
  first-control-plane | control-plane | worker) ;;
  *) kc_die "UPGRADE_ROLE must be first-control-plane, control-plane or worker, not '$UPGRADE_ROLE'" ;;
esac
[[ $KC_READY_ATTEMPTS =~ ^[1-9][0-9]*$ ]] ||
  kc_die "KC_READY_ATTEMPTS must be a positive integer, not '$KC_READY_ATTEMPTS'"

KC_ADMIN_CONF=$KC_ROOT/etc/kubernetes/admin.conf
#: Present (holding the target version) from the first change of an upgrade until its end.
KC_UPGRADE_MARKER=$KC_ROOT/var/lib/kubeadm-cluster/upgrading-to

# kc_upgrade_packages PACKAGE... : installs PACKAGE=K8S_VERSION-* for each PACKAGE not at that
# version yet (unheld around the install), then checks every PACKAGE's version.
kc_upgrade_packages() {
  local package version
  local -a install=()
  for package in "$@"; do
    version=$(kc_pkg_version "$package")
    if [[ $version == "$K8S_VERSION"-* ]]; then
      kc_log "$package is already at $version"
    else
      install+=("$package=$K8S_VERSION-*")
    fi
  done
  if ((${#install[@]})); then
    kc_log "installing ${install[*]}"
    kc_apt_update_once
    apt-mark unhold "$@" >&2
    kc_apt_get install --allow-change-held-packages "${install[@]}"
    apt-mark hold "$@" >&2
  fi
  for package in "$@"; do
    version=$(kc_pkg_version "$package")
    [[ $version == "$K8S_VERSION"-* ]] ||
      kc_die "$package is at '${version:-not installed}' after the install, not $K8S_VERSION"
  done
}

# kc_upgrade_kubelet_is : the Node's kubelet reports vK8S_VERSION (one check).
kc_upgrade_kubelet_is() {
  local reported
  reported=$(kubectl --kubeconfig "$KC_ADMIN_CONF" get node "$NODE_NAME" \
    -o jsonpath='{.status.nodeInfo.kubeletVersion}' </dev/null) || return 1
  if [[ $reported != "v$K8S_VERSION" ]]; then
    kc_log "node $NODE_NAME reports kubelet ${reported:-(nothing)}, waiting for v$K8S_VERSION"
    return 1
  fi
}

kc_upgrade_main() {
  local kubelet_conf=$KC_ROOT/etc/kubernetes/kubelet.conf control_plane=0 cluster="" package
  if [[ ! -f $kubelet_conf ]]; then
    kc_log "$NODE_NAME has not joined the cluster yet (no $kubelet_conf): nothing to upgrade" \
      "(node prep installs $K8S_VERSION before it joins)"
    return 0
  fi
  if [[ $UPGRADE_ROLE != worker ]]; then
    control_plane=1
    [[ -f $KC_ADMIN_CONF ]] ||
      kc_die "no admin kubeconfig at $KC_ADMIN_CONF on $NODE_NAME: is it a control plane ($UPGRADE_ROLE)?"
  fi
  if [[ $UPGRADE_ROLE == first-control-plane ]]; then
    cluster=$(kc_cluster_version "$KC_ADMIN_CONF") || exit 1
  fi

  local current=1
  for package in kubelet kubeadm kubectl; do
    if [[ $(kc_pkg_version "$package") != "$K8S_VERSION"-* ]]; then
      current=0
    fi
  done
  if [[ -f $KC_UPGRADE_MARKER ]]; then
    kc_log "an upgrade of $NODE_NAME to $(<"$KC_UPGRADE_MARKER") did not finish: resuming it"
  elif ((current)) && [[ $UPGRADE_ROLE != first-control-plane || $cluster == "$K8S_VERSION" ]]; then
    kc_log "$NODE_NAME is already at $K8S_VERSION (kubelet, kubeadm, kubectl${cluster:+ and the cluster}): nothing to do"
    return 0
  elif ((current)); then
    kc_log "the packages of $NODE_NAME are at $K8S_VERSION but the cluster is at $cluster: applying the upgrade"
  fi
  kc_log "upgrading $NODE_NAME ($UPGRADE_ROLE) to $K8S_VERSION"
  kc_write_file "$KC_UPGRADE_MARKER" 0644 <<<"$K8S_VERSION"

  # 1. kubeadm.
  kc_upgrade_packages kubeadm

  # 2. The control plane's components (first control plane) or this node's configuration.
  if [[ $UPGRADE_ROLE == first-control-plane ]]; then
    if [[ $cluster == "$K8S_VERSION" ]]; then
      kc_log "the cluster is already at v$K8S_VERSION: skipping kubeadm upgrade apply"
    else
      kc_log "kubeadm upgrade apply v$K8S_VERSION (the cluster is at $cluster; takes a few minutes)"
      kubeadm upgrade apply "v$K8S_VERSION" --yes </dev/null >&2 ||
        kc_die "kubeadm upgrade apply v$K8S_VERSION failed on $NODE_NAME (its output is above)"
    fi
  else
    kc_log "kubeadm upgrade node"
    kubeadm upgrade node </dev/null >&2 || kc_die "kubeadm upgrade node failed on $NODE_NAME (its output is above)"
  fi

  # 3. A control plane drains itself (a worker was drained from the first control plane).
  if ((control_plane)); then
    kc_drain_timeout "$KC_ADMIN_CONF"
    kc_log "draining $NODE_NAME (timeout $DRAIN_TIMEOUT)"
    if ! kubectl --kubeconfig "$KC_ADMIN_CONF" drain "$NODE_NAME" --ignore-daemonsets --delete-emptydir-data \
      --timeout="$DRAIN_TIMEOUT" </dev/null >&2; then
      kc_warn "the drain of $NODE_NAME did not finish within $DRAIN_TIMEOUT (a single-node cluster cannot" \
        "drain): upgrading its kubelet anyway"
    fi
  fi

  # 4. kubelet and kubectl, then the kubelet restarted on the new version.
  kc_upgrade_packages kubelet kubectl
  kc_log "restarting kubelet"
  systemctl daemon-reload >&2
  systemctl restart kubelet >&2
  kc_retry 6 systemctl is-active --quiet kubelet ||
    kc_die "kubelet is not running after the upgrade (see journalctl -u kubelet on $NODE_NAME)"

  # 5. A control plane takes work again once its Node reports the new kubelet.
  if ((control_plane)); then
    kc_log "uncordoning $NODE_NAME"
    kc_retry 5 kubectl --kubeconfig "$KC_ADMIN_CONF" uncordon "$NODE_NAME" </dev/null >&2 ||
      kc_die "cannot uncordon $NODE_NAME"
    kc_retry "$KC_READY_ATTEMPTS" kc_upgrade_kubelet_is ||
      kc_die "node $NODE_NAME does not report kubelet v$K8S_VERSION after $KC_READY_ATTEMPTS checks"
  fi
  rm -f -- "$KC_UPGRADE_MARKER"
  kc_log "$NODE_NAME is upgraded to $K8S_VERSION"
}

kc_upgrade_main </dev/null
