"""The day-two node scripts, executed for real in the sandbox of tests/test_scripts.py.

The API endpoint name in /etc/hosts (lib.sh's kc_set_hosts_entry, node prep, join), the HA
certificate upload (kubeadm-init.sh, mint-token.sh), the version check, the upgrade of a node and
the drain/uncordon of a worker around it, and the removal of a control plane from etcd.

The stubs below extend the sandbox's: a kubectl that answers from state files (the kubeadm-config
ConfigMap, Nodes with their kubelet version and annotation, etcdctl through `kubectl exec`), a
kubeadm that also knows `upgrade` and `init phase upload-certs`, and flock. apt-get, dpkg-query and
systemctl are the sandbox's: an install changes the version dpkg-query reports.

The patch upgrade of a first control plane and of workers (drained, upgraded, uncordoned, in that
order) and a worker's removal run on real VMs (tests/rehearsal/test_rehearsal.py); what stays
here is what they never do: a second control plane, the API endpoint name of a GCP or HA stack,
a minor upgrade, the etcd quorum check, failures and timeouts injected mid-way, and the skips of
nodes already at the target or gone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

import pytest

from components.bootstrap.scripts import render_bundle
from tests.test_scripts import (  # noqa: F401  (node and sandbox are fixtures)
    SCRIPTS,
    STUBS,
    Result,
    Sandbox,
    _explain,
    _prepare_env,
    node,
    sandbox,
)

OLD, NEW = "1.36.4", "1.37.0"
NAME = "k8s-api.cluster.internal"
MARK = "# kubeadm-cluster API endpoint"
CERT_KEY = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"
ANNOTATION = "kubeadm-cluster.io/upgrading-to"
ETCDCTL = (
    "etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt "
    "--cert=/etc/kubernetes/pki/etcd/server.crt --key=/etc/kubernetes/pki/etcd/server.key"
)

KUBECTL = r"""kubeconfig="" namespace="" args=()
while (($#)); do
  case $1 in
    --kubeconfig) kubeconfig=$2; shift ;;
    --kubeconfig=*) kubeconfig=${1#*=} ;;
    -n) namespace=$2; shift ;;
    --request-timeout=*) ;;
    *) args+=("$1") ;;
  esac
  shift
done
set -- "${args[@]}"
nodes=$STUB_STATE/nodes
if [[ ${STUB_API_DOWN:-0} == 1 ]]; then
  echo "The connection to the server 10.0.0.2:6443 was refused - did you specify the right host or port?" >&2
  exit 1
fi
missing() { echo "Error from server (NotFound): nodes \"$1\" not found" >&2; exit 1; }
case $1 in
  get)
    case $2 in
      --raw=/readyz) echo ok ;;
      configmap)
        # The program's settings ConfigMap (kc_drain_timeout): STUB_STATE/settings-drainTimeout.
        if [[ $namespace == kube-system && $3 == kubeadm-cluster-settings ]]; then
          [[ ! -f $STUB_STATE/settings-drainTimeout ]] || printf '%s' "$(<"$STUB_STATE/settings-drainTimeout")"
          exit 0
        fi
        [[ $namespace == kube-system && $3 == kubeadm-config ]] || { echo "unexpected: $*" >&2; exit 64; }
        n=$(count configmap)
        if ((n <= ${STUB_CONFIGMAP_FAILURES:-0})); then echo "etcdserver: leader changed" >&2; exit 1; fi
        [[ -f $STUB_STATE/cluster-version ]] || { echo 'configmaps "kubeadm-config" not found' >&2; exit 1; }
        printf 'apiServer: {}\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v%s\nnetworking:\n  podSubnet: 10.244.0.0/16\n' \
          "$(<"$STUB_STATE/cluster-version")" ;;
      node)
        name=$3; shift 3
        if [[ ! -d $nodes/$name ]]; then
          [[ " $* " == *" --ignore-not-found "* ]] && exit 0
          missing "$name"
        fi
        case "$*" in
          *"-o name"*) echo "node/$name" ;;
          *kubeletVersion*)
            n=$(count "version-$name")
            read -ra seq <"$nodes/$name/kubeletVersion"
            i=$((n - 1)); ((i < ${#seq[@]})) || i=$((${#seq[@]} - 1))
            v=${seq[i]}
            if [[ $v == @dpkg ]]; then v=v$(<"$STUB_STATE/dpkg/kubelet"); v=${v%%-*}; fi
            printf '%s' "$v" ;;
          *upgrading-to*) [[ ! -f $nodes/$name/annotation ]] || printf '%s' "$(<"$nodes/$name/annotation")" ;;
          *) echo "unexpected: get node $name $*" >&2; exit 64 ;;
        esac ;;
      *) echo "unexpected: $*" >&2; exit 64 ;;
    esac ;;
  annotate)
    [[ $2 == --overwrite ]] && shift
    name=$3 annotation=$4
    [[ -d $nodes/$name ]] || missing "$name"
    case $annotation in
      *-) rm -f "$nodes/$name/annotation" ;;
      *=*) echo "${annotation#*=}" >"$nodes/$name/annotation" ;;
    esac
    echo "node/$name annotated" ;;
  drain)
    [[ -d $nodes/$2 ]] || missing "$2"
    touch "$nodes/$2/cordoned"
    echo "node/$2 cordoned"
    if [[ ${STUB_DRAIN_RC:-0} != 0 ]]; then echo "error: timed out waiting for the condition" >&2; exit "$STUB_DRAIN_RC"; fi
    echo "node/$2 drained" ;;
  uncordon)
    [[ -d $nodes/$2 ]] || missing "$2"
    rm -f "$nodes/$2/cordoned"
    echo "node/$2 uncordoned" ;;
  delete)
    [[ $2 == node ]] || exit 64
    rm -rf "${nodes:?}/$3"
    echo "node \"$3\" deleted" ;;
  exec)
    pod=$2; shift 2
    [[ $1 == -- ]] && shift
    [[ $namespace == kube-system && $1 == etcdctl ]] || { echo "unexpected exec: $*" >&2; exit 64; }
    if [[ ! -f $STUB_STATE/pods/$pod ]]; then echo "Error from server (NotFound): pods \"$pod\" not found" >&2; exit 1; fi
    shift
    words=()
    for a in "$@"; do case $a in --*) ;; *) words+=("$a") ;; esac; done
    case "${words[*]}" in
      "member list -w simple") cat "$STUB_STATE/etcd-members" ;;
      "member remove "*)
        id=${words[2]}
        grep -q "^$id, " "$STUB_STATE/etcd-members" || { echo "Error: etcdserver: member not found" >&2; exit 1; }
        grep -v "^$id, " "$STUB_STATE/etcd-members" >"$STUB_STATE/etcd-members.new" || true
        mv "$STUB_STATE/etcd-members.new" "$STUB_STATE/etcd-members"
        echo "Member $id removed from cluster 5e1a5f2b3c0d4e6f" ;;
      "endpoint health -w simple")
        [[ " $* " == *" --cluster "* ]] || { echo "endpoint health without --cluster checks one member only" >&2; exit 64; }
        grep ' is healthy: ' "$STUB_STATE/etcd-health" || true
        if grep ' is unhealthy: ' "$STUB_STATE/etcd-health" >&2; then echo "Error: unhealthy cluster" >&2; exit 1; fi ;;
      *) echo "unexpected etcdctl: ${words[*]}" >&2; exit 64 ;;
    esac ;;
  *) echo "unexpected kubectl call: $*" >&2; exit 64 ;;
