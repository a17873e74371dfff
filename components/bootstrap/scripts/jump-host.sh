#!/usr/bin/env bash
# Makes the first control plane the SSH jump host of a whole cluster (runs on it, before any other
# node's first step): every node step of `pulumi up` opens its SSH connection through this host,
# up to one per node at the same moment (60 workers prepared in parallel), and sshd's stock
# MaxStartups 10:30:100 starts refusing 30 % of the connections still authenticating beyond 10
# (sshd_config(5), MaxStartups). A drop-in in /etc/ssh/sshd_config.d raises that limit to
# SSHD_MAX_STARTUPS; sshd reads the first value it finds for a keyword, and the Ubuntu and Debian
# sshd_config include the drop-ins first, so a low file name makes it win over later drop-ins.
# (MaxSessions, 10, counts shell and subsystem sessions per connection; pulumi-command opens one
# connection per step and forwards through it, it never multiplexes sessions: not raised.)
#
# Idempotent: the drop-in is written and sshd reloaded only when its content changes. The new
# setting is checked with `sshd -t` (refused: the drop-in is removed again and the step fails,
# sshd keeps its old configuration) and `sshd -T` (another drop-in that wins is named).
#
# Inputs: SSHD_MAX_STARTUPS (start:rate:full, e.g. 256:30:512).
# Stdout: nothing.
set -euo pipefail
if ! declare -F kc_log >/dev/null 2>&1; then
  # shellcheck source=lib.sh
  . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
fi
KC_STEP=jump-host

: "${SSHD_MAX_STARTUPS:?SSHD_MAX_STARTUPS is required (start:rate:full, e.g. 256:30:512)}"
[[ $SSHD_MAX_STARTUPS =~ ^[1-9][0-9]*:[0-9]{1,3}:[1-9][0-9]*$ ]] ||
  kc_die "SSHD_MAX_STARTUPS must be start:rate:full (e.g. 256:30:512), not '$SSHD_MAX_STARTUPS'"

KC_SSHD_DROPIN=$KC_ROOT/etc/ssh/sshd_config.d/10-kubeadm-cluster-jump-host.conf

kc_jump_host_main() {
  local effective
  kc_write_file "$KC_SSHD_DROPIN" 0644 <<EOF
# Written by kubeadm-cluster (jump-host.sh): this host is the SSH jump host of the cluster's nodes,
# and \`pulumi up\` connects through it for every node at once.
MaxStartups $SSHD_MAX_STARTUPS
EOF
  if ! sshd -t </dev/null >&2; then
    rm -f -- "$KC_SSHD_DROPIN"
    kc_die "sshd refuses the configuration with $KC_SSHD_DROPIN (its message is above): the drop-in is removed again"
  fi
  effective=$(sshd -T </dev/null | awk '$1 == "maxstartups" { print $2 }') || effective=""
  if [[ $effective != "$SSHD_MAX_STARTUPS" ]]; then
    kc_die "sshd's MaxStartups is '${effective:-unknown}', not $SSHD_MAX_STARTUPS: another file in" \
      "/etc/ssh/sshd_config.d (read in name order, the first value wins) or sshd_config sets it first"
  fi
  if ((KC_WRITE_CHANGED)); then
    systemctl try-reload-or-restart ssh.service </dev/null >&2 || kc_die "cannot reload sshd (ssh.service)"
    kc_log "sshd accepts $SSHD_MAX_STARTUPS starting connections (MaxStartups)"
  else
    kc_log "sshd already accepts $SSHD_MAX_STARTUPS starting connections (MaxStartups)"
  fi
}

kc_jump_host_main </dev/null
