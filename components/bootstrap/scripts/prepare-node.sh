#!/usr/bin/env bash
# Prepares a node for kubeadm: swap off, kernel modules and sysctls for pod networking,
# containerd 2.x + runc from their upstream releases (checksums verified), the pkgs.k8s.io apt
# repository of one Kubernetes minor, and kubelet/kubeadm/kubectl pinned to one patch release.
#
# Idempotent: a second run downloads nothing, installs nothing and restarts nothing. Files are
# rewritten only when their content differs; containerd restarts only when its binaries, unit
# or configuration changed; apt-get update runs only when the source list changed or packages
# must be installed, and again after any apt source or key this script writes, before the
# install that needs it (kc_apt_update_once: a fresh node updates before the base packages,
# then again once kubernetes.list exists). Before its first apt-get the script waits for
# cloud-init and the apt-daily services of a first boot (kc_apt_settle in lib.sh).
#
# Inputs:
#   NODE_NAME
#   K8S_VERSION             e.g. 1.36.4 (kubelet/kubeadm/kubectl "1.36.4-*", then held)
#   K8S_APT_REPO            e.g. https://pkgs.k8s.io/core:/stable:/v1.36/deb/ (Release.key inside);
#                           credentials in it (https://user:password@host/...) go to apt's auth
#                           file, never into the source list (kc_prepare_apt_credentials)
#   CONTAINERD_VERSION      e.g. 2.3.4
#   CONTAINERD_RELEASE_URL  base URL: <base>/v<V>/containerd-<V>-linux-<arch>.tar.gz(.sha256sum)
#   RUNC_VERSION            e.g. 1.4.3
#   RUNC_RELEASE_URL        base URL: <base>/v<V>/runc.<arch> and <base>/v<V>/runc.sha256sum
#   PAUSE_IMAGE             the sandbox image containerd pins, e.g. registry.k8s.io/pause:3.10.1
#   REGISTRY_MIRRORS        optional; one "registry=https://mirror[,https://mirror2]" per line,
#                           written as /etc/containerd/certs.d/<registry>/hosts.toml
#   API_ENDPOINT_NAME       optional; the DNS name of the cluster's controlPlaneEndpoint, mapped in
#                           /etc/hosts (one managed line, see kc_set_hosts_entry) to:
#   API_ENDPOINT_IP         the address the node uses once it is in the cluster (required with a
#                           name): used when /etc/kubernetes/kubelet.conf exists;
#   API_ENDPOINT_BOOTSTRAP_IP  optional (default API_ENDPOINT_IP); the address before the node has
#                           joined or been initialised (a control plane about to join reaches the
#                           first control plane, not itself through the load balancer's hairpin).
#
# A node already in a cluster (kubelet.conf exists) never gets other Kubernetes packages here:
# version changes are the upgrade step's (upgrade-node.sh). Its apt source list does follow the
# configured minor, so that the upgrade step finds the new packages.
# Stdout: nothing.
set -euo pipefail
if ! declare -F kc_log >/dev/null 2>&1; then
  # shellcheck source=lib.sh
  . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
fi
KC_STEP=prepare-node

: "${NODE_NAME:?NODE_NAME is required}"
: "${K8S_VERSION:?K8S_VERSION is required (e.g. 1.36.4)}"
: "${K8S_APT_REPO:?K8S_APT_REPO is required (e.g. https://pkgs.k8s.io/core:/stable:/v1.36/deb/)}"
: "${CONTAINERD_VERSION:?CONTAINERD_VERSION is required (e.g. 2.3.4)}"
: "${CONTAINERD_RELEASE_URL:?CONTAINERD_RELEASE_URL is required}"
: "${RUNC_VERSION:?RUNC_VERSION is required (e.g. 1.4.3)}"
: "${RUNC_RELEASE_URL:?RUNC_RELEASE_URL is required}"
: "${PAUSE_IMAGE:?PAUSE_IMAGE is required (e.g. registry.k8s.io/pause:3.10.1)}"
REGISTRY_MIRRORS=${REGISTRY_MIRRORS:-}
API_ENDPOINT_NAME=${API_ENDPOINT_NAME:-}
API_ENDPOINT_IP=${API_ENDPOINT_IP:-}
API_ENDPOINT_BOOTSTRAP_IP=${API_ENDPOINT_BOOTSTRAP_IP:-$API_ENDPOINT_IP}
if [[ -n $API_ENDPOINT_NAME ]]; then
  : "${API_ENDPOINT_IP:?API_ENDPOINT_IP is required when API_ENDPOINT_NAME is set}"
  kc_is_hostname "$API_ENDPOINT_NAME" || kc_die "API_ENDPOINT_NAME '$API_ENDPOINT_NAME' is not a valid host name"
  kc_is_ip "$API_ENDPOINT_IP" || kc_die "API_ENDPOINT_IP '$API_ENDPOINT_IP' is not an IPv4 or IPv6 address"
  kc_is_ip "$API_ENDPOINT_BOOTSTRAP_IP" ||
    kc_die "API_ENDPOINT_BOOTSTRAP_IP '$API_ENDPOINT_BOOTSTRAP_IP' is not an IPv4 or IPv6 address"
