#!/usr/bin/env bash
# Mints a fresh bootstrap token for one node's `kubeadm join` (runs on the first control plane)
# and prints it with the hash of the cluster CA's public key, which the joining node pins.
#
# Inputs: NODE_NAME (the node the token is for; only used in the token's description),
#         TOKEN_TTL (a Go duration, e.g. 1h), optional KUBECONFIG (default
#         /etc/kubernetes/admin.conf).
#         Optional CERTIFICATE_KEY (64 hex digits; a control plane is about to join): first the
#         control-plane certificates are uploaded again under that key (the uploaded copy expires
#         after 2 hours). The key is a secret: never printed and never on a command line (a
#         process list shows those): kubeadm reads it from an InitConfiguration file (mode 0600,
#         removed when the step ends, whatever its outcome), as `--certificate-key` cannot be
#         combined with `--config`.
# Stdout: exactly one line of JSON, {"token":"abcdef.0123456789abcdef","caCertHash":"sha256:<64 hex>"}.
#         It is a secret: the caller marks stdout secret, and it is printed only as the step's
#         last act (kc_emit_secret), so a failing run never has it in its output.
set -euo pipefail
if ! declare -F kc_log >/dev/null 2>&1; then
  # shellcheck source=lib.sh
  . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
fi
KC_STEP=mint-token

: "${NODE_NAME:?NODE_NAME is required (the node the token is for)}"
: "${TOKEN_TTL:?TOKEN_TTL is required (e.g. 1h)}"
CERTIFICATE_KEY=${CERTIFICATE_KEY:-}
# Never echo the key itself, not even a malformed one.
[[ -z $CERTIFICATE_KEY || $CERTIFICATE_KEY =~ ^[0-9a-fA-F]{64}$ ]] ||
  kc_die "CERTIFICATE_KEY must be 64 hex digits (32 bytes; the value is not shown: it is a secret)"

# kc_upload_certs CONFIG : one upload of the control-plane certificates (kubeadm-certs Secret),
# encrypted with the certificateKey of the InitConfiguration in CONFIG.
kc_upload_certs() {
  kubeadm init phase upload-certs --config "$1" --upload-certs --skip-certificate-key-print \
    --kubeconfig "$KUBECONFIG" </dev/null >&2
}

# kc_upload_config PATH : the InitConfiguration holding CERTIFICATE_KEY, mode 0600, removed when
# the step ends. Written by shell builtins (a here-document), so the key is in no process's argv.
# A ClusterConfiguration with the cluster's own kubernetesVersion (from the kubeadm-config
# ConfigMap) comes with it: without one kubeadm defaults the version to "stable-1" and asks
# dl.k8s.io for it, which a node on a restricted network waits on before falling back.
kc_upload_config() {
  local path=$1 hook version
  version=$(kc_cluster_version "$KUBECONFIG")
  printf -v hook 'rm -f -- %q' "$path"
  kc_on_exit "$hook"
  kc_write_file "$path" 0600 <<EOF
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
certificateKey: "$CERTIFICATE_KEY"
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: "v$version"
EOF
}

kc_mint_token_main() {
  export KUBECONFIG=${KUBECONFIG:-$KC_ROOT/etc/kubernetes/admin.conf}
  local ca=$KC_ROOT/etc/kubernetes/pki/ca.crt output token hash
  [[ $TOKEN_TTL =~ ^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$ ]] ||
    kc_die "TOKEN_TTL must be a duration like 1h or 30m, not '$TOKEN_TTL'"
  [[ -f $KUBECONFIG ]] || kc_die "no kubeconfig at $KUBECONFIG: is this the initialised control plane?"
  [[ -f $ca ]] || kc_die "no cluster CA at $ca: is this the initialised control plane?"

  if [[ -n $CERTIFICATE_KEY ]]; then
    local upload_config=$KC_ROOT/etc/kubernetes/tmp/kubeadm-cluster-upload-certs.yaml
    kc_upload_config "$upload_config"
    kc_log "uploading the control-plane certificates for the join of $NODE_NAME (the uploaded copy expires after 2 hours)"
    kc_retry 5 kc_upload_certs "$upload_config" || kc_die "kubeadm init phase upload-certs failed (its output is above)"
    rm -f -- "$upload_config"
  fi
  kc_log "creating a bootstrap token for $NODE_NAME (ttl $TOKEN_TTL)"
  # --kubeconfig: kubeadm reads its own flag (default /etc/kubernetes/admin.conf), never $KUBECONFIG.
  output=$(kc_retry 5 kubeadm token create --kubeconfig "$KUBECONFIG" --ttl "$TOKEN_TTL" \
    --description "kubeadm-cluster join of $NODE_NAME") || kc_die "kubeadm token create failed"
  token=$(printf '%s\n' "$output" | grep -E '^[a-z0-9]{6}\.[a-z0-9]{16}$' | tail -n 1) || token=""
  [[ $token =~ ^[a-z0-9]{6}\.[a-z0-9]{16}$ ]] ||
    kc_die "kubeadm token create printed no token of the form [a-z0-9]{6}.[a-z0-9]{16}"

  hash=$(openssl x509 -pubkey -noout -in "$ca" | openssl pkey -pubin -outform der |
    openssl dgst -sha256 -hex | awk '{ print $NF }') || kc_die "cannot hash the public key of $ca"
  [[ $hash =~ ^[0-9a-f]{64}$ ]] || kc_die "the CA public key hash '$hash' is not 64 hex digits"

  kc_log "token for $NODE_NAME created"
  # The secret goes out last: a failure after it would put it into the step's error message.
  kc_emit_secret "$(printf '{"token":"%s","caCertHash":"sha256:%s"}' "$token" "$hash")"
}

kc_mint_token_main </dev/null
