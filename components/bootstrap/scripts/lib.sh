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
# KC_VERSION_ATTEMPTS (5: reads of the cluster's version, kc_cluster_version); before the first
# apt-get of a bundle (kc_apt_settle): KC_CLOUD_INIT_TIMEOUT (600 s), KC_APT_IDLE_TIMEOUT (900 s:
# the apt-daily services), KC_APT_LOCK_TIMEOUT (600 s: apt's locks), KC_APT_POLL (5 s).
# KC_STEP_TIMEOUT (seconds; unset: none): the step's time bound (see the end of this file).
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
KC_CLOUD_INIT_TIMEOUT=${KC_CLOUD_INIT_TIMEOUT:-600}
KC_APT_IDLE_TIMEOUT=${KC_APT_IDLE_TIMEOUT:-900}
KC_APT_LOCK_TIMEOUT=${KC_APT_LOCK_TIMEOUT:-600}
KC_APT_POLL=${KC_APT_POLL:-5}
#: Set by kc_apt_update_once: 1 once an `apt-get update` succeeded in this bundle, and the state of
#: the apt sources (kc_apt_sources_state) it read.
KC_APT_UPDATED=0
KC_APT_UPDATED_SOURCES=
#: Set by kc_apt_settle: 1 once the bundle waited for first-boot package activity.
KC_APT_SETTLED=0
#: The comment that marks the /etc/hosts lines kc_set_hosts_entry owns.
KC_HOSTS_MARK='# kubeadm-cluster API endpoint'
#: Commands run on exit (see kc_on_exit), in order.
KC_EXIT_HOOKS=()
#: Set by kc_emit_secret: 1 once the step printed its secret output (nothing may fail after it).
KC_SECRET_EMITTED=0

# kc_redact TEXT : prints TEXT with the credentials a URL in it may carry hidden: the userinfo
# between "scheme://" and the host ("user:password@", up to the last "@" of the URL, so a password
# with an unencoded "#", "?" or "/" is hidden too; an "@" in a path hides the host as well, which
# only costs a log line its host) becomes "***@", and a query string ("?..." up to a blank or
# "#") becomes "?***". Every log line goes through it (kc_log, kc_warn, kc_die, and so kc_retry's
# messages, which name the command): a mirror URL may hold credentials, and a step's stderr
# reaches Pulumi's log and its error message.
kc_redact() {
  local rest=$1 done=""
  local userinfo='^(.*[A-Za-z0-9]://)[^[:space:]]*@(.*)$' query='^(.*://[^?#[:space:]]*)[?][^#[:space:]]+(.*)$'
  # The last URL first (".*" is greedy), then the text before it.
  while [[ $rest =~ $userinfo ]]; do
    done="***@${BASH_REMATCH[2]}$done"
    rest=${BASH_REMATCH[1]}
  done
  rest+=$done
  done=""
  while [[ $rest =~ $query ]]; do
    done="?***${BASH_REMATCH[2]}$done"
    rest=${BASH_REMATCH[1]}
  done
  printf '%s\n' "$rest$done"
}

# kc_log MESSAGE... : one log line on stderr, prefixed with the step's name (credentials redacted).
kc_log() {
  printf '[kubeadm-cluster %s] %s\n' "$KC_STEP" "$(kc_redact "$*")" >&2
}

# kc_warn MESSAGE... : a warning on stderr (the step goes on).
kc_warn() {
  printf '[kubeadm-cluster %s] WARNING: %s\n' "$KC_STEP" "$(kc_redact "$*")" >&2
}

# kc_die MESSAGE... : an error on stderr, then exit 1 (the whole bundle stops).
kc_die() {
  printf '[kubeadm-cluster %s] ERROR: %s\n' "$KC_STEP" "$(kc_redact "$*")" >&2
  exit 1
}