fi

KC_BASE_PACKAGES=(apt-transport-https ca-certificates curl gpg conntrack socat ebtables ethtool)
KC_K8S_PACKAGES=(kubelet kubeadm kubectl)
#: Installed (unpinned) with the Kubernetes packages when missing: the standard CNI plugins
#: (bridge, portmap, loopback ...) in /opt/cni/bin that Flannel relies on, and crictl.
KC_K8S_EXTRA_PACKAGES=(kubernetes-cni cri-tools)
KC_KEYRING=/etc/apt/keyrings/kubernetes-apt-keyring.gpg
#: apt's login file for the Kubernetes package repository, when its URL carries credentials.
KC_APT_AUTH=/etc/apt/auth.conf.d/kubeadm-cluster.conf
#: Marks the files this script owns in /etc/containerd/certs.d (stale ones are removed).
KC_MANAGED_MARK='# Written by kubeadm-cluster'

# kc_verify_sha256 FILE SUMS : FILE's sha256 must be the one SUMS (sha256sum format) lists for it.
kc_verify_sha256() {
  local file=$1 sums=$2 name expected actual
  name=$(basename "$file")
  expected=$(awk -v n="$name" '{ f = $2; sub(/^\*/, "", f) } f == n { print $1; exit }' "$sums")
  [[ $expected =~ ^[0-9a-f]{64}$ ]] || kc_die "no sha256 for $name in $(basename "$sums")"
  actual=$(sha256sum "$file" | awk '{ print $1 }')
  if [[ $actual != "$expected" ]]; then
    kc_die "checksum mismatch for $name: expected $expected, got $actual (corrupt download or bad mirror)"
  fi
  kc_log "verified the sha256 of $name"
}

# kc_prepare_api_endpoint : API_ENDPOINT_NAME in /etc/hosts: the bootstrap address until the node
# is in the cluster, the final one after (kubeadm-join.sh switches it right after the join).
kc_prepare_api_endpoint() {
  [[ -n $API_ENDPOINT_NAME ]] || return 0
  if [[ -f $KC_ROOT/etc/kubernetes/kubelet.conf ]]; then
    kc_set_hosts_entry "$API_ENDPOINT_NAME" "$API_ENDPOINT_IP"
  else
    kc_log "$NODE_NAME is not in a cluster yet: $API_ENDPOINT_NAME resolves to the bootstrap address"
    kc_set_hosts_entry "$API_ENDPOINT_NAME" "$API_ENDPOINT_BOOTSTRAP_IP"
  fi
}

kc_prepare_swap() {
  if [[ -r $KC_PROC/swaps ]] && (($(wc -l <"$KC_PROC/swaps") > 1)); then
    kc_log "turning swap off (kubelet refuses to run with swap on)"
    swapoff -a >&2
  fi
  local fstab=$KC_ROOT/etc/fstab
  # shellcheck disable=SC2016 # an awk condition, not a shell expansion
  local swap_entry='$1 !~ /^#/ && $3 == "swap"'
  if [[ -f $fstab ]] && awk "$swap_entry { found = 1 } END { exit !found }" "$fstab"; then
    kc_log "disabling the swap entries of /etc/fstab"
    kc_write_file "$fstab" 0644 < <(awk "$swap_entry"' { print "# disabled by kubeadm-cluster (kubelet needs swap off): " $0; next } { print }' "$fstab")
  fi
}

