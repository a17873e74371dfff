#!/usr/bin/env bash
# shellcheck shell=bash
# Shared helpers of the node steps, which run in this order on a node: preflight.sh (the hardware
# gate), prepare-node.sh, then kubeadm-init.sh or kubeadm-join.sh (mint-token.sh and
# read-kubeconfig.sh run on the first control plane; remove-node.sh and remove-control-plane.sh
# when a node leaves). A kubernetesVersion change runs check-version.sh on the first control
# plane, then upgrade-node.sh on each node (a worker between upgrade-drain.sh drain and
# uncordon, which run on the first control plane).
# A step arrives on the node as one "bundle" on the stdin
# of `sudo bash -s`: strict mode, the step's inputs as exported variables, this file, then the
# step script(s). A step script run on its own sources this file from its directory instead.
#
# Conventions every step follows:
#   * stdout carries only the step's documented output (Pulumi captures it); every log line,
#     and the output of apt-get, kubeadm, systemctl ..., goes to stderr.
#   * each step's body is a function called with `</dev/null`: under `bash -s` the rest of the
#     bundle is still unread on stdin, and a command reading stdin would swallow it.
#   * every path on the node goes through ${KC_ROOT} (empty on a node; a sandbox in tests),
#     /proc and /sys through ${KC_PROC} and ${KC_SYS}; commands are called by name.
#
# Tunables (environment): KC_ROOT, KC_PROC (/proc), KC_SYS (/sys), KC_RETRY_DELAY (first delay
# of kc_retry in seconds, 5; doubles each attempt up to KC_RETRY_MAX_DELAY, 30), KC_STEP (the
# name in the log prefix, set by each step), KC_APT_ATTEMPTS (5), KC_DOWNLOAD_ATTEMPTS (4),
# KC_VERSION_ATTEMPTS (5: reads of the cluster's version, kc_cluster_version).
set -euo pipefail

KC_ROOT=${KC_ROOT:-}
KC_PROC=${KC_PROC:-/proc}
KC_SYS=${KC_SYS:-/sys}
KC_RETRY_DELAY=${KC_RETRY_DELAY:-5}
KC_RETRY_MAX_DELAY=${KC_RETRY_MAX_DELAY:-30}
KC_STEP=${KC_STEP:-node}
#: Set by kc_write_file: 1 when it changed the file, 0 when the file already had that content.
# shellcheck disable=SC2034 # read by the step scripts
KC_WRITE_CHANGED=0
#: Set by kc_apt_update_once: 1 once `apt-get update` ran in this bundle.
KC_APT_UPDATED=0
#: The comment that marks the /etc/hosts lines kc_set_hosts_entry owns.
KC_HOSTS_MARK='# kubeadm-cluster API endpoint'
#: Commands run on exit (see kc_on_exit), in order.
KC_EXIT_HOOKS=()

# kc_log MESSAGE... : one log line on stderr, prefixed with the step's name.
kc_log() {
  printf '[kubeadm-cluster %s] %s\n' "$KC_STEP" "$*" >&2
}

# kc_warn MESSAGE... : a warning on stderr (the step goes on).
kc_warn() {
  printf '[kubeadm-cluster %s] WARNING: %s\n' "$KC_STEP" "$*" >&2
}

# kc_die MESSAGE... : an error on stderr, then exit 1 (the whole bundle stops).
kc_die() {
  printf '[kubeadm-cluster %s] ERROR: %s\n' "$KC_STEP" "$*" >&2
  exit 1
}

# kc_on_exit COMMAND : run the shell command COMMAND when the bundle exits, whatever the exit
# status (several hooks may be registered; they run in registration order).
kc_on_exit() {
  KC_EXIT_HOOKS+=("$1")
  trap kc_run_exit_hooks EXIT
}

kc_run_exit_hooks() {
  local hook
  for hook in "${KC_EXIT_HOOKS[@]}"; do
    eval "$hook" || true
  done
}

