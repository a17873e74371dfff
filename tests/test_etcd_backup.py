"""etcd backups and restore, proven on a real etcd (Debian unstable's etcd-server/etcd-client).

The node scripts run in the sandbox of tests/test_scripts.py (PATH holds only stubs and a few
real tools). What kubeadm's etcd static pod would be is emulated by a ``crictl`` stub whose
``exec`` runs the *real* etcdctl/etcdutl with the pod's view of the node: the pod's mounts
(/etc/kubernetes/pki/etcd, /var/lib/etcd) are the sandbox's same paths, and the member's
``https://127.0.0.1:2379`` is a real etcd this test starts on a free port, with TLS certificates
made by openssl in kubeadm's layout (server.crt also serves as etcdctl's client certificate).
``ctr images mount`` (how etcd-restore.sh finds etcdutl in the etcd image) is a stub that mounts a
directory holding the real etcdutl.

The snapshot holds keys put into the real etcd; the restore brings them back (a second real etcd
started on the restored data directory reads them), with the revision bumped; a corrupt, tampered
or missing backup fails with a message naming the problem and changes nothing on the node.

Debian's etcd is 3.5 while kubeadm 1.36 runs 3.6.8: the command lines the scripts pass are also
held against etcd v3.6.8's sources (tests/upstream/cli).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shlex
import shutil
import socket
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from components.bootstrap import kubeadm_config
from components.config import parse_cluster_config
from components.nodes import plan_nodes
from tests.test_scripts import SCRIPTS, Sandbox, _explain
from tests.test_upstream_cli import _etcd_flag, _logical_lines, parse
from tests.upstream_artifacts import facts, sources
from tools.debian_packages import DebianPackageError, cached_package, fetch_package

#: Real tools these scripts use beyond tests/test_scripts.py's list.
EXTRA_TOOLS = ("find", "xargs", "date", "flock", "base64", "openssl", "chmod", "tee")
#: The node name and address of the first control plane in the kubeadm config the restore reads.
NODE = "dev-cp-0"
NODE_IP = "10.240.0.2"


def _debian_bin(package: str, binary: str) -> Path:
    """A binary of Debian unstable's ``package`` (cached; fetched when not yet). Skipped, with the
    command that fetches it, when it cannot be had (.ci/run fetches etcd-server and etcd-client)."""
    root = cached_package(package)
    if root is None:
        try:
            root = fetch_package(package)
        except DebianPackageError as error:
            pytest.skip(f"Debian's {package} is not available ({error}); fetch it with "
                        f"`venv/bin/python -m tools.debian_packages etcd-server etcd-client`")
    path = root / "usr" / "bin" / binary
    assert path.is_file(), f"Debian's {package} has no usr/bin/{binary} (in {root})"
    return path


@pytest.fixture(scope="module")
def etcd_bins() -> dict[str, Path]:
    return {
        "etcd": _debian_bin("etcd-server", "etcd"),
        "etcdutl": _debian_bin("etcd-server", "etcdutl"),
        "etcdctl": _debian_bin("etcd-client", "etcdctl"),
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_pki(pki: Path) -> None:
    """kubeadm's CA files and etcd certificates (real ones: etcd serves TLS with them)."""
    (pki / "etcd").mkdir(parents=True, exist_ok=True)
    for ca, cn in (("ca", "kubernetes"), ("front-proxy-ca", "front-proxy-ca"), ("etcd/ca", "etcd-ca")):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650", "-subj", f"/CN={cn}",
                 "-keyout", f"{ca}.key", "-out", f"{ca}.crt", cwd=pki)
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=pki)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)
    ext = pki / "etcd" / "server.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={NODE}", "-keyout", "etcd/server.key",
             "-out", "etcd/server.csr", cwd=pki)
    _openssl("x509", "-req", "-in", "etcd/server.csr", "-CA", "etcd/ca.crt", "-CAkey", "etcd/ca.key",
             "-CAcreateserial", "-days", "365", "-extfile", "etcd/server.ext", "-out", "etcd/server.crt", cwd=pki)
    for key in pki.rglob("*.key"):
        key.chmod(0o600)


class Etcd:
    """A real etcd serving TLS on a free localhost port, its data in ``data_dir``."""

    def __init__(self, bins: dict[str, Path], data_dir: Path, pki: Path, log: Path) -> None:
        self.bins, self.pki = bins, pki
        self.client = f"https://127.0.0.1:{_free_port()}"
        peer = f"http://127.0.0.1:{_free_port()}"
        self.proc = subprocess.Popen(
            [str(bins["etcd"]), "--name", NODE, "--data-dir", str(data_dir),
             "--listen-client-urls", self.client, "--advertise-client-urls", self.client,
             "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
             "--initial-cluster", f"{NODE}={peer}",
             "--cert-file", str(pki / "etcd/server.crt"), "--key-file", str(pki / "etcd/server.key"),
             "--trusted-ca-file", str(pki / "etcd/ca.crt"), "--client-cert-auth"],
            stdout=open(log, "ab"), stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            if self.ctl("endpoint", "health", check=False).returncode == 0:
                return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"the real etcd did not start (log {log}):\n{log.read_text()[-3000:]}")
            time.sleep(0.2)

    def ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.bins["etcdctl"]), f"--endpoints={self.client}", f"--cacert={self.pki / 'etcd/ca.crt'}",
             f"--cert={self.pki / 'etcd/server.crt'}", f"--key={self.pki / 'etcd/server.key'}", *args],
            capture_output=True, text=True, timeout=30,
        )
        if check:
            assert result.returncode == 0, f"etcdctl {' '.join(args)}: {result.stderr}"
        return result

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


