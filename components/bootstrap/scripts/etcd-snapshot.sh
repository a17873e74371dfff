#!/usr/bin/env bash
# Takes one backup of this control plane's etcd: `etcdctl snapshot save` run inside the etcd static
# pod (crictl exec: its image has etcdctl, and it reaches the local member with kubeadm's own etcd
# certificates), packed with the cluster's certificate authorities and service-account keys (a
# restored etcd is useless without the CA its data and every kubeconfig trust), kept in BACKUP_DIR
# (the newest BACKUP_KEEP of each kind), then uploaded when BACKUP_UPLOAD is set.
#
# Runs from kubeadm-cluster-etcd-snapshot.timer (BACKUP_REASON=scheduled), before every `kubeadm
# upgrade` of a control plane (in the upgrade bundle, before upgrade-node.sh; BACKUP_REASON
# pre-upgrade) and on the first control plane before another control plane leaves (before
# remove-control-plane.sh; BACKUP_REASON pre-remove-<node>, BACKUP_REQUIRED=0).
#
# A backup is BACKUP_DIR/etcd-<node>-<UTC time>-<reason>.tar.gz (mode 0600, directory 0700):
#   etcd-snapshot.db   the snapshot (etcd appends its integrity hash; etcdutl checks it on restore)
#   pki/               ca.crt ca.key sa.key sa.pub front-proxy-ca.crt front-proxy-ca.key
#                      etcd/ca.crt etcd/ca.key (the leaf certificates are re-issued by kubeadm init)
#   kubeadm-config.yaml  the first control plane's: the kubeadm configuration kubeadm-init.sh keeps
#                      (a fresh machine restored from the backup runs `kubeadm init` with it)
#   backup-info        node, reason, time, etcd image, snapshot size (KEY=value lines)
#   SHA256SUMS         of every file above (etcd-restore.sh checks it before anything else)
# Uploads: BACKUP_UPLOAD=gs://BUCKET[/PREFIX] (GCP: the VM's service account, through the metadata
# server's token; object PREFIX/<node>/<file>) or https://URL (HTTP PUT of <URL>/<node>/<file>, with
# /etc/kubeadm-cluster/backup-upload.netrc as credentials when it exists).
#
# Nothing happens on a node without etcd (no etcd static pod manifest). With BACKUP_REQUIRED=1 (the
# default) any failure fails the step (an upgrade does not start without its snapshot); with 0 it is
# a warning and the step goes on (a leaving control plane is never blocked by a sick etcd). A failed
# upload keeps the local backup and fails only a scheduled run (so the timer's unit shows failed).
#
# Inputs (environment; unset ones are read from /etc/kubeadm-cluster/maintenance.env, written by
# install-maintenance.sh): BACKUP_NODE (this node's name; default `uname -n`), BACKUP_REASON
# (scheduled | pre-upgrade | pre-remove-<node> | manual, the default), BACKUP_DIR
# (/var/backups/kubeadm-cluster/etcd), BACKUP_KEEP (24), BACKUP_UPLOAD (none), BACKUP_REQUIRED (1),
# KC_ETCD_WAIT (attempts to find the running etcd container, 10).
# Stdout: nothing (the backup's path is logged).
set -euo pipefail
if ! declare -F kc_log >/dev/null 2>&1; then
  # shellcheck source=lib.sh
  . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
fi
KC_STEP=etcd-snapshot

#: The variables the maintenance env file may set (the only lines read from it).
KC_MAINTENANCE_ENV=$KC_ROOT/etc/kubeadm-cluster/maintenance.env
#: Where etcd's data directory is inside the etcd pod and on the node (kubeadm mounts it at the same
#: path); read from the manifest's --data-dir, this is the default.
KC_ETCD_DEFAULT_DATA_DIR=/var/lib/etcd

# kc_snapshot_defaults FILE : each BACKUP_*=value line of FILE sets that variable when the
# environment did not. Lines are data, never code: nothing in the file is evaluated.
kc_snapshot_defaults() {
  local file=$1 name value
  [[ -f $file ]] || return 0
  while IFS='=' read -r name value; do
    [[ $name =~ ^BACKUP_[A-Z_]+$ ]] || continue
    if [[ -z ${!name+x} ]]; then
      printf -v "$name" '%s' "$value"
    fi
  done <"$file"
}

