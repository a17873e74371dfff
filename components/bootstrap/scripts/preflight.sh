#!/usr/bin/env bash
# Checks a node against the hardware spec before anything is installed on it: a supported
# operating system, 64-bit OS on a supported architecture, vCPUs, memory, root filesystem size,
# kernel version, cgroup v2 and outbound internet access. Every miss is collected, then the step
# fails once with a message naming the node and each requirement it misses (what it needs, what
# it has).
#
# A running machine reports less than its nominal size (the kernel keeps part of the RAM, the
# filesystem part of the disk): memory and disk are accepted down to
# nominal * (100 - TOLERANCE_PERCENT) / 100. Memory below RECOMMENDED_MEMORY_MB (with the same
# tolerance) is a warning, not an error.
#
# Inputs (the numbers come from components.hardware.preflight_env()):
#   NODE_NAME, MIN_VCPUS, MIN_MEMORY_MB, RECOMMENDED_MEMORY_MB, MIN_DISK_GB,
#   MIN_KERNEL ("6.0") and KERNEL_LTS ("5.4 5.10 5.15"): the kernels kubeadm supports, any release
#   from MIN_KERNEL on and the KERNEL_LTS lines (kubeadm's system validator warns about others),
#   SUPPORTED_ARCHS ("x86_64 aarch64", as `uname -m` prints them),
#   SUPPORTED_OS: one line per supported system, "ID VERSION_ID display name" ("debian 12 Debian 12"),
#   matched against ID and VERSION_ID of the node's os-release(5) file: /etc/os-release, or
#   /usr/lib/os-release when that is missing (the file's own precedence rule),
#   TOLERANCE_PERCENT; optional CONNECTIVITY_URL, the URL that must answer (default: K8S_APT_REPO
#   when set, as in the preflight + prepare-node bundle, so a package mirror is what gets checked;
#   else https://pkgs.k8s.io/). Any HTTP answer counts: only the connection matters.
# Stdout: nothing (the summary and any warning go to stderr).
set -euo pipefail
if ! declare -F kc_log >/dev/null 2>&1; then
  # shellcheck source=lib.sh
  . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
fi
KC_STEP=preflight

