#!/usr/bin/env bash
# Renews kubeadm's certificates on this control plane before they expire (kubeadm signs them for one
# year; only `kubeadm upgrade` renews them otherwise). Runs daily from kubeadm-cluster-certs-renew.timer.
#
# 1. Reads the expiry of every certificate kubeadm renews with `kubeadm certs renew all`: the leaf
#    certificates in /etc/kubernetes/pki and the client certificates embedded in admin.conf,
#    super-admin.conf, controller-manager.conf and scheduler.conf (openssl; each is logged, so the
#    journal shows them: journalctl -u kubeadm-cluster-certs-renew).
# 2. When one expires within RENEW_BEFORE_DAYS (30) days: `kubeadm certs renew all`, then each
#    control-plane static pod is restarted the way kubeadm's documentation says (its manifest moved
#    out of /etc/kubernetes/manifests until the kubelet has stopped the pod, then moved back), one
#    at a time: etcd, kube-apiserver, kube-controller-manager, kube-scheduler. A manifest moved out
#    is always moved back, also when the script fails half-way.
# 3. Checks that every certificate now lasts more than RENEW_BEFORE_DAYS and that admin.conf (renewed
#    too: the stack's kubeconfig output is re-read from it) reaches the API server.
# The certificate authorities (ten years) are not renewed by kubeadm; their expiry is logged, with a
# warning inside a year.
#
# Inputs (environment): optional RENEW_BEFORE_DAYS (30); KC_STATIC_POD_TIMEOUT (seconds to wait for
# a static pod to stop, then to run again: 180); KC_STATIC_POD_POLL (seconds between checks: 2);
# KC_READY_ATTEMPTS (30).
# Stdout: nothing.
set -euo pipefail
if ! declare -F kc_log >/dev/null 2>&1; then
  # shellcheck source=lib.sh
  . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
fi
KC_STEP="certs-renew"

RENEW_BEFORE_DAYS=${RENEW_BEFORE_DAYS:-30}
KC_STATIC_POD_TIMEOUT=${KC_STATIC_POD_TIMEOUT:-180}
KC_STATIC_POD_POLL=${KC_STATIC_POD_POLL:-2}
[[ $RENEW_BEFORE_DAYS =~ ^[1-9][0-9]*$ ]] || kc_die "RENEW_BEFORE_DAYS must be a positive integer, not '$RENEW_BEFORE_DAYS'"
[[ $KC_STATIC_POD_TIMEOUT =~ ^[0-9]+$ ]] || kc_die "KC_STATIC_POD_TIMEOUT must be a whole number of seconds"
[[ $KC_STATIC_POD_POLL =~ ^[0-9]+(\.[0-9]+)?$ ]] || kc_die "KC_STATIC_POD_POLL must be a number of seconds"

KC_K8S=$KC_ROOT/etc/kubernetes
#: Where a manifest waits while its pod is stopped: outside the directory the kubelet watches.
KC_PAUSED=$KC_K8S/kubeadm-cluster-paused-manifests
#: The leaf certificates of /etc/kubernetes/pki and the kubeconfig files `kubeadm certs renew all`
#: renews (kubeadm's certificate list for a stacked-etcd control plane).
KC_CERT_FILES=(apiserver.crt apiserver-kubelet-client.crt apiserver-etcd-client.crt front-proxy-client.crt
  etcd/server.crt etcd/peer.crt etcd/healthcheck-client.crt)
KC_KUBECONFIGS=(admin.conf super-admin.conf controller-manager.conf scheduler.conf)
KC_CA_FILES=(ca.crt front-proxy-ca.crt etcd/ca.crt)
#: The static pods restarted after a renewal, in this order (etcd first: the API server's etcd
#: client certificate is checked against the restarted etcd).
KC_STATIC_PODS=(etcd kube-apiserver kube-controller-manager kube-scheduler)

# kc_certs_pem NAME : the PEM certificate of NAME (a pki file, or the client certificate a
# kubeconfig embeds), on stdout; nothing (status 1) when it does not exist.
kc_certs_pem() {
  local name=$1 data
  case $name in
    *.conf)
      [[ -f $KC_K8S/$name ]] || return 1
      data=$(sed -n 's/^[[:space:]]*client-certificate-data:[[:space:]]*\([A-Za-z0-9+/=]*\)[[:space:]]*$/\1/p' \
        "$KC_K8S/$name" | head -n 1)
      [[ -n $data ]] || return 1
      base64 -d <<<"$data"
      ;;
    *)
      [[ -f $KC_K8S/pki/$name ]] || return 1
      cat -- "$KC_K8S/pki/$name"
      ;;
  esac
}

# kc_certs_expiring SECONDS NAME... : prints "NAME|expiry" for each existing certificate among NAMEs,
# and "!" before the name of each that expires within SECONDS. Status 0.
kc_certs_expiring() {
  local window=$1 name pem end mark
  shift
  for name in "$@"; do
    pem=$(kc_certs_pem "$name") || continue
    end=$(openssl x509 -noout -enddate <<<"$pem" 2>/dev/null) ||
      kc_die "cannot read the certificate of $name (openssl x509 fails on it)"
    mark=""
    if ! openssl x509 -noout -checkend "$window" <<<"$pem" >/dev/null 2>&1; then
      mark="!"
    fi
    printf '%s%s|%s\n' "$mark" "$name" "${end#notAfter=}"
  done
}

