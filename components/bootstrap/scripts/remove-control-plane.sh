#!/usr/bin/env bash
# Removes a control plane from the cluster before its machine goes away (runs on the first control
# plane when that control plane leaves the stack): its etcd member is removed, after checking that
# the members left keep quorum, and its Node is drained (bounded) and deleted.
#
# Serialised with the other removals (a lock in /run): etcd membership changes one at a time.
# Refused: removing the first control plane (FIRST_NODE_NAME), the only etcd member, or a member
# whose removal would leave fewer healthy members than the quorum of those left.
# Tolerated: an API server that does not answer (a dead cluster must not block deleting its
# machines: nothing is removed, with a warning) and a member or Node that is already gone.
#
# Inputs: NODE_NAME (the leaving control plane); FIRST_NODE_NAME (the first control plane, where
#         this runs: etcdctl runs in its etcd static pod, etcd-FIRST_NODE_NAME in kube-system);
#         optional DRAIN_TIMEOUT (else kc_drain_timeout: the settings ConfigMap, or 300s); optional KUBECONFIG (default /etc/kubernetes/admin.conf).
# Stdout: nothing.
set -euo pipefail
if ! declare -F kc_log >/dev/null 2>&1; then
  # shellcheck source=lib.sh
  . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
fi
KC_STEP=remove-control-plane

: "${NODE_NAME:?NODE_NAME is required (the control plane that leaves)}"
: "${FIRST_NODE_NAME:?FIRST_NODE_NAME is required (the first control plane, whose etcd pod runs etcdctl)}"
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-}
[[ -z $DRAIN_TIMEOUT ]] || kc_check_duration DRAIN_TIMEOUT "$DRAIN_TIMEOUT"
if [[ $NODE_NAME == "$FIRST_NODE_NAME" ]]; then
  kc_die "refusing to remove control plane $NODE_NAME: it is the first control plane (FIRST_NODE_NAME)," \
    "which holds the cluster's admin kubeconfig and runs these steps"
fi
export KUBECONFIG=${KUBECONFIG:-$KC_ROOT/etc/kubernetes/admin.conf}

# kc_etcdctl ARGS... : etcdctl in the first control plane's etcd pod, against its local member.
kc_etcdctl() {
  kubectl -n kube-system exec "etcd-$FIRST_NODE_NAME" -- etcdctl --endpoints=https://127.0.0.1:2379 \
    --cacert=/etc/kubernetes/pki/etcd/ca.crt --cert=/etc/kubernetes/pki/etcd/server.crt \
    --key=/etc/kubernetes/pki/etcd/server.key "$@" </dev/null
}