esac"""

KUBEADM = r"""case "$1 ${2:-}" in
  "init phase")
    n=$(count upload-certs)
    if ((n <= ${STUB_UPLOAD_FAILURES:-0})); then echo "error execution phase upload-certs: connection refused" >&2; exit 1; fi
    # Like kubeadm: --certificate-key cannot be mixed with --config; the key comes from either.
    key="" cfg="" prev=""
    for a in "$@"; do [[ $prev == --certificate-key ]] && key=$a; [[ $prev == --config ]] && cfg=$a; prev=$a; done
    if [[ -n $cfg && -n $key ]]; then echo "can not mix '--config' with arguments [certificate-key]" >&2; exit 1; fi
    [[ -n $cfg ]] && key=$(awk '$1 == "certificateKey:" { gsub(/"/, "", $2); print $2 }' "$cfg")
    [[ -n $cfg ]] && { stat -c %a "$cfg" >"$STUB_STATE/upload-mode"; cp "$cfg" "$STUB_STATE/upload-config"; }
    echo "$key" >"$STUB_STATE/upload-key"
    echo '[upload-certs] Storing the certificates in Secret "kubeadm-certs" in the "kube-system" Namespace'
    [[ " $* " == *" --skip-certificate-key-print "* ]] || { echo "[upload-certs] Using certificate key:"; echo "$key"; }
    exit 0 ;;
  "upgrade apply")
    if [[ ${STUB_APPLY_RC:-0} != 0 ]]; then echo "[upgrade/apply] FATAL: the upgrade failed" >&2; exit "$STUB_APPLY_RC"; fi
    echo "${3#v}" >"$STUB_STATE/cluster-version"
    echo "[upgrade/successful] SUCCESS! Your cluster was upgraded to \"$3\". Enjoy!"
    exit 0 ;;
  "upgrade node")
    echo "[upgrade] The configuration for this node was successfully upgraded!"
    exit 0 ;;
  "init "*)
    # Like kubeadm: --upload-certs prints the certificate key unless told not to.
    if [[ " $* " == *" --upload-certs "* && " $* " != *" --skip-certificate-key-print "* ]]; then
      cfg="" prev=""
      for a in "$@"; do [[ $prev == --config ]] && cfg=$a; prev=$a; done
      echo "Using certificate key:"; awk '$1 == "certificateKey:" { print $2 }' "$cfg"
    fi ;;
esac
"""


@pytest.fixture
def box(sandbox: Sandbox) -> Sandbox:
    """The sandbox with the day-two stubs (kubectl with state, kubeadm upgrade, flock)."""
    sandbox._stub("kubectl", KUBECTL)
    sandbox._stub("kubeadm", KUBEADM + STUBS["kubeadm"])
    sandbox._stub("flock", "exit 0")
    return sandbox


def _write(sandbox: Sandbox, node_path: str, text: str) -> Path:
    path = sandbox.path(node_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _state(sandbox: Sandbox, name: str, text: str) -> Path:
    path = sandbox.state / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _add_node(sandbox: Sandbox, name: str, kubelet: str = "@dpkg", annotation: str | None = None) -> Path:
    """A Node object; ``kubelet`` is the reported version, or a space-separated sequence of the
    versions successive queries report (the last one repeats); @dpkg: the installed package's."""
    _state(sandbox, f"nodes/{name}/kubeletVersion", kubelet + "\n")
    if annotation is not None:
        _state(sandbox, f"nodes/{name}/annotation", annotation + "\n")
    return sandbox.state / "nodes" / name


def _at(result: Result, *words: str) -> int:
    """Index of the first logged call containing every one of ``words``."""
    for index, call in enumerate(result.calls):
        if all(word in call for word in words):
            return index
    pytest.fail(f"no call with {words}:\n{_explain(result)}")


def _assert_order(result: Result, *steps: tuple[str, ...]) -> None:
    indices = [_at(result, *step) for step in steps]
    listing = "\n".join(f"  {i:3}: {' '.join(step)}" for i, step in zip(indices, steps))
    assert indices == sorted(indices), f"calls out of order (expected top to bottom):\n{listing}\n{_explain(result)}"


def _lib(sandbox: Sandbox, code: str, env: Mapping[str, str] | None = None) -> Result:
    return sandbox.run([], env, command=f"set -euo pipefail\n. {SCRIPTS / 'lib.sh'}\nKC_STEP=test\n{code}")


# --- lib.sh: /etc/hosts ---------------------------------------------------------------------

HOSTS = "127.0.0.1 localhost\n\n# The following lines are desirable for IPv6 capable hosts\n::1 ip6-localhost ip6-loopback\n10.0.0.9 other.example\n"


def test_hosts_entry_is_added_and_keeps_every_other_line(box: Sandbox) -> None:
    hosts = _write(box, "/etc/hosts", HOSTS)
    hosts.chmod(0o600)
    result = _lib(box, f'kc_set_hosts_entry {NAME} 10.0.0.2; echo "changed=$KC_WRITE_CHANGED"')
    assert result.rc == 0 and result.stdout == "changed=1\n", _explain(result)
    assert hosts.read_text() == HOSTS + f"10.0.0.2 {NAME} {MARK}\n", f"unexpected /etc/hosts:\n{hosts.read_text()}"
    assert oct(hosts.stat().st_mode & 0o777) == "0o644", "/etc/hosts must end with mode 0644"
    assert f"/etc/hosts maps {NAME} to 10.0.0.2" in result.stderr, result.stderr


def test_hosts_entry_replaces_the_earlier_managed_line_in_place(box: Sandbox) -> None:
    before = (
        "127.0.0.1 localhost\n"
        f"10.0.0.2 {NAME} {MARK}\n"
        f"10.9.9.9 other-api.internal {MARK}\n"
        "# a comment\n"
        f"10.0.0.3   {NAME}   {MARK}\n"
    )
    hosts = _write(box, "/etc/hosts", before)
    result = _lib(box, f"kc_set_hosts_entry {NAME} 10.0.0.5")
    assert result.rc == 0, _explain(result)
    expected = (
        "127.0.0.1 localhost\n"
        f"10.0.0.5 {NAME} {MARK}\n"
        f"10.9.9.9 other-api.internal {MARK}\n"
        "# a comment\n"
    )
    assert hosts.read_text() == expected, (
        f"the managed line of {NAME} must be replaced where it was, its duplicate dropped and every other line "
        f"kept:\n{hosts.read_text()}"
    )


