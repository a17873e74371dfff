#!/usr/bin/env bash
# Takes a worker out of service for its upgrade and puts it back (runs on the first control plane,
# around upgrade-node.sh on the worker):
#   drain     the Node is annotated kubeadm-cluster.io/upgrading-to=vK8S_VERSION, then drained
#             (which cordons it first); a drain that does not finish in time is a warning.
#   uncordon  waits until the Node reports kubelet vK8S_VERSION, then uncordons it and removes the
#             annotation, only when the annotation is there: a node that this step did not cordon
#             (an admin may have cordoned it on purpose) keeps its schedulability.
#
# Idempotent: a Node that already reports kubelet vK8S_VERSION is not drained; a Node that is not
# in the cluster is skipped by both actions.
#
# Inputs: ACTION (drain | uncordon); NODE_NAME (the worker); K8S_VERSION (x.y.z); optional
#         DRAIN_TIMEOUT (else kc_drain_timeout: the settings ConfigMap, or 300s); optional KUBECONFIG (default /etc/kubernetes/admin.conf); optional
#         KC_READY_ATTEMPTS (30) bounds the wait for the new kubelet version.
# Stdout: nothing.
set -euo pipefail
if ! declare -F kc_log >/dev/null 2>&1; then
  # shellcheck source=lib.sh
  . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
fi
KC_STEP=upgrade-drain

: "${ACTION:?ACTION is required (drain or uncordon)}"
: "${NODE_NAME:?NODE_NAME is required (the worker to drain or uncordon)}"
: "${K8S_VERSION:?K8S_VERSION is required (the target version, e.g. 1.36.4)}"
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-}
KC_READY_ATTEMPTS=${KC_READY_ATTEMPTS:-30}
case $ACTION in
  drain | uncordon) ;;
  *) kc_die "ACTION must be drain or uncordon, not '$ACTION'" ;;
esac
kc_check_version K8S_VERSION "$K8S_VERSION"
[[ -z $DRAIN_TIMEOUT ]] || kc_check_duration DRAIN_TIMEOUT "$DRAIN_TIMEOUT"
[[ $KC_READY_ATTEMPTS =~ ^[1-9][0-9]*$ ]] ||
  kc_die "KC_READY_ATTEMPTS must be a positive integer, not '$KC_READY_ATTEMPTS'"
export KUBECONFIG=${KUBECONFIG:-$KC_ROOT/etc/kubernetes/admin.conf}

#: Marks a Node this step cordoned (its value: the version it is being upgraded to).
KC_UPGRADE_ANNOTATION=kubeadm-cluster.io/upgrading-to

# kc_node_get ARGS... : `kubectl get node NODE_NAME ARGS...` (stdout: its output), retried.
kc_node_get() {
  kc_retry 5 kubectl get node "$NODE_NAME" "$@" </dev/null
}

# kc_kubelet_version : the kubelet version the Node reports (e.g. v1.36.4).
kc_kubelet_version() {
  kc_node_get -o jsonpath='{.status.nodeInfo.kubeletVersion}'
}

# kc_kubelet_is_target : the Node reports kubelet vK8S_VERSION (one check).
kc_kubelet_is_target() {
  local reported
  reported=$(kubectl get node "$NODE_NAME" -o jsonpath='{.status.nodeInfo.kubeletVersion}' </dev/null) || return 1
  if [[ $reported != "v$K8S_VERSION" ]]; then
    kc_log "node $NODE_NAME reports kubelet ${reported:-(nothing)}, waiting for v$K8S_VERSION"
    return 1
  fi
}

kc_drain_main() {
  [[ -f $KUBECONFIG ]] || kc_die "no admin kubeconfig at $KUBECONFIG: is this the first control plane?"
  local exists version annotation
  exists=$(kc_node_get --ignore-not-found -o name) || kc_die "cannot read node $NODE_NAME from the API server"
  if [[ -z $exists ]]; then
    kc_log "node $NODE_NAME is not in the cluster: nothing to $ACTION"
    return 0
  fi

  if [[ $ACTION == drain ]]; then
    version=$(kc_kubelet_version) || kc_die "cannot read the kubelet version of node $NODE_NAME"
    if [[ $version == "v$K8S_VERSION" ]]; then
      kc_log "node $NODE_NAME already runs kubelet $version: not draining it"
      return 0
    fi
    kc_drain_timeout "$KUBECONFIG"
    kc_log "draining node $NODE_NAME (kubelet ${version:-unknown}) for its upgrade to v$K8S_VERSION (timeout $DRAIN_TIMEOUT)"
    kc_retry 5 kubectl annotate --overwrite node "$NODE_NAME" "$KC_UPGRADE_ANNOTATION=v$K8S_VERSION" </dev/null >&2 ||
      kc_die "cannot annotate node $NODE_NAME"
    if ! kubectl drain "$NODE_NAME" --ignore-daemonsets --delete-emptydir-data --timeout="$DRAIN_TIMEOUT" \
      </dev/null >&2; then
      kc_warn "the drain of $NODE_NAME did not finish within $DRAIN_TIMEOUT: upgrading it anyway (it is cordoned)"
    fi
    return 0
  fi

  kc_log "waiting for node $NODE_NAME to report kubelet v$K8S_VERSION"
  kc_retry "$KC_READY_ATTEMPTS" kc_kubelet_is_target ||
    kc_die "node $NODE_NAME does not report kubelet v$K8S_VERSION after $KC_READY_ATTEMPTS checks: not uncordoning it" \
      "(see journalctl -u kubelet on $NODE_NAME)"
  annotation=$(kc_node_get -o "jsonpath={.metadata.annotations.kubeadm-cluster\\.io/upgrading-to}") ||
    kc_die "cannot read the annotations of node $NODE_NAME"
  if [[ -z $annotation ]]; then
    kc_log "node $NODE_NAME runs kubelet v$K8S_VERSION; it was not cordoned for the upgrade" \
      "(no $KC_UPGRADE_ANNOTATION annotation): leaving its schedulability alone"
    return 0
  fi
  kc_log "uncordoning node $NODE_NAME (kubelet v$K8S_VERSION)"
  kc_retry 5 kubectl uncordon "$NODE_NAME" </dev/null >&2 || kc_die "cannot uncordon node $NODE_NAME"
  kc_retry 5 kubectl annotate node "$NODE_NAME" "$KC_UPGRADE_ANNOTATION-" </dev/null >&2 ||
    kc_die "cannot remove the $KC_UPGRADE_ANNOTATION annotation from node $NODE_NAME"
  kc_log "node $NODE_NAME is upgraded and schedulable again"
}

kc_drain_main </dev/null
