"""certs-renew.sh with real certificates: the renewal decision is made by the real openssl on
certificates openssl made here (near expiry or not), in kubeadm's layout (the leaf certificates in
/etc/kubernetes/pki and the client certificates embedded in admin.conf and the other kubeconfigs).

kubeadm, crictl and kubectl are stubs (tests/test_scripts.py's sandbox): ``kubeadm certs renew
all`` re-issues the leaf certificates for a year as kubeadm does; crictl answers as the kubelet
would, a static pod's container gone while its manifest is out of /etc/kubernetes/manifests and a
new one once it is back (kubeadm's documented way to restart a static pod after a renewal).
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.test_scripts import Sandbox, _explain

#: kubeadm's leaf certificates and kubeconfigs, as certs-renew.sh reads them.
LEAVES = ("apiserver", "apiserver-kubelet-client", "apiserver-etcd-client", "front-proxy-client",
          "etcd/server", "etcd/peer", "etcd/healthcheck-client")
KUBECONFIGS = ("admin.conf", "super-admin.conf", "controller-manager.conf", "scheduler.conf")
PODS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")

#: The kubelet as crictl shows it: a static pod runs while its manifest is in the manifests
#: directory; after its manifest was out, it comes back as a new container.
CRICTL = r"""[[ $1 == ps ]] || { echo "unexpected crictl call: $*" >&2; exit 64; }
name=""; prev=""
for a in "$@"; do [[ $prev == --name ]] && name=${a#^}; name=${name%\$}; prev=$a; done
m=$KC_ROOT/etc/kubernetes/manifests/$name.yaml
if [[ -f $m ]]; then
  if [[ -f $STUB_STATE/gone-$name ]]; then rm "$STUB_STATE/gone-$name"; echo "$name" >>"$STUB_STATE/restarted"; count "gen-$name" >/dev/null; fi
  echo "$name-$(cat "$STUB_STATE/count-gen-$name" 2>/dev/null || echo 0)"
else
  touch "$STUB_STATE/gone-$name"
fi"""
#: kubeadm certs renew all: every leaf certificate and kubeconfig client certificate re-issued
#: for 365 days (from the fixtures the test made), unless STUB_RENEW_BROKEN=1.
KUBEADM = r"""[[ "$*" == "certs renew all" ]] || { echo "unexpected kubeadm call: $*" >&2; exit 64; }
((${STUB_RENEW_BROKEN:-0})) && exit 0
cp -r "$STUB_FIXTURES/renewed/." "$KC_ROOT/etc/kubernetes/"
echo "[renew] certificates renewed" """


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_cert(ca_dir: Path, out: Path, days: int, name: str) -> None:
    """A certificate signed by ca_dir's CA, valid ``days`` days from now."""
    out.parent.mkdir(parents=True, exist_ok=True)
    key = out.with_suffix(".key")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name.replace('/', '-')}", "-keyout", str(key),
             "-out", str(out.with_suffix(".csr")), cwd=ca_dir)
    _openssl("x509", "-req", "-in", str(out.with_suffix(".csr")), "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", str(days), "-out", str(out), cwd=ca_dir)
    out.with_suffix(".csr").unlink()


def make_kubeconfig(path: Path, cert: Path) -> None:
    data = base64.b64encode(cert.read_bytes()).decode()
    path.write_text(
        "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority-data: Q0E=\n"
        "    server: https://10.240.0.2:6443\n  name: kubernetes\nusers:\n- name: kubernetes-admin\n  user:\n"
        f"    client-certificate-data: {data}\n    client-key-data: S0VZ\n"
    )


def make_control_plane(base: Path, days: dict[str, int]) -> Path:
    """/etc/kubernetes of a control plane (returned), each certificate lasting days.get(name, 300)
    days, and the fixtures of what `kubeadm certs renew all` writes (365 days)."""
    k8s = base / "etc" / "kubernetes"
    pki = k8s / "pki"
    (pki / "etcd").mkdir(parents=True)
    for ca in ("ca", "front-proxy-ca", "etcd/ca"):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650", "-subj", f"/CN={ca.replace('/', '-')}",
                 "-keyout", f"{ca}.key", "-out", f"{ca}.crt", cwd=pki)
    for leaf in LEAVES:
        make_cert(pki, pki / f"{leaf}.crt", days.get(leaf, 300), leaf)
    for conf in KUBECONFIGS:
        make_cert(pki, base / "client" / f"{conf}.crt", days.get(conf, 300), conf)
        make_kubeconfig(k8s / conf, base / "client" / f"{conf}.crt")
    (k8s / "manifests").mkdir()
    for pod in PODS:
        (k8s / "manifests" / f"{pod}.yaml").write_text(f"# {pod}\n")
    return k8s


