"""What the node scripts download, served on the host's loopback for the rehearsal VMs.

The VMs reach the host's 127.0.0.1 as 10.0.2.2 (QEMU's user-mode network); the stack's
``mirrors`` point there. Layout, as upstream has it:

* ``kubernetes/core:/stable:/v1.36/deb/`` - a flat apt repository like pkgs.k8s.io's: ``InRelease``,
  ``Release`` (+ ``Release.gpg``), ``Packages(.gz)``, ``Release.key`` (the test signing key,
  ASCII-armoured) and ``amd64/*.deb``: kubelet, kubeadm, kubectl (``1.36.4-1.1``: the pinned
  version and one newer patch), cri-tools and kubernetes-cni;
* ``containerd/v<V>/containerd-<V>-linux-amd64.tar.gz`` and its ``.sha256sum``;
* ``runc/v<V>/runc.amd64`` and ``runc.sha256sum``.

Real binaries where a registry has them, from Debian (tools.debian_packages): containerd,
containerd-shim-runc-v2 and ctr (containerd), kubectl, the CNI plugins
(containernetworking-plugins) from the unstable suite, runc from Debian 12 (``RUNC_SUITE``:
unstable's runc needs glibc 2.38 (``__isoc23_strtol``) and Debian 12 has 2.36; upstream's runc
is a static binary that runs on every supported system, and Debian 12's build, the oldest glibc
of them, does too). Debian's builds print Debian's version (``2.1.9+unknown``, ``1.1.5+ds1``):
released here under the pinned version, a small wrapper answers ``--version`` with the release's
version and runs the real binary for everything else (for runc, the binary travels inside the
single ``runc.amd64`` file and is unpacked on first use). kubelet, kubeadm and crictl are
stand-ins (``standins/standin.py``): no registry here has them.

``v2/etcd/`` - a read-only container registry (the OCI distribution API's pull side) serving one
image, ``registry.k8s.io/etcd:<ETCD_IMAGE_TAG>``, whose layer holds Debian's real etcd, etcdctl and
etcdutl (etcd-server, etcd-client; 3.5 where kubeadm runs 3.6: released under kubeadm's tag, as
containerd is) with Debian's glibc they link against, at the paths of the upstream image
(``/usr/local/bin/etcd`` ...). The stack's ``mirrors.registries`` points registry.k8s.io here:
real containerd pulls it through the ``hosts.toml`` the node prep writes, the kubelet stand-in
runs it as the etcd static pod, and etcd-restore.sh mounts it for its etcdutl.

``/slow/<seconds>/<path>`` serves ``<path>`` with its ``InRelease`` trickling in over that many
seconds (a piece every ``SLOW_PIECE_SECONDS``: apt's timeouts never fire, apt just waits for the
slow mirror), which keeps an ``apt-get update`` (and apt's lock of the package lists) busy for
as long, for the first-boot contention scenario. With ``MirrorServer.slow_marker`` set (a path
prefix), it also lasts until ``SLOW_AFTER_MARKER`` seconds after the first request for that prefix
(node prep's connectivity check of the package mirror: prep has started), at most ``SLOW_MAX``
seconds in all: under a loaded host prep starts later, and a fixed hold would end first.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components import versions
from tools import debian_packages
from tools.rehearsal import cache_dir

STANDIN = Path(__file__).parent / "standins" / "standin.py"
#: The registry whose images the mirror serves (kubeadm's default imageRepository).
REGISTRY = "registry.k8s.io"
#: The etcd image kubeadm 1.36 runs (tests/upstream/kubeadm/minikube-kubeadm-images.digest.yaml:
#: etcd 3.6.8-0 for every v1.36 release listed there; test_parts checks the two agree).
ETCD_IMAGE_TAG = "3.6.8-0"
ETCD_IMAGE = f"{REGISTRY}/etcd:{ETCD_IMAGE_TAG}"
#: OCI media types of the etcd image (image-spec v1.1 media-types.md).
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
#: The Debian revision pkgs.k8s.io gives its packages ("1.36.4-1.1").
PACKAGE_REVISION = "1.1"
#: Where the apt repository of one minor lives under the mirror's root ({minor}: v1.36).
K8S_REPO_PATH = "kubernetes/core:/stable:/{minor}/deb/"
SIGNER = "kubeadm-cluster rehearsal mirror <rehearsal@example.invalid>"
#: A slow InRelease (``/slow/<seconds>/``) sends a piece of itself this often (seconds).
SLOW_PIECE_SECONDS = 2
#: With a marker: the slow InRelease lasts until this long after the marker's first request (the
#: first node's prep started; the others start within seconds of it), and never longer than SLOW_MAX.
SLOW_AFTER_MARKER = 20
SLOW_MAX = 300


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def next_patch(version: str) -> str:
    """``1.36.5`` for ``1.36.4``: the upgrade path's target."""
    major, minor, patch = version.split(".")
    return f"{major}.{minor}.{int(patch) + 1}"