# kc_certs_report LINES : logs each certificate's expiry; prints the names expiring soon.
kc_certs_report() {
  local line name
  while IFS= read -r line; do
    [[ -n $line ]] || continue
    name=${line%%|*}
    if [[ $name == !* ]]; then
      kc_log "${name#!} expires ${line#*|}: within $RENEW_BEFORE_DAYS days"
      printf '%s\n' "${name#!}"
    else
      kc_log "$name expires ${line#*|}"
    fi
  done <<<"$1"
}

# kc_certs_running COMPONENT : prints the running container of COMPONENT's static pod, if any.
kc_certs_running() {
  crictl ps --name "^$1\$" --label io.kubernetes.pod.namespace=kube-system --state Running -q \
    </dev/null 2>/dev/null | head -n 1
}

# kc_certs_wait COMPONENT gone|running [OLD] : waits (KC_STATIC_POD_TIMEOUT) until COMPONENT has no
# running container, or runs a container other than OLD. Status 1 on timeout.
kc_certs_wait() {
  local component=$1 want=$2 old=${3:-} start=$SECONDS id
  while true; do
    id=$(kc_certs_running "$component") || id=""
    if [[ $want == gone && -z $id ]] || [[ $want == running && -n $id && $id != "$old" ]]; then
      return 0
    fi
    ((SECONDS - start < KC_STATIC_POD_TIMEOUT)) || return 1
    sleep "$KC_STATIC_POD_POLL"
  done
}

# kc_certs_unpause : moves every manifest still waiting in KC_PAUSED back (the exit hook).
kc_certs_unpause() {
  local file
  for file in "$KC_PAUSED"/*.yaml; do
    [[ -f $file ]] || continue
    mv -f -- "$file" "$KC_K8S/manifests/" && kc_warn "moved $(basename "$file") back into $KC_K8S/manifests"
  done
  rmdir -- "$KC_PAUSED" 2>/dev/null || true
}

# kc_certs_restart COMPONENT : restarts COMPONENT's static pod (its manifest out, then back in).
kc_certs_restart() {
  local component=$1 manifest=$KC_K8S/manifests/$1.yaml old
  [[ -f $manifest ]] || return 0
  old=$(kc_certs_running "$component") || old=""
  mkdir -p "$KC_PAUSED"
  kc_log "restarting $component: its manifest out of the kubelet's directory until the pod stops"
  mv -f -- "$manifest" "$KC_PAUSED/"
  if ! kc_certs_wait "$component" gone; then
    kc_warn "$component still runs after ${KC_STATIC_POD_TIMEOUT}s without its manifest; putting it back"
  fi
  mv -f -- "$KC_PAUSED/$component.yaml" "$manifest"
  kc_certs_wait "$component" running "$old" ||
    kc_die "$component does not run again ${KC_STATIC_POD_TIMEOUT}s after its manifest came back (crictl ps -a; journalctl -u kubelet)"
  kc_log "$component runs again with the renewed certificates"
}

kc_certs_main() {
  if [[ ! -f $KC_K8S/manifests/kube-apiserver.yaml ]]; then
    kc_log "no kube-apiserver static pod on this node: not a control plane, nothing to renew"
    return 0
  fi
  local window=$((RENEW_BEFORE_DAYS * 86400)) expiring cas certs line
  cas=$(kc_certs_expiring $((365 * 86400)) "${KC_CA_FILES[@]}")
  while IFS= read -r line; do
    [[ -n $line ]] || continue
    if [[ $line == !* ]]; then
      kc_warn "certificate authority ${line:1} expires ${line#*|}: within a year (kubeadm does not renew CAs)"
    else
      kc_log "certificate authority ${line%%|*} expires ${line#*|}"
    fi
  done <<<"$cas"
  certs=$(kc_certs_expiring "$window" "${KC_CERT_FILES[@]}" "${KC_KUBECONFIGS[@]}")
  [[ -n $certs ]] || kc_die "no kubeadm certificate found under $KC_K8S: cannot tell when they expire"
  expiring=$(kc_certs_report "$certs")
  if [[ -z $expiring ]]; then
    kc_log "every kubeadm certificate lasts more than $RENEW_BEFORE_DAYS days: nothing to renew"
    return 0
  fi

  kc_log "renewing every kubeadm certificate ($(tr '\n' ' ' <<<"$expiring")expire within $RENEW_BEFORE_DAYS days)"
  kc_on_exit kc_certs_unpause
  kubeadm certs renew all </dev/null >&2 || kc_die "kubeadm certs renew all failed (its output is above)"
  local component
  for component in "${KC_STATIC_PODS[@]}"; do
    kc_certs_restart "$component"
  done

  certs=$(kc_certs_expiring "$window" "${KC_CERT_FILES[@]}" "${KC_KUBECONFIGS[@]}")
  expiring=$(kc_certs_report "$certs")
  [[ -z $expiring ]] || kc_die "still expiring within $RENEW_BEFORE_DAYS days after kubeadm certs renew all:" \
    "$(tr '\n' ' ' <<<"$expiring")"
  kc_retry "${KC_READY_ATTEMPTS:-30}" kubectl --kubeconfig "$KC_K8S/admin.conf" get --raw=/readyz </dev/null >/dev/null ||
    kc_die "the API server does not answer with the renewed admin.conf"
  kc_log "certificates renewed; admin.conf reaches the API server (the stack re-reads it into its kubeconfig output)"
}

kc_certs_main </dev/null
