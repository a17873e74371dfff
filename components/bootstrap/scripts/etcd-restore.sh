#!/usr/bin/env bash
# Restores a backup made by etcd-snapshot.sh onto a fresh first control plane, the kubeadm way:
# the cluster's certificate authorities and service-account keys back into /etc/kubernetes/pki,
# `etcdutl snapshot restore` into the data directory kubeadm's etcd uses (/var/lib/etcd), then
# `kubeadm init` with that directory in place (its preflight check DirAvailable--var-lib-etcd
# ignored, the one kubeadm refuses a non-empty data directory with). kubeadm init finds the CAs and
# signs new leaf certificates for this machine with them; etcd starts on the restored data as a
# one-member cluster named after this node, advertising this node's peer URL.
#
# The kubeadm configuration is the node's own (KUBEADM_CONFIG_FILE, which kubeadm-init.sh keeps) or,
# on a machine where `kubeadm init` never ran, the backup's copy (the first control plane's backups
# carry it): that copy is installed as KUBEADM_CONFIG_FILE once the backup is verified.
#
# Usage, on the new first control plane (node prep done, e.g. by `pulumi up`):
#   sudo /usr/local/lib/kubeadm-cluster/etcd-restore.sh BACKUP.tar.gz
#   sudo RESTORE_WIPE=1 /usr/local/lib/kubeadm-cluster/etcd-restore.sh BACKUP.tar.gz
# The second form first runs `kubeadm reset -f` on a node where `kubeadm init` already built a new,
# empty cluster (what `pulumi up` does on a replacement machine); without it such a node is refused.
#
# Everything is checked before anything on the node changes, and a bad backup changes nothing:
# a missing or unreadable file, one that is not a complete gzip'ed tar, a file whose SHA256SUMS
# does not match, or a snapshot etcdutl refuses (its integrity hash) is an error naming the problem.
# The restore is built in a work directory next to the data directory and moved into place last.
# The restored revision is bumped by 1000000000 and marked compacted (etcdutl --bump-revision,
# --mark-compacted): watchers (kubelets, controllers) that saw newer revisions than the snapshot's
# re-list instead of missing changes.
#
# Inputs: BACKUP_FILE or the first argument (the .tar.gz); optional RESTORE_WIPE (0; 1: reset a
# node that was initialised already); RESTORE_INIT (1; 0: restore only, no kubeadm init);
# KUBEADM_CONFIG_FILE (/etc/kubernetes/kubeadm-config.yaml, the init configuration kubeadm-init.sh
# keeps); ETCD_NAME and ETCD_PEER_URL (default: the configuration's nodeRegistration.name and
# https://<localAPIEndpoint.advertiseAddress>:2380, what kubeadm's etcd manifest uses); ETCDUTL (an
# etcdutl binary; default: the one in the etcd image kubeadm runs, pulled with crictl and mounted
# with ctr); KC_READY_ATTEMPTS (30).
# Stdout: nothing.
set -euo pipefail
if ! declare -F kc_log >/dev/null 2>&1; then
  # shellcheck source=lib.sh
  . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
fi
KC_STEP=etcd-restore

BACKUP_FILE=${1:-${BACKUP_FILE:-}}
[[ -n $BACKUP_FILE ]] || kc_die "BACKUP_FILE is required (the etcd backup .tar.gz to restore, or the first argument)"
RESTORE_WIPE=${RESTORE_WIPE:-0}
RESTORE_INIT=${RESTORE_INIT:-1}
KUBEADM_CONFIG_FILE=${KUBEADM_CONFIG_FILE:-/etc/kubernetes/kubeadm-config.yaml}
ETCDUTL=${ETCDUTL:-}
[[ $RESTORE_WIPE == 0 || $RESTORE_WIPE == 1 ]] || kc_die "RESTORE_WIPE must be 0 or 1, not '$RESTORE_WIPE'"
[[ $RESTORE_INIT == 0 || $RESTORE_INIT == 1 ]] || kc_die "RESTORE_INIT must be 0 or 1, not '$RESTORE_INIT'"