def kubeadm_types() -> dict[str, Any]:
    """The v1beta4 field table the kubeadm stand-in validates against (the tests' own table)."""
    from tests.kubeadm_v1beta4 import TYPES  # the repository's record of kubeadm's types.go

    return TYPES


# --- the signing key -------------------------------------------------------------------------
def gnupg_home() -> Path:
    home = cache_dir() / "gnupg"
    if not (home / "pubring.kbx").exists() or not list((home / "private-keys-v1.d").glob("*.key")):
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(mode=0o700, parents=True)
        subprocess.run(
            ["gpg", "--homedir", str(home), "--batch", "--passphrase", "", "--quick-gen-key", SIGNER, "rsa3072", "sign", "0"],
            check=True, capture_output=True,
        )
    return home


def _gpg(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["gpg", "--homedir", str(gnupg_home()), "--batch", "--yes", *args], check=True, capture_output=True)


# --- packages --------------------------------------------------------------------------------
@dataclass
class Deb:
    """A binary package to build: control fields and files (path in the package -> source or bytes)."""

    name: str
    version: str
    description: str
    files: dict[str, Path | bytes] = field(default_factory=dict)
    modes: dict[str, int] = field(default_factory=dict)
    depends: str = ""
    recommends: str = ""
    conffiles: Sequence[str] = ()
    postinst: str = ""
    prerm: str = ""

    def build(self, out_dir: Path) -> Path:
        out_dir.mkdir(parents=True, exist_ok=True)
        target = out_dir / f"{self.name}_{self.version}_amd64.deb"
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "root"
            (root / "DEBIAN").mkdir(parents=True)
            for path, source in self.files.items():
                dest = root / path.lstrip("/")
                dest.parent.mkdir(parents=True, exist_ok=True)
                if isinstance(source, bytes):
                    dest.write_bytes(source)
                else:
                    shutil.copyfile(source, dest)
                dest.chmod(self.modes.get(path, 0o755 if "/bin/" in path else 0o644))
            control = [f"Package: {self.name}", f"Version: {self.version}", "Architecture: amd64",
                       "Maintainer: kubeadm-cluster rehearsal <rehearsal@example.invalid>", "Section: admin",
                       "Priority: optional"]
            if self.depends:
                control.append(f"Depends: {self.depends}")
            if self.recommends:
                control.append(f"Recommends: {self.recommends}")
            control.append(f"Description: {self.description}")
            (root / "DEBIAN" / "control").write_text("\n".join(control) + "\n")
            if self.conffiles:
                (root / "DEBIAN" / "conffiles").write_text("".join(f"{c}\n" for c in self.conffiles))
            for script, body in (("postinst", self.postinst), ("prerm", self.prerm)):
                if body:
                    (root / "DEBIAN" / script).write_text("#!/bin/sh\nset -e\n" + body)
                    (root / "DEBIAN" / script).chmod(0o755)
            subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "-z1", "--build", str(root), str(target)],
                           check=True, capture_output=True)
        return target


KUBELET_SERVICE = b"""[Unit]
Description=kubelet: The Kubernetes Node Agent
Documentation=https://kubernetes.io/docs/
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=/usr/bin/kubelet
Restart=always
StartLimitInterval=0
RestartSec=10

[Install]
WantedBy=multi-user.target
"""

KUBEADM_DROPIN = b"""# Note: This dropin only works with kubeadm and kubelet v1.11+
[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf"
Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
"""

#: What debhelper's systemd snippets do for the kubelet package: enabled, (re)started.
KUBELET_POSTINST = """if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null || true
  systemctl enable kubelet.service >/dev/null 2>&1 || true
  systemctl restart kubelet.service >/dev/null 2>&1 || true
fi
"""
KUBELET_PRERM = """if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
  systemctl stop kubelet.service >/dev/null 2>&1 || true
fi
"""


