#!/usr/bin/env bash
# Prints the cluster's admin kubeconfig (runs on the first control plane after kubeadm init).
#
# Inputs: none (optional NODE_NAME, used in messages only).
# Stdout: the content of /etc/kubernetes/admin.conf, unchanged. It is a secret: the caller marks
#         stdout secret and does not log it.
set -euo pipefail
if ! declare -F kc_log >/dev/null 2>&1; then
  # shellcheck source=lib.sh
  . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
fi
KC_STEP=read-kubeconfig

kc_read_kubeconfig_main() {
  local admin=$KC_ROOT/etc/kubernetes/admin.conf
  [[ -s $admin ]] ||
    kc_die "no admin kubeconfig at $admin on ${NODE_NAME:-this node}: has kubeadm init run here?"
  cat -- "$admin"
}

kc_read_kubeconfig_main </dev/null