# kc_remove_member : the etcd member named NODE_NAME removed, when there is one and the members
# left keep quorum.
kc_remove_member() {
  local members health
  members=$(kc_retry 5 kc_etcdctl member list -w simple) ||
    kc_die "cannot list the etcd members (etcdctl in etcd-$FIRST_NODE_NAME)"
  # "id, status, name, peer URLs, client URLs, is learner": one member per line; a member that
  # has not started yet has no name. Learners do not vote: they do not count for quorum.
  local -a ids=() names=() clients=() learners=()
  local mid name urls learner
  while IFS='|' read -r mid name urls learner; do
    [[ -n $mid ]] || continue
    ids+=("$mid") names+=("$name") clients+=("$urls") learners+=("$learner")
  done < <(awk -F', ' 'NF >= 5 { print $1 "|" $3 "|" $5 "|" $6 }' <<<"$members")

  local i leaving=-1
  for i in "${!ids[@]}"; do
    if [[ ${names[i]} == "$NODE_NAME" ]]; then
      leaving=$i
    fi
  done
  if ((leaving < 0)); then
    kc_log "$NODE_NAME is not an etcd member (members: ${names[*]:-none}): skipping the member removal"
    return 0
  fi
  local id=${ids[leaving]}
  if ((${#ids[@]} == 1)); then
    kc_die "refusing to remove control plane $NODE_NAME: it is the only etcd member"
  fi

  if [[ ${learners[leaving]} == true ]]; then
    kc_log "$NODE_NAME is an etcd learner (no vote): removing it does not change the quorum"
  else
    # Endpoint health exits non-zero when any endpoint is unhealthy: its lines are what counts.
    health=$(kc_etcdctl endpoint health --cluster -w simple 2>&1) || true
    local -A healthy_url=()
    local url
    while read -r url; do
      healthy_url[$url]=1
    done < <(awk '$2 == "is" && $3 == "healthy:" { print $1 }' <<<"$health")
    local voting=0 healthy=0 healthy_member
    for i in "${!ids[@]}"; do
      [[ ${learners[i]} != true ]] || continue
      voting=$((voting + 1))
      ((i != leaving)) || continue
      healthy_member=0
      for url in ${clients[i]//,/ }; do
        if [[ -n ${healthy_url[$url]:-} ]]; then
          healthy_member=1
        fi
      done
      healthy=$((healthy + healthy_member))
    done
    local left=$((voting - 1))
    local quorum=$((left / 2 + 1))
    if ((healthy < quorum)); then
      printf '%s\n' "$health" >&2
      kc_die "refusing to remove control plane $NODE_NAME: etcd would keep $left members and needs $quorum" \
        "healthy for quorum, but only $healthy are healthy; fix the unhealthy members first" \
        "(etcdctl endpoint health --cluster)"
    fi
    kc_log "etcd keeps $left voting members after the removal, $healthy of them healthy (quorum $quorum)"
  fi
  REMOVE_MEMBER_ID=$id
}

kc_remove_control_plane_main() {
  REMOVE_MEMBER_ID=""
  mkdir -p "$KC_ROOT/run"
  exec 9>"$KC_ROOT/run/kubeadm-cluster-membership.lock"
  kc_log "waiting for the membership lock"
  flock 9 || kc_die "cannot lock $KC_ROOT/run/kubeadm-cluster-membership.lock"

  if [[ ! -f $KUBECONFIG ]] || ! kc_retry 3 kubectl get --raw=/readyz >/dev/null 2>&1; then
    kc_warn "cannot reach the API server: etcd member of $NODE_NAME not removed (no admin kubeconfig" \
      "at $KUBECONFIG, or /readyz does not answer)"
    return 0
  fi

  kc_remove_member

  local exists
  exists=$(kc_retry 5 kubectl get node "$NODE_NAME" --ignore-not-found -o name) ||
    kc_die "cannot read node $NODE_NAME from the API server"
  if [[ -n $exists ]]; then
    kc_drain_timeout "$KUBECONFIG"
    kc_log "draining $NODE_NAME (timeout $DRAIN_TIMEOUT)"
    if ! kubectl drain "$NODE_NAME" --ignore-daemonsets --delete-emptydir-data --force \
      --timeout="$DRAIN_TIMEOUT" >&2; then
      kc_warn "the drain of $NODE_NAME did not finish within $DRAIN_TIMEOUT: removing it anyway"
    fi
  else
    kc_log "node $NODE_NAME is not in the cluster: nothing to drain"
  fi

  if [[ -n $REMOVE_MEMBER_ID ]]; then
    kc_log "removing the etcd member $REMOVE_MEMBER_ID of $NODE_NAME"
    kc_retry 5 kc_etcdctl member remove "$REMOVE_MEMBER_ID" >&2 ||
      kc_die "cannot remove the etcd member $REMOVE_MEMBER_ID of $NODE_NAME"
  fi
  kc_retry 5 kubectl delete node "$NODE_NAME" --ignore-not-found >&2 || kc_die "cannot delete node $NODE_NAME"
  kc_log "control plane $NODE_NAME removed from the cluster"
}

kc_remove_control_plane_main </dev/null
