#!/usr/bin/env bash
# Takes a node out of service before Compute Engine stops its VM to change the machine type, and
# puts it back afterwards (runs on the first control plane, around the VM's update):
#   drain     when the node does not run MACHINE_TYPE yet: waits for the resize lease (one node
#             of the cluster resized at a time), annotates the Node
#             kubeadm-cluster.io/resizing-to=MACHINE_TYPE, then drains it (which cordons it first);
#             a drain that does not finish in time is a warning (the node is cordoned).
#   uncordon  when this node holds the lease or carries the annotation: waits until the Node is
#             Ready again, uncordons it (only when the annotation says the drain cordoned it: a node
#             an admin cordoned stays cordoned), records kubeadm-cluster.io/machine-type and gives
#             the lease back.
#
# Which machine type a node runs: its kubeadm-cluster.io/machine-type annotation, written after each
# resize; a node that never had one is taken to run MACHINE_TYPE when its capacity has that shape
# (MACHINE_VCPUS vCPUs exactly; memory between 80 % and 105 % of MACHINE_MEMORY_MB: the kernel
# keeps some of the VM's memory for itself, and GCE's shapes with the same vCPU count differ at
# least twofold in memory). So a run that is not a resize (the step's inputs changed for another
# reason) drains nothing.
#
# The lease is the directory /var/lib/kubeadm-cluster/resize-lease on the first control plane
# (mkdir is atomic; its "holder" file names the node). A node's drain waits for it at most
# KC_RESIZE_WAIT seconds; a lease whose holder is no longer in the cluster is taken over.
#
# Idempotent: a node not in the cluster, or a cluster not initialised yet, is skipped by both. A
# node that was already cordoned before its drain (an admin's doing) stays cordoned afterwards.
#
# Inputs: ACTION (drain | uncordon); NODE_NAME; MACHINE_TYPE; MACHINE_VCPUS; MACHINE_MEMORY_MB
#         (MiB); optional DRAIN_TIMEOUT (else kc_drain_timeout: the settings ConfigMap, or 300s); optional KUBECONFIG (default
#         /etc/kubernetes/admin.conf); optional KC_RESIZE_WAIT (7200 s), KC_RESIZE_POLL (10 s),
#         KC_READY_ATTEMPTS (30: checks that the Node is Ready after its restart).
# Stdout: nothing.
set -euo pipefail
if ! declare -F kc_log >/dev/null 2>&1; then
  # shellcheck source=lib.sh
  . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
fi
KC_STEP=resize-node

: "${ACTION:?ACTION is required (drain or uncordon)}"
: "${NODE_NAME:?NODE_NAME is required (the node whose machine type changes)}"
: "${MACHINE_TYPE:?MACHINE_TYPE is required (the machine type the node gets)}"
: "${MACHINE_VCPUS:?MACHINE_VCPUS is required (the vCPUs of MACHINE_TYPE)}"
: "${MACHINE_MEMORY_MB:?MACHINE_MEMORY_MB is required (the memory of MACHINE_TYPE, MiB)}"
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-}
KC_RESIZE_WAIT=${KC_RESIZE_WAIT:-7200}
KC_RESIZE_POLL=${KC_RESIZE_POLL:-10}
KC_READY_ATTEMPTS=${KC_READY_ATTEMPTS:-30}
case $ACTION in
  drain | uncordon) ;;
  *) kc_die "ACTION must be drain or uncordon, not '$ACTION'" ;;
esac
[[ -z $DRAIN_TIMEOUT ]] || kc_check_duration DRAIN_TIMEOUT "$DRAIN_TIMEOUT"
for name in MACHINE_VCPUS MACHINE_MEMORY_MB KC_RESIZE_WAIT KC_READY_ATTEMPTS; do
  [[ ${!name} =~ ^[1-9][0-9]*$ ]] || kc_die "$name must be a positive whole number, not '${!name}'"
done
[[ $KC_RESIZE_POLL =~ ^[0-9]+(\.[0-9]+)?$ ]] || kc_die "KC_RESIZE_POLL must be a number of seconds, not '$KC_RESIZE_POLL'"
export KUBECONFIG=${KUBECONFIG:-$KC_ROOT/etc/kubernetes/admin.conf}