#: kubeadm's etcd static pod as crictl sees it: `ps` finds its container while it runs; `exec`
#: runs the real tool with the pod's paths (kubeadm's hostPath mounts keep the node's paths) and
#: the member's client URL mapped to the test's etcd.
CRICTL = r"""case $1 in
  ps) [[ -f $STUB_STATE/etcd-container ]] && cat "$STUB_STATE/etcd-container"; exit 0 ;;
  pull) exit 0 ;;
  exec)
    shift 2; tool=$1; shift; args=()
    for a in "$@"; do
      a=${a//https:\/\/127.0.0.1:2379/$STUB_ETCD_CLIENT}
      a=${a//\/etc\/kubernetes\/pki/$KC_ROOT\/etc\/kubernetes\/pki}
      a=${a//\/var\/lib\/etcd/$KC_ROOT\/var\/lib\/etcd}
      args+=("$a")
    done
    exec "$STUB_ETCD_BIN/$tool" "${args[@]}" ;;
  *) echo "unexpected crictl call: $*" >&2; exit 64 ;;
esac"""
#: containerd's ctr: `images mount IMAGE DIR` shows the image's rootfs (here: the real etcdutl).
CTR = r"""case "$3 $4" in
  "images mount") mkdir -p "$6/usr/local/bin"; ln -sf "$STUB_ETCD_BIN/etcdutl" "$6/usr/local/bin/etcdutl" ;;
  "images unmount") rm -rf -- "${@: -1}/usr" ;;
  *) echo "unexpected ctr call: $*" >&2; exit 64 ;;
esac"""
#: kubeadm for the restore: the images of the configuration, reset, init on the restored data.
KUBEADM = r"""k=$KC_ROOT/etc/kubernetes
case "$1 ${2:-}" in
  "config images")
    echo "registry.k8s.io/kube-apiserver:v1.36.4"; echo "registry.k8s.io/etcd:3.6.8-0"; echo "registry.k8s.io/pause:3.10.2" ;;
  "reset "*) rm -rf "$k/manifests" "$k/admin.conf" "$k/pki" "$KC_ROOT/var/lib/etcd" ;;
  "init "*)
    { [[ -d $KC_ROOT/var/lib/etcd/member ]] && echo "data-dir restored"; [[ -f $k/pki/ca.key ]] && echo "ca restored"; } >"$STUB_STATE/init-saw"
    mkdir -p "$k/manifests"; echo "apiVersion: v1" >"$k/admin.conf"; echo "- --data-dir=/var/lib/etcd" >"$k/manifests/etcd.yaml" ;;
  *) echo "unexpected kubeadm call: $*" >&2; exit 64 ;;
esac"""


def control_plane_box(tmp: Path, bins: dict[str, Path]) -> Sandbox:
    box = Sandbox(tmp)
    for tool in EXTRA_TOOLS:
        real = shutil.which(tool)
        assert real, f"the test needs the real tool {tool}"
        target = box.bin / tool
        if target.exists() or target.is_symlink():
            target.unlink()
        target.symlink_to(os.path.realpath(real))
    box._stub("crictl", CRICTL)
    box._stub("ctr", CTR)
    box._stub("kubeadm", KUBEADM)
    etcd_bin = tmp / "etcd-bin"
    etcd_bin.mkdir()
    for name, path in bins.items():
        (etcd_bin / name).symlink_to(path)
    box.env.update({"STUB_ETCD_BIN": str(etcd_bin), "KC_ETCD_WAIT": "2"})
    return box


def write_node(box: Sandbox, *, upload: str = "", keep: int = 24) -> None:
    """What a kubeadm control plane holds for the snapshot: its etcd manifest, the PKI, the
    maintenance env file (as install-maintenance.sh writes it)."""
    manifest = box.path("/etc/kubernetes/manifests/etcd.yaml")
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text("spec:\n  containers:\n  - command:\n    - etcd\n    - --data-dir=/var/lib/etcd\n"
                        "    image: registry.k8s.io/etcd:3.6.8-0\n")
    make_pki(box.path("/etc/kubernetes/pki"))
    env = box.path("/etc/kubeadm-cluster/maintenance.env")
    env.parent.mkdir(parents=True, exist_ok=True)
    env.write_text(f"BACKUP_NODE={NODE}\nBACKUP_DIR=/var/backups/kubeadm-cluster/etcd\nBACKUP_KEEP={keep}\n"
                   f"BACKUP_UPLOAD={upload}\nRENEW_BEFORE_DAYS=30\n")


