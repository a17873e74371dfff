#!/usr/bin/env bash
# Removes a node from the cluster before its machine goes away: drain (bounded), then delete
# the Node object. Runs on the first control plane when the node's membership resource is
# deleted (pool count lowered, pool removed, stack destroyed).
# Tolerates a node that is already gone and an API server that no longer answers: removing
# a machine must never be blocked by the cluster it is leaving.
#
# Every API call is retried (kc_retry, KC_REMOVE_ATTEMPTS times, default 3); when the API still
# fails, the step warns and exits 0 (the Node object may stay behind, NotReady: delete it with
# `kubectl delete node NAME` once the API answers).
#
# Inputs: NODE_NAME; DRAIN_TIMEOUT (else kc_drain_timeout: the settings ConfigMap, or 300s); KUBECONFIG (default /etc/kubernetes/admin.conf).
# Stdout: nothing.
set -euo pipefail
if ! declare -F kc_log >/dev/null 2>&1; then
  # shellcheck source=lib.sh
  . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
fi
KC_STEP=remove-node

: "${NODE_NAME:?NODE_NAME is required}"
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-}
export KUBECONFIG=${KUBECONFIG:-${KC_ROOT:-}/etc/kubernetes/admin.conf}
KC_REMOVE_ATTEMPTS=${KC_REMOVE_ATTEMPTS:-3}

if [[ ! -f $KUBECONFIG ]]; then
  kc_warn "no admin kubeconfig at $KUBECONFIG: this machine is no longer a control plane; nothing to do"
  exit 0
fi
if ! kc_retry "$KC_REMOVE_ATTEMPTS" kubectl get --raw=/readyz </dev/null >/dev/null; then
  kc_warn "the API server does not answer: skipping the drain and the deletion of $NODE_NAME (delete its" \
    "Node object later with 'kubectl delete node $NODE_NAME')"
  exit 0
fi

# kc_remove_lookup : prints node/NODE_NAME when the Node exists, nothing when it does not; fails
# only when the API does not answer (unlike a plain `get`, where NotFound is a failure too).
kc_remove_lookup() {
  kubectl get node "$NODE_NAME" --ignore-not-found -o name </dev/null
}

if ! found=$(kc_retry "$KC_REMOVE_ATTEMPTS" kc_remove_lookup); then
  kc_warn "cannot look up node $NODE_NAME (the API server fails): leaving its Node object; delete it" \
    "later with 'kubectl delete node $NODE_NAME'"
  exit 0
fi
if [[ -z $found ]]; then
  kc_log "node $NODE_NAME is not in the cluster: nothing to drain"
  exit 0
fi

kc_drain_timeout "$KUBECONFIG"
kc_log "draining $NODE_NAME (timeout $DRAIN_TIMEOUT)"
if ! kubectl drain "$NODE_NAME" --ignore-daemonsets --delete-emptydir-data --force \
  --timeout="$DRAIN_TIMEOUT" </dev/null >&2; then
  kc_warn "drain of $NODE_NAME did not finish within $DRAIN_TIMEOUT; deleting the node anyway"
fi
# A blip of the API server here must not block the machine's removal (see the header).
if ! kc_retry "$KC_REMOVE_ATTEMPTS" kubectl delete node "$NODE_NAME" --ignore-not-found --wait=true </dev/null >&2; then
  kc_warn "could not delete the Node object $NODE_NAME (the API server fails): the machine goes anyway;" \
    "delete it later with 'kubectl delete node $NODE_NAME'"
  exit 0
fi
kc_log "node $NODE_NAME removed from the cluster"
