#!/usr/bin/env bash
# Removes a node from the cluster before its machine goes away: drain (bounded), then delete
# the Node object. Runs on the first control plane when the node's membership resource is
# deleted (pool count lowered, pool removed, stack destroyed).
# Tolerates a node that is already gone and an API server that no longer answers: removing
# a machine must never be blocked by the cluster it is leaving.
#
# Inputs: NODE_NAME; DRAIN_TIMEOUT (default 300s); KUBECONFIG (default /etc/kubernetes/admin.conf).
# Stdout: nothing.
set -euo pipefail
if ! declare -F kc_log >/dev/null 2>&1; then
  # shellcheck source=lib.sh
  . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
fi
KC_STEP=remove-node

: "${NODE_NAME:?NODE_NAME is required}"
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-300s}
export KUBECONFIG=${KUBECONFIG:-${KC_ROOT:-}/etc/kubernetes/admin.conf}

if [[ ! -f $KUBECONFIG ]]; then
  kc_warn "no admin kubeconfig at $KUBECONFIG: this machine is no longer a control plane; nothing to do"
  exit 0
fi
if ! kubectl get --raw=/readyz >/dev/null 2>&1; then
  kc_warn "the API server does not answer: skipping the drain of $NODE_NAME"
  exit 0
fi
if ! kubectl get node "$NODE_NAME" >/dev/null 2>&1; then
  kc_log "node $NODE_NAME is not in the cluster: nothing to drain"
  exit 0
fi

kc_log "draining $NODE_NAME (timeout $DRAIN_TIMEOUT)"
if ! kubectl drain "$NODE_NAME" --ignore-daemonsets --delete-emptydir-data --force \
  --timeout="$DRAIN_TIMEOUT" >&2; then
  kc_warn "drain of $NODE_NAME did not finish within $DRAIN_TIMEOUT; deleting the node anyway"
fi
kubectl delete node "$NODE_NAME" --ignore-not-found --wait=true >&2
kc_log "node $NODE_NAME removed from the cluster"