KEYS = {"/registry/secrets/default/db-password": "s3cret", "/registry/configmaps/default/app": "v1", "/kc/test": "ok"}


@pytest.fixture
def running(tmp_path: Path, etcd_bins: dict[str, Path]) -> Iterator[tuple[Sandbox, Etcd]]:
    """A control plane whose etcd (real) runs and holds KEYS."""
    box = control_plane_box(tmp_path, etcd_bins)
    write_node(box)
    data = box.path("/var/lib/etcd")
    etcd = Etcd(etcd_bins, data, box.path("/etc/kubernetes/pki"), tmp_path / "etcd.log")
    try:
        for key, value in KEYS.items():
            etcd.ctl("put", key, value)
        (box.state / "etcd-container").write_text("3f1c0ffee5e1\n")
        box.env["STUB_ETCD_CLIENT"] = etcd.client
        yield box, etcd
    finally:
        etcd.stop()


def backups(box: Sandbox) -> list[Path]:
    return sorted(box.path("/var/backups/kubeadm-cluster/etcd").glob("etcd-*.tar.gz"))


def take_backup(box: Sandbox, **env: str) -> Path:
    result = box.run("etcd-snapshot.sh", env)
    assert result.rc == 0, _explain(result)
    assert result.stdout == "", f"etcd-snapshot.sh printed on stdout: {result.stdout!r}"
    found = backups(box)
    assert found, f"no backup written:\n{_explain(result)}"
    return found[-1]


def test_the_snapshot_is_taken_in_the_etcd_pod_with_kubeadms_certificates(running: tuple[Sandbox, Etcd]) -> None:
    box, _ = running
    result = box.run("etcd-snapshot.sh", {"BACKUP_REASON": "scheduled"})
    assert result.rc == 0, _explain(result)
    (call,) = [c for c in result.calls if c.startswith("crictl exec")]
    assert call == ("crictl exec 3f1c0ffee5e1 etcdctl --endpoints=https://127.0.0.1:2379 "
                    "--cacert=/etc/kubernetes/pki/etcd/ca.crt --cert=/etc/kubernetes/pki/etcd/server.crt "
                    "--key=/etc/kubernetes/pki/etcd/server.key snapshot save /var/lib/etcd/kubeadm-cluster-snapshot.db"), call
    (backup,) = backups(box)
    assert backup.name.startswith(f"etcd-{NODE}-") and backup.name.endswith("-scheduled.tar.gz"), backup.name
    assert backup.stat().st_mode & 0o777 == 0o600, oct(backup.stat().st_mode)
    assert backup.parent.stat().st_mode & 0o777 == 0o700
    with tarfile.open(backup) as tar:
        names = sorted(m.name for m in tar.getmembers() if m.isfile())
        info = tar.extractfile("backup-info").read().decode()  # type: ignore[union-attr]
    assert names == ["SHA256SUMS", "backup-info", "etcd-snapshot.db", "pki/ca.crt", "pki/ca.key", "pki/etcd/ca.crt",
                     "pki/etcd/ca.key", "pki/front-proxy-ca.crt", "pki/front-proxy-ca.key", "pki/sa.key", "pki/sa.pub"], names
    assert f"node={NODE}" in info and "reason=scheduled" in info and "etcd_image=registry.k8s.io/etcd:3.6.8-0" in info
    assert not box.path("/var/lib/etcd/kubeadm-cluster-snapshot.db").exists(), "the snapshot was left in etcd's data dir"
    leftovers = [p.name for p in backup.parent.iterdir() if p.name.startswith(".")]
    assert not leftovers, f"work files left in the backup directory: {leftovers}"