#: The Node annotations this step writes: the machine type the node runs, and the one it is being
#: resized to (present from the drain until the uncordon).
KC_TYPE_ANNOTATION=kubeadm-cluster.io/machine-type
KC_RESIZING_ANNOTATION=kubeadm-cluster.io/resizing-to
KC_LEASE=$KC_ROOT/var/lib/kubeadm-cluster/resize-lease

# kc_resize_get ARGS... : `kubectl get node NODE_NAME ARGS...`, retried.
kc_resize_get() {
  kc_retry 5 kubectl get node "$NODE_NAME" "$@" </dev/null
}

# kc_memory_mib QUANTITY : a Kubernetes memory quantity (12345Ki, 8Gi, 8589934592 ...) in MiB.
kc_memory_mib() {
  local quantity=$1 number unit
  [[ $quantity =~ ^([0-9]+)([KMGT]i)?$ ]] || return 1
  number=${BASH_REMATCH[1]} unit=${BASH_REMATCH[2]}
  case $unit in
    "") echo $((number / 1048576)) ;;
    Ki) echo $((number / 1024)) ;;
    Mi) echo "$number" ;;
    Gi) echo $((number * 1024)) ;;
    Ti) echo $((number * 1048576)) ;;
  esac
}

# kc_runs_target : the node runs MACHINE_TYPE (see the header); records it when only the shape told.
kc_runs_target() {
  local recorded capacity cpu memory mib
  recorded=$(kc_resize_get -o "jsonpath={.metadata.annotations.kubeadm-cluster\\.io/machine-type}") ||
    kc_die "cannot read the annotations of node $NODE_NAME"
  if [[ -n $recorded ]]; then
    [[ $recorded == "$MACHINE_TYPE" ]]
    return
  fi
  capacity=$(kc_resize_get -o 'jsonpath={.status.capacity.cpu} {.status.capacity.memory}') ||
    kc_die "cannot read the capacity of node $NODE_NAME"
  read -r cpu memory <<<"$capacity"
  mib=$(kc_memory_mib "${memory:-}") || return 1
  if [[ $cpu == "$MACHINE_VCPUS" ]] && ((mib * 100 >= MACHINE_MEMORY_MB * 80 && mib * 100 <= MACHINE_MEMORY_MB * 105)); then
    kc_retry 5 kubectl annotate --overwrite node "$NODE_NAME" "$KC_TYPE_ANNOTATION=$MACHINE_TYPE" </dev/null >&2 ||
      kc_die "cannot annotate node $NODE_NAME"
    return 0
  fi
  return 1
}

# kc_lease_holder : the node holding the resize lease (nothing when it is free).
kc_lease_holder() {
  if [[ -f $KC_LEASE/holder ]]; then
    cat "$KC_LEASE/holder"
  fi
}

# kc_lease_take : the lease for NODE_NAME, waiting while another node holds it.
kc_lease_take() {
  local start=$SECONDS holder waiting=0 exists
  mkdir -p "$(dirname "$KC_LEASE")"
  while true; do
    if mkdir "$KC_LEASE" 2>/dev/null; then
      printf '%s\n' "$NODE_NAME" >"$KC_LEASE/holder"
      kc_log "$NODE_NAME holds the resize lease"
      return 0
    fi
    holder=$(kc_lease_holder)
    if [[ $holder == "$NODE_NAME" ]]; then
      kc_log "$NODE_NAME already holds the resize lease (an earlier run stopped half-way)"
      return 0
    fi
    if [[ -n $holder ]]; then
      exists=$(kc_retry 5 kubectl get node "$holder" --ignore-not-found -o name </dev/null) ||
        kc_die "cannot read node $holder from the API server"
      if [[ -z $exists ]]; then
        kc_warn "the resize lease is held by $holder, which is no longer in the cluster: taking it over"
        printf '%s\n' "$NODE_NAME" >"$KC_LEASE/holder"
        return 0
      fi
    fi
    if ((SECONDS - start >= KC_RESIZE_WAIT)); then
      kc_die "$NODE_NAME waited ${KC_RESIZE_WAIT}s for the resize lease, held by ${holder:-another node}" \
        "(a node is resized at a time; run pulumi up again once it is done)"
    fi
    if ((!waiting)); then
      kc_log "waiting for ${holder:-another node} to be resized first (one node at a time; at most ${KC_RESIZE_WAIT}s)"
      waiting=1
    fi
    sleep "$KC_RESIZE_POLL"
  done
}