def renewed_fixtures(box: Sandbox, k8s: Path) -> None:
    renewed = box.fixtures / "renewed"
    (renewed / "pki" / "etcd").mkdir(parents=True)
    for leaf in LEAVES:
        make_cert(k8s / "pki", renewed / "pki" / f"{leaf}.crt", 365, leaf)
    for conf in KUBECONFIGS:
        make_cert(k8s / "pki", box.base / "renewed-client" / f"{conf}.crt", 365, conf)
        make_kubeconfig(renewed / conf, box.base / "renewed-client" / f"{conf}.crt")
    for key in renewed.rglob("*.key"):
        key.unlink()  # (the keys kubeadm writes with them do not matter here)


def box_with(tmp_path: Path, days: dict[str, int]) -> tuple[Sandbox, Path]:
    box = Sandbox(tmp_path)
    for tool in ("openssl", "base64"):
        target = box.bin / tool
        if target.exists():
            target.unlink()
        real = shutil.which(tool)
        assert real, f"the test needs the real {tool}"
        target.symlink_to(os.path.realpath(real))
    box._stub("crictl", CRICTL)
    box._stub("kubeadm", KUBEADM)
    k8s = make_control_plane(box.root, days)
    renewed_fixtures(box, k8s)
    box.env.update({"KC_STATIC_POD_POLL": "0", "KC_STATIC_POD_TIMEOUT": "5"})
    return box, k8s


def test_certificates_far_from_expiry_are_left_alone(tmp_path: Path) -> None:
    box, _ = box_with(tmp_path, {})
    result = box.run("certs-renew.sh")
    assert result.rc == 0, _explain(result)
    assert not result.called("kubeadm"), f"renewed certificates that last 300 days: {result.calls}"
    assert "nothing to renew" in result.stderr, result.stderr
    for name in ("apiserver.crt", "etcd/peer.crt", "admin.conf", "scheduler.conf"):
        assert f"{name} expires " in result.stderr, f"the expiry of {name} is not logged:\n{result.stderr}"
    assert "certificate authority ca.crt expires" in result.stderr, result.stderr


@pytest.mark.parametrize(("name", "days", "renews"), [
    ("apiserver", 29, True), ("apiserver", 31, False), ("etcd/peer", 10, True),
    ("admin.conf", 20, True), ("controller-manager.conf", 45, False),
])
def test_fewer_than_30_days_left_renews_everything_and_restarts_the_static_pods(
    tmp_path: Path, name: str, days: int, renews: bool
) -> None:
    box, k8s = box_with(tmp_path, {name: days})
    result = box.run("certs-renew.sh")
    assert result.rc == 0, _explain(result)
    if not renews:
        assert not result.called("kubeadm"), f"{name} has {days} days left: nothing to renew, yet {result.calls}"
        return
    assert result.called("kubeadm") == ["kubeadm certs renew all"], result.calls
    restarted = (box.state / "restarted").read_text().split()
    assert restarted == list(PODS), f"static pods restarted: {restarted}, want one by one {PODS}"
    for pod in PODS:
        assert (k8s / "manifests" / f"{pod}.yaml").is_file(), f"{pod}'s manifest was not put back"
    assert not (k8s / "kubeadm-cluster-paused-manifests").exists()
    assert result.called("kubectl"), "admin.conf was not checked against the API server after the renewal"
    label = name if name.endswith(".conf") else f"{name}.crt"
    assert f"{label} expires" in result.stderr and f"within 30 days" in result.stderr, result.stderr


def test_a_renewal_that_does_not_take_fails_and_puts_every_manifest_back(tmp_path: Path) -> None:
    box, k8s = box_with(tmp_path, {"apiserver": 5})
    result = box.run("certs-renew.sh", {"STUB_RENEW_BROKEN": "1"})
    assert result.rc != 0 and "still expiring within 30 days" in result.stderr, _explain(result)
    for pod in PODS:
        assert (k8s / "manifests" / f"{pod}.yaml").is_file(), f"{pod}'s manifest is missing after a failure"


def test_a_pod_that_does_not_come_back_fails_and_its_manifest_is_back(tmp_path: Path) -> None:
    box, k8s = box_with(tmp_path, {"apiserver": 5})
    # A crictl that never shows kube-apiserver again: it stays "gone" after its manifest is back.
    box._stub("crictl", CRICTL.replace('if [[ -f $m ]]; then', 'if [[ -f $m && $name != kube-apiserver ]]; then'))
    result = box.run("certs-renew.sh", {"KC_STATIC_POD_TIMEOUT": "1"})
    assert result.rc != 0 and "kube-apiserver does not run again" in result.stderr, _explain(result)
    assert (k8s / "manifests" / "kube-apiserver.yaml").is_file()


def test_not_a_control_plane_nothing_to_do(tmp_path: Path) -> None:
    box = Sandbox(tmp_path)
    result = box.run("certs-renew.sh")
    assert result.rc == 0 and "not a control plane" in result.stderr, _explain(result)
    assert not result.calls, result.calls
