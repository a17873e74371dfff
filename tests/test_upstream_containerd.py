"""The node preparation against upstream: containerd and runc at their pins, and real programs.

Upstream files are read as digests (tests/upstream/<area>/SOURCES.yaml, tools/upstream_digest.py).

* containerd's RELEASES.md (tests/upstream/containerd): the pinned containerd is on a branch that
  is not end of life and is recommended for the default Kubernetes minor; runc is the one that
  containerd release is tested with, and has the 2026 container-escape fixes (>= 1.3.6).
* Release assets: the names prepare-node.sh downloads are the ones upstream's release builds
  make (containerd's Makefile, runc's script/release_build.sh).
* The containerd.service prepare-node.sh writes is upstream's, verbatim below its header.
* apt (tests/upstream/apt): why lib.sh waits for the lists lock itself, and which units it waits
  for on a first boot.
* A real containerd (Debian unstable's, fetched by tools/debian_packages.py: .ci/run fetches it
  before the tests; without it the test fetches it itself) loads the config.toml prepare-node.sh
  writes (`containerd config dump`) and resolves images through the hosts.toml files it writes
  for REGISTRY_MIRRORS (a local registry on 127.0.0.1 plays the mirrors).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import threading
import time
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from components import versions
from tests.test_scripts import SCRIPTS, Sandbox, _explain, _prepare_env, fresh_node
from tests.upstream_artifacts import debian_package_root, facts
from tools.upstream_digest import extract_systemd_unit, unit_body

PREPARE = SCRIPTS / "prepare-node.sh"
LIB = SCRIPTS / "lib.sh"


def _version(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.lstrip("v").split("."))


def _minor(v: str) -> str:
    return ".".join(v.split(".")[:2])


def _table(table: str) -> list[list[str]]:
    """The rows (cells) of one table of containerd's RELEASES.md: "releases" (the first table
    after "### Current State of containerd Releases") or "kubernetes" ("### Kubernetes Support")."""
    return [row["cells"] for row in facts("containerd", "RELEASES.digest.yaml")["markdown-tables"][table]["rows"]]


def _lines(area: str, file: str, fact: str) -> list[str]:
    """The upstream lines (stripped) a facts digest recorded for ``fact``."""
    return [m["text"] for m in facts(area, file)["lines"][fact]]


def _has(lines: list[str], fragment: str) -> bool:
    return any(fragment in line for line in lines)


# --- containerd and runc versions ----------------------------------------------------------------


def _kubernetes_matrix() -> dict[str, list[str]]:
    """containerd's "Kubernetes Support" table: minor -> ["2.3.0+", "2.2.0+", ...]."""
    rows = _table("kubernetes")
    return {row[0]: [v.strip() for v in row[1].split(",")] for row in rows}


def _recommended(containerd: str, entries: list[str]) -> bool:
    """``containerd`` (x.y.z) satisfies one of the matrix entries ("2.3.0+": 2.3.z with z >= 0)."""
    pinned = _version(containerd)
    for entry in entries:
        floor = _version(entry.rstrip("+"))
        if pinned[:2] == floor[:2] and pinned >= floor:
            return True
    return False


#: Supported Kubernetes minors whose row in containerd's matrix does not list the pinned branch,
#: and why the pin is still right for them. containerd: "Any actively supported version of
#: containerd may receive patches to fix bugs encountered in any version of Kubernetes, however,
#: our recommendation is based on which versions have been the most thoroughly tested."
OUTSIDE_THE_MATRIX = {
    "1.35": "1.35's row lists 2.2.0+, 2.1.5+, 1.7.28+: 2.1 is end of life and 2.2 ends 2026-11-06; "
            "2.3 (LTS, CRI v1) is the supported branch one containerd pin can serve both minors with",
}


def test_containerd_pin_is_recommended_for_the_default_kubernetes_minor() -> None:
    matrix = _kubernetes_matrix()
    minor = _minor(versions.KUBERNETES_DEFAULT_VERSION)
    assert minor in matrix, f"containerd's RELEASES.md has no Kubernetes {minor} row: {sorted(matrix)}"
    assert _recommended(versions.CONTAINERD_VERSION, matrix[minor]), (
        f"containerd {versions.CONTAINERD_VERSION} is not among the versions containerd recommends for Kubernetes "
        f"{minor} ({', '.join(matrix[minor])}; containerd's RELEASES.md, tests/upstream/containerd/RELEASES.digest.yaml)"
    )


