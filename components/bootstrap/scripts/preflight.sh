#!/usr/bin/env bash
# Checks a node against the hardware spec before anything is installed on it: 64-bit OS on a
# supported architecture, vCPUs, memory, root filesystem size, kernel version, cgroup v2 and
# outbound internet access. Every miss is collected, then the step fails once with a message
# naming the node and each requirement it misses (what it needs, what it has).
#
# A running machine reports less than its nominal size (the kernel keeps part of the RAM, the
# filesystem part of the disk): memory and disk are accepted down to
# nominal * (100 - TOLERANCE_PERCENT) / 100. Memory below RECOMMENDED_MEMORY_MB (with the same
# tolerance) is a warning, not an error.
#
# Inputs (the numbers come from components.hardware.preflight_env()):
#   NODE_NAME, MIN_VCPUS, MIN_MEMORY_MB, RECOMMENDED_MEMORY_MB, MIN_DISK_GB,
#   MIN_KERNEL ("5.8"), SUPPORTED_ARCHS ("x86_64 aarch64", as `uname -m` prints them),
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
: "${MIN_KERNEL:?MIN_KERNEL is required (e.g. 5.8)}"
: "${SUPPORTED_ARCHS:?SUPPORTED_ARCHS is required (e.g. x86_64 aarch64)}"
: "${TOLERANCE_PERCENT:?TOLERANCE_PERCENT is required}"
CONNECTIVITY_URL=${CONNECTIVITY_URL:-${K8S_APT_REPO:-https://pkgs.k8s.io/}}

# kc_gb KIB : a size in KiB as GB with one decimal ("1.9").
kc_gb() {
  awk -v kib="$1" 'BEGIN { v = sprintf("%.1f", kib / 1048576); sub(/\.0$/, "", v); print v }'
}

kc_preflight_main() {
  local name
  for name in MIN_VCPUS MIN_MEMORY_MB RECOMMENDED_MEMORY_MB MIN_DISK_GB TOLERANCE_PERCENT; do
    [[ ${!name} =~ ^(0|[1-9][0-9]*)$ ]] || kc_die "$name must be a whole number, not '${!name}'"
  done
  ((TOLERANCE_PERCENT < 100)) || kc_die "TOLERANCE_PERCENT must be below 100, not $TOLERANCE_PERCENT"
  [[ $MIN_KERNEL =~ ^([0-9]+)\.([0-9]+)$ ]] || kc_die "MIN_KERNEL must look like 5.8, not '$MIN_KERNEL'"
  local min_kernel_major=${BASH_REMATCH[1]} min_kernel_minor=${BASH_REMATCH[2]}

  local -a misses=()
  local keep=$((100 - TOLERANCE_PERCENT))

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

  # Kernel version.
  local kernel
  kernel=$(uname -r)
  if [[ $kernel =~ ^([0-9]+)\.([0-9]+) ]]; then
    if ((BASH_REMATCH[1] < min_kernel_major || (BASH_REMATCH[1] == min_kernel_major && BASH_REMATCH[2] < min_kernel_minor))); then
      misses+=("kernel $kernel (needs $MIN_KERNEL or newer)")
    fi
  else
    misses+=("kernel '$kernel' of unknown version (needs $MIN_KERNEL or newer)")
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
  kc_log "preflight: node $NODE_NAME OK: $arch, $cpus vCPU, $(kc_gb "$mem_kib") GB memory," \
    "$(kc_gb "$disk_kib") GB root filesystem, kernel $kernel, cgroup $cgroup, internet reachable"
}

kc_preflight_main </dev/null