def test_hosts_entry_writes_only_when_the_content_changes(box: Sandbox) -> None:
    hosts = _write(box, "/etc/hosts", HOSTS)
    assert _lib(box, f"kc_set_hosts_entry {NAME} fd00::2").rc == 0
    before = hosts.stat().st_ino, hosts.stat().st_mtime_ns
    result = _lib(box, f'kc_set_hosts_entry {NAME} fd00::2; echo "changed=$KC_WRITE_CHANGED"')
    assert result.rc == 0 and result.stdout == "changed=0\n", _explain(result)
    assert (hosts.stat().st_ino, hosts.stat().st_mtime_ns) == before, "an unchanged /etc/hosts was rewritten"
    assert f"/etc/hosts already maps {NAME} to fd00::2" in result.stderr, result.stderr
    assert hosts.read_text().count(NAME) == 1, hosts.read_text()


def test_hosts_entry_creates_a_missing_hosts_file(box: Sandbox) -> None:
    result = _lib(box, f"kc_set_hosts_entry {NAME} 10.0.0.2")
    assert result.rc == 0, _explain(result)
    assert box.path("/etc/hosts").read_text() == f"10.0.0.2 {NAME} {MARK}\n"


def test_hosts_entry_warns_about_a_line_it_does_not_own(box: Sandbox) -> None:
    hosts = _write(box, "/etc/hosts", f"10.0.0.7 {NAME}\n")
    result = _lib(box, f"kc_set_hosts_entry {NAME} 10.0.0.2")
    assert result.rc == 0, _explain(result)
    assert hosts.read_text() == f"10.0.0.7 {NAME}\n10.0.0.2 {NAME} {MARK}\n", "a foreign line must be left as it is"
    assert f"WARNING: /etc/hosts also has the line '10.0.0.7 {NAME}' for {NAME}" in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("name", "ip", "message"),
    [
        ("bad_name", "10.0.0.2", "'bad_name' is not a valid host name"),
        ("-api.internal", "10.0.0.2", "'-api.internal' is not a valid host name"),
        ("api..internal", "10.0.0.2", "'api..internal' is not a valid host name"),
        (NAME, "10.0.0.256", "'10.0.0.256' is not an IPv4 or IPv6 address"),
        (NAME, "10.0.0", "'10.0.0' is not an IPv4 or IPv6 address"),
        (NAME, "api.example.com", "'api.example.com' is not an IPv4 or IPv6 address"),
        (NAME, "fd00:::1", "'fd00:::1' is not an IPv4 or IPv6 address"),
        (NAME, "fd00::1::2", "'fd00::1::2' is not an IPv4 or IPv6 address"),
        (NAME, "", "'' is not an IPv4 or IPv6 address"),
    ],
)
def test_hosts_entry_rejects_bad_names_and_addresses(box: Sandbox, name: str, ip: str, message: str) -> None:
    hosts = _write(box, "/etc/hosts", HOSTS)
    result = _lib(box, f"kc_set_hosts_entry '{name}' '{ip}'")
    assert result.rc != 0, f"kc_set_hosts_entry accepted {name!r} {ip!r}:\n{_explain(result)}"
    assert f"ERROR: {message}" in result.stderr, f"expected {message!r}:\n{result.stderr}"
    assert hosts.read_text() == HOSTS, "/etc/hosts changed despite the bad input"


# --- prepare-node / kubeadm-join: the endpoint name ---------------------------------------------

ENDPOINT = {"API_ENDPOINT_NAME": NAME, "API_ENDPOINT_IP": "10.0.0.3", "API_ENDPOINT_BOOTSTRAP_IP": "10.0.0.2"}


def _hosts_ip(sandbox: Sandbox) -> list[str]:
    return [line.split()[0] for line in sandbox.path("/etc/hosts").read_text().splitlines() if MARK in line]


def test_prepare_maps_the_bootstrap_ip_before_the_join_and_the_final_ip_after(node: Sandbox) -> None:
    _write(node, "/etc/hosts", HOSTS)
    env = {**_prepare_env("cp-1"), **ENDPOINT}
    result = node.run("prepare-node.sh", env)
    assert result.rc == 0, _explain(result)
    assert _hosts_ip(node) == ["10.0.0.2"], (
        f"a control plane about to join must reach the first control plane (bootstrap IP 10.0.0.2):\n"
        f"{node.path('/etc/hosts').read_text()}"
    )
    assert node.path("/etc/hosts").read_text().startswith(HOSTS), "prepare-node damaged /etc/hosts"
    assert f"cp-1 is not in a cluster yet: {NAME} resolves to the bootstrap address" in result.stderr, result.stderr

    _write(node, "/etc/kubernetes/kubelet.conf", "joined\n")
    again = node.run("prepare-node.sh", env)
    assert again.rc == 0, _explain(again)
    assert _hosts_ip(node) == ["10.0.0.3"], f"a joined node must use its final IP:\n{node.path('/etc/hosts').read_text()}"


def test_prepare_bootstrap_ip_defaults_to_the_final_ip(node: Sandbox) -> None:
    env = {**_prepare_env(), "API_ENDPOINT_NAME": NAME, "API_ENDPOINT_IP": "10.0.0.100"}
    result = node.run("prepare-node.sh", env)
    assert result.rc == 0, _explain(result)
    assert _hosts_ip(node) == ["10.0.0.100"], node.path("/etc/hosts").read_text()


def test_prepare_without_an_endpoint_name_leaves_hosts_alone(node: Sandbox) -> None:
    hosts = _write(node, "/etc/hosts", HOSTS)
    result = node.run("prepare-node.sh", _prepare_env())
    assert result.rc == 0, _explain(result)
    assert hosts.read_text() == HOSTS, "prepare-node touched /etc/hosts without API_ENDPOINT_NAME"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"API_ENDPOINT_NAME": NAME}, "API_ENDPOINT_IP is required when API_ENDPOINT_NAME is set"),
        ({**ENDPOINT, "API_ENDPOINT_BOOTSTRAP_IP": "10.0.0.300"}, "API_ENDPOINT_BOOTSTRAP_IP '10.0.0.300' is not an IPv4 or IPv6 address"),
        ({**ENDPOINT, "API_ENDPOINT_NAME": "api_internal"}, "API_ENDPOINT_NAME 'api_internal' is not a valid host name"),
    ],
)
def test_prepare_rejects_a_bad_endpoint_before_changing_anything(node: Sandbox, env: dict[str, str], message: str) -> None:
    result = node.run("prepare-node.sh", {**_prepare_env(), **env})
    assert result.rc != 0, f"prepare-node accepted {env}:\n{_explain(result)}"
    assert message in result.stderr, f"expected {message!r}:\n{result.stderr}"
    assert not result.calls, f"prepare-node ran commands before validating its inputs: {result.calls}"