@pytest.mark.parametrize("minor", [f"1.{m}" for m in versions.KUBERNETES_SUPPORTED_MINORS])
def test_containerd_pin_against_every_supported_minor(minor: str) -> None:
    matrix = _kubernetes_matrix()
    assert minor in matrix, f"containerd's RELEASES.md has no Kubernetes {minor} row: {sorted(matrix)}"
    if minor in OUTSIDE_THE_MATRIX:
        assert not _recommended(versions.CONTAINERD_VERSION, matrix[minor]), (
            f"containerd {versions.CONTAINERD_VERSION} is now recommended for {minor}: drop it from OUTSIDE_THE_MATRIX")
        return
    assert _recommended(versions.CONTAINERD_VERSION, matrix[minor]), (
        f"containerd {versions.CONTAINERD_VERSION} is not recommended for Kubernetes {minor} ({', '.join(matrix[minor])})"
    )


def test_containerd_branch_is_not_end_of_life() -> None:
    rows = _table("releases")
    branch = _minor(versions.CONTAINERD_VERSION)
    status = {re.sub(r"^\[([^]]+)\].*", r"\1", row[0]): row[1] for row in rows}
    assert branch in status, f"containerd's release table has no {branch} branch: {sorted(status)}"
    assert status[branch] in ("Active", "LTS"), (
        f"containerd {branch} is '{status[branch]}' in containerd's RELEASES.md: move CONTAINERD_VERSION to a supported branch"
    )


def test_runc_is_the_one_containerd_is_released_with() -> None:
    listed = _lines("containerd", "runc-version.digest.yaml", "runc")
    assert len(listed) == 1, f"containerd's script/setup/runc-version: {listed}"
    shipped = listed[0]
    assert shipped == f"v{versions.RUNC_VERSION}", (
        f"containerd {versions.CONTAINERD_VERSION} is tested and released with runc {shipped} "
        f"(script/setup/runc-version), but RUNC_VERSION is {versions.RUNC_VERSION}"
    )
    # CVE-2025-31133/52565/52881 (fixed in 1.3.3) and CVE-2026-41579 (1.3.6, 1.4.3).
    floors: dict[str, tuple[int, ...]] = {"1.3": (1, 3, 6), "1.4": (1, 4, 3)}
    floor = floors.get(_minor(versions.RUNC_VERSION), (1, 5, 0))
    assert _version(versions.RUNC_VERSION) >= floor, f"runc {versions.RUNC_VERSION} lacks the container-escape fixes of {floor}"


# --- release assets, as upstream's release builds name them --------------------------------------


def test_containerd_release_asset_names_are_upstreams() -> None:
    def makefile(fact: str) -> list[str]:
        return _lines("containerd", "Makefile.digest.yaml", fact)

    assert _has(makefile("release_name"), "RELEASE=containerd-$(VERSION:v%=%)-${GOOS}-${GOARCH}"), (
        "containerd's asset name changed upstream")
    assert _has(makefile("checksum"), "@cd releases && sha256sum $(RELEASE).tar.gz >$(RELEASE).tar.gz.sha256sum"), (
        "containerd's checksum file changed upstream")
    assert _has(makefile("tarball"), "@tar -czf releases/$(1).tar.gz -C releases/$(1) bin"), "the tarball no longer holds bin/"
    script = PREPARE.read_text()
    # dpkg's architectures amd64/arm64 are Go's GOARCH names; the tarball unpacks bin/ into /usr/local.
    for fragment in ('tarball="containerd-${CONTAINERD_VERSION}-linux-${arch}.tar.gz"',
                     'base="${CONTAINERD_RELEASE_URL%/}/v${CONTAINERD_VERSION}"',
                     'kc_download "$base/$tarball.sha256sum"', 'tar -C "$KC_ROOT/usr/local" -xzf'):
        assert fragment in script, f"prepare-node.sh no longer downloads/unpacks containerd as upstream releases it: {fragment}"


def test_runc_release_asset_names_are_upstreams() -> None:
    def build(fact: str) -> list[str]:
        return _lines("containerd", "runc-release_build.digest.yaml", fact)

    assert _has(build("project"), 'project="runc"')
    assert _has(build("binary"), 'mv "$root/$project" "$builddir/$project.$arch"'), "runc's binaries are no longer runc.<arch>"
    assert _has(build("checksum_file"), '"$hashcmd" "${suffixes[@]/#/$project.}" >"$project.$hashcmd"') and _has(
        build("hashcmd_default"), 'hashcmd="${hashcmd:-sha256sum}"'), "runc's checksum file is no longer runc.sha256sum"
    script = PREPARE.read_text()
    for fragment in ('kc_download "$base/runc.$arch"', 'kc_download "$base/runc.sha256sum"'):
        assert fragment in script, f"prepare-node.sh no longer downloads runc as upstream releases it: {fragment}"