: "${NODE_NAME:?NODE_NAME is required (the node being checked)}"
: "${MIN_VCPUS:?MIN_VCPUS is required}"
: "${MIN_MEMORY_MB:?MIN_MEMORY_MB is required}"
: "${RECOMMENDED_MEMORY_MB:?RECOMMENDED_MEMORY_MB is required}"
: "${MIN_DISK_GB:?MIN_DISK_GB is required}"
: "${MIN_KERNEL:?MIN_KERNEL is required (e.g. 6.0)}"
KERNEL_LTS=${KERNEL_LTS-}
: "${SUPPORTED_ARCHS:?SUPPORTED_ARCHS is required (e.g. x86_64 aarch64)}"
: "${SUPPORTED_OS:?SUPPORTED_OS is required (lines of: ID VERSION_ID display name)}"
: "${TOLERANCE_PERCENT:?TOLERANCE_PERCENT is required}"
CONNECTIVITY_URL=${CONNECTIVITY_URL:-${K8S_APT_REPO:-https://pkgs.k8s.io/}}

# kc_gb KIB : a size in KiB as GB with one decimal ("1.9").
kc_gb() {
  awk -v kib="$1" 'BEGIN { v = sprintf("%.1f", kib / 1048576); sub(/\.0$/, "", v); print v }'
}

# kc_os_release_read FILE : sets OS_ID, OS_VERSION_ID and OS_PRETTY_NAME from an os-release(5)
# file. The file is parsed, never sourced: it is plain KEY=value lines, the value bare or in double
# or single quotes; inside double quotes a backslash escapes $ " \ and `. The last assignment of a
# key wins, as in a shell. A missing PRETTY_NAME is "Linux" (the format's default).
kc_os_release_read() {
  local file=$1 line key value
  OS_ID="" OS_VERSION_ID="" OS_PRETTY_NAME=""
  while IFS= read -r line || [[ -n $line ]]; do
    [[ $line =~ ^([A-Z][A-Z0-9_]*)=(.*)$ ]] || continue
    key=${BASH_REMATCH[1]} value=${BASH_REMATCH[2]}
    if [[ $value =~ ^\"(.*)\"[[:space:]]*$ ]]; then
      value=$(kc_os_release_unescape "${BASH_REMATCH[1]}")
    elif [[ $value =~ ^\'(.*)\'[[:space:]]*$ ]]; then
      value=${BASH_REMATCH[1]}
    fi
    case $key in
      ID) OS_ID=$value ;;
      VERSION_ID) OS_VERSION_ID=$value ;;
      PRETTY_NAME) OS_PRETTY_NAME=$value ;;
    esac
  done <"$file"
  OS_PRETTY_NAME=${OS_PRETTY_NAME:-Linux}
}

# kc_os_release_unescape TEXT : TEXT of a double-quoted value without its backslash escapes.
kc_os_release_unescape() {
  local text=$1 out="" i char
  for ((i = 0; i < ${#text}; i++)); do
    char=${text:i:1}
    if [[ $char == "\\" ]]; then
      case ${text:i+1:1} in
        \$ | \" | \\ | \`)
          i=$((i + 1))
          char=${text:i:1}
          ;;
      esac
    fi
    out+=$char
  done
  printf '%s' "$out"
}

kc_preflight_main() {
  local name
  for name in MIN_VCPUS MIN_MEMORY_MB RECOMMENDED_MEMORY_MB MIN_DISK_GB TOLERANCE_PERCENT; do
    [[ ${!name} =~ ^(0|[1-9][0-9]*)$ ]] || kc_die "$name must be a whole number, not '${!name}'"
  done
  ((TOLERANCE_PERCENT < 100)) || kc_die "TOLERANCE_PERCENT must be below 100, not $TOLERANCE_PERCENT"
  [[ $MIN_KERNEL =~ ^([0-9]+)\.([0-9]+)$ ]] || kc_die "MIN_KERNEL must look like 6.0, not '$MIN_KERNEL'"
  local min_kernel_major=${BASH_REMATCH[1]} min_kernel_minor=${BASH_REMATCH[2]} line supported_kernels=""
  for line in $KERNEL_LTS; do
    [[ $line =~ ^[0-9]+\.[0-9]+$ ]] || kc_die "KERNEL_LTS must list lines like 5.15, not '$line'"
    supported_kernels+="$line, "
  done
  supported_kernels+="$MIN_KERNEL or newer"

  local -a misses=()
  local keep=$((100 - TOLERANCE_PERCENT))

  # A supported operating system (ID and VERSION_ID of os-release, against SUPPORTED_OS).
  local os_line os_id os_version os_name supported_os="" os_ok=0 os_release
  OS_ID="" OS_VERSION_ID="" OS_PRETTY_NAME=""
  os_release=$KC_ROOT/etc/os-release
  [[ -e $os_release ]] || os_release=$KC_ROOT/usr/lib/os-release
  if [[ -e $os_release ]]; then
    [[ -r $os_release ]] || kc_die "cannot read $os_release"
    kc_os_release_read "$os_release"
  fi
  while IFS= read -r os_line; do
    [[ -n $os_line ]] || continue
    read -r os_id os_version os_name <<<"$os_line"
    [[ $os_id =~ ^[a-z0-9._-]+$ && -n $os_version && -n $os_name ]] ||
      kc_die "SUPPORTED_OS lines must read 'ID VERSION_ID display name', not '$os_line'"
    supported_os+="${supported_os:+, }$os_name"
    if [[ -n $OS_ID && $OS_ID == "$os_id" && $OS_VERSION_ID == "$os_version" ]]; then
      os_ok=1
    fi
  done <<<"$SUPPORTED_OS"
  [[ -n $supported_os ]] || kc_die "SUPPORTED_OS lists no operating system"
  if [[ ! -e $os_release ]]; then
    misses+=("no /etc/os-release: unknown operating system (needs one of: $supported_os)")
  elif ((!os_ok)); then
    misses+=("operating system '$OS_PRETTY_NAME' (needs one of: $supported_os)")
  fi

  # 64-bit userland on a supported CPU architecture.
  local bits arch supported=0 candidate
  bits=$(getconf LONG_BIT)
  if [[ $bits != 64 ]]; then
    misses+=("a ${bits}-bit OS (needs 64-bit)")
  fi
  arch=$(uname -m)
  for candidate in $SUPPORTED_ARCHS; do
    if [[ $arch == "$candidate" ]]; then
      supported=1
    fi
  done
  if ((!supported)); then
    misses+=("CPU architecture $arch (needs one of: ${SUPPORTED_ARCHS// /, })")
  fi

  # vCPUs.
  local cpus
  cpus=$(nproc)
  [[ $cpus =~ ^[0-9]+$ ]] || kc_die "nproc printed '$cpus', not a number"
  if ((cpus < MIN_VCPUS)); then
    misses+=("$cpus vCPU (needs $MIN_VCPUS)")
  fi

  # Memory (MemTotal, KiB).
  local mem_kib min_mem_kib recommended_kib
  [[ -r $KC_PROC/meminfo ]] || kc_die "cannot read $KC_PROC/meminfo"
  mem_kib=$(awk '$1 == "MemTotal:" { print $2; exit }' "$KC_PROC/meminfo")
  [[ $mem_kib =~ ^[0-9]+$ ]] || kc_die "no MemTotal in $KC_PROC/meminfo"
  min_mem_kib=$((MIN_MEMORY_MB * 1024 * keep / 100))
  recommended_kib=$((RECOMMENDED_MEMORY_MB * 1024 * keep / 100))
  if ((mem_kib < min_mem_kib)); then
    misses+=("$(kc_gb "$mem_kib") GB memory (needs $(kc_gb $((MIN_MEMORY_MB * 1024))) GB)")
  elif ((mem_kib < recommended_kib)); then
    kc_warn "node $NODE_NAME has $(kc_gb "$mem_kib") GB memory; $(kc_gb $((RECOMMENDED_MEMORY_MB * 1024))) GB is recommended"
  fi

  # Root filesystem size (1024-byte blocks, POSIX output: one line per filesystem).
  local disk_kib min_disk_kib
  disk_kib=$(df -P -k "$KC_ROOT/" | awk 'NR == 2 { print $2 }')
  [[ $disk_kib =~ ^[0-9]+$ ]] || kc_die "cannot read the size of the root filesystem from df"
  min_disk_kib=$((MIN_DISK_GB * 1048576 * keep / 100))
  if ((disk_kib < min_disk_kib)); then
    misses+=("$(kc_gb "$disk_kib") GB root filesystem (needs $MIN_DISK_GB GB)")
  fi

  # Kernel version: one kubeadm supports (a KERNEL_LTS line, or MIN_KERNEL or newer).
  local kernel kernel_ok=0
  kernel=$(uname -r)
  if [[ $kernel =~ ^([0-9]+)\.([0-9]+)\.[0-9]+ ]]; then
    local major=${BASH_REMATCH[1]} minor=${BASH_REMATCH[2]}
    if ((major > min_kernel_major || (major == min_kernel_major && minor >= min_kernel_minor))); then
      kernel_ok=1
    fi
    for line in $KERNEL_LTS; do
      if [[ $major.$minor == "$line" ]]; then
        kernel_ok=1
      fi
    done
    if ((!kernel_ok)); then
      misses+=("kernel $kernel (kubeadm supports $supported_kernels)")
    fi
  else
    misses+=("kernel '$kernel' of unknown version (kubeadm supports $supported_kernels)")
  fi

  # cgroup v2 (the unified hierarchy mounted on /sys/fs/cgroup).
  local cgroup=v2
  if [[ ! -f $KC_SYS/fs/cgroup/cgroup.controllers ]]; then
    cgroup=v1
    misses+=("cgroup v1 (needs cgroup v2, the unified hierarchy: kubelet 1.35+ refuses cgroup v1)")
  fi

  # Outbound internet access (any HTTP answer will do).
  if ! kc_retry 3 curl -sS -o /dev/null --connect-timeout 10 --max-time 30 "$CONNECTIVITY_URL" </dev/null; then
    misses+=("no outbound internet access (cannot reach $CONNECTIVITY_URL)")
  fi

  if ((${#misses[@]})); then
    local message="preflight: node $NODE_NAME does not meet the hardware spec:" i
    for i in "${!misses[@]}"; do
      if ((i == 0)); then
        message+=" ${misses[i]}"
      else
        message+="; ${misses[i]}"
      fi
    done
    kc_die "$message"
  fi
  kc_log "preflight: node $NODE_NAME OK: $OS_PRETTY_NAME, $arch, $cpus vCPU, $(kc_gb "$mem_kib") GB memory," \
    "$(kc_gb "$disk_kib") GB root filesystem, kernel $kernel, cgroup $cgroup, internet reachable"
}

kc_preflight_main </dev/null