def test_prepare_on_a_joined_node_leaves_versions_to_the_upgrade_step(node: Sandbox) -> None:
    env = _prepare_env()
    assert node.run("prepare-node.sh", env).rc == 0
    _write(node, "/etc/kubernetes/kubelet.conf", "joined\n")
    repo = env["K8S_APT_REPO"].replace(env["K8S_VERSION"].rsplit(".", 1)[0], "1.99")
    result = node.run("prepare-node.sh", {**env, "K8S_VERSION": "1.99.0", "K8S_APT_REPO": repo})
    assert result.rc == 0, _explain(result)
    assert not [c for c in result.called("apt-get") if "install" in c], f"prep changed packages of a joined node: {result.calls}"
    assert "the upgrade step's, upgrade-node.sh" in result.stderr, f"the warning does not point at the upgrade step:\n{result.stderr}"
    sources = node.path("/etc/apt/sources.list.d/kubernetes.list").read_text()
    assert repo in sources, f"the apt source list must follow the new minor for the upgrade step:\n{sources}"


JOIN_CONFIG = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\n"


def test_join_maps_the_final_ip_after_the_join(box: Sandbox) -> None:
    _write(box, "/etc/hosts", HOSTS + f"10.0.0.2 {NAME} {MARK}\n")
    env = {"NODE_NAME": "cp-1", "KUBEADM_CONFIG": JOIN_CONFIG, "CONTROL_PLANE": "1",
           "API_ENDPOINT_NAME": NAME, "API_ENDPOINT_IP": "10.0.0.3"}
    result = box.run("kubeadm-join.sh", env)
    assert result.rc == 0, _explain(result)
    config = box.path("/etc/kubernetes/kubeadm-join.yaml")
    assert result.called("kubeadm") == [f"kubeadm join --config {config}"], (
        f"a control plane joins with the same command (--control-plane comes from the config): {result.calls}")
    assert box.path("/etc/hosts").read_text() == HOSTS + f"10.0.0.3 {NAME} {MARK}\n", box.path("/etc/hosts").read_text()
    joined = result.stderr.index("control plane cp-1 has joined the cluster")
    assert joined < result.stderr.index(f"/etc/hosts maps {NAME} to 10.0.0.3"), (
        f"/etc/hosts must switch only after the join:\n{result.stderr}")
    assert result.stdout == "", result.stdout


def test_join_of_a_joined_node_still_maps_the_final_ip(box: Sandbox) -> None:
    _write(box, "/etc/kubernetes/kubelet.conf", "joined\n")
    _write(box, "/etc/hosts", f"10.0.0.2 {NAME} {MARK}\n")
    env = {"NODE_NAME": "w-0", "KUBEADM_CONFIG": JOIN_CONFIG, "API_ENDPOINT_NAME": NAME, "API_ENDPOINT_IP": "10.0.0.100"}
    result = box.run("kubeadm-join.sh", env)
    assert result.rc == 0, _explain(result)
    assert not result.called("kubeadm"), result.calls
    assert "node w-0 has already joined" in result.stderr, result.stderr
    assert _hosts_ip(box) == ["10.0.0.100"], box.path("/etc/hosts").read_text()


def test_failed_join_keeps_the_bootstrap_ip(box: Sandbox) -> None:
    _write(box, "/etc/hosts", f"10.0.0.2 {NAME} {MARK}\n")
    env = {"NODE_NAME": "cp-1", "KUBEADM_CONFIG": JOIN_CONFIG, "CONTROL_PLANE": "1", "API_ENDPOINT_NAME": NAME,
           "API_ENDPOINT_IP": "10.0.0.3", "STUB_JOIN_FAILURES": "99"}
    result = box.run("kubeadm-join.sh", env)
    assert result.rc != 0, _explain(result)
    assert "kubeadm join failed on control plane cp-1 after 3 attempts" in result.stderr, result.stderr
    assert _hosts_ip(box) == ["10.0.0.2"], "a failed join switched the endpoint to the node's own address"


# --- kubeadm-init / mint-token: the certificate key -----------------------------------------------

INIT_CONFIG = f"apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\ncertificateKey: {CERT_KEY}\n"


def test_init_with_a_certificate_key_uploads_the_certificates_without_printing_the_key(box: Sandbox) -> None:
    result = box.run("kubeadm-init.sh", {"NODE_NAME": "cp-0", "KUBEADM_CONFIG": INIT_CONFIG, "CERTIFICATE_KEY": CERT_KEY})
    assert result.rc == 0, _explain(result)
    config = box.path("/etc/kubernetes/kubeadm-config.yaml")
    expected = f"kubeadm init --config {config} --upload-certs --skip-token-print --skip-certificate-key-print"
    assert expected in result.calls, f"expected `{expected}`:\n{_explain(result)}"
    assert CERT_KEY not in result.stdout + result.stderr, f"the certificate key was printed:\n{_explain(result)}"
    assert not any(CERT_KEY in call for call in result.called("kubeadm init")), "the key must stay in the config, off the command line"


def test_init_without_a_certificate_key_is_unchanged(box: Sandbox) -> None:
    result = box.run("kubeadm-init.sh", {"NODE_NAME": "cp-0", "KUBEADM_CONFIG": INIT_CONFIG})
    assert result.rc == 0, _explain(result)
    config = box.path("/etc/kubernetes/kubeadm-config.yaml")
    assert f"kubeadm init --config {config} --skip-token-print" in result.calls, result.calls


@pytest.mark.parametrize("script", ["kubeadm-init.sh", "mint-token.sh"])
def test_a_malformed_certificate_key_is_refused_without_echoing_it(box: Sandbox, script: str) -> None:
    bad = CERT_KEY[:-1] + "z"
    result = box.run(script, {"NODE_NAME": "cp-0", "KUBEADM_CONFIG": INIT_CONFIG, "TOKEN_TTL": "1h", "CERTIFICATE_KEY": bad})
    assert result.rc != 0, _explain(result)
    assert "CERTIFICATE_KEY must be 64 hex digits" in result.stderr, result.stderr
    assert bad not in result.stderr, "the (secret) key was echoed in the error"
    assert not result.calls, f"{script} ran commands before validating its inputs: {result.calls}"


def _first_control_plane(sandbox: Sandbox) -> None:
    _write(sandbox, "/etc/kubernetes/pki/ca.crt", "CA CERT\n")
    _write(sandbox, "/etc/kubernetes/admin.conf", "admin\n")
    _state(sandbox, "cluster-version", OLD + "\n")


def test_mint_token_with_a_certificate_key_reuploads_the_certificates_first(box: Sandbox) -> None:
    _first_control_plane(box)
    result = box.run("mint-token.sh", {"NODE_NAME": "cp-1", "TOKEN_TTL": "1h", "CERTIFICATE_KEY": CERT_KEY, "STUB_UPLOAD_FAILURES": "1"})
    assert result.rc == 0, _explain(result)
    # Named for the node: the token steps of several nodes run at once on the first control plane.
    config = box.path("/etc/kubernetes/tmp/kubeadm-cluster-join-cp-1.yaml")
    admin = box.path("/etc/kubernetes/admin.conf")
    upload = (f"kubeadm init phase upload-certs --config {config} --upload-certs --skip-certificate-key-print "
              f"--kubeconfig {admin}")
    assert result.called("kubeadm init phase") == [upload, upload], f"expected a retried upload: {result.calls}"
    assert (box.state / "upload-key").read_text().strip() == CERT_KEY, "kubeadm did not get the certificate key"
    assert not config.exists(), "the upload config (it holds the certificate key) was left on disk"
    _assert_order(result, ("kubeadm init phase upload-certs",), ("kubeadm token create",))
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith('{"token":"abcdef.0123456789abcdef","caCertHash":"sha256:'), (
        f"stdout must stay exactly the one JSON line:\n{_explain(result)}")
    assert CERT_KEY not in result.stdout + result.stderr, f"the certificate key was printed:\n{_explain(result)}"