# --- the node as prepare-node.sh leaves it -------------------------------------------------------

#: Two mirrors for docker.io: the first is down (404), the second serves; one for quay.io.
DOWN, UP = "mirror-down", "mirror-up"


@pytest.fixture(scope="module")
def registries() -> Iterator[dict[str, "_Registry"]]:
    servers = {DOWN: _Registry(serve=False), UP: _Registry(serve=True)}
    try:
        yield servers
    finally:
        for server in servers.values():
            server.close()


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory, registries: dict[str, "_Registry"]) -> Sandbox:
    """A node prepared by prepare-node.sh (in the sandbox of tests/test_scripts.py), with mirrors."""
    node = fresh_node(Sandbox(tmp_path_factory.mktemp("node")))
    mirrors = f"docker.io={registries[DOWN].url},{registries[UP].url}\nquay.io={registries[UP].url}"
    result = node.run("prepare-node.sh", {**_prepare_env(), "REGISTRY_MIRRORS": mirrors})
    assert result.rc == 0, _explain(result)
    return node


def _directives(unit: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(d["section"], d["key"], d["value"]) for d in unit["directives"]]


def test_containerd_unit_is_upstreams(prepared: Sandbox) -> None:
    """Byte for byte below the header comment: the digest holds the sha256 of upstream's unit
    below its license header (and its directives, to say what differs)."""
    ours = prepared.path("/etc/systemd/system/containerd.service").read_text()
    upstream = facts("containerd", "containerd.service.digest.yaml")["systemd-unit"]
    assert ours.startswith("# Written by kubeadm-cluster"), ours
    mine = extract_systemd_unit(ours, {})
    assert _directives(mine) == _directives(upstream), (
        "the containerd.service prepare-node.sh writes differs from upstream's at "
        f"v{versions.CONTAINERD_VERSION} (tests/upstream/containerd/containerd.service.digest.yaml): "
        f"ours {_directives(mine)}, upstream's {_directives(upstream)}"
    )
    assert hashlib.sha256(unit_body(ours).encode()).hexdigest() == upstream["body_sha256"], (
        "the containerd.service prepare-node.sh writes has upstream's directives but not its text (comments, blank "
        f"lines or spacing differ from containerd v{versions.CONTAINERD_VERSION}'s unit below its header):\n{ours}"
    )


# --- a real containerd -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def containerd() -> Path:
    """Debian unstable's containerd package root (cached; fetched when not yet)."""
    root = debian_package_root("containerd")
    binary = root / "usr" / "bin" / "containerd"
    assert binary.is_file(), f"no containerd binary in {root}"
    major = subprocess.run([str(binary), "--version"], capture_output=True, text=True, check=True).stdout.split()[2]
    assert major.lstrip("v").startswith("2."), f"Debian's containerd is {major}: these tests need containerd 2.x"
    return root


