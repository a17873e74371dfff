#!/usr/bin/env bash
# Mints a fresh bootstrap token for one node's `kubeadm join` (runs on the first control plane)
# and prints it with the hash of the cluster CA's public key, which the joining node pins.
#
# With TOKEN, the token is the node's own (the program derives it from a stack secret, the node's
# name and its machine): it is created, or made anew with a fresh TOKEN_TTL when it exists or has
# expired, and the certificates are uploaded again (CERTIFICATE_KEY) -- unless the node is already
# in the cluster and Ready, when nothing is created (it needs no token). Since the token is the
# same each time, running this step again (a join retried after the token or the uploaded
# certificates expired) changes nothing the join reads: the join simply finds them valid again.
#
# Inputs: NODE_NAME (the node the token is for; the token's description and its config file's name),
#         TOKEN_TTL (a Go duration, e.g. 1h), optional KUBECONFIG (default
#         /etc/kubernetes/admin.conf).
#         Optional CERTIFICATE_KEY (64 hex digits; a control plane is about to join): first the
#         control-plane certificates are uploaded again under that key (the uploaded copy expires
#         after 2 hours). The key is a secret: never printed and never on a command line (a
#         process list shows those): kubeadm reads it from an InitConfiguration file (mode 0600,
#         removed when the step ends, whatever its outcome), as `--certificate-key` cannot be
#         combined with `--config`.
#         Optional TOKEN ([a-z0-9]{6}.[a-z0-9]{16}; a secret, kept off command lines the same way:
#         `kubeadm token create --config` reads it from the InitConfiguration's bootstrapTokens).
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
TOKEN=${TOKEN:-}
# Never echo the key itself, not even a malformed one.
[[ -z $CERTIFICATE_KEY || $CERTIFICATE_KEY =~ ^[0-9a-fA-F]{64}$ ]] ||
  kc_die "CERTIFICATE_KEY must be 64 hex digits (32 bytes; the value is not shown: it is a secret)"
[[ -z $TOKEN || $TOKEN =~ ^[a-z0-9]{6}\.[a-z0-9]{16}$ ]] ||
  kc_die "TOKEN must be a bootstrap token [a-z0-9]{6}.[a-z0-9]{16} (the value is not shown: it is a secret)"

# kc_upload_certs CONFIG : one upload of the control-plane certificates (kubeadm-certs Secret),
# encrypted with the certificateKey of the InitConfiguration in CONFIG.
kc_upload_certs() {
  kubeadm init phase upload-certs --config "$1" --upload-certs --skip-certificate-key-print \
    --kubeconfig "$KUBECONFIG" </dev/null >&2
}

# kc_upload_config PATH : the InitConfiguration holding CERTIFICATE_KEY (and TOKEN, as its one
# bootstrapTokens entry with TOKEN_TTL), mode 0600, removed when the step ends. Written by shell
# builtins (a here-document), so the secrets are in no process's argv.
# A ClusterConfiguration with the cluster's own kubernetesVersion (from the kubeadm-config
# ConfigMap) comes with it: without one kubeadm defaults the version to "stable-1" and asks
# dl.k8s.io for it, which a node on a restricted network waits on before falling back.
kc_upload_config() {
  local path=$1 hook version key="" token=""
  version=$(kc_cluster_version "$KUBECONFIG")
  printf -v hook 'rm -f -- %q' "$path"
  kc_on_exit "$hook"
  if [[ -n $CERTIFICATE_KEY ]]; then
    printf -v key 'certificateKey: "%s"\n' "$CERTIFICATE_KEY"
  fi
  if [[ -n $TOKEN ]]; then
    # usages and groups left out: kubeadm's defaults, those of `kubeadm token create`.
    printf -v token 'bootstrapTokens:\n- token: "%s"\n  ttl: "%s"\n  description: "kubeadm-cluster join of %s"\n' \
      "$TOKEN" "$TOKEN_TTL" "$NODE_NAME"
  fi
  kc_write_file "$path" 0600 <<EOF
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
${key}${token}---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: "v$version"
EOF
}

# kc_node_ready : prints True when the Node NODE_NAME exists and is Ready (nothing when it does
# not exist); fails only when the API does not answer.
kc_node_ready() {
  kubectl get node "$NODE_NAME" --ignore-not-found \
    -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' </dev/null
}