def test_mint_token_prints_nothing_when_the_upload_fails(box: Sandbox) -> None:
    _first_control_plane(box)
    result = box.run("mint-token.sh", {"NODE_NAME": "cp-1", "TOKEN_TTL": "1h", "CERTIFICATE_KEY": CERT_KEY, "STUB_UPLOAD_FAILURES": "99"})
    assert result.rc != 0 and result.stdout == "", _explain(result)
    assert "kubeadm init phase upload-certs failed" in result.stderr, result.stderr
    assert not result.called("kubeadm token create"), "a token was minted although the certificates are not uploaded"
    assert CERT_KEY not in result.stderr, f"a retry message showed the certificate key:\n{result.stderr}"


def test_mint_token_without_a_certificate_key_uploads_nothing(box: Sandbox) -> None:
    _first_control_plane(box)
    result = box.run("mint-token.sh", {"NODE_NAME": "w-1", "TOKEN_TTL": "1h"})
    assert result.rc == 0 and len(result.stdout.splitlines()) == 1, _explain(result)
    assert not result.called("kubeadm init"), result.calls


# --- check-version ---------------------------------------------------------------------------


def _initialised(sandbox: Sandbox, version: str = OLD) -> None:
    _write(sandbox, "/etc/kubernetes/admin.conf", "admin\n")
    _state(sandbox, "cluster-version", version + "\n")


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (OLD, f"the cluster runs {OLD}: kubernetesVersion {OLD} is unchanged, nothing to upgrade"),
        ("1.36.10", f"planned upgrade: the cluster goes from {OLD} to 1.36.10"),
        ("1.37.0", f"planned upgrade: the cluster goes from {OLD} to 1.37.0"),
        ("1.37.12", f"planned upgrade: the cluster goes from {OLD} to 1.37.12"),
    ],
)
def test_check_version_accepts_the_same_a_patch_or_the_next_minor(box: Sandbox, target: str, message: str) -> None:
    _initialised(box)
    result = box.run("check-version.sh", {"K8S_VERSION": target})
    assert result.rc == 0, f"{OLD} -> {target} must be allowed:\n{_explain(result)}"
    assert message in result.stderr, f"expected {message!r}:\n{result.stderr}"
    assert result.stdout == "", result.stdout
    admin = box.path("/etc/kubernetes/admin.conf")
    assert result.calls == [
        f"kubectl --kubeconfig {admin} -n kube-system get configmap kubeadm-config -o jsonpath={{.data.ClusterConfiguration}}"
    ], f"check-version must only read the kubeadm-config ConfigMap: {result.calls}"


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("1.38.0", f"kubernetesVersion 1.38.0 skips a minor version: upgrade one minor at a time ({OLD} -> 1.37.x -> 1.38.0)"),
        ("1.39.2", f"kubernetesVersion 1.39.2 skips a minor version: upgrade one minor at a time ({OLD} -> 1.37.x -> 1.38.x -> 1.39.2)"),
        ("2.0.0", f"kubernetesVersion 2.0.0 skips a minor version: upgrade one minor at a time ({OLD} -> 1.37.x -> ...)"),
    ],
)
def test_check_version_refuses_to_skip_a_minor(box: Sandbox, target: str, message: str) -> None:
    _initialised(box)
    result = box.run("check-version.sh", {"K8S_VERSION": target})
    assert result.rc != 0, f"{OLD} -> {target} skips a minor but passed:\n{_explain(result)}"
    assert f"ERROR: {message}" in result.stderr, f"expected {message!r}:\n{result.stderr}"


@pytest.mark.parametrize("target", ["1.36.3", "1.35.9", "0.99.0"])
def test_check_version_refuses_a_downgrade(box: Sandbox, target: str) -> None:
    _initialised(box)
    result = box.run("check-version.sh", {"K8S_VERSION": target})
    assert result.rc != 0, f"{OLD} -> {target} is a downgrade but passed:\n{_explain(result)}"
    message = (f"kubernetesVersion {target} is older than the cluster's {OLD}: downgrades are not supported "
               f"(kubeadm cannot downgrade); set kubernetesVersion to {OLD} or later")
    assert f"ERROR: {message}" in result.stderr, f"expected {message!r}:\n{result.stderr}"


def test_check_version_on_an_uninitialised_node_checks_nothing(box: Sandbox) -> None:
    result = box.run("check-version.sh", {"K8S_VERSION": "1.40.0"})
    assert result.rc == 0, _explain(result)
    assert "not initialised yet: nothing to check" in result.stderr, result.stderr
    assert not result.calls, f"check-version called {result.calls} on a node without a cluster"


def test_check_version_retries_the_configmap_then_fails_clearly(box: Sandbox) -> None:
    _initialised(box)
    flaky = box.run("check-version.sh", {"K8S_VERSION": NEW, "STUB_CONFIGMAP_FAILURES": "2"})
    assert flaky.rc == 0 and len(flaky.called("kubectl")) == 3, f"expected two failed reads, then success:\n{_explain(flaky)}"
    (box.state / "cluster-version").unlink()
    broken = box.run("check-version.sh", {"K8S_VERSION": NEW})
    assert broken.rc != 0, _explain(broken)
    assert "cannot read the cluster's kubernetesVersion from the kubeadm-config ConfigMap" in broken.stderr, broken.stderr
    assert len(broken.called("kubectl")) == 5, f"the read must be retried 5 times: {broken.calls}"


def test_check_version_rejects_a_malformed_version(box: Sandbox) -> None:
    result = box.run("check-version.sh", {"K8S_VERSION": "v1.37"})
    assert result.rc != 0 and "K8S_VERSION must be a Kubernetes version like 1.36.4, not 'v1.37'" in result.stderr, _explain(result)
    assert not result.calls, result.calls


# --- upgrade-node ----------------------------------------------------------------------------


def _joined(sandbox: Sandbox, name: str, role: str, version: str = OLD) -> None:
    """A node in the cluster at ``version`` (packages and, for control planes, admin.conf)."""
    _write(sandbox, "/etc/kubernetes/kubelet.conf", "joined\n")
    if role != "worker":
        _write(sandbox, "/etc/kubernetes/admin.conf", "admin\n")
    for package in ("kubelet", "kubeadm", "kubectl"):
        _state(sandbox, f"dpkg/{package}", f"{version}-1.1\n")
    _state(sandbox, "cluster-version", version + "\n")
    _add_node(sandbox, name)