kc_prepare_modules() {
  kc_write_file "$KC_ROOT/etc/modules-load.d/kubeadm-cluster.conf" 0644 <<'EOF'
# Written by kubeadm-cluster: container runtime (overlay), pod networking (br_netfilter), Rook (rbd).
overlay
br_netfilter
rbd
EOF
  local module
  for module in overlay br_netfilter; do
    if [[ ! -d $KC_SYS/module/$module ]]; then
      kc_log "loading the kernel module $module"
      modprobe "$module" >&2 || kc_die "cannot load the kernel module $module"
    fi
  done
  if [[ ! -d $KC_SYS/module/rbd ]]; then
    kc_log "loading the kernel module rbd"
    if ! modprobe rbd >&2; then
      # Ubuntu's cloud kernels ship rbd in linux-modules-extra.
      local extra
      extra="linux-modules-extra-$(uname -r)"
      kc_log "rbd is not in the installed modules: trying $extra"
      if kc_apt_update_once && KC_APT_ATTEMPTS=1 kc_apt_get install "$extra" && modprobe rbd >&2; then
        kc_log "loaded rbd from $extra"
      else
        kc_warn "cannot load the kernel module rbd: Rook block volumes will not attach on $NODE_NAME"
      fi
    fi
  fi
}

kc_prepare_sysctl() {
  kc_write_file "$KC_ROOT/etc/sysctl.d/99-kubeadm-cluster.conf" 0644 <<'EOF'
# Written by kubeadm-cluster: pods are routed, and bridged traffic goes through iptables/nftables.
net.ipv4.ip_forward=1
net.bridge.bridge-nf-call-iptables=1
net.bridge.bridge-nf-call-ip6tables=1
EOF
  local apply=$KC_WRITE_CHANGED key live
  for key in net/ipv4/ip_forward net/bridge/bridge-nf-call-iptables net/bridge/bridge-nf-call-ip6tables; do
    live=$KC_PROC/sys/$key
    if [[ -r $live && $(<"$live") != 1 ]]; then
      apply=1
    fi
  done
  if ((apply)); then
    kc_log "applying sysctls (sysctl --system)"
    sysctl --system >&2
  fi
}