# kc_renew_token CONFIG : TOKEN created anew from CONFIG: an earlier copy (valid or expired, whose
# Secret the token cleaner may not have removed yet) is deleted first, as `kubeadm token create`
# refuses a token ID that exists. Only the token's public ID is on the command line.
kc_renew_token() {
  kubectl -n kube-system delete secret "bootstrap-token-${TOKEN%%.*}" --ignore-not-found </dev/null >&2 || return 1
  kubeadm token create --config "$1" --kubeconfig "$KUBECONFIG" </dev/null
}

kc_mint_token_main() {
  export KUBECONFIG=${KUBECONFIG:-$KC_ROOT/etc/kubernetes/admin.conf}
  local ca=$KC_ROOT/etc/kubernetes/pki/ca.crt output token hash ready=""
  # One file per node: the token steps of several nodes run at once on this control plane, and a
  # shared file would hand one node's kubeadm the other's token (and its exit hook would remove it).
  local upload_config=$KC_ROOT/etc/kubernetes/tmp/kubeadm-cluster-join-$NODE_NAME.yaml
  [[ $TOKEN_TTL =~ ^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$ ]] ||
    kc_die "TOKEN_TTL must be a duration like 1h or 30m, not '$TOKEN_TTL'"
  [[ -f $KUBECONFIG ]] || kc_die "no kubeconfig at $KUBECONFIG: is this the initialised control plane?"
  [[ -f $ca ]] || kc_die "no cluster CA at $ca: is this the initialised control plane?"

  if [[ -n $TOKEN ]]; then
    ready=$(kc_retry 5 kc_node_ready) || kc_die "cannot read node $NODE_NAME from the API server"
  fi
  if [[ $ready == True ]]; then
    kc_log "$NODE_NAME is already in the cluster and Ready: its join needs no token and no certificates"
    token=$TOKEN
  else
    if [[ -n $CERTIFICATE_KEY || -n $TOKEN ]]; then
      kc_upload_config "$upload_config"
    fi
    if [[ -n $CERTIFICATE_KEY ]]; then
      kc_log "uploading the control-plane certificates for the join of $NODE_NAME (the uploaded copy expires after 2 hours)"
      kc_retry 5 kc_upload_certs "$upload_config" || kc_die "kubeadm init phase upload-certs failed (its output is above)"
    fi
    if [[ -n $TOKEN ]]; then
      kc_log "creating the bootstrap token of $NODE_NAME anew (ttl $TOKEN_TTL)"
      output=$(kc_retry 5 kc_renew_token "$upload_config") || kc_die "kubeadm token create failed"
    else
      kc_log "creating a bootstrap token for $NODE_NAME (ttl $TOKEN_TTL)"
      # --kubeconfig: kubeadm reads its own flag (default /etc/kubernetes/admin.conf), never $KUBECONFIG.
      output=$(kc_retry 5 kubeadm token create --kubeconfig "$KUBECONFIG" --ttl "$TOKEN_TTL" \
        --description "kubeadm-cluster join of $NODE_NAME") || kc_die "kubeadm token create failed"
    fi
    rm -f -- "$upload_config"
    token=$(printf '%s\n' "$output" | grep -E '^[a-z0-9]{6}\.[a-z0-9]{16}$' | tail -n 1) || token=""
    [[ $token =~ ^[a-z0-9]{6}\.[a-z0-9]{16}$ ]] ||
      kc_die "kubeadm token create printed no token of the form [a-z0-9]{6}.[a-z0-9]{16}"
    [[ -z $TOKEN || $token == "$TOKEN" ]] || kc_die "kubeadm token create made another token than the one asked for"
  fi

  hash=$(openssl x509 -pubkey -noout -in "$ca" | openssl pkey -pubin -outform der |
    openssl dgst -sha256 -hex | awk '{ print $NF }') || kc_die "cannot hash the public key of $ca"
  [[ $hash =~ ^[0-9a-f]{64}$ ]] || kc_die "the CA public key hash '$hash' is not 64 hex digits"

  kc_log "token for $NODE_NAME created"
  # The secret goes out last: a failure after it would put it into the step's error message.
  kc_emit_secret "$(printf '{"token":"%s","caCertHash":"sha256:%s"}' "$token" "$hash")"
}

kc_mint_token_main </dev/null
