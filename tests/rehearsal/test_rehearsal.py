"""The program's own node steps on three real Debian VMs (QEMU), judged by the VMs' real state.

A ``provider: existing`` stack points at the VMs: the first is the control plane and the SSH
bastion (on the host's loopback), the other two are workers behind it; ``mirrors`` point at the
host's mirror (tools/rehearsal/mirror.py). The program runs under the mock engine, and each
``remote.Command`` it creates is executed on its VM the way pulumi-command does (``sudo bash -s``
with the exact registered bundle on stdin, through the jump host) in the engine's order, so
node prep runs on the three nodes at once, then init, tokens and joins (tools/rehearsal/program.py).

The tests run in order on the same VMs: create, a second run of every step, reboots, then
failure scenarios. Stage timings appear in the terminal summary ("rehearsal timings").
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest

from components import hardware, versions
from tools.rehearsal import mirror as mirror_module
from tools.rehearsal.program import COMMAND_TYPE, LiveRun, plan
from tools.rehearsal.session import Rehearsal
from tools.rehearsal.vms import VM

pytestmark = pytest.mark.rehearsal

#: What earlier tests left for later ones (the same VMs go through every scenario).
DONE: dict[str, Any] = {}

K8S = versions.KUBERNETES_DEFAULT_VERSION
PACKAGE_VERSION = f"{K8S}-{mirror_module.PACKAGE_REVISION}"
HELD = ("kubelet", "kubeadm", "kubectl")

#: One script that prints a VM's facts, section by section ("### name" lines).
FACTS = r"""
section() { printf '### %s\n' "$1"; }
section packages
dpkg-query -W -f='${Package} ${Version} ${db:Status-Abbrev}\n' kubelet kubeadm kubectl kubernetes-cni cri-tools 2>/dev/null || true
section holds
apt-mark showhold
section units
for unit in containerd kubelet; do
  printf '%s %s %s\n' "$unit" "$(systemctl is-active "$unit" || true)" "$(systemctl is-enabled "$unit" || true)"
done
section modules
awk '{ print $1 }' /proc/modules | sort
section sysctl
for key in net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables; do
  printf '%s=%s\n' "$key" "$(sysctl -n "$key" 2>/dev/null || echo missing)"
done
section swaps
tail -n +2 /proc/swaps
section hosts
cat /etc/hosts
section containerd-config
/usr/local/bin/containerd config dump 2>&1 || true
section versions
/usr/local/bin/containerd --version
/usr/local/sbin/runc --version | head -n 1
section files
for f in /etc/kubernetes/admin.conf /etc/kubernetes/kubelet.conf /etc/kubernetes/pki/ca.crt /var/lib/kubelet/config.yaml; do
  if [ -f "$f" ]; then sha256sum "$f"; else echo "missing $f"; fi
done
section kubeadm-calls
cat /var/log/kc-standin/kubeadm.jsonl 2>/dev/null || true
"""

#: What must not change when a step runs again: the files the steps write (content and mtime),
#: the installed packages, and the running daemons (a restart changes the PID and start time).
FINGERPRINT = r"""
for f in /etc/modules-load.d/kubeadm-cluster.conf /etc/sysctl.d/99-kubeadm-cluster.conf \
    /etc/systemd/system/containerd.service /etc/containerd/config.toml /etc/crictl.yaml \
    /etc/apt/keyrings/kubernetes-apt-keyring.gpg /etc/apt/sources.list.d/kubernetes.list \
    /usr/local/bin/containerd /usr/local/sbin/runc /etc/hosts /etc/fstab /etc/kubernetes/kubelet.conf \
    /etc/kubernetes/admin.conf /etc/kubernetes/pki/ca.crt /var/lib/kubelet/config.yaml; do
  if [ -e "$f" ]; then printf '%s %s %s\n' "$f" "$(stat -c %Y "$f")" "$(sha256sum <"$f" | cut -c1-16)"; fi
