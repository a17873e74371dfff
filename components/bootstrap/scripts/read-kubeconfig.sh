#!/usr/bin/env bash
# Prints the cluster's admin kubeconfig (runs on the first control plane after kubeadm init).
#
# Inputs: none (optional NODE_NAME, used in messages only).
# Stdout: the content of /etc/kubernetes/admin.conf, unchanged. It is a secret: the caller marks
#         stdout secret and does not log it. The file is read whole first and printed as the
#         step's last act (kc_emit_secret): a failed read never leaves part of it in the output.
set -euo pipefail
if ! declare -F kc_log >/dev/null 2>&1; then
  # shellcheck source=lib.sh
  . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
fi
KC_STEP=read-kubeconfig

kc_read_kubeconfig_main() {
  local admin=$KC_ROOT/etc/kubernetes/admin.conf content
  [[ -s $admin ]] ||
    kc_die "no admin kubeconfig at $admin on ${NODE_NAME:-this node}: has kubeadm init run here?"
  content=$(cat -- "$admin" && printf x) || kc_die "cannot read $admin on ${NODE_NAME:-this node}"
  content=${content%x}
  [[ $content == *apiVersion:* ]] || kc_die "$admin on ${NODE_NAME:-this node} is not a kubeconfig"
  kc_emit_secret "${content%$'\n'}"
}

kc_read_kubeconfig_main </dev/null