# kc_emit_secret TEXT : a step's secret output (a token, a kubeconfig), as its very last act:
# prints TEXT on stdout and ends the bundle with status 0. A failed step's stdout is part of
# pulumi-command's error message (remote/commandOutputs.go: the command's combined output), which
# the engine prints and keeps in plain text; so a step whose stdout is secret prints it only once
# nothing can fail any more: whatever may fail runs before, nothing of the bundle runs after, and
# the exit hooks that do run then can only warn (kc_run_exit_hooks).
kc_emit_secret() {
  KC_SECRET_EMITTED=1
  printf '%s\n' "$1"
  exit 0
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
    if ((KC_SECRET_EMITTED)); then
      # The secret is out: a hook that fails (even through kc_die's exit) must not fail the step
      # and put it into an error message. It runs in a subshell, so its exit ends only that.
      (eval "$hook") || kc_warn "cleanup '$hook' failed after the step's output was printed" || true
    else
      eval "$hook" || true
    fi
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

# kc_apt_settle : what a bundle does before its first apt-get (kc_apt_get calls it): on a fresh
# VM, cloud-init may still be installing packages or writing apt sources, and the apt-daily timers
# (Persistent=true) start `apt-get update` + downloads (apt-daily.service) and unattended-upgrade
# (apt-daily-upgrade.service) right after the first boot. Waits, bounded and logged, for
# `cloud-init status --wait` (when cloud-init exists; KC_CLOUD_INIT_TIMEOUT seconds) and for those
# two oneshot services to leave their active states (KC_APT_IDLE_TIMEOUT seconds).
# unattended-upgrades.service is not waited for: it is active for the machine's whole life (it
# only waits for the shutdown signal). Never fails: after a timeout it warns and goes on (apt's
# locks still serialise the work, and kc_apt_get waits for them).
kc_apt_settle() {
  ((KC_APT_SETTLED)) && return 0
  KC_APT_SETTLED=1
  local rc=0 name
  for name in KC_CLOUD_INIT_TIMEOUT KC_APT_IDLE_TIMEOUT KC_APT_LOCK_TIMEOUT; do
    [[ ${!name} =~ ^[0-9]+$ ]] || kc_die "$name must be a whole number of seconds, not '${!name}'"
  done
  [[ $KC_APT_POLL =~ ^[0-9]+(\.[0-9]+)?$ ]] || kc_die "KC_APT_POLL must be a number of seconds, not '$KC_APT_POLL'"
  if command -v cloud-init >/dev/null 2>&1; then
    kc_log "waiting for cloud-init to finish (at most ${KC_CLOUD_INIT_TIMEOUT}s)"
    timeout "$KC_CLOUD_INIT_TIMEOUT" cloud-init status --wait </dev/null >&2 || rc=$?
    case $rc in
      0) kc_log "cloud-init is done" ;;
      124) kc_warn "cloud-init is still running after ${KC_CLOUD_INIT_TIMEOUT}s; going on" ;;
      *) kc_warn "cloud-init status --wait exited $rc (finished with errors, or degraded); going on" ;;
    esac
  fi
  command -v systemctl >/dev/null 2>&1 || return 0
  local -a units=(apt-daily.service apt-daily-upgrade.service) busy
  local start=$SECONDS unit state waiting=0
  while true; do
    busy=()
    for unit in "${units[@]}"; do
      state=$(systemctl is-active "$unit" </dev/null 2>/dev/null) || true
      case $state in
        active | activating | deactivating | reloading | refreshing) busy+=("$unit ($state)") ;;
      esac
    done
    ((${#busy[@]})) || break
    if ((SECONDS - start >= KC_APT_IDLE_TIMEOUT)); then
      kc_warn "${busy[*]} still running after ${KC_APT_IDLE_TIMEOUT}s; going on (apt's locks are waited for)"
      return 0
    fi
    if ((!waiting)); then
      kc_log "waiting for ${busy[*]} to finish (first-boot package updates; at most ${KC_APT_IDLE_TIMEOUT}s)"
      waiting=1
    fi
    sleep "$KC_APT_POLL"
  done
  if ((waiting)); then
    kc_log "the apt-daily services are done after $((SECONDS - start))s"
  fi
}

# kc_apt_get ARGS... : apt-get non-interactive, after kc_apt_settle, retried on transient failures
# (KC_APT_ATTEMPTS). Its output goes to stderr.
kc_apt_get() {
  kc_apt_settle
  kc_retry "${KC_APT_ATTEMPTS:-5}" kc_apt_get_locked "$@"
}

# kc_apt_get_locked ARGS... : one apt-get run (an attempt of kc_apt_get) that waits for apt's locks.
# `-o DPkg::Lock::Timeout` makes apt-get wait for the dpkg locks (lock-frontend, lock) only: the
# lock of the package lists that `apt-get update` takes (/var/lib/apt/lists/lock) and the one of
# the download cache (/var/cache/apt/archives/lock) are tried once, and apt-get fails at once with
# "E: Could not get lock <dir>/lock ..." then "E: Unable to lock directory <dir>" (apt 2.7's
# apt-pkg/acquire.cc, pkgAcquire::GetLock; see tests/upstream/apt). Such a failure is run again
# every KC_APT_POLL seconds, for at most KC_APT_LOCK_TIMEOUT seconds in all, without counting as
# an attempt. (The dpkg locks give other messages: apt-get already waited for them.)
# apt's messages are read in the C locale (LC_MESSAGES=C), whatever the node's language.
kc_apt_get_locked() {
  local err rc start=$SECONDS waiting=0
  err=$(mktemp) || return 1
  while true; do
    rc=0
    env -u LC_ALL LC_MESSAGES=C DEBIAN_FRONTEND=noninteractive \
      apt-get -y -q -o DPkg::Lock::Timeout="$KC_APT_LOCK_TIMEOUT" \
      -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
      "$@" </dev/null >&2 2>"$err" || rc=$?
    cat "$err" >&2
    if ((rc != 0)) && grep -q '^E: Unable to lock directory' "$err" &&
      ((SECONDS - start < KC_APT_LOCK_TIMEOUT)); then
      if ((!waiting)); then
        kc_log "another apt or dpkg holds a lock apt-get needs: waiting (at most ${KC_APT_LOCK_TIMEOUT}s)"
        waiting=1
      fi
      sleep "$KC_APT_POLL"
      continue
    fi
    rm -f "$err"
    return "$rc"
  done
}

# kc_download URL DEST : fetch URL into the file DEST (curl's own retries plus kc_retry).
# The URL reaches curl in a mode-0600 config file (curl -K), never on its command line: a mirror
# URL may carry credentials, and every local user can read a process's arguments in /proc.
kc_download() {
  local url=$1 dest=$2 config rc=0
  kc_log "downloading $url" # credentials in the URL are redacted (kc_redact)
  config=$(mktemp) || kc_die "cannot create a temporary file for curl's configuration"
  # curl's config syntax: a quoted value takes \\ and \" escapes.
  printf 'url = "%s"\noutput = "%s"\n' "$(kc_curl_quote "$url")" "$(kc_curl_quote "$dest")" >"$config"
  kc_retry "${KC_DOWNLOAD_ATTEMPTS:-4}" curl -fsSL --retry 3 --retry-delay 2 --connect-timeout 20 \
    -K "$config" </dev/null >&2 || rc=$?
  rm -f -- "$config"
  return "$rc"
}

# kc_curl_quote TEXT : TEXT with the backslashes and double quotes of a curl config value escaped.
kc_curl_quote() {
  local text=${1//\\/\\\\}
  printf '%s' "${text//\"/\\\"}"
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

# kc_apt_sources_state : one line per apt source list and keyring (path, inode, size, mtime):
# changes whenever one of them is written (kc_write_file renames a new file into place).
kc_apt_sources_state() {
  local apt=$KC_ROOT/etc/apt file
  for file in "$apt/sources.list" "$apt"/sources.list.d/* "$apt/trusted.gpg" "$apt"/trusted.gpg.d/* \
    "$apt"/keyrings/*; do
    if [[ -f $file ]]; then
      stat -c '%n %i %s %y' -- "$file"
    fi
  done
}

# kc_apt_update_once : `apt-get update`, unless one already succeeded in this bundle with the apt
# sources (lists and keyrings) as they are now: an install right after it finds the packages of
# every source written so far. A failed update is never taken for done, and its failure is
# returned, also when called as a condition (where `set -e` does not apply).
kc_apt_update_once() {
  local sources rc=0
  sources=$(kc_apt_sources_state)
  if ((KC_APT_UPDATED)) && [[ $sources == "$KC_APT_UPDATED_SOURCES" ]]; then
    return 0
  fi
  kc_log "apt-get update"
  kc_apt_get update || rc=$?
  if ((rc != 0)); then
    kc_warn "apt-get update failed (exit $rc)"
    return "$rc"
  fi
  KC_APT_UPDATED=1
  KC_APT_UPDATED_SOURCES=$sources
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

#: The kube-system ConfigMap in which the program keeps the settings a step reads when it runs
#: rather than as an input (components/bootstrap: a change of them runs nothing on the nodes).
KC_SETTINGS_CONFIGMAP=kubeadm-cluster-settings

# kc_drain_timeout KUBECONFIG : sets DRAIN_TIMEOUT, unless given, to the stack's upgrade.drainTimeout
# (key drainTimeout of the settings ConfigMap), or 300s when the API has none (the ConfigMap not
# created yet, the API unreachable); dies unless it is a duration.
kc_drain_timeout() {
  local value=
  if [[ -z ${DRAIN_TIMEOUT:-} ]]; then
    if [[ -f $1 ]]; then
      value=$(kubectl --kubeconfig "$1" --request-timeout=10s -n kube-system get configmap "$KC_SETTINGS_CONFIGMAP" \
        --ignore-not-found -o 'jsonpath={.data.drainTimeout}' </dev/null 2>/dev/null) || value=
    fi
    DRAIN_TIMEOUT=${value:-300s}
  fi
  kc_check_duration DRAIN_TIMEOUT "$DRAIN_TIMEOUT"
}

# --- the step's time bound ---------------------------------------------------------------------
# A step must end: pulumi-command waits for its SSH session as long as it lasts, and a hung
# `kubeadm join`, a stalled download or a wait that never ends would hold `pulumi up` forever.
# With KC_STEP_TIMEOUT (whole seconds; the program exports one per step) a watchdog runs next to
# the bundle: when the time is up it stops every process the bundle started, then the bundle
# itself, which reports the timeout and exits 124 after its cleanup (the kc_on_exit hooks). It
# only ever signals the bundle's own descendants (found through /proc), never a process group: a
# test runner or an SSH session around the bundle is left alone. The watchdog keeps none of the
# bundle's output descriptors open, so a bundle that ends in time ends at once.

# kc_descendants PID : the PIDs of PID's descendants (children first), read from /proc.
kc_descendants() {
  local stat pid rest ppid child current
  local -A parent=()
  for stat in /proc/[0-9]*/stat; do
    pid=${stat#/proc/}
    pid=${pid%/stat}
    { rest=$(<"$stat"); } 2>/dev/null || continue
    rest=${rest##*) } # the command name may hold spaces and parentheses: what follows the last ")"
    read -r _ ppid _ <<<"$rest"
    parent[$pid]=$ppid
  done
  local -a queue=("$1")
  while ((${#queue[@]})); do
    current=${queue[0]}
    queue=("${queue[@]:1}")
    for child in "${!parent[@]}"; do
      if [[ ${parent[$child]} == "$current" ]]; then
        printf '%s\n' "$child"
        queue+=("$child")
      fi
    done
  done
}

# kc_watchdog MAIN SECONDS : (in the background) after SECONDS, TERM to MAIN and to each of its
# descendants but this watchdog; KILL to whatever is left 10 seconds later. A TERM ends it early.
kc_watchdog() {
  local main=$1 seconds=$2 sleeper pid signal
  trap 'kill "$sleeper" 2>/dev/null; exit 0' TERM
  sleep "$seconds" &
  sleeper=$!
  wait "$sleeper" || exit 0
  for signal in TERM KILL; do
    kill "-$signal" "$main" 2>/dev/null || return 0
    for pid in $(kc_descendants "$main"); do
      [[ $pid == "$BASHPID" ]] || kill "-$signal" "$pid" 2>/dev/null || true
    done
    sleep 10 &
    sleeper=$!
    wait "$sleeper" || exit 0
  done
}

# kc_timed_out : the bundle's TERM handler: the step ran out of time.
kc_timed_out() {
  trap - TERM
  printf '[kubeadm-cluster %s] ERROR: %s\n' "$KC_STEP" \
    "the step ran longer than its bound of ${KC_STEP_TIMEOUT}s (KC_STEP_TIMEOUT) and was stopped" >&2
  exit 124
}

# kc_watchdog_stop : the bundle ended in time: the watchdog goes too.
kc_watchdog_stop() {
  kill -TERM "$KC_WATCHDOG_PID" 2>/dev/null || true
  wait "$KC_WATCHDOG_PID" 2>/dev/null || true
}

if [[ -n ${KC_STEP_TIMEOUT:-} && -z ${KC_WATCHDOG_PID:-} ]]; then
  [[ $KC_STEP_TIMEOUT =~ ^[1-9][0-9]*$ ]] ||
    kc_die "KC_STEP_TIMEOUT must be a positive whole number of seconds, not '$KC_STEP_TIMEOUT'"
  trap kc_timed_out TERM
  kc_watchdog "$$" "$KC_STEP_TIMEOUT" </dev/null >/dev/null 2>&1 &
  KC_WATCHDOG_PID=$!
  kc_on_exit kc_watchdog_stop
fi