done
printf 'dpkg-status %s\n' "$(sha256sum </var/lib/dpkg/status | cut -c1-16)"
systemctl show -p MainPID -p ActiveEnterTimestamp containerd kubelet
"""


def facts(rehearsal: Rehearsal, vm: VM) -> dict[str, str]:
    result = rehearsal.sh(vm, FACTS)
    assert result.ok, result.explain()
    sections: dict[str, str] = {}
    name = ""
    for line in result.stdout.splitlines():
        if line.startswith("### "):
            name = line[4:]
            sections[name] = ""
        elif name:
            sections[name] += line + "\n"
    return sections


def fingerprints(rehearsal: Rehearsal) -> list[str]:
    results = rehearsal.sh_all(FINGERPRINT)
    for result in results:
        assert result.ok, result.explain()
    return [result.stdout for result in results]


def require(*stages: str) -> None:
    missing = [stage for stage in stages if not DONE.get(stage)]
    if missing:
        pytest.skip(f"needs the earlier scenario(s) {', '.join(missing)} to have passed")


def assert_all_ok(live: LiveRun) -> None:
    assert live.error is None and not live.failed(), f"the program's steps failed on the VMs:\n{live.explain()}"


def expected_steps(rehearsal: Rehearsal) -> set[str]:
    """The remote steps a create runs: every registered command that has a ``create``."""
    registered = plan(rehearsal.config()).of_type(COMMAND_TYPE)
    return {r.name for r in registered if r.input("create")}


def test_create_on_fresh_vms_in_the_programs_order(rehearsal: Rehearsal) -> None:
    live = rehearsal.run("create: prepare + init + tokens + joins")
    DONE["create-run"] = live
    assert_all_ok(live)
    assert {s.name for s in live.steps} == expected_steps(rehearsal), live.explain()

    # The engine's order: prep on all nodes at once, init after the first node's prep, each join
    # after its node's prep and its token (minted on the control plane after init).
    prepares = [s for s in live.steps if s.name.endswith("-prepare")]
    assert max(s.started for s in prepares) < min(s.finished for s in prepares), "node prep did not run in parallel"
    init = live.step("rehearsal-cp-0-init")
    assert init.started >= live.step("rehearsal-cp-0-prepare").finished
    for worker in ("general-0", "general-1"):
        join = live.step(f"rehearsal-{worker}-join")
        assert join.started >= live.step(f"rehearsal-{worker}-prepare").finished
        assert join.started >= live.step(f"rehearsal-{worker}-join-token").finished >= init.finished
        rehearsal.timings[f"  of which: join {worker}"] = join.seconds
    rehearsal.timings["  of which: prepare (3 nodes at once)"] = max(s.seconds for s in prepares)
    rehearsal.timings["  of which: init"] = init.seconds

    ca_hashes = set()
    for vm in rehearsal.vms:
        node = facts(rehearsal, vm)
        packages = {line.split()[0]: line.split()[1:] for line in node["packages"].splitlines()}
        for package in HELD:
            # "hi": wanted on hold, installed.
            assert packages.get(package) == [PACKAGE_VERSION, "hi"], f"{vm.name}: {package}: {packages.get(package)}"
            assert package in node["holds"].split(), f"{vm.name}: {package} is not held: {node['holds']}"
        assert "kubernetes-cni" in packages and "cri-tools" in packages, f"{vm.name}: {packages}"
        assert "containerd active enabled" in node["units"], f"{vm.name}: {node['units']}"
        assert "kubelet active enabled" in node["units"], f"{vm.name}: {node['units']}"
        modules = node["modules"].split()
        assert {"overlay", "br_netfilter"} <= set(modules), f"{vm.name}: modules {modules}"
        for key in ("net.ipv4.ip_forward", "net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables"):
            assert f"{key}=1" in node["sysctl"], f"{vm.name}: {node['sysctl']}"
        assert node["swaps"].strip() == "", f"{vm.name}: swap is on: {node['swaps']}"
        config = node["containerd-config"]
        assert re.search(r"SystemdCgroup = true", config), f"{vm.name}: containerd does not use the systemd cgroup driver"
        pause = versions.PAUSE_IMAGE.split("/", 1)[1]
        assert f"sandbox = 'registry.k8s.io/{pause}'" in config or f'sandbox = "registry.k8s.io/{pause}"' in config, (
            f"{vm.name}: containerd's loaded config does not pin the sandbox image {pause}:\n"
            + "\n".join(line for line in config.splitlines() if "sandbox" in line))
        assert "config_path = '/etc/containerd/certs.d'" in config or 'config_path = "/etc/containerd/certs.d"' in config
        assert f"v{versions.CONTAINERD_VERSION}" in node["versions"] and f"runc version {versions.RUNC_VERSION}" in node["versions"]
        files = node["files"]
        assert "missing /etc/kubernetes/kubelet.conf" not in files, f"{vm.name}: not joined: {files}"
        assert ("missing /etc/kubernetes/admin.conf" in files) == (vm.index != 0), f"{vm.name}: {files}"
        ca_hashes.add(next(line.split()[0] for line in files.splitlines() if line.endswith("/pki/ca.crt")))
        calls = [json.loads(line) for line in node["kubeadm-calls"].splitlines() if line.strip()]
        events = [c.get("event") for c in calls if c.get("event")]
        assert ("init" in events) == (vm.index == 0) and ("join" in events) == (vm.index != 0), f"{vm.name}: {events}"
        # The endpoint of an existing stack is the first control plane's address: no hosts line.
        assert "kubeadm-cluster API endpoint" not in node["hosts"], node["hosts"]
        assert f"127.0.1.1 {vm.name}" in node["hosts"]
    assert len(ca_hashes) == 1, f"the nodes do not share one cluster CA: {ca_hashes}"

    # Real kubectl (Debian's 1.36) on the control plane sees the three Nodes the kubelets registered.
    nodes = rehearsal.sh(rehearsal.vms[0], "kubectl --kubeconfig /etc/kubernetes/admin.conf get nodes -o name")
    assert nodes.ok, nodes.explain()
    assert sorted(nodes.stdout.split()) == [f"node/rehearsal-{n}" for n in ("cp-0", "general-0", "general-1")]
    admin = live.step("rehearsal-cp-0-kubeconfig").result.stdout
    assert f"server: https://{rehearsal.vms[0].private_ip}:6443" in admin
    DONE["create"] = True


def test_a_second_run_of_every_step_changes_nothing(rehearsal: Rehearsal) -> None:
    require("create")
    before = fingerprints(rehearsal)
    live = rehearsal.run("second run of every step")
    assert_all_ok(live)
    after = fingerprints(rehearsal)
    for vm, old, new in zip(rehearsal.vms, before, after):
        changed = sorted(set(old.splitlines()) ^ set(new.splitlines()))
        assert old == new, f"{vm.name}: a second run changed the node:\n" + "\n".join(changed)
    for step in live.steps:
        noisy = [line for line in step.result.stderr.splitlines()
                 if re.search(r"\] (wrote|installing|restarting|downloading|apt-get update)", line)]
        assert not noisy, f"{step.name} did work on its second run:\n" + "\n".join(noisy)
    DONE["idempotent"] = True


def test_after_a_reboot_modules_sysctls_containerd_and_the_api_come_back(rehearsal: Rehearsal) -> None:
    require("create")
    rehearsal.reboot_all()
    deadline = time.monotonic() + 120
    for vm in rehearsal.vms:
        node = facts(rehearsal, vm)
        assert {"overlay", "br_netfilter"} <= set(node["modules"].split()), f"{vm.name}: {node['modules']}"
        for key in ("net.ipv4.ip_forward", "net.bridge.bridge-nf-call-iptables"):
            assert f"{key}=1" in node["sysctl"], f"{vm.name} after reboot: {node['sysctl']}"
        assert "containerd active enabled" in node["units"], f"{vm.name} after reboot: {node['units']}"
        assert "kubelet active enabled" in node["units"], f"{vm.name} after reboot: {node['units']}"
    # The kubelet brings the API server's static pod back; kubectl reaches it again.
    while True:
        ready = rehearsal.sh(rehearsal.vms[0], "kubectl --kubeconfig /etc/kubernetes/admin.conf get --raw=/readyz")
        if ready.ok or time.monotonic() > deadline:
            break
        time.sleep(5)
    assert ready.ok and ready.stdout.strip() == "ok", ready.explain()
    # And the same steps still change nothing after the reboot.
    live = rehearsal.run("run after reboot", only=lambda name: name.endswith("-prepare"))
    assert_all_ok(live)
    DONE["reboot"] = True


def test_a_host_below_the_memory_spec_is_refused_by_the_preflight(rehearsal: Rehearsal) -> None:
    require("create")
    assert rehearsal.group is not None
    worker = rehearsal.vms[2]
    rehearsal.group.set_memory(worker, 2048)
    try:
        time.sleep(5)
        live = rehearsal.run("preflight on a shrunk host", only=lambda name: name == "rehearsal-general-1-prepare")
        step = live.step("rehearsal-general-1-prepare")
        assert not step.result.ok, "the preflight accepted a host with 2 GB of memory"
        needs = hardware.MIN_MEMORY_MB * 1024 / 1048576
        assert re.search(rf"preflight: node rehearsal-general-1 does not meet the hardware spec: .*GB memory "
                         rf"\(needs {needs:g} GB\)", step.result.stderr), step.result.explain()
        # Refused before anything was touched: nothing downloaded or installed in that step.
        assert "prepare-node]" not in step.result.stderr, step.result.explain()
    finally:
        rehearsal.group.set_memory(worker, rehearsal.memory_mb)


def test_the_mirror_down_for_a_moment_during_prepare_is_retried(rehearsal: Rehearsal) -> None:
    require("create")
    assert rehearsal.server is not None
    worker = rehearsal.vms[1]
    # A node whose containerd binary went missing downloads the release again.
    removed = rehearsal.sh(worker, "rm -f /usr/local/bin/containerd")
    assert removed.ok, removed.explain()
    rehearsal.server.outage(15, paths=("/containerd/",))
    started = time.time()
    live = rehearsal.run("prepare through a mirror outage", only=lambda name: name == "rehearsal-general-0-prepare")
    assert_all_ok(live)
    tarball = [r for r in rehearsal.server.requests if r.time >= started and r.path.endswith("-linux-amd64.tar.gz")]
    assert [r.status for r in tarball][:1] == [503] and tarball[-1].status == 200, [(r.path, r.status) for r in tarball]
    assert "retrying" in live.step("rehearsal-general-0-prepare").result.stderr
    units = rehearsal.sh(worker, "systemctl is-active containerd")
    assert units.stdout.strip() == "active", units.explain()
