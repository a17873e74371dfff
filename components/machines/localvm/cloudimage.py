"""Ubuntu's cloud image for local VMs: downloaded once, checked against its SHA256SUMS, and
seeded per VM through cloud-init's NoCloud data source.

* The image and ``SHA256SUMS`` come from the release directory of cloud-images.ubuntu.com
  (``SHA256SUMS`` lines are ``<hex> *<file>``, sha256sum's binary mode, or ``<hex>  <file>``).
  A download whose SHA-256 differs from its line is deleted and refused; so is a file that
  ``SHA256SUMS`` does not list. (The ``.gpg`` signature of SHA256SUMS is not checked here: the
  file comes over HTTPS from Canonical's server, or from a mirror you name.)
* The NoCloud seed is a directory with ``meta-data`` (instance id, host name), ``user-data``
  (the ``kubeadm`` user with passwordless sudo and the stack's key) and ``network-config``
  (version 2: DHCP on the NAT NIC, the static private address on the other, matched by MAC),
  given to the VM as a read-only FAT disk labelled ``cidata`` by QEMU's vvfat driver: no root,
  no ISO tools.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from components.machines.localvm.image import USER, BaseImage, ImageError

#: Where Ubuntu 24.04's cloud images are published, and the file for x86-64 VMs.
UBUNTU_2404_URL = "https://cloud-images.ubuntu.com/releases/24.04/release/"
UBUNTU_2404_FILE = "ubuntu-24.04-server-cloudimg-amd64.img"
SUMS_FILE = "SHA256SUMS"
_SUM_LINE = re.compile(r"^(?P<hex>[0-9a-fA-F]{64}) [ *](?P<file>\S.*)$")


@dataclass(frozen=True)
class CloudImage:
    """One cloud image: where it comes from and what it is called locally."""

    name: str
    base_url: str
    filename: str


UBUNTU_2404 = CloudImage("ubuntu-24.04", UBUNTU_2404_URL, UBUNTU_2404_FILE)


def parse_sums(text: str) -> dict[str, str]:
    """``SHA256SUMS`` as file name -> lower-case hex digest."""
    sums: dict[str, str] = {}
    for line in text.splitlines():
        match = _SUM_LINE.match(line.strip())
        if match:
            sums[match.group("file")] = match.group("hex").lower()
    return sums


def _get(url: str, timeout: float = 60) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


def fetch(image: CloudImage, root: Path, base_url: str | None = None) -> BaseImage:
    """The image under ``root/<name>/``, downloaded and checked first when missing."""
    directory = root / image.name
    manifest = directory / "manifest.json"
    if manifest.exists():
        return _base(image, directory)
    url = (base_url or image.base_url).rstrip("/") + "/"
    started = time.monotonic()
    try:
        sums = parse_sums(_get(url + SUMS_FILE).decode(errors="replace"))
    except OSError as error:
        raise ImageError(f"cannot read {url}{SUMS_FILE}: {error}") from None
    expected = sums.get(image.filename)
    if expected is None:
        raise ImageError(f"{url}{SUMS_FILE} lists no {image.filename}: refusing an image without its checksum")
    directory.mkdir(parents=True, exist_ok=True)
    part = directory / f".{image.filename}.part"
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url + image.filename, timeout=60) as response, part.open("wb") as out:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
    except OSError as error:
        part.unlink(missing_ok=True)
        raise ImageError(f"cannot download {url}{image.filename}: {error}") from None
    if digest.hexdigest() != expected:
        part.unlink(missing_ok=True)
        raise ImageError(
            f"{url}{image.filename} has SHA-256 {digest.hexdigest()}, but {SUMS_FILE} says {expected}: refused "
            "(a corrupted or tampered download)"
        )
    part.replace(directory / image.filename)
    manifest.write_text(json.dumps({"file": image.filename, "sha256": expected, "url": url,
                                    "seconds": round(time.monotonic() - started, 1)}, indent=2))
    return _base(image, directory)


def _base(image: CloudImage, directory: Path) -> BaseImage:
    disk = directory / image.filename
    return BaseImage(suite=image.name, directory=directory, disk=disk, kernel=Path(), initrd=Path(),
                     build_seconds=0.0, disk_format="qcow2")


def cached(image: CloudImage, root: Path) -> BaseImage | None:
    directory = root / image.name
    return _base(image, directory) if (directory / "manifest.json").exists() else None


def user_data(authorized_key: str) -> str:
    """cloud-config: the cloud user the node scripts log in as, as on a GCP node."""
    return "#cloud-config\n" + json.dumps({
        "users": [{
            "name": USER, "shell": "/bin/bash", "lock_passwd": True, "sudo": "ALL=(ALL) NOPASSWD:ALL",
            "ssh_authorized_keys": [authorized_key.strip()],
        }],
        "ssh_pwauth": False,
    }, indent=2) + "\n"


def network_config(index: int, private: str) -> str:
    """network-config version 2: DHCP on QEMU's NAT NIC, the private address on the link's NIC."""
    return json.dumps({
        "version": 2,
        "ethernets": {
            "nat": {"match": {"macaddress": f"52:54:00:77:00:{index:02x}"}, "dhcp4": True},
            "private": {"match": {"macaddress": f"52:54:00:77:01:{index:02x}"}, "dhcp4": False,
                        "addresses": [private]},
        },
    }, indent=2) + "\n"


def write_seed(directory: Path, name: str, index: int, private: str, authorized_key: str) -> Path:
    """The NoCloud seed directory of one VM (JSON is YAML: cloud-init reads both)."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    (directory / "meta-data").write_text(json.dumps({"instance-id": f"{name}-{index}", "local-hostname": name}) + "\n")
    (directory / "user-data").write_text(user_data(authorized_key))
    (directory / "network-config").write_text(network_config(index, private))
    return directory


def seed_drive(directory: Path) -> list[str]:
    """QEMU arguments giving the VM ``directory`` as a read-only FAT disk labelled ``cidata``."""
    return ["-drive", f"driver=vvfat,dir={directory},label=cidata,read-only=on,if=none,id=seed",
            "-device", "virtio-blk-pci,drive=seed,addr=0x9"]