def _dump(containerd: Path, config: Path) -> dict[str, Any]:
    proc = subprocess.run([str(containerd / "usr/bin/containerd"), "--config", str(config), "config", "dump"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"containerd cannot load {config}:\n{proc.stderr}"
    return tomllib.loads(proc.stdout)


def _keys(data: Any, prefix: str = "") -> set[str]:
    if not isinstance(data, dict):
        return set()
    out: set[str] = set()
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        out.add(path)
        out |= _keys(value, path)
    return out


def test_real_containerd_loads_the_generated_config(prepared: Sandbox, containerd: Path, tmp_path: Path) -> None:
    config = prepared.path("/etc/containerd/config.toml")
    dumped = _dump(containerd, config)
    plugins = dumped["plugins"]
    runtime = plugins["io.containerd.cri.v1.runtime"]["containerd"]
    images = plugins["io.containerd.cri.v1.images"]
    assert dumped["version"] == 3, f"containerd did not read a version 3 config: {dumped['version']}"
    assert runtime["default_runtime_name"] == "runc", runtime
    assert runtime["runtimes"]["runc"]["runtime_type"] == "io.containerd.runc.v2", runtime["runtimes"]["runc"]
    assert runtime["runtimes"]["runc"]["options"]["SystemdCgroup"] is True, (
        f"containerd does not see SystemdCgroup = true for runc: {runtime['runtimes']['runc']['options']}")
    assert images["pinned_images"]["sandbox"] == versions.PAUSE_IMAGE, (
        f"containerd's sandbox image is {images['pinned_images']['sandbox']}, not the pinned {versions.PAUSE_IMAGE}")
    assert images["registry"]["config_path"] == "/etc/containerd/certs.d", images["registry"]

    # Every key we set is one containerd has (a misspelt key would be kept as an extra, unused one).
    empty = tmp_path / "empty.toml"
    empty.write_text("version = 3\n")
    known = _keys(_dump(containerd, empty))
    unknown = sorted(_keys(tomllib.loads(config.read_text())) - known)
    assert not unknown, f"config.toml sets keys containerd does not know (ignored silently): {unknown}"


def _hosts_dir(prepared: Sandbox) -> Path:
    return prepared.path("/etc/containerd/certs.d")


@pytest.fixture(scope="module")
def daemon(containerd: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A containerd daemon in a private mount namespace (a tmpfs over /run: containerd always
    creates /run/containerd), everything else in a temporary directory; yields its socket."""
    if os.geteuid() != 0:
        pytest.fail("the real-containerd registry test needs root (containerd's daemon); CI runs as root")
    base = tmp_path_factory.mktemp("containerd")
    sock = base / "containerd.sock"
    config = base / "config.toml"
    config.write_text(f"""version = 3
root = "{base}/root"
state = "{base}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.runtime", "io.containerd.cri.v1.images",
                    "io.containerd.nri.v1.nri"]
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[plugins.'io.containerd.internal.v1.opt']
  path = "{base}/opt"
""")
    log = open(base / "containerd.log", "w")
    proc = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c",
         'mount -t tmpfs kubeadm-cluster-test /run && exec "$0" --config "$1"',
         str(containerd / "usr/bin/containerd"), str(config)],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not sock.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"containerd did not start (exit {proc.poll()}):\n{(base / 'containerd.log').read_text()}")
            time.sleep(0.1)
        yield sock
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _fetch(containerd: Path, sock: Path, hosts: Path, ref: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(containerd / "usr/bin/ctr"), "--address", str(sock), "content", "fetch", "--hosts-dir", str(hosts), ref],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )


def test_real_containerd_pulls_through_the_generated_mirrors(
    prepared: Sandbox, containerd: Path, daemon: Path, registries: dict[str, "_Registry"]
) -> None:
    """containerd's own hosts.toml loader reads the files prepare-node.sh writes: docker.io goes
    to the first mirror, then (404) the second, in the configured order; quay.io to its mirror.
    The registries' own servers are never asked (the mirrors serve the image)."""
    hosts = _hosts_dir(prepared)
    for registry in registries.values():
        registry.requests.clear()
    result = _fetch(containerd, daemon, hosts, "docker.io/library/kc-test:1")
    assert result.returncode == 0, f"ctr could not fetch through the generated docker.io mirrors:\n{result.stderr}"
    down = [r for r in registries[DOWN].requests if "/manifests/" in r]
    up = [r for r in registries[UP].requests if "/manifests/" in r]
    assert down and down[0].startswith("HEAD /v2/library/kc-test/manifests/1?ns=docker.io"), (
        f"the first docker.io mirror was not tried first: {registries[DOWN].requests}")
    assert up and "ns=docker.io" in up[0], f"the second docker.io mirror was not tried after the first: {registries[UP].requests}"

    registries[UP].requests.clear()
    result = _fetch(containerd, daemon, hosts, "quay.io/kc/test:1")
    assert result.returncode == 0, f"ctr could not fetch through the generated quay.io mirror:\n{result.stderr}"
    assert any("ns=quay.io" in r for r in registries[UP].requests), registries[UP].requests


class _Registry:
    """A tiny OCI distribution endpoint on 127.0.0.1 that serves one image (a config, no layer)
    for any name, or answers 404 to everything; it records each request as "METHOD path"."""

    def __init__(self, serve: bool) -> None:
        config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode()
        config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
        manifest = json.dumps({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": len(config)},
            "layers": [],
        }).encode()
        manifest_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
        self.requests: list[str] = []
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _answer(self, body: bytes | None, media_type: str = "application/json", digest: str = "") -> None:
                registry.requests.append(f"{self.command} {self.path}")
                if body is None or not serve:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", media_type)
                self.send_header("Content-Length", str(len(body)))
                if digest:
                    self.send_header("Docker-Content-Digest", digest)
                self.end_headers()
                if self.command == "GET":
                    self.wfile.write(body)

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/v2/":
                    self._answer(b"{}")
                elif "/manifests/" in path:
                    self._answer(manifest, "application/vnd.oci.image.manifest.v1+json", manifest_digest)
                elif path.endswith(f"/blobs/{config_digest}"):
                    self._answer(config, "application/octet-stream", config_digest)
                else:
                    self._answer(None)

            do_HEAD = do_GET

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- apt: the locks and the first-boot units -------------------------------------------------------


def test_apt_update_does_not_wait_for_the_lists_lock() -> None:
    """Why lib.sh retries `apt-get update` on "Unable to lock directory" (kc_apt_get_locked).
    The digests hold the lines of apt's functions (ListUpdate, pkgAcquire::GetLock,
    debSystem::Lock) that match what is checked here (tests/upstream/apt/SOURCES.yaml)."""
    assert _has(_lines("apt", "update.digest.yaml", "list_update_lock"),
                'Fetcher.GetLock(_config->FindDir("Dir::State::Lists"))'), (
        "apt-get update no longer takes the lists lock through pkgAcquire::GetLock")
    acquire = "acquire.digest.yaml"
    assert _has(_lines("apt", acquire, "get_lock_calls"), '::GetLock(flCombine(Lock, "lock"))') and not _lines(
        "apt", acquire, "get_lock_timeouts"), "pkgAcquire::GetLock now waits for the lock: lib.sh's own wait may be unnecessary"
    assert _has(_lines("apt", acquire, "get_lock_messages"), '_("Unable to lock directory %s")'), (
        "apt's message changed: lib.sh greps for it")
    assert "Unable to lock directory" in LIB.read_text(), "lib.sh no longer waits on apt's lists-lock message"
    assert _has(_lines("apt", "debsystem.digest.yaml", "lock_timeout"), '_config->FindI("DPkg::Lock::Timeout", 0)'), (
        "DPkg::Lock::Timeout moved: check what it covers")
    assert not _lines("apt", acquire, "lock_timeout_anywhere"), "apt's acquire code now reads a lock timeout"


def _service_type(unit: str) -> str:
    """A unit's Type= (systemd's default: simple), from its digest."""
    types = [d["value"] for d in facts("apt", f"{unit}.digest.yaml")["systemd-unit"]["directives"] if d["key"] == "Type"]
    return types[0] if types else "simple"


def test_first_boot_waits_for_the_oneshot_apt_units_only() -> None:
    """lib.sh waits for the oneshot units (their state is "activating" while they run); the
    unattended-upgrades.service is a simple unit active for the machine's life: waiting for it
    would always time out."""
    units = {name: _service_type(name)
             for name in ("apt-daily.service", "apt-daily-upgrade.service", "unattended-upgrades.service")}
    match = re.search(r"local -a units=\(([^)]*)\)", LIB.read_text())
    assert match, "lib.sh's kc_apt_settle no longer lists the units it waits for"
    waited = set(match.group(1).split())
    assert waited == {u for u, t in units.items() if t == "oneshot"}, (
        f"kc_apt_settle waits for {sorted(waited)}; the oneshot apt units are {units}")



# --- tools/debian_packages.py: what it trusts ------------------------------------------------------


@pytest.fixture(scope="module")
def debian_index(containerd: Path) -> tuple[Path, Path]:
    """The cached InRelease and Packages.xz (there once containerd was fetched)."""
    from tools import debian_packages

    inrelease, packages = debian_packages._index_paths(debian_packages.cache_dir(), "amd64")
    if not (inrelease.is_file() and packages.is_file()):
        debian_packages.lookup("containerd")
    return inrelease, packages


def test_debian_index_is_verified_before_use(debian_index: tuple[Path, Path], tmp_path: Path) -> None:
    from tools import debian_packages

    inrelease, packages = debian_index
    signed = debian_packages.verify_inrelease(inrelease)
    digest, size = debian_packages.release_sha256(signed, "main/binary-amd64/Packages.xz")
    assert packages.stat().st_size == size and hashlib.sha256(packages.read_bytes()).hexdigest() == digest, (
        "the cached Packages.xz is not the one the signed InRelease lists")
    tampered = tmp_path / "InRelease"
    tampered.write_text(inrelease.read_text().replace("Suite: unstable", "Suite: unstablE", 1))
    with pytest.raises(debian_packages.DebianPackageError, match="does not verify"):
        debian_packages.verify_inrelease(tampered)


def test_debian_package_root_comes_from_a_verified_deb(containerd: Path) -> None:
    from tools import debian_packages

    name, version, arch, sha256 = (containerd / debian_packages.COMPLETE_MARK).read_text().split()
    assert (name, arch) == ("containerd", "amd64") and containerd.name == f"containerd_{version}_amd64", containerd
    deb = debian_packages.cache_dir() / "debs" / f"containerd_{version.split(':')[-1]}_amd64.deb"
    assert hashlib.sha256(deb.read_bytes()).hexdigest() == sha256, f"{containerd} was not unpacked from {deb} as indexed"
