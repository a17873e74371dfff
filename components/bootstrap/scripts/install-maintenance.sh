#!/usr/bin/env bash
# Installs the maintenance timers of a control plane (runs on each control plane after its kubeadm
# init or join): the scripts etcd-snapshot.sh, etcd-restore.sh and certs-renew.sh (with lib.sh) in
# /usr/local/lib/kubeadm-cluster, their settings in /etc/kubeadm-cluster/maintenance.env, the
# systemd units kubeadm-cluster-etcd-snapshot.{service,timer} and
# kubeadm-cluster-certs-renew.{service,timer}, and the snapshot schedule as a drop-in of the timer.
# The timers are enabled and started; systemd is reloaded and the timers restarted only when a file
# changed, so a second run changes nothing.
#
# Inputs: MAINTENANCE_FILES (one "MODE PATH" line per file, PATH absolute, under
#         /usr/local/lib/kubeadm-cluster/, /etc/kubeadm-cluster/ or /etc/systemd/system/kubeadm-cluster-;
#         "MODE PATH node-script": PATH, under /usr/local/lib/kubeadm-cluster/, becomes a link to
#         the node's copy of that script in KC_SCRIPTS_DIR (set by the bundle), which gets MODE:
#         each release's copy updates what the timers run, with no run of this step);
#         MAINTENANCE_FILE_<n> (the content of the n-th file of that list, from 1; none for a link);
#         SNAPSHOT_SCHEDULE (the snapshot timer's OnCalendar=, checked with `systemd-analyze calendar`);
#         MAINTENANCE_TIMERS (the timer units to enable, space-separated).
# Stdout: nothing.
set -euo pipefail
if ! declare -F kc_log >/dev/null 2>&1; then
  # shellcheck source=lib.sh
  . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
fi
KC_STEP="install-maintenance"

: "${MAINTENANCE_FILES:?MAINTENANCE_FILES is required (the files to install, one MODE PATH line each)}"
: "${SNAPSHOT_SCHEDULE:?SNAPSHOT_SCHEDULE is required (the etcd snapshot timer OnCalendar= value)}"
: "${MAINTENANCE_TIMERS:?MAINTENANCE_TIMERS is required (the timer units to enable)}"
[[ $SNAPSHOT_SCHEDULE =~ ^[A-Za-z0-9*,./:~\ -]{1,100}$ ]] ||
  kc_die "SNAPSHOT_SCHEDULE must be a systemd calendar expression, not '$SNAPSHOT_SCHEDULE'"

#: The drop-in that sets the snapshot timer's schedule.
KC_SCHEDULE_DROPIN=/etc/systemd/system/kubeadm-cluster-etcd-snapshot.timer.d/schedule.conf

# kc_link_node_script PATH MODE : PATH becomes a link to the node's copy of the script of the same
# name (KC_SCRIPTS_DIR), which gets MODE (the copy writes 0644 files; a later copy over an existing
# file keeps its mode). Succeeds when the link changed.
kc_link_node_script() {
  local path=$1 mode=$2 target
  [[ ${KC_SCRIPTS_DIR:-} == /* ]] || kc_die "KC_SCRIPTS_DIR must be the absolute path of the node's scripts, not '${KC_SCRIPTS_DIR:-}'"
  target=$KC_SCRIPTS_DIR/$(basename "$path")
  [[ -f $target ]] || kc_die "no $target to link $path to (the node's copy of the scripts)"
  chmod "$mode" "$target" || kc_die "cannot chmod $target"
  mkdir -p "$(dirname "$path")" || kc_die "cannot create directory $(dirname "$path")"
  if [[ -L $path && $(readlink "$path") == "$target" ]]; then
    return 1
  fi
  ln -sfn "$target" "$path" || kc_die "cannot link $path to $target"
  kc_log "linked $path to $target"
}

kc_maintenance_main() {
  if command -v systemd-analyze >/dev/null 2>&1; then
    systemd-analyze calendar "$SNAPSHOT_SCHEDULE" </dev/null >/dev/null 2>&1 ||
      kc_die "SNAPSHOT_SCHEDULE '$SNAPSHOT_SCHEDULE' is not a calendar expression systemd accepts (systemd-analyze calendar)"
  fi
  local mode path kind index=0 var units_changed=0 written=0
  while read -r mode path kind; do
    [[ -n $mode ]] || continue
    index=$((index + 1))
    [[ $mode =~ ^0[0-7]{3}$ ]] || kc_die "MAINTENANCE_FILES line $index: mode '$mode' is not like 0644"
    case $path in
      /usr/local/lib/kubeadm-cluster/?* | /etc/kubeadm-cluster/?* | /etc/systemd/system/kubeadm-cluster-?*) ;;
      *) kc_die "MAINTENANCE_FILES line $index: '$path' is not a path this step installs" ;;
    esac
    [[ $path != *..* ]] || kc_die "MAINTENANCE_FILES line $index: '$path' has '..'"
    if [[ $kind == node-script ]]; then
      [[ $path == /usr/local/lib/kubeadm-cluster/?* ]] ||
        kc_die "MAINTENANCE_FILES line $index: only /usr/local/lib/kubeadm-cluster/ holds links to node scripts"
      if kc_link_node_script "$KC_ROOT$path" "$mode"; then
        written=$((written + 1))
      fi
      continue
    fi
    [[ -z $kind ]] || kc_die "MAINTENANCE_FILES line $index: unknown kind '$kind'"
    var=MAINTENANCE_FILE_$index
    [[ -n ${!var+x} ]] || kc_die "$var is required (the content of $path)"
    kc_write_file "$KC_ROOT$path" "$mode" < <(printf '%s' "${!var}")
    if ((KC_WRITE_CHANGED)); then
      written=$((written + 1))
      if [[ $path == /etc/systemd/system/* ]]; then
        units_changed=1
      fi
    fi
  done <<<"$MAINTENANCE_FILES"
  ((index)) || kc_die "MAINTENANCE_FILES lists no file"

  kc_write_file "$KC_ROOT$KC_SCHEDULE_DROPIN" 0644 <<EOF
# Written by kubeadm-cluster (backup.schedule of the stack).
[Timer]
OnCalendar=
OnCalendar=$SNAPSHOT_SCHEDULE
EOF
  if ((KC_WRITE_CHANGED)); then
    units_changed=1
  fi

  local -a timers
  read -ra timers <<<"$MAINTENANCE_TIMERS"
  if ((units_changed)); then
    systemctl daemon-reload </dev/null >&2
  fi
  systemctl enable "${timers[@]}" </dev/null >&2 || kc_die "cannot enable ${timers[*]}"
  if ((units_changed)); then
    systemctl restart "${timers[@]}" </dev/null >&2 || kc_die "cannot start ${timers[*]}"
  else
    systemctl start "${timers[@]}" </dev/null >&2 || kc_die "cannot start ${timers[*]}"
  fi
  kc_log "maintenance timers active (${timers[*]}; etcd snapshots: $SNAPSHOT_SCHEDULE); $written file(s) changed"
}

kc_maintenance_main </dev/null