def test_a_good_backup_restores_the_same_keys_on_a_fresh_control_plane(
    running: tuple[Sandbox, Etcd], etcd_bins: dict[str, Path], tmp_path: Path
) -> None:
    box, etcd = running
    backup = take_backup(box, BACKUP_REASON="pre-upgrade")
    revision = json.loads(etcd.ctl("get", "/kc/test", "-w", "json").stdout)["header"]["revision"]
    etcd.stop()

    fresh = control_plane_box(tmp_path / "fresh", etcd_bins)
    config = _init_config()
    fresh.path("/etc/kubernetes").mkdir(parents=True)
    fresh.path("/etc/kubernetes/kubeadm-config.yaml").write_text(config)
    copy = fresh.path("/root/backup.tar.gz")
    copy.parent.mkdir(parents=True)
    shutil.copy(backup, copy)
    result = fresh.run("etcd-restore.sh", {"BACKUP_FILE": str(copy)})
    assert result.rc == 0, _explain(result)
    # The etcdutl of kubeadm's etcd image (pulled, mounted), as the member kubeadm's manifest makes.
    assert "crictl pull registry.k8s.io/etcd:3.6.8-0" in result.calls, result.calls
    init = [c for c in result.calls if c.startswith("kubeadm init")]
    assert init == ["kubeadm init --config " + str(fresh.path("/etc/kubernetes/kubeadm-config.yaml"))
                    + " --ignore-preflight-errors=DirAvailable--var-lib-etcd --skip-token-print"], result.calls
    assert (fresh.state / "init-saw").read_text().split("\n")[:2] == ["data-dir restored", "ca restored"], (
        "kubeadm init must run with the restored data directory and CA in place")
    pki = box.path("/etc/kubernetes/pki")
    for name in ("ca.crt", "ca.key", "sa.key", "front-proxy-ca.key", "etcd/ca.crt", "etcd/ca.key"):
        restored = fresh.path(f"/etc/kubernetes/pki/{name}")
        assert restored.read_bytes() == (pki / name).read_bytes(), f"{name} is not the backup's"
        if name.endswith(".key"):
            assert restored.stat().st_mode & 0o777 == 0o600, f"{name}: {oct(restored.stat().st_mode)}"
    assert not list(fresh.path("/var/lib").glob(".kubeadm-cluster-restore.*")), "the work directory was left behind"

    # A real etcd on the restored directory serves the same keys, at a bumped revision.
    fresh_pki = tmp_path / "pki-for-check"
    make_pki(fresh_pki)
    restored = Etcd(etcd_bins, fresh.path("/var/lib/etcd"), fresh_pki, tmp_path / "restored.log")
    try:
        for key, value in KEYS.items():
            got = restored.ctl("get", key, "--print-value-only").stdout.strip()
            assert got == value, f"restored etcd: {key} is {got!r}, not {value!r}"
        members = restored.ctl("member", "list", "-w", "simple").stdout
        assert f", {NODE}, https://{NODE_IP}:2380," in members, f"the restored member is not kubeadm's: {members}"
        new_revision = json.loads(restored.ctl("get", "/kc/test", "-w", "json").stdout)["header"]["revision"]
        assert new_revision > revision + 10**9 - 1, f"revision {new_revision} not bumped past {revision}"
    finally:
        restored.stop()


def test_a_machine_where_kubeadm_init_never_ran_restores_with_the_backups_kubeadm_configuration(
    running: tuple[Sandbox, Etcd], etcd_bins: dict[str, Path], tmp_path: Path
) -> None:
    """The README's restore: `pulumi up --refresh` recreates a lost first control plane and prepares
    it, but its init step already ran (the stack's state says so) and nothing writes the kubeadm
    configuration there. The first control plane's backups carry that configuration (checksummed
    with the rest); the restore uses it, installs it (0600) and runs kubeadm init with it, so the
    cluster comes back with its own CA and nothing in the stack has to be replaced."""
    box, etcd = running
    config = _init_config()
    box.path("/etc/kubernetes/kubeadm-config.yaml").write_text(config)
    backup = take_backup(box, BACKUP_REASON="scheduled")
    with tarfile.open(backup) as tar:
        member = tar.getmember("kubeadm-config.yaml")
        assert member.mode & 0o777 == 0o600, f"the backup's kubeadm configuration is {oct(member.mode)}"
        assert tar.extractfile(member).read().decode() == config  # type: ignore[union-attr]
        sums = tar.extractfile("SHA256SUMS").read().decode()  # type: ignore[union-attr]
    assert "  kubeadm-config.yaml\n" in sums, f"the configuration is not checksummed:\n{sums}"
    etcd.stop()

    fresh = control_plane_box(tmp_path / "fresh", etcd_bins)
    assert not fresh.path("/etc/kubernetes/kubeadm-config.yaml").exists()
    copy = fresh.path("/root/backup.tar.gz")
    copy.parent.mkdir(parents=True)
    shutil.copy(backup, copy)
    result = fresh.run("etcd-restore.sh", {"BACKUP_FILE": str(copy)})
    assert result.rc == 0, _explain(result)
    installed = fresh.path("/etc/kubernetes/kubeadm-config.yaml")
    assert installed.read_text() == config and installed.stat().st_mode & 0o777 == 0o600, oct(installed.stat().st_mode)
    assert [c for c in result.calls if c.startswith("kubeadm init")] == [
        f"kubeadm init --config {installed} --ignore-preflight-errors=DirAvailable--var-lib-etcd --skip-token-print"
    ], result.calls
    assert "using the backup's kubeadm configuration" in result.stderr, result.stderr

    # A backup without it (another control plane's) on such a machine: refused, nothing changed.
    bare = control_plane_box(tmp_path / "bare", etcd_bins)
    other = tmp_path / "other.tar.gz"
    with tarfile.open(backup) as src, tarfile.open(other, "w:gz") as dst:
        for item in src.getmembers():
            if item.name == "kubeadm-config.yaml":
                continue
            data = src.extractfile(item) if item.isfile() else None
            if item.name == "SHA256SUMS" and data is not None:
                body = "".join(l for l in data.read().decode().splitlines(True) if "kubeadm-config.yaml" not in l).encode()
                item.size = len(body)
                dst.addfile(item, io.BytesIO(body))
            else:
                dst.addfile(item, data)
    before = _tree(bare.root)
    refused = bare.run("etcd-restore.sh", {"BACKUP_FILE": str(other)})
    assert refused.rc != 0 and "no kubeadm configuration at" in refused.stderr, _explain(refused)
    assert _tree(bare.root) == before, "a refused restore changed the node"


