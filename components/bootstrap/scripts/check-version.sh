#!/usr/bin/env bash
# Checks a kubernetesVersion change against the running cluster before anything changes (runs on
# the first control plane, before any node's prep switches its package repository): kubeadm
# upgrades one minor at a time and cannot downgrade.
#
# Accepted: the same version, a newer patch release of the running minor, or any
# patch of the next minor. Refused: an older version (any component), a skipped minor, another
# major. A node that has not been initialised yet has nothing to check.
#
# Inputs: K8S_VERSION (the target, x.y.z); optional KUBECONFIG (default /etc/kubernetes/admin.conf);
#         optional KC_VERSION_ATTEMPTS (5) bounds the reads of the kubeadm-config ConfigMap.
# Stdout: nothing.
set -euo pipefail
if ! declare -F kc_log >/dev/null 2>&1; then
  # shellcheck source=lib.sh
  . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
fi
KC_STEP=check-version

: "${K8S_VERSION:?K8S_VERSION is required (the target version, e.g. 1.36.4)}"
kc_check_version K8S_VERSION "$K8S_VERSION"

kc_check_version_main() {
  local kubeconfig=${KUBECONFIG:-$KC_ROOT/etc/kubernetes/admin.conf} running
  if [[ ! -f $kubeconfig ]]; then
    kc_log "not initialised yet: nothing to check (no $kubeconfig)"
    return 0
  fi
  running=$(kc_cluster_version "$kubeconfig") || exit 1

  local t_major t_minor t_patch r_major r_minor r_patch
  IFS=. read -r t_major t_minor t_patch <<<"$K8S_VERSION"
  IFS=. read -r r_major r_minor r_patch <<<"$running"
  t_major=$((10#$t_major)) t_minor=$((10#$t_minor)) t_patch=$((10#$t_patch))
  r_major=$((10#$r_major)) r_minor=$((10#$r_minor)) r_patch=$((10#$r_patch))

  if ((t_major == r_major && t_minor == r_minor && t_patch == r_patch)); then
    kc_log "the cluster runs $running: kubernetesVersion $K8S_VERSION is unchanged, nothing to upgrade"
    return 0
  fi
  if ((t_major < r_major || (t_major == r_major && (t_minor < r_minor ||
    (t_minor == r_minor && t_patch < r_patch))))); then
    kc_die "kubernetesVersion $K8S_VERSION is older than the cluster's $running: downgrades are not" \
      "supported (kubeadm cannot downgrade); set kubernetesVersion to $running or later"
  fi
  if ((t_major != r_major || t_minor > r_minor + 1)); then
    local path=$running minor
    if ((t_major == r_major)); then
      for ((minor = r_minor + 1; minor < t_minor; minor++)); do
        path+=" -> $r_major.$minor.x"
      done
      path+=" -> $K8S_VERSION"
    else
      path+=" -> $r_major.$((r_minor + 1)).x -> ..."
    fi
    kc_die "kubernetesVersion $K8S_VERSION skips a minor version: upgrade one minor at a time ($path)"
  fi
  kc_log "planned upgrade: the cluster goes from $running to $K8S_VERSION (control planes first," \
    "one at a time, then the workers)"
}

kc_check_version_main </dev/null
