#!/usr/bin/env bash
# Joins this node to the cluster with `kubeadm join` from a JoinConfiguration (bootstrap token
# and pinned CA hash inside). The configuration holds a secret: it is written mode 0600 and
# removed when the step ends, whether it succeeded or not. A control plane joins the same way:
# kubeadm reads --control-plane (and the certificate key) from the configuration's controlPlane
# section.
#
# Idempotent: when /etc/kubernetes/kubelet.conf exists the node has already joined: skipped.
# Up to 3 attempts; after each failed one the node is reset (`kubeadm reset -f`), so a later run
# never mistakes a half-joined node for a joined one.
#
# Inputs: NODE_NAME; KUBEADM_CONFIG (the JoinConfiguration YAML); optional KC_JOIN_ATTEMPTS (3);
#         optional CONTROL_PLANE=1 (a control plane joins: log wording only);
#         optional API_ENDPOINT_NAME with API_ENDPOINT_IP: once the node is in the cluster (joined
#         now or before), /etc/hosts maps the name to that address (prepare-node.sh may have
#         mapped it to a bootstrap address for the join).
# Stdout: nothing.
set -euo pipefail
if ! declare -F kc_log >/dev/null 2>&1; then
  # shellcheck source=lib.sh
  . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
fi
KC_STEP=kubeadm-join

: "${NODE_NAME:?NODE_NAME is required}"
: "${KUBEADM_CONFIG:?KUBEADM_CONFIG is required (the kubeadm JoinConfiguration YAML)}"
CONTROL_PLANE=${CONTROL_PLANE:-}
API_ENDPOINT_NAME=${API_ENDPOINT_NAME:-}
API_ENDPOINT_IP=${API_ENDPOINT_IP:-}
if [[ -n $API_ENDPOINT_NAME ]]; then
  : "${API_ENDPOINT_IP:?API_ENDPOINT_IP is required when API_ENDPOINT_NAME is set}"
  kc_is_hostname "$API_ENDPOINT_NAME" || kc_die "API_ENDPOINT_NAME '$API_ENDPOINT_NAME' is not a valid host name"
  kc_is_ip "$API_ENDPOINT_IP" || kc_die "API_ENDPOINT_IP '$API_ENDPOINT_IP' is not an IPv4 or IPv6 address"
fi
KC_JOIN_WHAT="node $NODE_NAME"
if [[ $CONTROL_PLANE == 1 ]]; then
  KC_JOIN_WHAT="control plane $NODE_NAME"
fi

# kc_join_attempt CONFIG : one kubeadm join; on failure resets the node and returns the failure.
kc_join_attempt() {
  local rc=0
  kubeadm join --config "$1" >&2 || rc=$?
  if ((rc != 0)); then
    kc_warn "kubeadm join failed (exit $rc) on $KC_JOIN_WHAT; resetting the node"
    kubeadm reset -f >&2 || kc_warn "kubeadm reset failed too"
  fi
  return "$rc"
}

# kc_join_endpoint : the node is in the cluster: the API endpoint name resolves to its final address.
kc_join_endpoint() {
  if [[ -n $API_ENDPOINT_NAME ]]; then
    kc_set_hosts_entry "$API_ENDPOINT_NAME" "$API_ENDPOINT_IP"
  fi
}

kc_join_main() {
  local kubelet_conf=$KC_ROOT/etc/kubernetes/kubelet.conf
  local config=$KC_ROOT/etc/kubernetes/kubeadm-join.yaml hook
  printf -v hook 'rm -f -- %q' "$config"
  kc_on_exit "$hook"
  if [[ -f $kubelet_conf ]]; then
    kc_log "$KC_JOIN_WHAT has already joined ($kubelet_conf exists): skipping kubeadm join"
    kc_join_endpoint
    return 0
  fi
  kc_write_file "$config" 0600 <<<"$KUBEADM_CONFIG"
  kc_log "kubeadm join of $KC_JOIN_WHAT"
  kc_retry "${KC_JOIN_ATTEMPTS:-3}" kc_join_attempt "$config" ||
    kc_die "kubeadm join failed on $KC_JOIN_WHAT after ${KC_JOIN_ATTEMPTS:-3} attempts (its output is above)"
  rm -f -- "$config"
  kc_log "$KC_JOIN_WHAT has joined the cluster"
  kc_join_endpoint
}

kc_join_main </dev/null