kc_prepare_base_packages() {
  local -a missing=()
  local package
  for package in "${KC_BASE_PACKAGES[@]}"; do
    if [[ -z $(kc_pkg_version "$package") ]]; then
      missing+=("$package")
    fi
  done
  if ((${#missing[@]})); then
    kc_log "installing ${missing[*]}"
    kc_apt_update_once
    kc_apt_get install --no-install-recommends "${missing[@]}"
  fi
}

# kc_prepare_registry_mirrors : /etc/containerd/certs.d/<registry>/hosts.toml from
# REGISTRY_MIRRORS; hosts.toml files written earlier for registries no longer listed are removed.
# containerd reads these files on each pull: no restart needed. They are root's alone (0600): a
# mirror endpoint set with `--secret` may carry credentials, and containerd reads them as root.
kc_prepare_registry_mirrors() {
  local certs=$KC_ROOT/etc/containerd/certs.d line registry endpoints endpoint server content
  local -a keep=() mirrors
  while IFS= read -r line; do
    line=${line//[[:space:]]/}
    [[ -n $line ]] || continue
    [[ $line == *=* ]] || kc_die "REGISTRY_MIRRORS: '$line' is not registry=endpoint[,endpoint...]"
    registry=${line%%=*}
    endpoints=${line#*=}
    [[ $registry =~ ^[A-Za-z0-9.-]+(:[0-9]+)?$ ]] || kc_die "REGISTRY_MIRRORS: bad registry name '$registry'"
    server=https://$registry
    if [[ $registry == docker.io ]]; then
      server=https://registry-1.docker.io
    fi
    content="$KC_MANAGED_MARK (registry mirrors of the stack)."$'\n'"server = \"$server\""$'\n'
    IFS=, read -ra mirrors <<<"$endpoints"
    ((${#mirrors[@]})) || kc_die "REGISTRY_MIRRORS: no mirror endpoint for $registry"
    for endpoint in "${mirrors[@]}"; do
      [[ $endpoint =~ ^https?://[^\"\\]+$ ]] || kc_die "REGISTRY_MIRRORS: bad endpoint '$endpoint' for $registry"
      content+=$'\n'"[host.\"$endpoint\"]"$'\n''  capabilities = ["pull", "resolve"]'$'\n'
    done
    kc_write_file "$certs/$registry/hosts.toml" 0600 <<<"$content"
    keep+=("$registry")
  done <<<"$REGISTRY_MIRRORS"

  local file name kept
  for file in "$certs"/*/hosts.toml; do
    [[ -f $file ]] || continue
    name=$(basename "$(dirname "$file")")
    kept=0
    for registry in "${keep[@]}"; do
      if [[ $registry == "$name" ]]; then
        kept=1
      fi
    done
    if ((!kept)) && [[ $(head -n 1 "$file") == "$KC_MANAGED_MARK"* ]]; then
      kc_log "removing the mirror configuration of $name"
      rm -f "$file"
      rmdir "$(dirname "$file")" 2>/dev/null || true
    fi
  done
}

kc_prepare_containerd() {
  local arch=$1 workdir=$2 changed=0 reload=0 current=""

  # containerd binaries (containerd, containerd-shim-runc-v2, ctr) into /usr/local/bin.
  local containerd=$KC_ROOT/usr/local/bin/containerd
  if [[ -x $containerd ]]; then
    current=$("$containerd" --version 2>/dev/null | awk '{ print $3 }') || current=""
  fi
  if [[ $current == "v$CONTAINERD_VERSION" ]]; then
    kc_log "containerd $current is already installed"
  else
    local tarball="containerd-${CONTAINERD_VERSION}-linux-${arch}.tar.gz"
    local base="${CONTAINERD_RELEASE_URL%/}/v${CONTAINERD_VERSION}"
    kc_download "$base/$tarball" "$workdir/$tarball"
    kc_download "$base/$tarball.sha256sum" "$workdir/$tarball.sha256sum"
    kc_verify_sha256 "$workdir/$tarball" "$workdir/$tarball.sha256sum"
    kc_log "installing containerd $CONTAINERD_VERSION into /usr/local (was: ${current:-none})"
    mkdir -p "$KC_ROOT/usr/local"
    tar -C "$KC_ROOT/usr/local" -xzf "$workdir/$tarball" >&2
    changed=1
  fi

  # runc.
  local runc=$KC_ROOT/usr/local/sbin/runc
  current=""
  if [[ -x $runc ]]; then
    current=$("$runc" --version 2>/dev/null | awk 'NR == 1 { print $3 }') || current=""
  fi
  if [[ $current == "$RUNC_VERSION" ]]; then
    kc_log "runc $current is already installed"
  else
    local base="${RUNC_RELEASE_URL%/}/v${RUNC_VERSION}"
    kc_download "$base/runc.$arch" "$workdir/runc.$arch"
    kc_download "$base/runc.sha256sum" "$workdir/runc.sha256sum"
    kc_verify_sha256 "$workdir/runc.$arch" "$workdir/runc.sha256sum"
    kc_log "installing runc $RUNC_VERSION into /usr/local/sbin (was: ${current:-none})"
    install -D -m 0755 "$workdir/runc.$arch" "$runc"
    changed=1
  fi

  # The systemd unit: upstream's containerd.service at the pinned release, verbatim below its
  # header comment (tests/upstream/containerd/containerd.service holds the copy it must equal).
  kc_write_file "$KC_ROOT/etc/systemd/system/containerd.service" 0644 <<'EOF'
# Written by kubeadm-cluster: upstream's containerd.service (github.com/containerd/containerd,
# Apache License 2.0) for the release installed in /usr/local.

[Unit]
Description=containerd container runtime
Documentation=https://containerd.io
After=network.target dbus.service

[Service]
ExecStartPre=-/sbin/modprobe overlay
ExecStart=/usr/local/bin/containerd

Type=notify
Delegate=yes
KillMode=process
Restart=always
RestartSec=5

# Having non-zero Limit*s causes performance problems due to accounting overhead
# in the kernel. We recommend using cgroups to do container-local accounting.
LimitNPROC=infinity
LimitCORE=infinity

# Comment TasksMax if your systemd version does not supports it.
# Only systemd 226 and above support this version.
TasksMax=infinity
OOMScoreAdjust=-999

[Install]
WantedBy=multi-user.target
EOF
  if ((KC_WRITE_CHANGED)); then
    changed=1
    reload=1
  fi

  # containerd 2.x configuration (schema version 3).
  kc_write_file "$KC_ROOT/etc/containerd/config.toml" 0644 <<EOF
# Written by kubeadm-cluster: containerd 2.x for kubelet (systemd cgroup driver).
version = 3

[plugins.'io.containerd.cri.v1.images'.pinned_images]
  sandbox = "$PAUSE_IMAGE"

[plugins.'io.containerd.cri.v1.images'.registry]
  config_path = "/etc/containerd/certs.d"

[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
  SystemdCgroup = true
EOF
  if ((KC_WRITE_CHANGED)); then
    changed=1
  fi

  kc_prepare_registry_mirrors

  kc_write_file "$KC_ROOT/etc/crictl.yaml" 0644 <<'EOF'
runtime-endpoint: unix:///run/containerd/containerd.sock
image-endpoint: unix:///run/containerd/containerd.sock
timeout: 10
EOF

  if ((reload)); then
    systemctl daemon-reload >&2
  fi
  if ! systemctl is-enabled --quiet containerd; then
    kc_log "enabling containerd"
    systemctl enable containerd >&2
  fi
  if ((changed)); then
    kc_log "restarting containerd"
    systemctl restart containerd >&2
  elif ! systemctl is-active --quiet containerd; then
    kc_log "starting containerd"
    systemctl start containerd >&2
  fi
  kc_retry 6 systemctl is-active --quiet containerd ||
    kc_die "containerd is not running (see journalctl -u containerd on $NODE_NAME)"
}

# kc_url_decode TEXT : TEXT with its %XX escapes decoded (the user or password of a URL).
kc_url_decode() {
  local rest=$1 decoded="" char
  # The last escape first (".*" is greedy); what is decoded is never scanned again.
  while [[ $rest =~ ^(.*)%([0-9A-Fa-f]{2})(.*)$ ]]; do
    printf -v char '%b' "\\x${BASH_REMATCH[2]}"
    decoded="$char${BASH_REMATCH[3]}$decoded"
    rest=${BASH_REMATCH[1]}
  done
  printf '%s' "$rest$decoded"
}

# kc_prepare_apt_credentials : K8S_APT_REPO may carry credentials (https://user:password@host/...).
# apt gets them from ${KC_APT_AUTH}, in the netrc-like format of apt_auth.conf(5):
# "machine scheme://host[:port]/path login USER password PASSWORD" (with the scheme, as apt takes
# credentials without one for https only). The file is mode 0600: apt's methods open the auth
# files as root before dropping privileges (apt 2.7.14 methods/aptmethod.h; the format:
# apt-pkg/contrib/netrc.cc, which splits tokens at blanks). The source list, readable by everyone,
# names the repository without them, and so do apt's messages. Without credentials the file is
# removed (an earlier mirror's). Sets KC_APT_REPO (the URL without userinfo, ending in "/") and
# KC_WRITE_CHANGED (1 when the auth file was written or removed).
kc_prepare_apt_credentials() {
  local repo=${K8S_APT_REPO%/}/ auth=$KC_ROOT$KC_APT_AUTH
  local url='^([A-Za-z][A-Za-z0-9+.-]*://)([^/?#]*)@([^/?#@]*)(.*)$'
  # shellcheck disable=SC2034 # read by the caller
  KC_WRITE_CHANGED=0
  if [[ ! $repo =~ $url ]]; then
    KC_APT_REPO=$repo
    if [[ -e $auth ]]; then
      rm -f -- "$auth"
      # shellcheck disable=SC2034 # read by the caller
      KC_WRITE_CHANGED=1
      kc_log "removed the apt credentials of an earlier package mirror ($KC_APT_AUTH)"
    fi
    return 0
  fi
  local scheme=${BASH_REMATCH[1]} userinfo=${BASH_REMATCH[2]} host=${BASH_REMATCH[3]} path=${BASH_REMATCH[4]}
  local user password="" line
  user=$(kc_url_decode "${userinfo%%:*}")
  if [[ $userinfo == *:* ]]; then
    password=$(kc_url_decode "${userinfo#*:}")
  fi
  [[ -n $user && $user$password != *[[:space:]]* ]] ||
    kc_die "K8S_APT_REPO: the user of the repository URL is empty, or its user or password holds a blank," \
      "which apt's auth file cannot hold (the value is not shown: it is a secret)"
  KC_APT_REPO=$scheme$host$path
  line="machine $KC_APT_REPO login $user"
  if [[ -n $password ]]; then
    line+=" password $password"
  fi
  # A here-document (shell builtins): the password is in no process's arguments.
  kc_write_file "$auth" 0600 <<EOT
# Written by kubeadm-cluster: the Kubernetes package mirror's login (apt_auth.conf format).
$line
EOT
}

kc_prepare_kubernetes_packages() {
  local workdir=$1 repo written=0
  kc_prepare_apt_credentials
  repo=$KC_APT_REPO
  if ((KC_WRITE_CHANGED)); then
    written=1
  fi
  local keyring=$KC_ROOT$KC_KEYRING sources=$KC_ROOT/etc/apt/sources.list.d/kubernetes.list
  local entry="deb [signed-by=$KC_KEYRING] $repo /"

  # The repository's signing key: fetched when missing or when the repository changes (with the
  # URL's credentials, if any: curl sends them; the log line shows them redacted).
  if [[ ! -s $keyring ]] || ! grep -qxF -- "$entry" "$sources" 2>/dev/null; then
    kc_download "${K8S_APT_REPO%/}/Release.key" "$workdir/Release.key"
    gpg --batch --yes --dearmor -o "$workdir/kubernetes-apt-keyring.gpg" "$workdir/Release.key" >&2
    kc_write_file "$keyring" 0644 <"$workdir/kubernetes-apt-keyring.gpg"
    written=$KC_WRITE_CHANGED
  fi
  kc_write_file "$sources" 0644 <<EOF
# Written by kubeadm-cluster: the Kubernetes packages of one minor release.
$entry
EOF
  if ((KC_WRITE_CHANGED)); then
    written=1
  fi
  # apt knows a repository's packages only after an `apt-get update` that read its list and key:
  # a source written now is updated now, before anything is installed (here or, for a node
  # already in a cluster, by the upgrade step).
  if ((written)); then
    kc_apt_update_once
  fi

  local -a install=()
  local package version
  # A node that is already in a cluster keeps its Kubernetes packages here: changing kubelet or
  # kubeadm behind the control plane's back breaks the version-skew policy. Version changes are
  # the upgrade step's (upgrade-node.sh: kubeadm upgrade, control plane first, one node at a
  # time); the source list above already points at the new minor for it.
  if [[ -f $KC_ROOT/etc/kubernetes/kubelet.conf ]]; then
    version=$(kc_pkg_version kubeadm)
    if [[ -n $version && $version != "$K8S_VERSION"-* ]]; then
      kc_warn "node $NODE_NAME is in a cluster at kubeadm $version: node prep is not changing it to" \
        "$K8S_VERSION (version changes are the upgrade step's, upgrade-node.sh; the apt source list" \
        "already points at $repo for it)"
      return 0
    fi
  fi
  for package in "${KC_K8S_PACKAGES[@]}"; do
    version=$(kc_pkg_version "$package")
    if [[ $version != "$K8S_VERSION"-* ]]; then
      install+=("$package=$K8S_VERSION-*")
    fi
  done
  if ((${#install[@]})); then
    for package in "${KC_K8S_EXTRA_PACKAGES[@]}"; do
      if [[ -z $(kc_pkg_version "$package") ]]; then
        install+=("$package")
      fi
    done
    kc_log "installing ${install[*]}"
    kc_apt_update_once
    apt-mark unhold "${KC_K8S_PACKAGES[@]}" >&2 || true
    kc_apt_get install --allow-downgrades --allow-change-held-packages "${install[@]}"
    apt-mark hold "${KC_K8S_PACKAGES[@]}" >&2
    for package in "${KC_K8S_PACKAGES[@]}"; do
      version=$(kc_pkg_version "$package")
      [[ $version == "$K8S_VERSION"-* ]] ||
        kc_die "$package is at '${version:-not installed}' after the install, not $K8S_VERSION"
    done
  else
    kc_log "kubelet, kubeadm and kubectl $K8S_VERSION are already installed"
  fi

  if ! systemctl is-enabled --quiet kubelet; then
    kc_log "enabling kubelet (it restarts in a loop until kubeadm init/join configures it)"
    systemctl enable kubelet >&2
  fi
}

kc_prepare_main() {
  local arch workdir hook
  arch=$(dpkg --print-architecture)
  case $arch in
    amd64 | arm64) ;;
    *) kc_die "unsupported Debian architecture '$arch' (needs amd64 or arm64)" ;;
  esac
  workdir=$(mktemp -d)
  printf -v hook 'rm -rf -- %q' "$workdir"
  kc_on_exit "$hook"

  kc_prepare_api_endpoint
  kc_prepare_swap
  kc_prepare_modules
  kc_prepare_sysctl
  kc_prepare_base_packages
  kc_prepare_containerd "$arch" "$workdir"
  kc_prepare_kubernetes_packages "$workdir"
  kc_log "node $NODE_NAME is ready for kubeadm: containerd $CONTAINERD_VERSION, runc $RUNC_VERSION," \
    "Kubernetes $K8S_VERSION packages"
}

kc_prepare_main </dev/null