# kc_node_is_ready : the Node reports Ready (one check).
kc_node_is_ready() {
  local ready
  ready=$(kubectl get node "$NODE_NAME" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' </dev/null) || return 1
  if [[ $ready != True ]]; then
    kc_log "node $NODE_NAME is not Ready yet"
    return 1
  fi
}

kc_resize_main() {
  local exists resizing holder cordoned
  if [[ ! -f $KUBECONFIG ]]; then
    kc_log "no admin kubeconfig at $KUBECONFIG: the cluster is not initialised, nothing to $ACTION"
    return 0
  fi
  exists=$(kc_resize_get --ignore-not-found -o name) || kc_die "cannot read node $NODE_NAME from the API server"
  if [[ -z $exists ]]; then
    kc_log "node $NODE_NAME is not in the cluster: nothing to $ACTION"
    return 0
  fi

  if [[ $ACTION == drain ]]; then
    if kc_runs_target; then
      kc_log "node $NODE_NAME already runs $MACHINE_TYPE: not draining it"
      return 0
    fi
    kc_lease_take
    cordoned=$(kc_resize_get -o 'jsonpath={.spec.unschedulable}') || kc_die "cannot read node $NODE_NAME"
    resizing=$(kc_resize_get -o "jsonpath={.metadata.annotations.kubeadm-cluster\\.io/resizing-to}") ||
      kc_die "cannot read the annotations of node $NODE_NAME"
    if [[ $cordoned == true && -z $resizing ]]; then
      kc_log "node $NODE_NAME is cordoned already (not by this step): it stays cordoned after its resize"
    else
      kc_retry 5 kubectl annotate --overwrite node "$NODE_NAME" "$KC_RESIZING_ANNOTATION=$MACHINE_TYPE" </dev/null >&2 ||
        kc_die "cannot annotate node $NODE_NAME"
    fi
    kc_drain_timeout "$KUBECONFIG"
    kc_log "draining node $NODE_NAME before its VM is stopped to become $MACHINE_TYPE (timeout $DRAIN_TIMEOUT)"
    if ! kubectl drain "$NODE_NAME" --ignore-daemonsets --delete-emptydir-data --timeout="$DRAIN_TIMEOUT" \
      </dev/null >&2; then
      kc_warn "the drain of $NODE_NAME did not finish within $DRAIN_TIMEOUT: resizing it anyway (it is cordoned)"
    fi
    return 0
  fi

  resizing=$(kc_resize_get -o "jsonpath={.metadata.annotations.kubeadm-cluster\\.io/resizing-to}") ||
    kc_die "cannot read the annotations of node $NODE_NAME"
  holder=$(kc_lease_holder)
  if [[ -z $resizing && $holder != "$NODE_NAME" ]]; then
    kc_log "node $NODE_NAME is not being resized: nothing to uncordon"
    return 0
  fi
  kc_log "waiting for node $NODE_NAME to be Ready on its new machine type"
  kc_retry "$KC_READY_ATTEMPTS" kc_node_is_ready ||
    kc_die "node $NODE_NAME is not Ready after $KC_READY_ATTEMPTS checks: it stays cordoned and keeps the" \
      "resize lease (see journalctl -u kubelet on $NODE_NAME; run pulumi up again once it is Ready)"
  if [[ -n $resizing ]]; then
    kc_retry 5 kubectl uncordon "$NODE_NAME" </dev/null >&2 || kc_die "cannot uncordon node $NODE_NAME"
    kc_retry 5 kubectl annotate node "$NODE_NAME" "$KC_RESIZING_ANNOTATION-" </dev/null >&2 ||
      kc_die "cannot remove the $KC_RESIZING_ANNOTATION annotation from node $NODE_NAME"
  fi
  kc_retry 5 kubectl annotate --overwrite node "$NODE_NAME" "$KC_TYPE_ANNOTATION=$MACHINE_TYPE" </dev/null >&2 ||
    kc_die "cannot annotate node $NODE_NAME"
  if [[ $holder == "$NODE_NAME" ]]; then
    rm -rf -- "$KC_LEASE"
  fi
  kc_log "node $NODE_NAME runs $MACHINE_TYPE and is schedulable again"
}

kc_resize_main </dev/null