def _standin(version: str) -> bytes:
    return STANDIN.read_text().replace('VERSION = "@VERSION@"', f'VERSION = "{version}"').encode()


def standin_images() -> bytes:
    """/usr/lib/kc-standin/images.json: the image tags the kubeadm stand-in names (``config
    images list``) and writes into the etcd manifest."""
    return json.dumps({"etcd": ETCD_IMAGE_TAG, "pause": versions.PAUSE_IMAGE.rsplit(":", 1)[1]}).encode()


def kubernetes_debs(k8s_version: str, roots: dict[str, Path]) -> list[Deb]:
    """kubelet, kubeadm and kubectl of one Kubernetes patch release."""
    version = f"{k8s_version}-{PACKAGE_REVISION}"
    standin = _standin(version)
    python = "python3, python3-yaml, openssl"
    return [
        Deb("kubelet", version, "Node agent for Kubernetes clusters (rehearsal stand-in)",
            files={"/usr/bin/kubelet": standin, "/usr/lib/systemd/system/kubelet.service": KUBELET_SERVICE,
                   "/etc/default/kubelet": b"KUBELET_EXTRA_ARGS=\n", "/var/lib/kubelet/.kubelet-keep": b"",
                   "/etc/kubernetes/manifests/.kubelet-keep": b""},
            depends=f"kubernetes-cni (>= 1.2.0), mount, util-linux, {python}", recommends="iptables (>= 1.8.4)",
            conffiles=["/etc/default/kubelet"], postinst=KUBELET_POSTINST, prerm=KUBELET_PRERM),
        Deb("kubeadm", version, "Command-line utility for administering a Kubernetes cluster (rehearsal stand-in)",
            files={"/usr/bin/kubeadm": standin,
                   "/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf": KUBEADM_DROPIN,
                   "/usr/lib/kc-standin/kubeadm-v1beta4.json": json.dumps(kubeadm_types()).encode(),
                   "/usr/lib/kc-standin/images.json": standin_images()},
            depends=python),
        Deb("kubectl", version, f"Command-line utility for interacting with a Kubernetes cluster (Debian's real kubectl "
            f"{roots['kubectl'].name.split('_')[1]})",
            files={"/usr/bin/kubectl": roots["kubectl"] / "usr/bin/kubectl"}),
    ]


def tool_debs(roots: dict[str, Path]) -> list[Deb]:
    """cri-tools (crictl stand-in) and kubernetes-cni (Debian's real CNI plugins)."""
    cni_version = roots["containernetworking-plugins"].name.split("_")[1].split("+")[0]
    cni_files: dict[str, Path | bytes] = {
        f"/opt/cni/bin/{plugin.name}": plugin
        for plugin in sorted((roots["containernetworking-plugins"] / "usr/lib/cni").iterdir()) if plugin.is_file()
    }
    return [
        Deb("cri-tools", f"1.36.0-{PACKAGE_REVISION}", "Command-line utility for interacting with a container runtime "
            "(rehearsal stand-in)", files={"/usr/bin/crictl": _standin("1.36.0-1.1")}, depends="python3, python3-yaml"),
        Deb("kubernetes-cni", f"{cni_version}-{PACKAGE_REVISION}", "Binaries required to provision kubernetes container "
            f"networking (Debian's containernetworking-plugins {cni_version})", files=cni_files,
            modes={path: 0o755 for path in cni_files}),
    ]