# kc_retry ATTEMPTS COMMAND [ARGS...] : run COMMAND until it succeeds, at most ATTEMPTS times,
# sleeping KC_RETRY_DELAY seconds after the first failure and twice as long after each next
# one (capped at KC_RETRY_MAX_DELAY). Logs each failed attempt; returns 0 on success or the
# exit status of the last attempt. COMMAND may be a shell function (note: `set -e` does not
# apply inside it, so it must return its own failures).
kc_retry() {
  local attempts=$1 attempt=1 rc=0 delay=$KC_RETRY_DELAY
  shift
  [[ $attempts =~ ^[1-9][0-9]*$ ]] || kc_die "kc_retry: attempts must be a positive integer, not '$attempts'"
  [[ $delay =~ ^[0-9]+$ ]] || kc_die "KC_RETRY_DELAY must be a whole number of seconds, not '$delay'"
  while true; do
    if "$@"; then
      return 0
    else
      rc=$?
    fi
    if ((attempt >= attempts)); then
      kc_warn "'$*' failed (exit $rc) after $attempts attempt(s)"
      return "$rc"
    fi
    kc_warn "'$*' failed (exit $rc), attempt $attempt/$attempts; retrying in ${delay}s"
    sleep "$delay"
    delay=$((delay * 2))
    if ((delay > KC_RETRY_MAX_DELAY)); then
      delay=$KC_RETRY_MAX_DELAY
    fi
    attempt=$((attempt + 1))
  done
}

# kc_apt_get ARGS... : apt-get non-interactive, waiting for the dpkg lock (unattended-upgrades
# holds it on a fresh VM) and retried on transient failures. Its output goes to stderr.
kc_apt_get() {
  kc_retry "${KC_APT_ATTEMPTS:-5}" env DEBIAN_FRONTEND=noninteractive \
    apt-get -y -q -o DPkg::Lock::Timeout=600 \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    "$@" </dev/null >&2
}

# kc_download URL DEST : fetch URL into the file DEST (curl's own retries plus kc_retry).
kc_download() {
  local url=$1 dest=$2
  kc_log "downloading $url"
  kc_retry "${KC_DOWNLOAD_ATTEMPTS:-4}" curl -fsSL --retry 3 --retry-delay 2 --connect-timeout 20 \
    -o "$dest" "$url" </dev/null >&2
}

# kc_write_file PATH MODE <CONTENT : write stdin to PATH (creating its directory) only when
# PATH does not already hold exactly that content; the file ends with mode MODE either way.
# Sets KC_WRITE_CHANGED=1 when it wrote the file, 0 when it was already up to date, and always
# returns 0 (failures exit the bundle), so it is safe under `set -e`. Feed it with a here-doc or
# a redirect, not a pipe: in a pipeline it runs in a subshell and KC_WRITE_CHANGED is lost.
# The content is staged in a mode-0600 temporary file next to PATH, then renamed (atomic).
kc_write_file() {
  local path=$1 mode=$2 dir tmp
  dir=$(dirname "$path")
  mkdir -p "$dir" || kc_die "cannot create directory $dir"
  tmp=$(mktemp "$dir/.kubeadm-cluster.XXXXXX") || kc_die "cannot create a temporary file in $dir"
  if ! cat >"$tmp"; then
    rm -f "$tmp"
    kc_die "cannot write $path"
  fi
  if [[ -f $path ]] && cmp -s "$tmp" "$path"; then
    rm -f "$tmp"
    chmod "$mode" "$path" || kc_die "cannot chmod $path"
    # shellcheck disable=SC2034 # read by the step scripts
    KC_WRITE_CHANGED=0
    return 0
  fi
  if ! { chmod "$mode" "$tmp" && mv -f "$tmp" "$path"; }; then
    rm -f "$tmp"
    kc_die "cannot write $path"
  fi
  # shellcheck disable=SC2034 # read by the step scripts
  KC_WRITE_CHANGED=1
  kc_log "wrote $path"
}

# kc_pkg_version PACKAGE : the installed version of PACKAGE, or nothing when it is not installed.
kc_pkg_version() {
  local out
  # shellcheck disable=SC2016 # dpkg-query's format, not a shell expansion
  out=$(dpkg-query -W -f='${db:Status-Status} ${Version}\n' "$1" 2>/dev/null) || return 0
  if [[ $out == "installed "* ]]; then
    printf '%s\n' "${out#installed }"
  fi
}

# kc_apt_update_once : `apt-get update`, at most once per bundle.
kc_apt_update_once() {
  if ((!KC_APT_UPDATED)); then
    kc_log "apt-get update"
    kc_apt_get update
    KC_APT_UPDATED=1
  fi
}