#: kubeadm's data directory of a stacked etcd (ClusterConfiguration etcd.local.dataDir default).
KC_ETCD_DATA_DIR=/var/lib/etcd
#: What a backup must hold (etcd-snapshot.sh writes them).
KC_BACKUP_MEMBERS=(etcd-snapshot.db SHA256SUMS backup-info pki/ca.crt pki/ca.key pki/sa.key pki/sa.pub
  pki/front-proxy-ca.crt pki/front-proxy-ca.key pki/etcd/ca.crt pki/etcd/ca.key)

# kc_restore_config_value SECTION KEY FILE : the first "KEY: value" indented under a top-level
# "SECTION:" of FILE, the kubeadm configuration kubeadm_config.py writes (block YAML; only its
# InitConfiguration has nodeRegistration and localAPIEndpoint).
kc_restore_config_value() {
  awk -v section="$1" -v key="$2" '
    /^[^[:space:]#-]/ { inside = ($1 == section ":") ; next }
    inside && $1 == key ":" { value = $2; gsub(/["\047]/, "", value); print value; exit }
  ' "$3"
}

# kc_restore_etcdutl WORK : sets KC_RESTORE_ETCDUTL to an etcdutl to run: ETCDUTL, or the etcdutl
# of the etcd image `kubeadm config images list` names for this configuration, mounted under WORK
# (unmounted at exit by kc_restore_main's exit hook). Not called in $(...): it must set the variable.
kc_restore_etcdutl() {
  local work=$1 image
  if [[ -n $ETCDUTL ]]; then
    KC_RESTORE_ETCDUTL=$ETCDUTL
    return 0
  fi
  [[ -f $KC_RESTORE_CONFIG ]] ||
    kc_die "no kubeadm configuration at $KC_RESTORE_CONFIG to find the etcd image with (or set ETCDUTL)"
  image=$(kubeadm config images list --config "$KC_RESTORE_CONFIG" </dev/null 2>/dev/null |
    grep -E '/etcd:[^[:space:]]+$' | head -n 1) || true
  [[ -n $image ]] || kc_die "kubeadm config images list names no etcd image for $KC_RESTORE_CONFIG"
  kc_log "pulling $image (its etcdutl restores the snapshot)"
  kc_retry 4 crictl pull "$image" </dev/null >&2 || kc_die "cannot pull $image"
  mkdir -p "$work/image"
  ctr -n k8s.io images mount "$image" "$work/image" </dev/null >&2 || kc_die "cannot mount the image $image"
  [[ -x $work/image/usr/local/bin/etcdutl ]] || kc_die "the image $image has no /usr/local/bin/etcdutl"
  KC_RESTORE_ETCDUTL=$work/image/usr/local/bin/etcdutl
}

# kc_restore_fresh : dies unless the node holds no cluster yet (or RESTORE_WIPE=1 allows a reset).
kc_restore_fresh() {
  local k=$KC_ROOT/etc/kubernetes data=$KC_ROOT$KC_ETCD_DATA_DIR
  local -a found=()
  [[ ! -f $k/admin.conf ]] || found+=("$k/admin.conf")
  [[ ! -f $k/manifests/etcd.yaml ]] || found+=("$k/manifests/etcd.yaml")
  [[ ! -f $k/pki/ca.key ]] || found+=("$k/pki/ca.key")
  if [[ -d $data ]] && [[ -n $(ls -A "$data") ]]; then
    found+=("$data (not empty)")
  fi
  ((${#found[@]})) || return 0
  if ((RESTORE_WIPE)); then
    kc_log "this node was initialised already (${found[*]}): RESTORE_WIPE=1, it will be reset first"
    KC_RESTORE_RESET=1
    return 0
  fi
  kc_die "this node is not a fresh control plane: ${found[*]}. Restore onto a machine where kubeadm" \
    "init has not run, or set RESTORE_WIPE=1 to reset this one (its current cluster is lost). Nothing was changed."
}

kc_restore_main() {
  KC_RESTORE_RESET=0
  [[ -f $BACKUP_FILE ]] || kc_die "no backup at $BACKUP_FILE (nothing was changed)"
  [[ -r $BACKUP_FILE ]] || kc_die "cannot read the backup $BACKUP_FILE (nothing was changed)"
  kc_restore_fresh

  # The work directory sits next to etcd's data directory (the restored data is renamed into
  # place), or in $TMPDIR on a node without /var/lib yet (nothing is created before the checks).
  local parent work
  parent=$(dirname "$KC_ROOT$KC_ETCD_DATA_DIR")
  if [[ -d $parent ]]; then
    work=$(mktemp -d "$parent/.kubeadm-cluster-restore.XXXXXX") || kc_die "cannot create a work directory in $parent"
  else
    work=$(mktemp -d) || kc_die "cannot create a work directory"
  fi
  chmod 700 "$work"
  # The image kc_restore_etcdutl mounts under the work directory is unmounted first: rm's
  # --one-file-system skips a mount point, which would leave the work directory (and the
  # backup's CA keys in it) behind after a refused snapshot.
  kc_on_exit "if [[ -d '$work/image' ]]; then ctr -n k8s.io images unmount --rm '$work/image' >/dev/null 2>&1 || true; fi; rm -rf --one-file-system -- '$work'"

  # 1. The backup: a complete gzip'ed tar of relative paths, every file its SHA256SUMS lists intact.
  local listing member
  listing=$(tar -tzf "$BACKUP_FILE" 2>&1) ||
    kc_die "$BACKUP_FILE is not a complete etcd backup (a gzip'ed tar made by etcd-snapshot.sh): it is corrupt" \
      "or truncated (tar: $(tail -n 1 <<<"$listing")). Nothing was changed."
  while IFS= read -r member; do
    if [[ $member == /* || $member == ../* || $member == */../* || $member == .. ]]; then
      kc_die "$BACKUP_FILE holds the path '$member' outside its own directory: refused. Nothing was changed."
    fi
  done <<<"$listing"
  mkdir "$work/backup"
  tar -xzf "$BACKUP_FILE" -C "$work/backup" --no-same-owner </dev/null >&2 ||
    kc_die "cannot unpack $BACKUP_FILE: it is corrupt. Nothing was changed."
  for member in "${KC_BACKUP_MEMBERS[@]}"; do
    [[ -f $work/backup/$member ]] ||
      kc_die "$BACKUP_FILE has no $member: not a backup made by etcd-snapshot.sh. Nothing was changed."
  done
  local bad
  if ! bad=$(cd "$work/backup" && sha256sum --quiet -c SHA256SUMS 2>&1); then
    kc_die "$BACKUP_FILE is corrupt: its files do not match its SHA256SUMS (${bad//$'\n'/; }). Nothing was changed."
  fi
  kc_log "backup $(basename "$BACKUP_FILE"): $(tr '\n' ' ' <"$work/backup/backup-info")"

  # 2. The kubeadm configuration: the node's own, else the backup's (a machine where kubeadm init
  #    never ran). Then who this member is: the name and peer URL kubeadm's etcd manifest gives it.
  KC_RESTORE_CONFIG=$KC_ROOT$KUBEADM_CONFIG_FILE
  local from_backup=0
  if [[ ! -f $KC_RESTORE_CONFIG && -f $work/backup/kubeadm-config.yaml ]]; then
    KC_RESTORE_CONFIG=$work/backup/kubeadm-config.yaml
    from_backup=1
    kc_log "no $KUBEADM_CONFIG_FILE on this node: using the backup's kubeadm configuration"
  fi
  local config=$KC_RESTORE_CONFIG name=${ETCD_NAME:-} peer=${ETCD_PEER_URL:-} address
  if [[ -z $name || -z $peer ]]; then
    [[ -f $config ]] || kc_die "no kubeadm configuration at $config (set KUBEADM_CONFIG_FILE, or ETCD_NAME" \
      "and ETCD_PEER_URL). Nothing was changed."
    [[ -n $name ]] || name=$(kc_restore_config_value nodeRegistration name "$config")
    address=$(kc_restore_config_value localAPIEndpoint advertiseAddress "$config")
    [[ -n $peer || -z $address ]] || peer="https://$address:2380"
  fi
  [[ -n $name && -n $peer ]] ||
    kc_die "cannot tell this member's name and peer URL from $config (nodeRegistration.name," \
      "localAPIEndpoint.advertiseAddress): set ETCD_NAME and ETCD_PEER_URL. Nothing was changed."
  kc_is_hostname "$name" || kc_die "ETCD_NAME must be a node name, not '$name'"
  [[ $peer =~ ^https?://[^[:space:],]+:[0-9]+$ ]] || kc_die "ETCD_PEER_URL must be like https://10.0.0.2:2380, not '$peer'"

  # 3. The snapshot restored into the work directory: etcdutl checks its integrity hash.
  local out
  kc_restore_etcdutl "$work"
  kc_log "etcdutl snapshot restore as member $name ($peer)"
  if ! out=$("$KC_RESTORE_ETCDUTL" snapshot restore "$work/backup/etcd-snapshot.db" --data-dir "$work/etcd" \
    --name "$name" --initial-cluster "$name=$peer" --initial-advertise-peer-urls "$peer" \
    --bump-revision 1000000000 --mark-compacted </dev/null 2>&1); then
    printf '%s\n' "$out" >&2
    kc_die "etcdutl refuses the snapshot in $BACKUP_FILE (corrupt: see above). Nothing was changed."
  fi
  [[ -d $work/etcd/member ]] || kc_die "etcdutl wrote no member directory into $work/etcd. Nothing was changed."
  if [[ -d $work/image ]]; then
    ctr -n k8s.io images unmount --rm "$work/image" </dev/null >&2 || kc_warn "cannot unmount $work/image"
  fi

  # 4. The node: reset if it was initialised and RESTORE_WIPE allows it, then the PKI and the data.
  if ((KC_RESTORE_RESET)); then
    kc_log "kubeadm reset -f (the cluster this node runs now is replaced by the backup's)"
    kubeadm reset -f </dev/null >&2 || kc_die "kubeadm reset failed; the backup was not restored"
    # Nothing of the old cluster may be left (the check again, without the wipe allowance).
    KC_RESTORE_RESET=0 RESTORE_WIPE=0
    kc_restore_fresh
  fi
  local pki=$KC_ROOT/etc/kubernetes/pki file
  mkdir -p "$pki/etcd"
  for file in ca.crt ca.key sa.key sa.pub front-proxy-ca.crt front-proxy-ca.key etcd/ca.crt etcd/ca.key; do
    case $file in
      *.key) install -m 0600 -- "$work/backup/pki/$file" "$pki/$file" ;;
      *) install -m 0644 -- "$work/backup/pki/$file" "$pki/$file" ;;
    esac
  done
  if ((from_backup)); then
    install -D -m 0600 -- "$work/backup/kubeadm-config.yaml" "$KC_ROOT$KUBEADM_CONFIG_FILE"
    config=$KC_ROOT$KUBEADM_CONFIG_FILE
  fi
  local data=$KC_ROOT$KC_ETCD_DATA_DIR
  if [[ -d $data ]]; then
    rmdir -- "$data" || kc_die "$data is not empty any more; the snapshot was not moved there"
  fi
  mkdir -p "$parent"
  mv -- "$work/etcd" "$data"
  chmod 700 "$data"
  kc_log "restored the cluster's certificate authorities into $pki and etcd's data into $data"

  # 5. kubeadm init on the restored directory.
  if ((!RESTORE_INIT)); then
    kc_log "RESTORE_INIT=0: not running kubeadm init (run it with --ignore-preflight-errors=DirAvailable--var-lib-etcd)"
    return 0
  fi
  [[ -f $config ]] || kc_die "no kubeadm configuration at $config: the data is restored, run kubeadm init yourself" \
    "(with --ignore-preflight-errors=DirAvailable--var-lib-etcd)"
  kc_log "kubeadm init on the restored data (takes a few minutes)"
  if ! kubeadm init --config "$config" --ignore-preflight-errors=DirAvailable--var-lib-etcd --skip-token-print \
    </dev/null >&2; then
    # No reset here: it would delete the restored data. The restore can be run again after one.
    kc_die "kubeadm init failed on the restored data (its output is above); to try again: kubeadm reset -f," \
      "then run this script again with the same backup"
  fi
  kc_retry "${KC_READY_ATTEMPTS:-30}" kubectl --kubeconfig "$KC_ROOT/etc/kubernetes/admin.conf" get --raw=/readyz \
    </dev/null >/dev/null || kc_die "the API server did not become ready on the restored data"
  kc_log "the cluster of $(basename "$BACKUP_FILE") runs again on this node. Next: pulumi up (the other" \
    "control planes must join again: replace their machines), and refresh the stack's kubeconfig output"
}

kc_restore_main </dev/null