def write_apt_repository(directory: Path, debs: Iterable[Path]) -> None:
    """A signed flat repository (``deb [signed-by=...] URL /``) of ``debs`` in ``directory``."""
    pool = directory / "amd64"
    pool.mkdir(parents=True, exist_ok=True)
    paragraphs = []
    for deb in sorted(debs):
        shutil.copyfile(deb, pool / deb.name)
        control = subprocess.run(["dpkg-deb", "-f", str(deb)], check=True, capture_output=True, text=True).stdout
        data = (pool / deb.name).read_bytes()
        paragraphs.append(control.rstrip("\n") + "\n" + "\n".join([
            f"Filename: amd64/{deb.name}", f"Size: {len(data)}", f"MD5sum: {hashlib.md5(data).hexdigest()}",
            f"SHA1: {hashlib.sha1(data).hexdigest()}", f"SHA256: {hashlib.sha256(data).hexdigest()}",
        ]))
    packages = ("\n\n".join(paragraphs) + "\n").encode()
    (directory / "Packages").write_bytes(packages)
    (directory / "Packages.gz").write_bytes(gzip.compress(packages, mtime=0))
    entries = {name: (directory / name).read_bytes() for name in ("Packages", "Packages.gz")}
    release = [
        "Origin: kubeadm-cluster rehearsal", "Label: kubeadm-cluster rehearsal",
        "Architectures: amd64", f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S UTC', time.gmtime())}",
    ]
    for title, algorithm in (("MD5Sum", hashlib.md5), ("SHA1", hashlib.sha1), ("SHA256", hashlib.sha256)):
        release.append(f"{title}:")
        release += [f" {algorithm(data).hexdigest()} {len(data)} {name}" for name, data in entries.items()]
    (directory / "Release").write_text("\n".join(release) + "\n")
    for name in ("InRelease", "Release.gpg"):
        (directory / name).unlink(missing_ok=True)
    _gpg("--digest-algo", "SHA512", "--clearsign", "-o", str(directory / "InRelease"), str(directory / "Release"))
    _gpg("--digest-algo", "SHA512", "-abs", "-o", str(directory / "Release.gpg"), str(directory / "Release"))
    (directory / "Release.key").write_bytes(_gpg("--armor", "--export").stdout)
    # gpg started an agent for the signing key's home; it would outlive the run (one per test run).
    if shutil.which("gpgconf"):
        subprocess.run(["gpgconf", "--homedir", str(gnupg_home()), "--kill", "gpg-agent"], capture_output=True)


# --- release files ---------------------------------------------------------------------------
def _version_wrapper(real: str, printed: str) -> bytes:
    return (
        "#!/bin/sh\n# kubeadm-cluster rehearsal: a real binary from Debian, released under the pinned version.\n"
        f'case "${{1:-}}" in --version|-v) printf \'%s\\n\' {printed!r} ; exit 0 ;; esac\n'
        f'exec {real} "$@"\n'
    ).encode()


def containerd_release(directory: Path, version: str, root: Path) -> None:
    """``v<V>/containerd-<V>-linux-amd64.tar.gz`` (bin/ of the upstream tarball) and its sha256sum."""
    folder = directory / f"v{version}"
    folder.mkdir(parents=True, exist_ok=True)
    name = f"containerd-{version}-linux-amd64.tar.gz"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        def add(arcname: str, data: bytes) -> None:
            info = tarfile.TarInfo(arcname)
            info.size, info.mode, info.mtime = len(data), 0o755, 0
            tar.addfile(info, io.BytesIO(data))

        add("bin/containerd", _version_wrapper(
            "/usr/local/bin/containerd.debian",
            f"containerd github.com/containerd/containerd/v2 v{version} rehearsal-debian-{root.name.split('_')[1]}"))
        add("bin/containerd.debian", (root / "usr/bin/containerd").read_bytes())
        for binary in ("containerd-shim-runc-v2", "ctr"):
            add(f"bin/{binary}", (root / "usr/bin" / binary).read_bytes())
    (folder / name).write_bytes(buffer.getvalue())
    (folder / f"{name}.sha256sum").write_text(f"{_sha256(folder / name)}  {name}\n")


def runc_release(directory: Path, version: str, root: Path) -> None:
    """``v<V>/runc.amd64``: a self-unpacking wrapper carrying Debian's runc, and ``runc.sha256sum``."""
    folder = directory / f"v{version}"
    folder.mkdir(parents=True, exist_ok=True)
    binary = (root / "usr/sbin/runc").read_bytes()
    digest = hashlib.sha256(binary).hexdigest()[:16]
    debian = root.name.split("_")[1]
    header = (
        "#!/bin/sh\n"
        f"# kubeadm-cluster rehearsal: Debian's runc {debian}, released as runc {version}.\n"
        "# The real binary follows this script; it is unpacked once, on first use.\n"
        f"real=/usr/local/lib/kc-rehearsal/runc-{digest}\n"
        f'case "${{1:-}}" in --version|-v) printf "runc version {version}\\ncommit: debian-{debian}\\nspec: 1.2.1\\n"; exit 0 ;; esac\n'
        'if [ ! -x "$real" ]; then\n'
        '  mkdir -p "${real%/*}"\n'
        f'  tail -c {len(binary)} "$0" >"$real.$$" && chmod 0755 "$real.$$" && mv -f "$real.$$" "$real"\n'
        "fi\n"
        'exec "$real" "$@"\n'
    )
    (folder / "runc.amd64").write_bytes(header.encode() + binary)
    (folder / "runc.sha256sum").write_text(f"{_sha256(folder / 'runc.amd64')}  runc.amd64\n")


