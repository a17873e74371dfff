#!/usr/bin/env bash
# Joins this node to the cluster with `kubeadm join` from a JoinConfiguration (bootstrap token
# and pinned CA hash inside). The configuration holds a secret: it is written mode 0600 and
# removed when the step ends, whether it succeeded or not.
#
# Idempotent: when /etc/kubernetes/kubelet.conf exists the node has already joined: skipped.
# Up to 3 attempts; after each failed one the node is reset (`kubeadm reset -f`), so a later run
# never mistakes a half-joined node for a joined one.
#
# Inputs: NODE_NAME; KUBEADM_CONFIG (the JoinConfiguration YAML); optional KC_JOIN_ATTEMPTS (3).
# Stdout: nothing.
set -euo pipefail
if ! declare -F kc_log >/dev/null 2>&1; then
  # shellcheck source=lib.sh
  . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
fi
KC_STEP=kubeadm-join

: "${NODE_NAME:?NODE_NAME is required}"
: "${KUBEADM_CONFIG:?KUBEADM_CONFIG is required (the kubeadm JoinConfiguration YAML)}"

# kc_join_attempt CONFIG : one kubeadm join; on failure resets the node and returns the failure.
kc_join_attempt() {
  local rc=0
  kubeadm join --config "$1" >&2 || rc=$?
  if ((rc != 0)); then
    kc_warn "kubeadm join failed (exit $rc) on $NODE_NAME; resetting the node"
    kubeadm reset -f >&2 || kc_warn "kubeadm reset failed too"
  fi
  return "$rc"
}

kc_join_main() {
  local kubelet_conf=$KC_ROOT/etc/kubernetes/kubelet.conf
  local config=$KC_ROOT/etc/kubernetes/kubeadm-join.yaml hook
  printf -v hook 'rm -f -- %q' "$config"
  kc_on_exit "$hook"
  if [[ -f $kubelet_conf ]]; then
    kc_log "$NODE_NAME has already joined ($kubelet_conf exists): skipping kubeadm join"
    return 0
  fi
  kc_write_file "$config" 0600 <<<"$KUBEADM_CONFIG"
  kc_log "kubeadm join on $NODE_NAME"
  kc_retry "${KC_JOIN_ATTEMPTS:-3}" kc_join_attempt "$config" ||
    kc_die "kubeadm join failed on $NODE_NAME after ${KC_JOIN_ATTEMPTS:-3} attempts (its output is above)"
  rm -f -- "$config"
  kc_log "$NODE_NAME has joined the cluster"
}

kc_join_main </dev/null
