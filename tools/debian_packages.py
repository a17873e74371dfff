"""Real programs for the tests: one binary package of Debian's unstable suite, unpacked in a cache.

The tests run some upstream programs for real (containerd loading the config.toml the node
scripts write, ...) instead of stubs that behave as the scripts assume. Debian's unstable suite
carries them as packages. This module fetches one package the way apt would trust it, without
apt and without touching the machine's apt configuration:

1. ``dists/unstable/InRelease`` is verified with ``gpgv`` against Debian's archive keyring
   (``/usr/share/keyrings/debian-archive-keyring.gpg``, package debian-archive-keyring); only
   the signed text is used, and an index past its ``Valid-Until`` is refused (unless this
   machine's apt is configured with ``Acquire::Check-Valid-Until "false"``, as apt would);
2. ``main/binary-<arch>/Packages.xz`` must have the SHA256 the signed InRelease lists;
3. the package's ``.deb`` must have the SHA256 its ``Packages`` paragraph lists;
4. ``dpkg-deb -x`` unpacks it into ``<cache>/<package>_<version>_<arch>/`` (the "root": the
   programs are under ``<root>/usr/bin`` ...).

The cache is ``$XDG_CACHE_HOME/kubeadm-cluster/debian`` (default ``~/.cache/...``), or
``$KUBEADM_CLUSTER_DEBIAN_CACHE``. An unpacked package is reused as it is; the verified index
is reused for :data:`INDEX_MAX_AGE` (and, when Debian cannot be reached, as long as it is
still valid). Concurrent callers serialise on a lock file in the cache.

API::

    from tools.debian_packages import fetch_package, cached_package
    root = fetch_package("containerd")          # network when the index is stale
    root = cached_package("containerd")         # never the network: None when not fetched yet

CLI: ``python -m tools.debian_packages [--arch amd64] containerd runc`` prints one root a line.
"""

from __future__ import annotations

import argparse
import contextlib
import email.utils
import fcntl
import hashlib
import lzma
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

#: The archive and suite the packages come from.
MIRROR = "https://deb.debian.org/debian"
SUITE = "unstable"
COMPONENT = "main"
#: Debian's archive signing keys (package debian-archive-keyring).
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
#: How long a verified index is used before it is fetched again (seconds).
INDEX_MAX_AGE = 6 * 3600
#: Attempts per download (network blips), and the timeout of one request (seconds).
DOWNLOAD_ATTEMPTS = 3
DOWNLOAD_TIMEOUT = 120
#: The file that marks a completely unpacked root (a crash mid-unpack leaves no marker).
COMPLETE_MARK = ".kubeadm-cluster-complete"


class DebianPackageError(RuntimeError):
    """A package could not be fetched, verified or unpacked (the message says which step)."""


@dataclass(frozen=True)
class PackageInfo:
    """One paragraph of a ``Packages`` index."""

    name: str
    version: str
    architecture: str
    filename: str
    sha256: str
    size: int

    @property
    def url(self) -> str:
        return f"{MIRROR}/{self.filename}"