# --- the etcd image --------------------------------------------------------------------------
def _tar_add(tar: tarfile.TarFile, name: str, data: bytes | None = None, mode: int = 0o755,
             link: str | None = None) -> None:
    info = tarfile.TarInfo(name)
    info.mtime, info.uid, info.gid = 0, 0, 0
    if link is not None:
        info.type, info.linkname, info.mode = tarfile.SYMTYPE, link, 0o777
        tar.addfile(info)
    elif data is None:
        info.type, info.mode = tarfile.DIRTYPE, mode
        tar.addfile(info)
    else:
        info.size, info.mode = len(data), mode
        tar.addfile(info, io.BytesIO(data))


def etcd_layer(roots: dict[str, Path]) -> bytes:
    """The uncompressed layer of the etcd image: Debian's etcd, etcdctl and etcdutl where the
    upstream image has them (/usr/local/bin), and the glibc they link against (Debian's builds
    are dynamically linked; upstream's are static), merged-/usr like Debian."""
    libc = roots["libc6"] / "usr/lib/x86_64-linux-gnu"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for directory in ("usr", "usr/local", "usr/local/bin", "usr/lib", "usr/lib/x86_64-linux-gnu", "usr/lib64",
                          "etc", "tmp", "var", "var/lib"):
            _tar_add(tar, directory, mode=0o1777 if directory == "tmp" else 0o755)
        _tar_add(tar, "lib", link="usr/lib")
        _tar_add(tar, "lib64", link="usr/lib64")
        for name in ("ld-linux-x86-64.so.2", "libc.so.6"):
            _tar_add(tar, f"usr/lib/x86_64-linux-gnu/{name}", (libc / name).resolve().read_bytes())
        _tar_add(tar, "usr/lib64/ld-linux-x86-64.so.2", link="../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
        for package, binary in (("etcd-server", "etcd"), ("etcd-client", "etcdctl"), ("etcd-server", "etcdutl")):
            _tar_add(tar, f"usr/local/bin/{binary}", (roots[package] / "usr/bin" / binary).read_bytes())
        _tar_add(tar, "etc/nsswitch.conf", b"hosts: files dns\n", 0o644)
    return buffer.getvalue()


def etcd_image(directory: Path, roots: dict[str, Path], tag: str = ETCD_IMAGE_TAG) -> str:
    """``etcd:<tag>`` laid out as a registry serves it (``directory`` is the mirror's root):
    ``v2/etcd/manifests/<tag>`` and ``.../sha256:<digest>``, ``v2/etcd/blobs/sha256:<digest>``
    for the config and the layer. Returns the manifest's digest."""
    blobs = directory / "v2" / "etcd" / "blobs"
    manifests = directory / "v2" / "etcd" / "manifests"
    blobs.mkdir(parents=True, exist_ok=True)
    manifests.mkdir(parents=True, exist_ok=True)

    def blob(data: bytes) -> dict[str, Any]:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return {"digest": digest, "size": len(data)}

    layer = etcd_layer(roots)
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    versions_of = {name: roots[name].name.split("_")[1] for name in ("etcd-server", "etcd-client", "libc6")}
    config = {
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   "Cmd": ["/usr/local/bin/etcd"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": f"kubeadm-cluster rehearsal: Debian's etcd-server {versions_of['etcd-server']}, "
                                   f"etcd-client {versions_of['etcd-client']}, libc6 {versions_of['libc6']}"}],
    }
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": CONFIG_TYPE, **blob(json.dumps(config, sort_keys=True).encode())},
        "layers": [{"mediaType": LAYER_TYPE, **blob(gzip.compress(layer, compresslevel=1, mtime=0))}],
    }, sort_keys=True).encode()
    digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    (manifests / tag).write_bytes(manifest)
    (manifests / digest).write_bytes(manifest)
    return digest


