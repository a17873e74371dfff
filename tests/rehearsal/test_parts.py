"""The rehearsal's parts that need no VM (fast; run with the rest of the suite).

The mirror's apt repository verifies the way apt verifies it, the runc release file carries and
runs its binary, the kubeadm stand-in accepts the program's own kubeadm configs and rejects an
unknown field, and its bootstrap-token signature and CA pin are the ones kubeadm computes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from components.bootstrap.scripts import script
from tests.conftest import stack_config
from tools.mock_engine import run_program
from tools.rehearsal import mirror

STANDIN = mirror.STANDIN
needs_debian_tools = pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ("dpkg-deb", "gpg", "gpgv")), reason="needs dpkg-deb, gpg and gpgv"
)


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KC_REHEARSAL_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@needs_debian_tools
def test_the_apt_repository_is_signed_the_way_apt_checks_it(tmp_path: Path, cache: Path) -> None:
    deb = mirror.Deb("kubeadm", "1.36.4-1.1", "test", files={"/usr/bin/kubeadm": b"#!/bin/sh\n"}).build(tmp_path / "debs")
    repo = tmp_path / "repo"
    mirror.write_apt_repository(repo, [deb])
    keyring = tmp_path / "keyring.gpg"
    subprocess.run(["gpg", "--batch", "--yes", "--dearmor", "-o", str(keyring), str(repo / "Release.key")], check=True)
    for args in (["InRelease"], ["Release.gpg", "Release"]):
        check = subprocess.run(["gpgv", "--keyring", str(keyring), *[str(repo / a) for a in args]],
                               capture_output=True, text=True)
        assert check.returncode == 0, f"{args[0]} does not verify with Release.key:\n{check.stderr}"
    packages = (repo / "Packages").read_text()
    sha = hashlib.sha256((repo / "amd64" / deb.name).read_bytes()).hexdigest()
    assert f"Filename: amd64/{deb.name}" in packages and f"SHA256: {sha}" in packages
    release = (repo / "Release").read_text()
    assert f" {hashlib.sha256(packages.encode()).hexdigest()} {len(packages)} Packages" in release


def test_the_runc_release_file_answers_its_version_and_runs_the_real_binary(tmp_path: Path) -> None:
    root = tmp_path / "runc_1.3.6+ds1-1_amd64"
    (root / "usr/sbin").mkdir(parents=True)
    (root / "usr/sbin/runc").write_bytes(b"#!/bin/sh\necho real runc \"$@\"\n")
    mirror.runc_release(tmp_path / "runc", "1.4.3", root)
    release = tmp_path / "runc" / "v1.4.3"
    binary = release / "runc.amd64"
    sums = (release / "runc.sha256sum").read_text().split()
    assert sums == [hashlib.sha256(binary.read_bytes()).hexdigest(), "runc.amd64"]
    binary.chmod(0o755)
    version = subprocess.run([str(binary), "--version"], capture_output=True, text=True)
    assert version.stdout.splitlines()[0] == "runc version 1.4.3", version.stdout
    # What prepare-node.sh reads: the third field of the first line.
    assert version.stdout.split()[2] == "1.4.3"
    text = binary.read_bytes()
    payload = text[text.index(b"#!/bin/sh\necho real"):]
    assert payload == (root / "usr/sbin/runc").read_bytes(), "the real binary is not the file's tail"


def _standin(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The kubeadm stand-in on this machine, with the v1beta4 table beside it."""
    script = tmp_path / "kubeadm"
    script.write_text(STANDIN.read_text().replace('VERSION = "@VERSION@"', 'VERSION = "1.36.4-1.1"').replace(
        'TYPES_FILE = Path("/usr/lib/kc-standin/kubeadm-v1beta4.json")', f'TYPES_FILE = Path("{tmp_path}/types.json")'))
    (tmp_path / "types.json").write_text(json.dumps(mirror.kubeadm_types()))
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, env=env,
                          cwd=tmp_path)


def _init_config() -> str:
    plan = run_program(stack_config(), stack="dev")
    assert plan.error is None, plan.error
    stdin = str(plan.named("dev-cp-0-init").input("stdin"))
    exports = stdin.split(script("lib.sh"))[0]  # "set -euo pipefail" and the step's exports
    return subprocess.run(["bash", "-c", exports + 'printf %s "$KUBEADM_CONFIG"'], capture_output=True, text=True,
                          check=True).stdout


def test_the_kubeadm_standin_accepts_the_programs_config_and_rejects_an_unknown_field(tmp_path: Path) -> None:
    config = tmp_path / "kubeadm.yaml"
    config.write_text(_init_config())
    ok = _standin(tmp_path, "config", "validate", "--config", str(config))
    assert ok.returncode == 0, f"the stand-in rejects the program's init config:\n{ok.stderr}"
    documents = list(yaml.safe_load_all(config.read_text()))
    documents[1]["apiServer"]["extraArgz"] = []
    config.write_text(yaml.safe_dump_all(documents))
    bad = _standin(tmp_path, "config", "validate", "--config", str(config))
    assert bad.returncode == 1 and 'ClusterConfiguration.apiServer: unknown field "extraArgz"' in bad.stderr, bad.stderr
    documents[1]["apiServer"].pop("extraArgz")
    documents[0]["apiVersion"] = "kubeadm.k8s.io/v1beta3"
    config.write_text(yaml.safe_dump_all(documents))
    old = _standin(tmp_path, "config", "validate", "--config", str(config))
    assert old.returncode == 1 and "kubeadm.k8s.io/v1beta3" in old.stderr, old.stderr


def test_the_standins_token_signature_is_an_hs256_jws_keyed_by_the_token_secret() -> None:
    namespace: dict[str, object] = {"__name__": "standin"}
    exec(compile(STANDIN.read_text(), str(STANDIN), "exec"), namespace)  # noqa: S102 - our own file
    jws = namespace["jws"]
    assert callable(jws)
    signature = str(jws("payload", "abcdef", "0123456789abcdef"))
    header, empty, mac = signature.split(".")
    assert empty == "" and json.loads(base64.urlsafe_b64decode(header + "==")) == {"alg": "HS256", "kid": "abcdef"}
    expected = hmac.new(b"0123456789abcdef", f"{header}.{base64.urlsafe_b64encode(b'payload').decode().rstrip('=')}".encode(),
                        hashlib.sha256).digest()
    assert base64.urlsafe_b64decode(mac + "=" * (-len(mac) % 4)) == expected