def _upgrade(sandbox: Sandbox, name: str, role: str, **extra: str) -> Result:
    return sandbox.run("upgrade-node.sh", {"NODE_NAME": name, "K8S_VERSION": NEW, "UPGRADE_ROLE": role, **extra})


def _versions(sandbox: Sandbox) -> dict[str, str]:
    return {p: (sandbox.state / "dpkg" / p).read_text().strip() for p in ("kubelet", "kubeadm", "kubectl")}


def test_upgrade_other_control_plane_uses_upgrade_node_and_drains_itself(box: Sandbox) -> None:
    _joined(box, "cp-1", "control-plane")
    _state(box, "cluster-version", NEW + "\n")  # the first control plane is done
    result = _upgrade(box, "cp-1", "control-plane")
    assert result.rc == 0, _explain(result)
    admin = box.path("/etc/kubernetes/admin.conf")
    assert not result.called("kubeadm upgrade apply"), f"only the first control plane runs upgrade apply: {result.calls}"
    _assert_order(
        result,
        ("apt-get", "install", f"kubeadm={NEW}-*"),
        ("kubeadm upgrade node",),
        (f"kubectl --kubeconfig {admin} drain cp-1 --ignore-daemonsets --delete-emptydir-data --timeout=300s",),
        ("apt-get", "install", f"kubelet={NEW}-*"),
        ("systemctl restart kubelet",),
        (f"kubectl --kubeconfig {admin} uncordon cp-1",),
    )


@pytest.mark.parametrize(("name", "role"), [("cp-0", "first-control-plane"), ("cp-1", "control-plane"), ("w-0", "worker")])
def test_upgrade_of_a_node_at_the_target_does_nothing(box: Sandbox, name: str, role: str) -> None:
    _joined(box, name, role, version=NEW)
    result = _upgrade(box, name, role)
    assert result.rc == 0, _explain(result)
    for forbidden in ("apt-get", "apt-mark", "kubeadm", "systemctl", "kubectl drain", "kubectl --kubeconfig"):
        calls = [c for c in result.calls if c.startswith(forbidden) and "configmap" not in c]
        assert not calls, f"an up-to-date {role} still ran {forbidden}: {calls}"
    assert f"{name} is already at {NEW}" in result.stderr, result.stderr


def test_upgrade_first_control_plane_applies_when_only_the_cluster_lags(box: Sandbox) -> None:
    _joined(box, "cp-0", "first-control-plane", version=NEW)
    _state(box, "cluster-version", OLD + "\n")
    result = _upgrade(box, "cp-0", "first-control-plane")
    assert result.rc == 0, _explain(result)
    assert f"kubeadm upgrade apply v{NEW} --yes" in result.calls, f"a cluster behind its packages was not upgraded: {result.calls}"
    assert not [c for c in result.called("apt-get") if "install" in c], f"packages at the target were reinstalled: {result.calls}"
    assert f"the cluster is at {OLD}: applying the upgrade" in result.stderr, result.stderr


def test_upgrade_that_stopped_half_way_is_resumed(box: Sandbox) -> None:
    """Packages installed, then the uncordon failed: the rerun must not take the node for done."""
    _joined(box, "cp-1", "control-plane")
    _state(box, "cluster-version", NEW + "\n")
    _add_node(box, "cp-1", kubelet=f"v{OLD}")
    failed = _upgrade(box, "cp-1", "control-plane", KC_READY_ATTEMPTS="1")
    assert failed.rc != 0 and all(v.startswith(NEW) for v in _versions(box).values()), _explain(failed)
    assert box.path("/var/lib/kubeadm-cluster/upgrading-to").read_text() == NEW + "\n", "no in-progress marker"

    _add_node(box, "cp-1")
    result = _upgrade(box, "cp-1", "control-plane")
    assert result.rc == 0, _explain(result)
    assert f"an upgrade of cp-1 to {NEW} did not finish: resuming it" in result.stderr, result.stderr
    assert not [c for c in result.called("apt-get") if "install" in c], f"packages at the target were reinstalled: {result.calls}"
    _assert_order(result, ("kubeadm upgrade node",), ("systemctl restart kubelet",), ("uncordon cp-1",))
    assert not box.path("/var/lib/kubeadm-cluster/upgrading-to").exists(), "the marker survived a finished upgrade"

    done = _upgrade(box, "cp-1", "control-plane")
    assert done.rc == 0 and f"cp-1 is already at {NEW}" in done.stderr and not done.called("kubeadm"), _explain(done)


@pytest.mark.parametrize("role", ["first-control-plane", "control-plane", "worker"])
def test_upgrade_of_a_node_that_has_not_joined_does_nothing(box: Sandbox, role: str) -> None:
    result = _upgrade(box, "w-9", role)
    assert result.rc == 0, _explain(result)
    assert not result.calls, f"upgrade-node ran {result.calls} on a node that has not joined"
    assert f"w-9 has not joined the cluster yet" in result.stderr and f"node prep installs {NEW}" in result.stderr, result.stderr


def test_upgrade_drain_timeout_of_a_control_plane_is_a_warning(box: Sandbox) -> None:
    _joined(box, "cp-0", "first-control-plane")
    result = _upgrade(box, "cp-0", "first-control-plane", STUB_DRAIN_RC="1")
    assert result.rc == 0, f"a drain timeout (single-node cluster) failed the upgrade:\n{_explain(result)}"
    assert "WARNING: the drain of cp-0 did not finish within 300s" in result.stderr, result.stderr
    assert result.called("systemctl restart kubelet"), "the upgrade stopped after the drain timeout"


def test_upgrade_stops_when_upgrade_apply_fails(box: Sandbox) -> None:
    _joined(box, "cp-0", "first-control-plane")
    result = _upgrade(box, "cp-0", "first-control-plane", STUB_APPLY_RC="1")
    assert result.rc != 0, _explain(result)
    assert f"kubeadm upgrade apply v{NEW} failed on cp-0" in result.stderr, result.stderr
    assert not [c for c in result.calls if " drain " in c], f"drained after a failed upgrade apply: {result.calls}"
    assert _versions(box)["kubelet"].startswith(OLD), "kubelet upgraded after a failed upgrade apply"


def test_upgrade_waits_for_the_new_kubelet_version_then_fails_clearly(box: Sandbox) -> None:
    _joined(box, "cp-1", "control-plane")
    _add_node(box, "cp-1", kubelet=f"v{OLD}")
    result = _upgrade(box, "cp-1", "control-plane", KC_READY_ATTEMPTS="3")
    assert result.rc != 0, _explain(result)
    assert len([c for c in result.calls if "kubeletVersion" in c]) == 3, f"expected 3 checks: {result.calls}"
    assert f"node cp-1 does not report kubelet v{NEW} after 3 checks" in result.stderr, result.stderr