def _init_config() -> str:
    """The kubeadm configuration kubeadm-init.sh keeps on the first control plane (the program's own)."""
    config = parse_cluster_config({"adminCidrs": '["203.0.113.7/32"]', "rook": '{"enabled": false}'})
    node = next(n for n in plan_nodes(config, "dev") if n.is_first_control_plane)
    assert node.name == NODE
    return kubeadm_config.init_configuration(
        config, node, cluster_name="dev", node_ip=NODE_IP, internal_endpoint=NODE_IP,
        public_endpoint="203.0.113.10", endpoint_name="api.dev.internal", certificate_key=None,
    )


def _tree(root: Path) -> dict[str, str]:
    """Every file under ``root`` with its content hash (what 'nothing changed' compares)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(root.rglob("*")) if not p.is_symlink()}


def _corrupt(good: bytes) -> bytes:
    data = bytearray(good)
    for offset in range(len(data) // 3, len(data) // 3 + 64):
        data[offset] ^= 0xFF
    return bytes(data)


def _tampered(good: bytes, *, update_sums: bool) -> bytes:
    """The backup with bytes of its etcd-snapshot.db changed (SHA256SUMS updated or not)."""
    members: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(good)) as tar:
        for member in tar.getmembers():
            if member.isfile():
                members[member.name] = tar.extractfile(member).read()  # type: ignore[union-attr]
    db = bytearray(members["etcd-snapshot.db"])
    for offset in range(len(db) // 2, len(db) // 2 + 32):
        db[offset] ^= 0xFF  # (zeroing could leave a free page as it was)
    members["etcd-snapshot.db"] = bytes(db)
    if update_sums:
        members["SHA256SUMS"] = "".join(
            f"{hashlib.sha256(members[name]).hexdigest()}  {name}\n" for name in sorted(members) if name != "SHA256SUMS"
        ).encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return out.getvalue()


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "no backup at"),
        ("truncated", "is not a complete etcd backup"),
        ("corrupt", "is not a complete etcd backup"),
        ("tampered", "do not match its SHA256SUMS"),
        ("resummed", "etcdutl refuses the snapshot"),
        ("not-fresh", "is not a fresh control plane"),
    ],
)
def test_a_bad_backup_fails_clearly_and_changes_nothing(
    running: tuple[Sandbox, Etcd], etcd_bins: dict[str, Path], tmp_path: Path, case: str, message: str
) -> None:
    box, etcd = running
    good = take_backup(box).read_bytes()
    etcd.stop()
    fresh = control_plane_box(tmp_path / "fresh", etcd_bins)
    fresh.path("/etc/kubernetes").mkdir(parents=True)
    fresh.path("/etc/kubernetes/kubeadm-config.yaml").write_text(_init_config())
    target = fresh.path("/root/backup.tar.gz")
    target.parent.mkdir(parents=True)
    content = {
        "missing": None, "truncated": good[: len(good) // 2], "corrupt": _corrupt(good),
        "tampered": _tampered(good, update_sums=False), "resummed": _tampered(good, update_sums=True),
        "not-fresh": good,
    }[case]
    if content is not None:
        target.write_bytes(content)
    if case == "not-fresh":
        fresh.path("/etc/kubernetes/admin.conf").write_text("apiVersion: v1\n")
        fresh.path("/var/lib/etcd/member/snap").mkdir(parents=True)
        fresh.path("/var/lib/etcd/member/snap/db").write_text("the current cluster")
    before = _tree(fresh.root)
    result = fresh.run("etcd-restore.sh", {"BACKUP_FILE": str(target)})
    assert result.rc != 0, f"a {case} backup was restored:\n{_explain(result)}"
    assert message in result.stderr, f"{case}: the error does not say {message!r}:\n{result.stderr}"
    assert "Nothing was changed" in result.stderr or case == "missing", result.stderr
    assert _tree(fresh.root) == before, f"a {case} backup changed the node:\n{_explain(result)}"
    assert not [c for c in result.calls if c.startswith(("kubeadm init", "kubeadm reset"))], result.calls


def test_restore_wipe_resets_a_node_that_kubeadm_init_already_built(
    running: tuple[Sandbox, Etcd], etcd_bins: dict[str, Path], tmp_path: Path
) -> None:
    """The replacement machine `pulumi up` initialised with a new, empty cluster: RESTORE_WIPE=1."""
    box, etcd = running
    good = take_backup(box)
    etcd.stop()
    fresh = control_plane_box(tmp_path / "fresh", etcd_bins)
    fresh.path("/etc/kubernetes/manifests").mkdir(parents=True)
    fresh.path("/etc/kubernetes/kubeadm-config.yaml").write_text(_init_config())
    fresh.path("/etc/kubernetes/admin.conf").write_text("apiVersion: v1 # the new empty cluster\n")
    fresh.path("/var/lib/etcd/member").mkdir(parents=True)
    result = fresh.run("etcd-restore.sh", {"BACKUP_FILE": str(good), "RESTORE_WIPE": "1"})
    assert result.rc == 0, _explain(result)
    order = [c.split()[1] for c in result.calls if c.startswith("kubeadm ") and c.split()[1] in ("reset", "init")]
    assert order == ["reset", "init"], result.calls
    # The backup was checked (etcdutl restore into the work directory) before the reset.
    assert result.stderr.index("etcdutl snapshot restore") < result.stderr.index("kubeadm reset -f"), result.stderr


def test_old_backups_are_pruned_per_reason(running: tuple[Sandbox, Etcd]) -> None:
    box, _ = running
    write_node_keep = box.path("/etc/kubeadm-cluster/maintenance.env")
    write_node_keep.write_text(write_node_keep.read_text().replace("BACKUP_KEEP=24", "BACKUP_KEEP=2"))
    folder = box.path("/var/backups/kubeadm-cluster/etcd")
    folder.mkdir(parents=True)
    for stamp in ("20250101T000000Z", "20250102T000000Z", "20250103T000000Z"):
        (folder / f"etcd-{NODE}-{stamp}-scheduled.tar.gz").write_text("old")
    (folder / f"etcd-{NODE}-20250101T000000Z-pre-upgrade.tar.gz").write_text("old upgrade")
    take_backup(box, BACKUP_REASON="scheduled")
    names = sorted(p.name for p in folder.glob("*.tar.gz"))
    scheduled = [n for n in names if n.endswith("-scheduled.tar.gz")]
    assert len(scheduled) == 2 and f"etcd-{NODE}-20250103T000000Z-scheduled.tar.gz" in scheduled, names
    assert f"etcd-{NODE}-20250101T000000Z-pre-upgrade.tar.gz" in names, "another reason's backups were pruned"


GCS_CURL = r"""url=${*: -1}
case $url in
  http://metadata.google.internal/*) echo '{"access_token":"ya29.SECRET-TOKEN","expires_in":3599,"token_type":"Bearer"}' ;;
  https://storage.googleapis.com/upload/*)
    # Cloud Storage's JSON API simple upload: the HTTP status is what -w '%{http_code}' prints.
    prev="" streamed=""
    for a in "$@"; do
      [[ $prev == -H && $a == @* ]] && cat "${a#@}" >>"$STUB_STATE/upload-headers"
      [[ $prev == -T && -f $a ]] && streamed=$a
      prev=$a
    done
    [[ -n $streamed ]] || { echo "curl: no file streamed with -T" >&2; exit 2; }
    echo "$url" >>"$STUB_STATE/uploads"
    if ((${STUB_UPLOAD_FAIL:-0})); then printf 403
    elif ((${STUB_UPLOAD_EXISTS:-0})); then printf 412
    else printf 200; fi ;;
  *) exit 7 ;;