kc_snapshot_defaults "$KC_MAINTENANCE_ENV"
BACKUP_REASON=${BACKUP_REASON:-manual}
BACKUP_DIR=${BACKUP_DIR:-/var/backups/kubeadm-cluster/etcd}
BACKUP_KEEP=${BACKUP_KEEP:-24}
BACKUP_UPLOAD=${BACKUP_UPLOAD:-}
BACKUP_REQUIRED=${BACKUP_REQUIRED:-1}
KC_ETCD_WAIT=${KC_ETCD_WAIT:-10}
[[ $BACKUP_REASON =~ ^[a-z0-9]([a-z0-9-]*[a-z0-9])?$ ]] ||
  kc_die "BACKUP_REASON must be lowercase letters, digits and '-', not '$BACKUP_REASON'"
[[ $BACKUP_KEEP =~ ^[1-9][0-9]*$ ]] || kc_die "BACKUP_KEEP must be a positive integer, not '$BACKUP_KEEP'"
[[ $BACKUP_REQUIRED == 0 || $BACKUP_REQUIRED == 1 ]] || kc_die "BACKUP_REQUIRED must be 0 or 1, not '$BACKUP_REQUIRED'"
[[ $KC_ETCD_WAIT =~ ^[1-9][0-9]*$ ]] || kc_die "KC_ETCD_WAIT must be a positive integer, not '$KC_ETCD_WAIT'"
[[ $BACKUP_DIR == /* ]] || kc_die "BACKUP_DIR must be an absolute path, not '$BACKUP_DIR'"
case $BACKUP_UPLOAD in
  "" | gs://?* | https://?*) ;;
  *) kc_die "BACKUP_UPLOAD must be gs://BUCKET[/PREFIX] or an https:// URL, not '$BACKUP_UPLOAD'" ;;
esac

# kc_snapshot_etcd_container : prints the id of the running etcd container of the static pod.
kc_snapshot_etcd_container() {
  local id
  id=$(crictl ps --name '^etcd$' --label io.kubernetes.pod.namespace=kube-system --state Running -q \
    </dev/null 2>/dev/null | head -n 1) || return 1
  [[ -n $id ]] || return 1
  printf '%s\n' "$id"
}

# kc_snapshot_data_dir MANIFEST : etcd's --data-dir as the manifest gives it (kubeadm: /var/lib/etcd).
kc_snapshot_data_dir() {
  local dir
  dir=$(sed -n 's/^[[:space:]]*- --data-dir=\(.*\)$/\1/p' "$1" | head -n 1)
  printf '%s\n' "${dir:-$KC_ETCD_DEFAULT_DATA_DIR}"
}

# kc_snapshot_gcs_upload FILE OBJECT : FILE to gs://BUCKET/OBJECT with the VM's service account.
# The access token goes to curl in a mode-0600 header file: never on a command line or in a log.
# The file is streamed (-T), not read into memory. The upload is conditional on the object not
# existing (JSON API ifGenerationMatch=0: 412 Precondition Failed when it does, per Cloud Storage's
# "Request preconditions" page): when curl's own retry re-sends an upload whose first answer was
# lost, the object is already there, which is success (the nodes may create objects, never
# replace them, so a plain retry would be refused).
kc_snapshot_gcs_upload() {
  local file=$1 object=$2 location=${BACKUP_UPLOAD#gs://} bucket token headers rc=0 code=""
  bucket=${location%%/*}
  token=$(curl -fsS --retry 3 --connect-timeout 10 -H 'Metadata-Flavor: Google' \
    'http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token' \
    </dev/null | sed -n 's/.*"access_token"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p') || return 1
  [[ -n $token ]] || {
    kc_warn "the metadata server gave no access token for the VM's service account"
    return 1
  }
  headers=$(mktemp) || return 1
  chmod 600 "$headers"
  printf 'Authorization: Bearer %s\n' "$token" >"$headers"
  code=$(curl -sS --retry 3 --connect-timeout 20 -X POST -H "@$headers" -H 'Content-Type: application/gzip' \
    -T "$file" -o /dev/null -w '%{http_code}' \
    "https://storage.googleapis.com/upload/storage/v1/b/$bucket/o?uploadType=media&ifGenerationMatch=0&name=${object//\//%2F}" \
    </dev/null) || rc=$?
  rm -f -- "$headers"
  ((rc == 0)) || return "$rc"
  case $code in
    200) return 0 ;;
    412)
      kc_log "gs://$bucket/$object exists already: an earlier attempt of this upload reached the bucket"
      return 0
      ;;
    *)
      kc_warn "Cloud Storage answered HTTP ${code:-nothing} to the upload of $object"
      return 22
      ;;
  esac
}

# kc_snapshot_https_upload FILE PATH : HTTP PUT of FILE to BACKUP_UPLOAD/PATH (netrc credentials).
kc_snapshot_https_upload() {
  local file=$1 path=$2 netrc=$KC_ROOT/etc/kubeadm-cluster/backup-upload.netrc
  local -a auth=()
  if [[ -f $netrc ]]; then
    auth=(--netrc-file "$netrc")
  fi
  curl -fsS --retry 3 --connect-timeout 20 "${auth[@]}" -T "$file" "${BACKUP_UPLOAD%/}/$path" </dev/null >/dev/null
}

# kc_snapshot_upload FILE : FILE to BACKUP_UPLOAD (object/path <node>/<file name>), retried.
kc_snapshot_upload() {
  local file=$1 name location
  name=$BACKUP_NODE/$(basename "$file")
  case $BACKUP_UPLOAD in
    gs://*)
      location=${BACKUP_UPLOAD#gs://}
      location=${location%/}
      if [[ $location == */* ]]; then
        name=${location#*/}/$name
      fi
      kc_log "uploading $(basename "$file") to gs://${location%%/*}/$name"
      kc_retry 4 kc_snapshot_gcs_upload "$file" "$name"
      ;;
    https://*)
      kc_log "uploading $(basename "$file") to ${BACKUP_UPLOAD%/}/$BACKUP_NODE/"
      kc_retry 4 kc_snapshot_https_upload "$file" "$name"
      ;;
  esac
}

