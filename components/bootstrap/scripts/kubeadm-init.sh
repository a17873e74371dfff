#!/usr/bin/env bash
# Initialises the first control plane with `kubeadm init` from a generated configuration, then
# waits until the API server answers /readyz.
#
# Idempotent: when /etc/kubernetes/admin.conf exists the node is already initialised and kubeadm
# init is skipped (a changed KUBEADM_CONFIG is NOT applied to a running cluster; that is what
# `kubeadm upgrade` is for); the readiness wait runs either way. When kubeadm init fails, the
# node is reset (`kubeadm reset -f`) so that the next run starts from a clean node instead of
# mistaking a half-initialised one for a cluster.
#
# Inputs: NODE_NAME; KUBEADM_CONFIG (the full YAML: InitConfiguration, ClusterConfiguration,
#         KubeletConfiguration ...), written to /etc/kubernetes/kubeadm-config.yaml (mode 0600).
#         Optional KC_READY_ATTEMPTS (default 30) bounds the /readyz wait.
#         Optional CERTIFICATE_KEY (64 hex digits; HA): the control-plane certificates are uploaded
#         (--upload-certs), encrypted with that key, which KUBEADM_CONFIG already holds as the
#         InitConfiguration's certificateKey. It is a secret: never printed, never on a command
#         line (kubeadm reads it from the config file), and removed from the kept
#         /etc/kubernetes/kubeadm-config.yaml as soon as kubeadm init has run, whatever its outcome
#         (also on a later run, from a copy an older version of this step left).
# Stdout: nothing (kubeadm's output goes to stderr; the join token and the certificate key are
#         never printed).
set -euo pipefail
if ! declare -F kc_log >/dev/null 2>&1; then
  # shellcheck source=lib.sh
  . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
fi
KC_STEP=kubeadm-init

: "${NODE_NAME:?NODE_NAME is required}"
: "${KUBEADM_CONFIG:?KUBEADM_CONFIG is required (the kubeadm init configuration YAML)}"
CERTIFICATE_KEY=${CERTIFICATE_KEY:-}
# Never echo the key itself, not even a malformed one.
[[ -z $CERTIFICATE_KEY || $CERTIFICATE_KEY =~ ^[0-9a-fA-F]{64}$ ]] ||
  kc_die "CERTIFICATE_KEY must be 64 hex digits (32 bytes; the value is not shown: it is a secret)"

# kc_init_scrub_key CONFIG : CONFIG without its certificateKey line. Only `kubeadm init
# --upload-certs` needs the key; the copy kept for reference must not hold it. Reads and
# compares with shell builtins, so that the key never shows in a process list.
kc_init_scrub_key() {
  local config=$1 content
  [[ -f $config ]] || return 0
  content=$(<"$config")
  if [[ $content == *certificateKey:* ]]; then
    kc_write_file "$config" 0600 < <(grep -v -E '^[[:space:]]*certificateKey:' "$config" || true)
    content=$(<"$config")
  fi
  if [[ -n $CERTIFICATE_KEY && $content == *"$CERTIFICATE_KEY"* ]]; then
    kc_die "the certificate key is still in $config after removing its certificateKey line"
  fi
}

kc_init_main() {
  local admin=$KC_ROOT/etc/kubernetes/admin.conf
  local config=$KC_ROOT/etc/kubernetes/kubeadm-config.yaml hook
  printf -v hook 'kc_init_scrub_key %q' "$config"
  kc_on_exit "$hook"
  if [[ -f $admin ]]; then
    kc_log "$NODE_NAME is already initialised ($admin exists): skipping kubeadm init"
  else
    kc_write_file "$config" 0600 <<<"$KUBEADM_CONFIG"
    kc_log "validating $config"
    kubeadm config validate --config "$config" >&2 ||
      kc_die "kubeadm rejects the generated configuration $config (see above)"
    local -a init=(kubeadm init --config "$config" --skip-token-print)
    if [[ -n $CERTIFICATE_KEY ]]; then
      # The key is in the configuration (certificateKey): not on the command line, never printed.
      init=(kubeadm init --config "$config" --upload-certs --skip-token-print --skip-certificate-key-print)
      kc_log "kubeadm init on $NODE_NAME, uploading the control-plane certificates (takes a few minutes)"
    else
      kc_log "kubeadm init on $NODE_NAME (takes a few minutes)"
    fi
    if ! "${init[@]}" >&2; then
      kc_warn "kubeadm init failed on $NODE_NAME; resetting the node so that the next run starts clean"
      kubeadm reset -f >&2 || kc_warn "kubeadm reset failed too"
      kc_die "kubeadm init failed on $NODE_NAME (its output is above)"
    fi
    [[ -f $admin ]] || kc_die "kubeadm init succeeded but wrote no $admin"
  fi
  kc_init_scrub_key "$config"
  kc_log "waiting for the API server to be ready"
  kc_retry "${KC_READY_ATTEMPTS:-30}" kubectl --kubeconfig "$admin" get --raw=/readyz >/dev/null ||
    kc_die "the API server on $NODE_NAME did not become ready"
  kc_log "the API server on $NODE_NAME is ready"
}

kc_init_main </dev/null