esac"""


def test_gcp_upload_uses_the_vm_service_account_and_never_shows_the_token(running: tuple[Sandbox, Etcd]) -> None:
    box, _ = running
    env = box.path("/etc/kubeadm-cluster/maintenance.env")
    env.write_text(env.read_text().replace("BACKUP_UPLOAD=\n", "BACKUP_UPLOAD=gs://proj-dev-etcd\n"))
    box._stub("curl", GCS_CURL)
    result = box.run("etcd-snapshot.sh", {"BACKUP_REASON": "scheduled"})
    assert result.rc == 0, _explain(result)
    (backup,) = backups(box)
    (url,) = (box.state / "uploads").read_text().split()
    assert url == ("https://storage.googleapis.com/upload/storage/v1/b/proj-dev-etcd/o?uploadType=media&ifGenerationMatch=0"
                   f"&name={NODE}%2F{backup.name}"), url
    assert "Authorization: Bearer ya29.SECRET-TOKEN" in (box.state / "upload-headers").read_text()
    everything = result.stdout + result.stderr + "\n".join(result.calls)
    assert "SECRET-TOKEN" not in everything, "the access token shows on a command line or in the log"
    assert not list(box.tmp.iterdir()), f"the header file was left behind: {list(box.tmp.iterdir())}"


def test_an_upload_that_finds_its_object_there_already_succeeds(running: tuple[Sandbox, Etcd]) -> None:
    """curl's retry re-sends an upload whose first answer was lost: the object exists, and the
    nodes' objectCreator role cannot replace it. The upload is conditional (ifGenerationMatch=0), so
    Cloud Storage answers 412 Precondition Failed, which means the backup is in the bucket."""
    box, _ = running
    env = box.path("/etc/kubeadm-cluster/maintenance.env")
    env.write_text(env.read_text().replace("BACKUP_UPLOAD=\n", "BACKUP_UPLOAD=gs://proj-dev-etcd\n"))
    box._stub("curl", GCS_CURL)
    result = box.run("etcd-snapshot.sh", {"BACKUP_REASON": "scheduled", "STUB_UPLOAD_EXISTS": "1"})
    assert result.rc == 0 and "exists already" in result.stderr, _explain(result)


def test_a_failed_upload_keeps_the_backup_and_fails_only_the_scheduled_run(running: tuple[Sandbox, Etcd]) -> None:
    box, _ = running
    env = box.path("/etc/kubeadm-cluster/maintenance.env")
    env.write_text(env.read_text().replace("BACKUP_UPLOAD=\n", "BACKUP_UPLOAD=gs://proj-dev-etcd/backups\n"))
    box._stub("curl", GCS_CURL)
    scheduled = box.run("etcd-snapshot.sh", {"BACKUP_REASON": "scheduled", "STUB_UPLOAD_FAIL": "1"})
    assert scheduled.rc != 0 and "the backup is kept" in scheduled.stderr, _explain(scheduled)
    assert "name=backups%2F" in (box.state / "uploads").read_text(), "the bucket prefix is not in the object name"
    upgrade = box.run("etcd-snapshot.sh", {"BACKUP_REASON": "pre-upgrade", "STUB_UPLOAD_FAIL": "1"})
    assert upgrade.rc == 0 and "WARNING" in upgrade.stderr, _explain(upgrade)
    assert len(backups(box)) == 2


def test_without_etcd_running_the_snapshot_fails_or_warns_as_asked(running: tuple[Sandbox, Etcd]) -> None:
    box, _ = running
    (box.state / "etcd-container").unlink()
    required = box.run("etcd-snapshot.sh", {"BACKUP_REASON": "pre-upgrade"})
    assert required.rc != 0 and "etcd is not running" in required.stderr, _explain(required)
    optional = box.run("etcd-snapshot.sh", {"BACKUP_REASON": "pre-remove-dev-cp-2", "BACKUP_REQUIRED": "0"})
    assert optional.rc == 0 and "no etcd backup taken" in optional.stderr, _explain(optional)
    assert not backups(box)


def test_a_node_without_etcd_has_nothing_to_snapshot(tmp_path: Path, etcd_bins: dict[str, Path]) -> None:
    box = control_plane_box(tmp_path, etcd_bins)
    result = box.run("etcd-snapshot.sh", {"BACKUP_NODE": NODE})
    assert result.rc == 0 and "nothing to snapshot" in result.stderr, _explain(result)
    assert not [c for c in result.calls if c.startswith("crictl")], result.calls


def test_the_snapshot_and_upgrade_run_as_one_bundle(running: tuple[Sandbox, Etcd]) -> None:
    """The upgrade step's bundle: etcd-snapshot.sh then upgrade-node.sh in one bash; a node that
    is already upgraded still gets its snapshot first, and the upgrade script still runs."""
    from components.bootstrap import maintenance
    from components.bootstrap.scripts import render_bundle

    box, _ = running
    env = {"NODE_NAME": NODE, "K8S_VERSION": "1.36.5", "UPGRADE_ROLE": "control-plane", "DRAIN_TIMEOUT": "60s",
           **maintenance.snapshot_env(maintenance.PRE_UPGRADE)}
    result = box.run([], bundle=render_bundle(["etcd-snapshot.sh", "upgrade-node.sh"], env))
    assert len(backups(box)) == 1 and backups(box)[0].name.endswith("-pre-upgrade.tar.gz"), _explain(result)
    assert "[kubeadm-cluster upgrade-node]" in result.stderr, f"upgrade-node.sh did not run after the snapshot:\n{result.stderr}"


# --- the command lines against etcd v3.6.8 (what kubeadm 1.36 runs) ----------------------------


def _crictl_etcdctl() -> tuple[str, ...]:
    """The etcdctl words etcd-snapshot.sh hands to `crictl exec <container>`."""
    found = []
    for _, line in _logical_lines((SCRIPTS / "etcd-snapshot.sh").read_text()):
        words = shlex.split(line.strip(), comments=True) if "crictl exec" in line else []
        if words[:2] == ["crictl", "exec"]:
            found.append(tuple(words[3:words.index("</dev/null") if "</dev/null" in words else len(words)]))
    assert len(found) == 1, found
    return found[0]


def test_the_snapshot_command_is_etcdctl_3_6_8s() -> None:
    words = _crictl_etcdctl()
    parsed = parse(words)
    assert not parsed.problems, f"`{' '.join(words)}`: {parsed.problems}"
    assert parsed.command.path == ("etcdctl", "snapshot", "save"), parsed.command.path
    flags = {flag.name: value for flag, value in parsed.flags}
    assert flags == {"endpoints": "https://127.0.0.1:2379", "cacert": "/etc/kubernetes/pki/etcd/ca.crt",
                     "cert": "/etc/kubernetes/pki/etcd/server.crt", "key": "/etc/kubernetes/pki/etcd/server.key"}, flags
    assert parsed.positionals == ["$in_pod"], parsed.positionals


def test_the_restore_command_is_etcdutl_3_6_8s() -> None:
    """etcdutl's flags from etcd v3.6.8 (etcdutl/ctl.go, etcdutl/etcdutl/snapshot_command.go)."""
    known: dict[str, bool] = {}
    for name in ("etcdutl-ctl.digest.yaml", "etcdutl-snapshot_command.digest.yaml"):
        assert sources("cli")[name].ref == "v3.6.8", name
        for row in facts("cli", name)["lines"]["flags"]:
            flag = _etcd_flag(list(row["groups"]))
            known[flag.name] = flag.takes_value
    uses = [row["groups"][0] for row in facts("cli", "etcdutl-snapshot_command.digest.yaml")["lines"]["uses"]]
    assert {"snapshot", "restore"} <= set(uses), uses
    text = (SCRIPTS / "etcd-restore.sh").read_text()
    call = text[text.index('"$KC_RESTORE_ETCDUTL" snapshot restore'):]
    call = call[: call.index("</dev/null")].replace("\\\n", " ")
    words = shlex.split(call)
    assert words[1:3] == ["snapshot", "restore"], words
    given = [w for w in words if w.startswith("--")]
    for flag in given:
        assert flag[2:] in known, f"etcdutl 3.6.8 has no {flag} (etcdutl/etcdutl/snapshot_command.go)"
    assert "--skip-hash-check" not in given, "the snapshot's integrity hash must be checked"
    assert {"--data-dir", "--name", "--initial-cluster", "--initial-advertise-peer-urls"} <= set(given), given
    rule = [row["text"] for row in facts("cli", "etcdutl-snapshot_command.digest.yaml")["lines"]["bump_needs_compacted"]]
    assert any("revisionBump > 0 && !markCompacted" in t for t in rule), rule
    assert ("--bump-revision" in given) == ("--mark-compacted" in given), "etcdutl needs both or neither"