# kc_snapshot_prune : keeps the newest BACKUP_KEEP backups of this node and reason (names sort by time).
kc_snapshot_prune() {
  local dir=$KC_ROOT$BACKUP_DIR file
  local -a all=()
  while IFS= read -r file; do
    all+=("$file")
  done < <(find "$dir" -maxdepth 1 -type f -name "etcd-$BACKUP_NODE-*-$BACKUP_REASON.tar.gz" -printf '%f\n' | sort -r)
  local i
  for ((i = BACKUP_KEEP; i < ${#all[@]}; i++)); do
    kc_log "removing the old backup ${all[i]} (keeping the newest $BACKUP_KEEP $BACKUP_REASON backups)"
    rm -f -- "$dir/${all[i]}"
  done
}

kc_snapshot_main() {
  local manifest=$KC_ROOT/etc/kubernetes/manifests/etcd.yaml pki=$KC_ROOT/etc/kubernetes/pki
  if [[ ! -f $manifest ]]; then
    kc_log "no etcd static pod on this node ($manifest): nothing to snapshot"
    return 0
  fi
  BACKUP_NODE=${BACKUP_NODE:-$(uname -n)}
  kc_is_hostname "$BACKUP_NODE" || kc_die "BACKUP_NODE must be a host name, not '$BACKUP_NODE'"

  # One snapshot at a time on this node (the timer and an upgrade may meet).
  mkdir -p "$KC_ROOT/run"
  exec 8>"$KC_ROOT/run/kubeadm-cluster-etcd-snapshot.lock"
  flock 8 || kc_die "cannot lock $KC_ROOT/run/kubeadm-cluster-etcd-snapshot.lock"

  local container data_dir
  container=$(kc_retry "$KC_ETCD_WAIT" kc_snapshot_etcd_container) ||
    kc_die "etcd is not running on $BACKUP_NODE (no running etcd container in crictl ps): no snapshot taken"
  data_dir=$(kc_snapshot_data_dir "$manifest")

  # etcdctl writes into the pod's mount of etcd's data directory (<name>.part, then renamed); the
  # file is moved out of it at once. A leftover of an interrupted run is removed first.
  local in_pod=$data_dir/kubeadm-cluster-snapshot.db
  local on_node=$KC_ROOT$in_pod
  rm -f -- "$on_node" "$on_node.part"
  local stamp work dest
  stamp=$(date -u +%Y%m%dT%H%M%SZ)
  mkdir -p "$KC_ROOT$BACKUP_DIR"
  chmod 700 "$KC_ROOT$BACKUP_DIR"
  work=$(mktemp -d "$KC_ROOT$BACKUP_DIR/.work.XXXXXX") || kc_die "cannot create a work directory in $BACKUP_DIR"
  kc_on_exit "rm -rf -- '$work' '$on_node' '$on_node.part'"

  kc_log "etcdctl snapshot save in the etcd pod (container ${container:0:13})"
  crictl exec "$container" etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt \
    --cert=/etc/kubernetes/pki/etcd/server.crt --key=/etc/kubernetes/pki/etcd/server.key \
    snapshot save "$in_pod" </dev/null >&2 || kc_die "etcdctl snapshot save failed on $BACKUP_NODE (its output is above)"
  [[ -s $on_node ]] || kc_die "etcdctl reported success but $on_node is missing or empty"
  mv -f -- "$on_node" "$work/etcd-snapshot.db"

  local file
  mkdir -p "$work/pki/etcd"
  for file in ca.crt ca.key sa.key sa.pub front-proxy-ca.crt front-proxy-ca.key etcd/ca.crt etcd/ca.key; do
    [[ -f $pki/$file ]] || kc_die "no $pki/$file: a backup without the cluster's certificate authorities cannot be restored"
    cp -p -- "$pki/$file" "$work/pki/$file"
  done
  local -a members=(etcd-snapshot.db pki)
  if [[ -f $KC_ROOT/etc/kubernetes/kubeadm-config.yaml ]]; then
    install -m 0600 -- "$KC_ROOT/etc/kubernetes/kubeadm-config.yaml" "$work/kubeadm-config.yaml"
    members+=(kubeadm-config.yaml)
  fi
  local image
  image=$(sed -n 's/^[[:space:]]*image:[[:space:]]*\([^[:space:]]*\).*/\1/p' "$manifest" | head -n 1)
  {
    printf 'node=%s\n' "$BACKUP_NODE"
    printf 'reason=%s\n' "$BACKUP_REASON"
    printf 'created=%s\n' "$stamp"
    printf 'etcd_image=%s\n' "$image"
    printf 'snapshot_bytes=%s\n' "$(stat -c %s "$work/etcd-snapshot.db")"
  } >"$work/backup-info"
  (cd "$work" && find . -type f ! -name 'SHA256SUMS*' -printf '%P\n' | LC_ALL=C sort | xargs -d '\n' sha256sum) \
    >"$work/SHA256SUMS.tmp"
  mv -f -- "$work/SHA256SUMS.tmp" "$work/SHA256SUMS"

  dest=$KC_ROOT$BACKUP_DIR/etcd-$BACKUP_NODE-$stamp-$BACKUP_REASON.tar.gz
  tar -C "$work" -czf "$dest.part" --owner=0 --group=0 --numeric-owner \
    "${members[@]}" backup-info SHA256SUMS || kc_die "cannot write $dest"
  chmod 600 "$dest.part"
  mv -f -- "$dest.part" "$dest"
  kc_log "etcd backup of $BACKUP_NODE: $dest ($(stat -c %s "$dest") bytes; snapshot $(stat -c %s "$work/etcd-snapshot.db") bytes)"
  rm -rf -- "$work"
  kc_snapshot_prune

  if [[ -n $BACKUP_UPLOAD ]]; then
    if ! kc_snapshot_upload "$dest"; then
      if [[ $BACKUP_REASON == scheduled ]]; then
        kc_die "the upload of $dest to $BACKUP_UPLOAD failed (the backup is kept on $BACKUP_NODE)"
      fi
      kc_warn "the upload of $dest to $BACKUP_UPLOAD failed; the backup is kept on $BACKUP_NODE"
    fi
  fi
}

if ((BACKUP_REQUIRED)); then
  kc_snapshot_main </dev/null
elif ! (kc_snapshot_main </dev/null); then
  kc_warn "no etcd backup taken (see above); going on, as BACKUP_REQUIRED=0"
fi