# kc_is_hostname NAME : NAME is a DNS name (letters, digits, hyphens; dot-separated labels).
kc_is_hostname() {
  local label='[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?'
  ((${#1} <= 253)) && [[ $1 =~ ^$label(\.$label)*$ ]]
}

# kc_is_ip ADDRESS : ADDRESS is an IPv4 dotted quad or an IPv6 address.
kc_is_ip() {
  local address=$1 octet
  if [[ $address =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]]; then
    for octet in ${address//./ }; do
      ((10#$octet <= 255)) || return 1
    done
    return 0
  fi
  # IPv6: hex groups and colons (an IPv4 tail allowed), at most one "::", at least two colons.
  [[ $address =~ ^[0-9A-Fa-f:.]+$ && $address == *:*:* && $address != *:::* ]] || return 1
  local rest=${address/::/}
  [[ $rest != *::* ]]
}

# kc_set_hosts_entry NAME IP : ${KC_ROOT}/etc/hosts maps NAME to IP through exactly one managed
# line, "IP NAME # kubeadm-cluster API endpoint". An earlier managed line for NAME is replaced in
# place (extra ones are dropped); every other line is kept as it is. The file is rewritten only
# when its content changes (kc_write_file; KC_WRITE_CHANGED tells).
kc_set_hosts_entry() {
  local name=$1 ip=$2 hosts=$KC_ROOT/etc/hosts input content line
  kc_is_hostname "$name" || kc_die "'$name' is not a valid host name for /etc/hosts"
  kc_is_ip "$ip" || kc_die "'$ip' is not an IPv4 or IPv6 address (for $name in /etc/hosts)"
  line="$ip $name $KC_HOSTS_MARK"
  input=$hosts
  [[ -e $hosts ]] || input=/dev/null
  # A managed line: the fields of "IP NAME $KC_HOSTS_MARK".
  # shellcheck disable=SC2016 # awk programs, not shell expansions
  local managed='NF == 6 && $2 == name && $3 == "#" && $4 == "kubeadm-cluster" && $5 == "API" && $6 == "endpoint"'
  content=$(awk -v name="$name" -v line="$line" "
    $managed { if (!done) print line; done = 1; next }
    { print }
    END { if (!done) print line }" "$input" && printf x) || kc_die "cannot read $hosts"
  content=${content%x}
  kc_write_file "$hosts" 0644 <<<"${content%$'\n'}"
  if ((KC_WRITE_CHANGED)); then
    kc_log "/etc/hosts maps $name to $ip"
  else
    kc_log "/etc/hosts already maps $name to $ip"
  fi
  # A line of someone else's for NAME that comes first wins the lookup: say so.
  # shellcheck disable=SC2016 # an awk program, not a shell expansion
  awk -v name="$name" "
    /^[[:space:]]*#/ || ($managed) { next }
    { for (i = 2; i <= NF && \$i !~ /^#/; i++) if (\$i == name) { print; next } }" "$hosts" |
    while IFS= read -r other; do
      kc_warn "/etc/hosts also has the line '$other' for $name (not written by kubeadm-cluster)"
    done
}

# kc_read_cluster_version KUBECONFIG : prints the cluster's Kubernetes version (x.y.z, no "v")
# from the kubeadm-config ConfigMap's ClusterConfiguration; one attempt (wrap in kc_retry).
kc_read_cluster_version() {
  local out version
  out=$(kubectl --kubeconfig "$1" -n kube-system get configmap kubeadm-config \
    -o jsonpath='{.data.ClusterConfiguration}' </dev/null) || return 1
  version=$(awk '$1 == "kubernetesVersion:" { v = $2; gsub(/["'\'']/, "", v); print v; exit }' <<<"$out")
  if [[ ! $version =~ ^v?[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
    kc_warn "no kubernetesVersion of the form vX.Y.Z in the kubeadm-config ConfigMap (got '${version}')"
    return 1
  fi
  printf '%s\n' "${version#v}"
}

# kc_cluster_version KUBECONFIG : kc_read_cluster_version, retried; dies when unreadable.
kc_cluster_version() {
  kc_retry "${KC_VERSION_ATTEMPTS:-5}" kc_read_cluster_version "$1" ||
    kc_die "cannot read the cluster's kubernetesVersion from the kubeadm-config ConfigMap (kubectl -n kube-system get configmap kubeadm-config, kubeconfig $1)"
}

# kc_check_version NAME VALUE : dies unless VALUE is a Kubernetes version x.y.z.
kc_check_version() {
  [[ $2 =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || kc_die "$1 must be a Kubernetes version like 1.36.4, not '$2'"
}

# kc_check_duration NAME VALUE : dies unless VALUE is a Go duration like 300s or 5m.
kc_check_duration() {
  [[ $2 =~ ^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$ ]] || kc_die "$1 must be a duration like 300s or 5m, not '$2'"
}