#: ctr whose `images mount` is a real mount (a tmpfs holding the real etcdutl), as containerd's is:
#: `rm -rf --one-file-system` cannot remove it before it is unmounted.
MOUNTING_CTR = r"""case "$3 $4" in
  "images mount") mkdir -p "$6" && /bin/mount -t tmpfs kc-test-etcd-image "$6" && mkdir -p "$6/usr/local/bin" &&
    cp "$STUB_ETCD_BIN/etcdutl" "$6/usr/local/bin/etcdutl" ;;
  "images unmount") /bin/umount "${@: -1}" ;;
  *) echo "unexpected ctr call: $*" >&2; exit 64 ;;
esac"""


def test_a_refused_snapshot_leaves_no_work_directory_behind_the_mounted_image(
    running: tuple[Sandbox, Etcd], etcd_bins: dict[str, Path], tmp_path: Path
) -> None:
    """The VM rehearsal found it (tests/rehearsal/test_etcd_on_vms.py, a tampered backup): the exit
    hooks ran `rm -rf --one-file-system` on the work directory while the etcd image was still
    mounted in it, so the directory, with the backup's CA keys, stayed on the node."""
    if os.geteuid() != 0 or not Path("/bin/mount").exists():
        pytest.skip("needs root to mount a tmpfs")
    box, etcd = running
    good = take_backup(box).read_bytes()
    etcd.stop()
    fresh = control_plane_box(tmp_path / "fresh", etcd_bins)
    fresh._stub("ctr", MOUNTING_CTR)
    fresh.path("/etc/kubernetes").mkdir(parents=True)
    fresh.path("/etc/kubernetes/kubeadm-config.yaml").write_text(_init_config())
    fresh.path("/var/lib").mkdir(parents=True)
    target = fresh.path("/root/backup.tar.gz")
    target.parent.mkdir(parents=True)
    target.write_bytes(_tampered(good, update_sums=True))
    try:
        result = fresh.run("etcd-restore.sh", {"BACKUP_FILE": str(target)})
        assert result.rc != 0 and "etcdutl refuses the snapshot" in result.stderr, _explain(result)
        left = [str(p) for p in fresh.path("/var/lib").glob(".kubeadm-cluster-restore.*")]
        assert not left, f"the restore's work directory stayed behind: {left}\n{result.stderr}"
        assert "kc-test-etcd-image" not in Path("/proc/mounts").read_text(), "the image stayed mounted"
    finally:
        for line in Path("/proc/mounts").read_text().splitlines():
            if line.startswith("kc-test-etcd-image ") and str(tmp_path) in line:
                subprocess.run(["umount", line.split()[1]], check=False)