def test_upgrade_rejects_an_unknown_role(box: Sandbox) -> None:
    result = _upgrade(box, "cp-0", "master")
    assert result.rc != 0 and "UPGRADE_ROLE must be first-control-plane, control-plane or worker, not 'master'" in result.stderr, _explain(result)
    assert not result.calls, result.calls


# --- upgrade-drain ---------------------------------------------------------------------------


def _drain(sandbox: Sandbox, action: str, name: str = "w-0", **extra: str) -> Result:
    return sandbox.run("upgrade-drain.sh", {"ACTION": action, "NODE_NAME": name, "K8S_VERSION": NEW, **extra})


def test_drain_skips_a_node_already_at_the_target(box: Sandbox) -> None:
    _initialised(box, NEW)
    _add_node(box, "w-0", kubelet=f"v{NEW}")
    result = _drain(box, "drain")
    assert result.rc == 0, _explain(result)
    assert not [c for c in result.calls if c.startswith(("kubectl annotate", "kubectl drain"))], result.calls
    assert f"node w-0 already runs kubelet v{NEW}: not draining it" in result.stderr, result.stderr


def test_drain_timeout_is_a_warning(box: Sandbox) -> None:
    _initialised(box, NEW)
    _add_node(box, "w-0", kubelet=f"v{OLD}")
    result = _drain(box, "drain", STUB_DRAIN_RC="1")
    assert result.rc == 0, _explain(result)
    assert "WARNING: the drain of w-0 did not finish within 300s: upgrading it anyway (it is cordoned)" in result.stderr, result.stderr


def test_the_drain_timeout_is_read_from_the_settings_configmap_when_it_runs(box: Sandbox) -> None:
    """upgrade.drainTimeout is no input of any step (a change of it runs nothing on the nodes):
    the drain reads it from the kube-system ConfigMap the program keeps (SETTINGS_CONFIGMAP)."""
    _initialised(box, NEW)
    _add_node(box, "w-0", kubelet=f"v{OLD}")
    _state(box, "settings-drainTimeout", "7m")
    result = _drain(box, "drain")
    assert result.rc == 0, _explain(result)
    assert result.called("kubectl drain w-0") and "--timeout=7m" in result.called("kubectl drain w-0")[0], (
        f"the drain did not use the ConfigMap's drainTimeout: {result.calls}"
    )
    assert any("get configmap kubeadm-cluster-settings" in call for call in result.calls), result.calls


def test_a_bad_drain_timeout_in_the_configmap_stops_the_drain(box: Sandbox) -> None:
    _initialised(box, NEW)
    _add_node(box, "w-0", kubelet=f"v{OLD}")
    _state(box, "settings-drainTimeout", "forever")
    result = _drain(box, "drain")
    assert result.rc != 0 and "DRAIN_TIMEOUT must be a duration like 300s or 5m, not 'forever'" in result.stderr, _explain(result)
    assert not result.called("kubectl drain"), result.calls


@pytest.mark.parametrize("action", ["drain", "uncordon"])
def test_drain_and_uncordon_skip_a_missing_node(box: Sandbox, action: str) -> None:
    _initialised(box, NEW)
    result = _drain(box, action, name="w-7")
    assert result.rc == 0, _explain(result)
    assert f"node w-7 is not in the cluster: nothing to {action}" in result.stderr, result.stderr
    assert result.calls == ["kubectl get node w-7 --ignore-not-found -o name"], result.calls


def test_uncordon_waits_for_the_new_kubelet_and_removes_the_annotation(box: Sandbox) -> None:
    _initialised(box, NEW)
    node_state = _add_node(box, "w-0", kubelet=f"v{OLD} v{OLD} v{NEW}", annotation=f"v{NEW}")
    (node_state / "cordoned").touch()
    result = _drain(box, "uncordon")
    assert result.rc == 0, _explain(result)
    checks = [c for c in result.calls if "kubeletVersion" in c]
    assert len(checks) == 3, f"expected two checks at v{OLD} then one at v{NEW}: {result.calls}"
    _assert_order(
        result,
        ("kubeletVersion",),
        ("kubectl get node w-0 -o jsonpath={.metadata.annotations.kubeadm-cluster\\.io/upgrading-to}",),
        ("kubectl uncordon w-0",),
        (f"kubectl annotate node w-0 {ANNOTATION}-",),
    )
    assert _at(result, "kubectl uncordon") > max(i for i, c in enumerate(result.calls) if "kubeletVersion" in c)
    assert not (node_state / "cordoned").exists() and not (node_state / "annotation").exists()


def test_uncordon_leaves_a_node_it_did_not_cordon_alone(box: Sandbox) -> None:
    _initialised(box, NEW)
    node_state = _add_node(box, "w-0", kubelet=f"v{NEW}")
    (node_state / "cordoned").touch()  # an admin's cordon
    result = _drain(box, "uncordon")
    assert result.rc == 0, _explain(result)
    assert not result.called("kubectl uncordon") and not result.called("kubectl annotate"), result.calls
    assert (node_state / "cordoned").exists()
    assert f"no {ANNOTATION} annotation): leaving its schedulability alone" in result.stderr, result.stderr


def test_uncordon_fails_clearly_when_the_kubelet_never_gets_there(box: Sandbox) -> None:
    _initialised(box, NEW)
    _add_node(box, "w-0", kubelet=f"v{OLD}", annotation=f"v{NEW}")
    result = _drain(box, "uncordon", KC_READY_ATTEMPTS="4")
    assert result.rc != 0, _explain(result)
    assert len([c for c in result.calls if "kubeletVersion" in c]) == 4, result.calls
    assert f"node w-0 does not report kubelet v{NEW} after 4 checks: not uncordoning it" in result.stderr, result.stderr
    assert not result.called("kubectl uncordon"), result.calls


def test_drain_rejects_an_unknown_action(box: Sandbox) -> None:
    result = _drain(box, "cordon")
    assert result.rc != 0 and "ACTION must be drain or uncordon, not 'cordon'" in result.stderr, _explain(result)
    assert not result.calls, result.calls


# --- remove-control-plane ------------------------------------------------------------------------

CP_IPS = {"cp-0": "10.0.0.2", "cp-1": "10.0.0.3", "cp-2": "10.0.0.4", "cp-3": "10.0.0.5", "cp-4": "10.0.0.6"}


def _member_id(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:16]


def _etcd(sandbox: Sandbox, members: list[str], unhealthy: tuple[str, ...] = ()) -> None:
    _write(sandbox, "/etc/kubernetes/admin.conf", "admin\n")
    _state(sandbox, "pods/etcd-cp-0", "running\n")
    lines = [f"{_member_id(m)}, started, {m}, https://{CP_IPS[m]}:2380, https://{CP_IPS[m]}:2379, false" for m in members]
    _state(sandbox, "etcd-members", "\n".join(lines) + "\n")
    health = [
        f"https://{CP_IPS[m]}:2379 is unhealthy: failed to commit proposal: context deadline exceeded" if m in unhealthy
        else f"https://{CP_IPS[m]}:2379 is healthy: successfully committed proposal: took = 2.1ms"
        for m in members
    ]
    _state(sandbox, "etcd-health", "\n".join(health) + "\n")
    for m in members:
        _add_node(sandbox, m, kubelet=f"v{OLD}")