# --- the whole mirror ------------------------------------------------------------------------
@dataclass(frozen=True)
class MirrorContent:
    root: Path
    kubernetes_versions: tuple[str, ...]
    containerd_version: str
    runc_version: str
    debian_versions: dict[str, str]


DEBIAN_PACKAGES = ("containerd", "runc", "kubectl", "containernetworking-plugins", "etcd-server", "etcd-client",
                   "libc6")
#: The Debian suite each package comes from when not unstable (see the module's docstring).
PACKAGE_SUITES = {"runc": "bookworm"}


def build_mirror(
    kubernetes_versions: Sequence[str] | None = None,
    containerd_version: str = versions.CONTAINERD_VERSION,
    runc_version: str = versions.RUNC_VERSION,
) -> MirrorContent:
    """The mirror tree for the pinned versions (default: the pinned Kubernetes and its next patch)."""
    if kubernetes_versions is None:
        kubernetes_versions = (versions.KUBERNETES_DEFAULT_VERSION, next_patch(versions.KUBERNETES_DEFAULT_VERSION))
    roots = {name: debian_packages.fetch_package(name, suite=PACKAGE_SUITES.get(name, debian_packages.SUITE))
             for name in DEBIAN_PACKAGES}
    debian_versions = {name: root.name.split("_")[1] for name, root in roots.items()}
    key = hashlib.sha256(json.dumps([
        list(kubernetes_versions), containerd_version, runc_version, debian_versions, STANDIN.read_text(),
        kubeadm_types(), Path(__file__).read_text(),
    ], sort_keys=True, default=str).encode()).hexdigest()[:12]
    root = cache_dir() / "mirror" / key
    content = MirrorContent(root, tuple(kubernetes_versions), containerd_version, runc_version, debian_versions)
    if (root / ".complete").exists():
        return content
    work = root.with_name(f".{key}.{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmp:
        built: dict[str, list[Path]] = {}
        tools = [deb.build(Path(tmp)) for deb in tool_debs(roots)]
        for k8s_version in kubernetes_versions:
            minor = "v" + ".".join(k8s_version.split(".")[:2])
            debs = [deb.build(Path(tmp)) for deb in kubernetes_debs(k8s_version, roots)]
            built.setdefault(minor, list(tools)).extend(debs)
        for minor, debs in built.items():
            write_apt_repository(work / K8S_REPO_PATH.format(minor=minor), debs)
    containerd_release(work / "containerd", containerd_version, roots["containerd"])
    runc_release(work / "runc", runc_version, roots["runc"])
    etcd_image(work, roots)
    (work / ".complete").write_text(json.dumps({"debian": debian_versions, "kubernetes": list(kubernetes_versions)}))
    shutil.rmtree(root, ignore_errors=True)
    work.rename(root)
    return content


# --- serving it ------------------------------------------------------------------------------
@dataclass
class Request:
    time: float
    client: str
    method: str
    path: str
    status: int


class MirrorServer:
    """The mirror on 127.0.0.1:<port> (the VMs: 10.0.2.2:<port>), with a request log and outages."""

    def __init__(self, content: MirrorContent, port: int = 0) -> None:
        self.content = content
        self.requests: list[Request] = []
        self.down_until = 0.0
        self.down_paths: tuple[str, ...] = ()
        self.digests: dict[Path, str] = {}
        #: A path prefix whose first request releases the slow InRelease (see the module docstring),
        #: and when that request came (None: not yet).
        self.slow_marker: str | None = None
        self.marker_seen: float | None = None
        mirror = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, directory=str(content.root), **kwargs)

            def send_head(self) -> Any:
                if time.time() < mirror.down_until and (not mirror.down_paths or self.path.startswith(mirror.down_paths)):
                    self.send_error(503, "mirror down (rehearsal outage)")
                    return None
                if self.path.startswith("/v2/") or self.path == "/v2":
                    return self.registry_head()
                if mirror.slow_marker and mirror.marker_seen is None and self.path.startswith(mirror.slow_marker):
                    mirror.marker_seen = time.monotonic()
                slow = re.match(r"^/slow/(\d+)(/.*)$", self.path)
                if slow:
                    self.requested, self.path = self.path, slow.group(2)
                    if self.path.endswith("/InRelease"):
                        self.slow_seconds = int(slow.group(1))
                return super().send_head()

            def registry_head(self) -> Any:
                """The registry's answer to a GET or HEAD under /v2/ (the OCI distribution spec's
                pull endpoints; containerd adds ``?ns=<registry>`` when it asks a mirror)."""
                path = self.path.split("?", 1)[0]
                if path in ("/v2", "/v2/"):
                    body = b"{}"
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Docker-Distribution-API-Version", "registry/2.0")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    return io.BytesIO(body)
                match = re.match(r"^/v2/([a-z0-9/._-]+)/(manifests|blobs)/([A-Za-z0-9_.:-]+)$", path)
                file = content.root / "v2" / match.group(1) / match.group(2) / match.group(3) if match else None
                if match is None or file is None or ".." in path or not file.is_file():
                    kind = "MANIFEST_UNKNOWN" if match and match.group(2) == "manifests" else "BLOB_UNKNOWN" if match else "NAME_UNKNOWN"
                    body = json.dumps({"errors": [{"code": kind, "message": f"{path} is not in the rehearsal registry"}]}).encode()
                    self.send_response(404)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    return io.BytesIO(body)
                self.send_response(200)
                self.send_header("Content-Type", MANIFEST_TYPE if match.group(2) == "manifests" else "application/octet-stream")
                self.send_header("Content-Length", str(file.stat().st_size))
                self.send_header("Docker-Content-Digest", mirror.digest(file))
                self.send_header("Docker-Distribution-API-Version", "registry/2.0")
                self.end_headers()
                return file.open("rb")

            def copyfile(self, source: Any, outputfile: Any) -> None:
                seconds = getattr(self, "slow_seconds", 0)
                if not seconds:
                    super().copyfile(source, outputfile)
                    return
                # A slow mirror: the body trickles in, a byte every SLOW_PIECE_SECONDS (apt's
                # read timeout never fires, the transfer just lasts), for ``seconds`` and, with a
                # marker, until SLOW_AFTER_MARKER after its first request; then the rest at once.
                data = source.read()
                began = time.monotonic()

                def held() -> bool:
                    now = time.monotonic()
                    if now - began >= SLOW_MAX:
                        return False
                    if now - began < seconds:
                        return True
                    return mirror.slow_marker is not None and (
                        mirror.marker_seen is None or now < mirror.marker_seen + SLOW_AFTER_MARKER)

                sent = 0
                while held() and sent < len(data) - 1:
                    time.sleep(SLOW_PIECE_SECONDS)
                    outputfile.write(data[sent:sent + 1])
                    outputfile.flush()
                    sent += 1
                outputfile.write(data[sent:])
                outputfile.flush()

            def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
                path = getattr(self, "requested", self.path)  # a slow request: as it was asked for
                mirror.requests.append(Request(time.time(), self.client_address[0], self.command, path,
                                               int(code) if str(code).isdigit() else 0))

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = int(self.httpd.server_address[1])
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="rehearsal-mirror", daemon=True)

    def start(self) -> "MirrorServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def digest(self, file: Path) -> str:
        """``sha256:<hex>`` of a served registry file (computed once)."""
        if file not in self.digests:
            self.digests[file] = "sha256:" + _sha256(file)
        return self.digests[file]

    def outage(self, seconds: float, paths: tuple[str, ...] = ()) -> None:
        """Answer 503 for ``seconds`` (only under ``paths`` when given)."""
        self.down_paths = paths
        self.down_until = time.time() + seconds

    def base_url(self, host: str = "10.0.2.2") -> str:
        return f"http://{host}:{self.port}"

    def stack_mirrors(self, host: str = "10.0.2.2") -> dict[str, Any]:
        """The stack's ``mirrors`` config for VMs that reach this server as ``host``."""
        base = self.base_url(host)
        return {
            "kubernetesPackages": f"{base}/{K8S_REPO_PATH}",
            "containerdReleases": f"{base}/containerd",
            "runcReleases": f"{base}/runc",
            # containerd pulls registry.k8s.io's images (the etcd image) from the mirror's registry.
            "registries": {REGISTRY: [base]},
        }

    def __enter__(self) -> "MirrorServer":
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