def cache_dir() -> Path:
    """Where indexes, .deb files and unpacked roots are kept."""
    explicit = os.environ.get("KUBEADM_CLUSTER_DEBIAN_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kubeadm-cluster" / "debian"


def _root_name(name: str, version: str, arch: str) -> str:
    # An epoch's colon is awkward in paths (and in PATH): Debian's own file names drop it.
    return f"{name}_{version.replace(':', '%3a')}_{arch}"


_logged: set[str] = set()


def _log(message: str) -> None:
    """One line on stderr (stdout is the CLI's output); a repeated message is logged once."""
    if message not in _logged:
        _logged.add(message)
        print(f"[debian_packages] {message}", file=sys.stderr)


@contextlib.contextmanager
def _locked(cache: Path) -> Iterator[None]:
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _download(url: str, dest: Path) -> None:
    """``url`` into ``dest`` (written next to it, then renamed), retried on network errors."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    last: Exception | None = None
    for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
        tmp = dest.with_name(dest.name + ".part")
        try:
            request = urllib.request.Request(url, headers={"User-Agent": "kubeadm-cluster-tests"})
            with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT) as response, open(tmp, "wb") as out:
                shutil.copyfileobj(response, out, 1 << 20)
            tmp.replace(dest)
            return
        except (urllib.error.URLError, OSError, TimeoutError) as error:
            last = error
            tmp.unlink(missing_ok=True)
            if attempt < DOWNLOAD_ATTEMPTS:
                _log(f"{url}: {error}; retrying ({attempt}/{DOWNLOAD_ATTEMPTS})")
                time.sleep(2 * attempt)
    raise DebianPackageError(f"cannot download {url}: {last}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_inrelease(inrelease: Path, keyring: Path = KEYRING) -> str:
    """The signed text of an InRelease file, after gpgv checked its signature against ``keyring``.

    Only gpgv's ``--output`` (the data the signature covers) is returned: text outside the
    signed part of the file is never read. Raises when the signature does not verify, or when
    the index is past its ``Valid-Until`` (a replayed old index).
    """
    if not keyring.is_file():
        raise DebianPackageError(
            f"no Debian archive keyring at {keyring}: install the package debian-archive-keyring")
    if shutil.which("gpgv") is None:
        raise DebianPackageError("gpgv is not installed (package gpgv): cannot verify Debian's InRelease")
    with tempfile.TemporaryDirectory() as tmp:
        signed = Path(tmp) / "signed"
        proc = subprocess.run(
            ["gpgv", "--keyring", str(keyring), "--output", str(signed), str(inrelease)],
            capture_output=True, text=True,
        )
        if proc.returncode != 0:
            raise DebianPackageError(f"the signature of {inrelease} does not verify with {keyring}:\n{proc.stderr}")
        text = signed.read_text(encoding="utf-8")
    fields = _release_fields(text)
    valid_until = fields.get("Valid-Until")
    if valid_until:
        until = email.utils.parsedate_to_datetime(valid_until)
        if until < datetime.now(timezone.utc):
            message = f"{inrelease.name} of {SUITE} expired at {valid_until} (Valid-Until): a stale or replayed index"
            if check_valid_until():
                raise DebianPackageError(message)
            _log(f"{message}; accepted, as apt here is configured with Acquire::Check-Valid-Until false")
    return text


def check_valid_until() -> bool:
    """Whether an expired InRelease is refused: what this machine's apt does
    (``Acquire::Check-Valid-Until``, true unless configured otherwise, e.g. on a machine that
    reads a frozen snapshot of the archive). Without apt-config: true."""
    if shutil.which("apt-config") is None:
        return True
    proc = subprocess.run(["apt-config", "shell", "V", "Acquire::Check-Valid-Until"], capture_output=True, text=True)
    value = proc.stdout.strip().removeprefix("V=").strip("'\"").lower()
    return value not in ("false", "no", "0", "off", "without")


def _release_fields(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in text.splitlines():
        match = re.match(r"^([A-Za-z0-9-]+):\s*(.*)$", line)
        if match:
            fields[match.group(1)] = match.group(2)
    return fields


def release_sha256(release_text: str, path: str) -> tuple[str, int]:
    """The SHA256 and size a (verified) Release text lists for ``path``, e.g.
    ``main/binary-amd64/Packages.xz``."""
    in_sha256 = False
    for line in release_text.splitlines():
        if not line.startswith(" "):
            in_sha256 = line.rstrip() == "SHA256:"
            continue
        if in_sha256:
            parts = line.split()
            if len(parts) == 3 and parts[2] == path:
                return parts[0], int(parts[1])
    raise DebianPackageError(f"the Release file lists no SHA256 for {path}")


def _index_paths(cache: Path, arch: str, suite: str = SUITE) -> tuple[Path, Path]:
    folder = cache / "index" / suite
    return folder / "InRelease", folder / f"Packages-{arch}.xz"


def _index_is_usable(inrelease: Path, packages: Path, arch: str) -> bool:
    """The cached index pair still verifies (signature, validity, checksum)."""
    if not (inrelease.is_file() and packages.is_file()):
        return False
    try:
        text = verify_inrelease(inrelease)
        expected, _ = release_sha256(text, f"{COMPONENT}/binary-{arch}/Packages.xz")
    except DebianPackageError as error:
        _log(f"cached index not usable: {error}")
        return False
    return _sha256(packages) == expected


def _refresh_index(cache: Path, arch: str, max_age: float, suite: str = SUITE) -> Path:
    """The verified Packages.xz of ``arch`` in ``suite`` (fetched again when older than ``max_age``)."""
    inrelease, packages = _index_paths(cache, arch, suite)
    fresh = inrelease.is_file() and packages.is_file() and time.time() - packages.stat().st_mtime < max_age
    if fresh and _index_is_usable(inrelease, packages, arch):
        return packages
    base = f"{MIRROR}/dists/{suite}"
    try:
        new_inrelease = inrelease.with_name("InRelease.new")
        _download(f"{base}/InRelease", new_inrelease)
        text = verify_inrelease(new_inrelease)
        path = f"{COMPONENT}/binary-{arch}/Packages.xz"
        expected, _ = release_sha256(text, path)
        new_packages = packages.with_name(packages.name + ".new")
        _download(f"{base}/{path}", new_packages)
        actual = _sha256(new_packages)
        if actual != expected:
            new_packages.unlink(missing_ok=True)
            raise DebianPackageError(f"{base}/{path}: sha256 {actual}, but the signed InRelease says {expected}")
        new_inrelease.replace(inrelease)
        new_packages.replace(packages)
        return packages
    except DebianPackageError as error:
        if _index_is_usable(inrelease, packages, arch):
            _log(f"{error}\nusing the cached index of {time.ctime(packages.stat().st_mtime)} (still valid)")
            return packages
        raise


def _paragraphs(packages_xz: Path, name: str) -> Iterator[dict[str, str]]:
    """The paragraphs of a Packages.xz whose ``Package`` is ``name``."""
    wanted = f"Package: {name}\n"
    with lzma.open(packages_xz, "rt", encoding="utf-8") as f:
        para: list[str] = []
        for line in f:
            if line == "\n":
                if para and para[0] == wanted:
                    yield _fields(para)
                para = []
            else:
                para.append(line)
        if para and para[0] == wanted:
            yield _fields(para)


def _fields(lines: list[str]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in lines:
        if line[:1] in (" ", "\t"):
            continue  # continuation lines (Description): not needed
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def _newer(a: str, b: str) -> bool:
    """Debian version ``a`` is newer than ``b`` (dpkg's own comparison)."""
    return subprocess.run(["dpkg", "--compare-versions", a, "gt", b]).returncode == 0


def lookup(name: str, arch: str = "amd64", *, max_age: float = INDEX_MAX_AGE, suite: str = SUITE) -> PackageInfo:
    """The newest ``name`` for ``arch`` in the (verified) index of ``suite`` (default unstable)."""
    cache = cache_dir()
    with _locked(cache):
        packages = _refresh_index(cache, arch, max_age, suite)
    best: PackageInfo | None = None
    for fields in _paragraphs(packages, name):
        info = PackageInfo(
            name=name, version=fields["Version"], architecture=fields["Architecture"],
            filename=fields["Filename"], sha256=fields["SHA256"], size=int(fields["Size"]),
        )
        if best is None or _newer(info.version, best.version):
            best = info
    if best is None:
        raise DebianPackageError(f"Debian {suite} has no package {name!r} for {arch} ({COMPONENT})")
    return best


def cached_package(name: str, arch: str = "amd64") -> Path | None:
    """The newest completely unpacked root of ``name`` in the cache, or None. No network."""
    cache = cache_dir()
    best: tuple[str, Path] | None = None
    prefix = f"{name}_"
    suffix = f"_{arch}"
    if not cache.is_dir():
        return None
    for root in cache.iterdir():
        if not (root.name.startswith(prefix) and root.name.endswith(suffix) and (root / COMPLETE_MARK).is_file()):
            continue
        version = root.name[len(prefix):-len(suffix)].replace("%3a", ":")
        if "_" in version:
            continue  # another package whose name starts with "<name>_"
        if best is None or _newer(version, best[0]):
            best = (version, root)
    return best[1] if best else None


def fetch_package(name: str, arch: str = "amd64", *, max_age: float = INDEX_MAX_AGE, suite: str = SUITE) -> Path:
    """Download (verified) and unpack the newest ``name`` of Debian unstable (or ``suite``, e.g.
    ``bookworm`` for a build against Debian 12's older glibc); returns its root.

    A root unpacked earlier for the same version is returned as it is.
    """
    info = lookup(name, arch, max_age=max_age, suite=suite)
    cache = cache_dir()
    root = cache / _root_name(info.name, info.version, arch)
    with _locked(cache):
        if (root / COMPLETE_MARK).is_file():
            return root
        if shutil.which("dpkg-deb") is None:
            raise DebianPackageError("dpkg-deb is not installed (package dpkg): cannot unpack .deb files")
        deb = cache / "debs" / Path(info.filename).name
        if not (deb.is_file() and _sha256(deb) == info.sha256):
            _log(f"downloading {info.url}")
            _download(info.url, deb)
        actual = _sha256(deb)
        if actual != info.sha256:
            deb.unlink(missing_ok=True)
            raise DebianPackageError(f"{info.url}: sha256 {actual}, but the signed index says {info.sha256}")
        shutil.rmtree(root, ignore_errors=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=cache))
        try:
            proc = subprocess.run(["dpkg-deb", "-x", str(deb), str(staging)], capture_output=True, text=True)
            if proc.returncode != 0:
                raise DebianPackageError(f"dpkg-deb -x {deb} failed:\n{proc.stderr}")
            (staging / COMPLETE_MARK).write_text(f"{info.name} {info.version} {arch} {info.sha256}\n")
            staging.replace(root)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        _log(f"{info.name} {info.version} ({arch}) unpacked in {root}")
        return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.debian_packages",
        description="Fetch (signature and checksums verified) and unpack Debian unstable packages; print their roots.",
    )
    parser.add_argument("packages", nargs="+", metavar="PACKAGE")
    parser.add_argument("--arch", default="amd64", help="Debian architecture (default amd64)")
    parser.add_argument("--max-age", type=float, default=INDEX_MAX_AGE,
                        help=f"seconds a verified index is reused (default {INDEX_MAX_AGE})")
    args = parser.parse_args(argv)
    try:
        for name in args.packages:
            print(fetch_package(name, args.arch, max_age=args.max_age))
    except DebianPackageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