def _remove(sandbox: Sandbox, name: str = "cp-2", **extra: str) -> Result:
    return sandbox.run("remove-control-plane.sh", {"NODE_NAME": name, "FIRST_NODE_NAME": "cp-0", **extra})


def _members(sandbox: Sandbox) -> list[str]:
    return [line.split(", ")[2] for line in (sandbox.state / "etcd-members").read_text().splitlines() if line]


@pytest.mark.parametrize(
    ("members", "unhealthy"),
    [
        (["cp-0", "cp-1", "cp-2"], ()),
        (["cp-0", "cp-1", "cp-2"], ("cp-2",)),  # the leaving member itself is down: 2 of 2 healthy
        (["cp-0", "cp-1", "cp-2", "cp-3", "cp-4"], ("cp-4",)),  # 4 left, quorum 3, 3 healthy
        (["cp-0", "cp-2"], ()),  # 1 left, quorum 1
    ],
)
def test_remove_control_plane_removes_the_member_after_the_quorum_check(
    box: Sandbox, members: list[str], unhealthy: tuple[str, ...]
) -> None:
    _etcd(box, members, unhealthy)
    result = _remove(box, DRAIN_TIMEOUT="60s")
    assert result.rc == 0, _explain(result)
    exec_prefix = f"kubectl -n kube-system exec etcd-cp-0 -- {ETCDCTL}"
    _assert_order(
        result,
        ("flock 9",),
        ("kubectl get --raw=/readyz",),
        (f"{exec_prefix} member list -w simple",),
        (f"{exec_prefix} endpoint health --cluster -w simple",),
        ("kubectl drain cp-2 --ignore-daemonsets --delete-emptydir-data --force --timeout=60s",),
        (f"{exec_prefix} member remove {_member_id('cp-2')}",),
        ("kubectl delete node cp-2 --ignore-not-found",),
    )
    assert _members(box) == [m for m in members if m != "cp-2"], f"etcd members left: {_members(box)}"
    assert not (box.state / "nodes" / "cp-2").exists(), "the Node was not deleted"
    assert box.path("/run/kubeadm-cluster-membership.lock").exists(), "the membership lock file was not created"
    assert result.stdout == "", result.stdout


@pytest.mark.parametrize(
    ("members", "unhealthy", "numbers"),
    [
        (["cp-0", "cp-1", "cp-2"], ("cp-1",), "etcd would keep 2 members and needs 2 healthy for quorum, but only 1 are healthy"),
        (["cp-0", "cp-1", "cp-2", "cp-3", "cp-4"], ("cp-1", "cp-3"),
         "etcd would keep 4 members and needs 3 healthy for quorum, but only 2 are healthy"),
    ],
)
def test_remove_control_plane_refuses_to_break_quorum(
    box: Sandbox, members: list[str], unhealthy: tuple[str, ...], numbers: str
) -> None:
    _etcd(box, members, unhealthy)
    result = _remove(box)
    assert result.rc != 0, f"removing cp-2 with {unhealthy} down would break quorum but passed:\n{_explain(result)}"
    message = (f"ERROR: refusing to remove control plane cp-2: {numbers}; fix the unhealthy members first "
               "(etcdctl endpoint health --cluster)")
    assert message in result.stderr, f"expected {message!r}:\n{result.stderr}"
    assert _members(box) == members, "a member was removed although quorum would break"
    assert not [c for c in result.calls if c.startswith(("kubectl drain", "kubectl delete")) or "member remove" in c], result.calls


def test_remove_control_plane_skips_a_member_that_is_gone(box: Sandbox) -> None:
    _etcd(box, ["cp-0", "cp-1"])
    _add_node(box, "cp-2")
    result = _remove(box)
    assert result.rc == 0, _explain(result)
    assert "cp-2 is not an etcd member (members: cp-0 cp-1): skipping the member removal" in result.stderr, result.stderr
    assert not [c for c in result.calls if "endpoint health" in c or "member remove" in c], result.calls
    _assert_order(result, ("member list",), ("kubectl drain cp-2",), ("kubectl delete node cp-2 --ignore-not-found",))
    assert _members(box) == ["cp-0", "cp-1"]


def test_remove_control_plane_of_a_node_that_is_gone_entirely(box: Sandbox) -> None:
    _etcd(box, ["cp-0", "cp-1"])
    result = _remove(box)
    assert result.rc == 0, _explain(result)
    assert "node cp-2 is not in the cluster: nothing to drain" in result.stderr, result.stderr
    assert not result.called("kubectl drain"), result.calls


@pytest.mark.parametrize("why", ["api down", "no kubeconfig"])
def test_remove_control_plane_tolerates_an_unreachable_api(box: Sandbox, why: str) -> None:
    _etcd(box, ["cp-0", "cp-1", "cp-2"])
    if why == "no kubeconfig":
        box.path("/etc/kubernetes/admin.conf").unlink()
    result = _remove(box, **({"STUB_API_DOWN": "1"} if why == "api down" else {}))
    assert result.rc == 0, f"a dead cluster ({why}) blocked the removal of a machine:\n{_explain(result)}"
    assert "WARNING: cannot reach the API server: etcd member of cp-2 not removed" in result.stderr, result.stderr
    assert not [c for c in result.calls if " exec " in c or c.startswith(("kubectl drain", "kubectl delete"))], result.calls
    assert _members(box) == ["cp-0", "cp-1", "cp-2"]


def test_remove_control_plane_refuses_the_first_control_plane(box: Sandbox) -> None:
    _etcd(box, ["cp-0", "cp-1"])
    result = _remove(box, name="cp-0")
    assert result.rc != 0, _explain(result)
    assert "ERROR: refusing to remove control plane cp-0: it is the first control plane" in result.stderr, result.stderr
    assert not result.calls, f"commands ran before the refusal: {result.calls}"


def test_remove_control_plane_refuses_the_only_member(box: Sandbox) -> None:
    _etcd(box, ["cp-2"])
    result = _remove(box)
    assert result.rc != 0, _explain(result)
    assert "ERROR: refusing to remove control plane cp-2: it is the only etcd member" in result.stderr, result.stderr
    assert not [c for c in result.calls if "member remove" in c or c.startswith("kubectl delete")], result.calls


# --- the real delivery: a bundle on stdin ----------------------------------------------------------


def test_remove_control_plane_bundle_runs_as_bash_c(box: Sandbox) -> None:
    """The leave step runs `sudo bash -c <bundle>`."""
    _etcd(box, ["cp-0", "cp-1", "cp-2"])
    bundle = render_bundle("remove-control-plane.sh", {"NODE_NAME": "cp-2", "FIRST_NODE_NAME": "cp-0", "DRAIN_TIMEOUT": "300s"})
    result = box.run([], command=bundle)
    assert result.rc == 0, _explain(result)
    assert _members(box) == ["cp-0", "cp-1"], _explain(result)
