"""The program's own node steps on three real Debian VMs (QEMU), judged by the VMs' real state.

A ``provider: existing`` stack points at the VMs: the first is the control plane and the SSH
bastion (on the host's loopback), the other two are workers behind it; ``mirrors`` point at the
host's mirror (tools/rehearsal/mirror.py). The control plane and the first worker run Debian 13,
the second worker Debian 12 (session.DEFAULT_SUITES): both supported systems in one cluster. The
program runs under the mock engine, and each ``remote.Command`` is executed on its VM the way
pulumi-command does (``sudo bash -s`` with the exact registered bundle on stdin, through the jump
host) in the engine's order, so node prep runs on the three nodes at once, then init, tokens and
joins; a later run with the stack's recorded state runs what pulumi-command would run: updates of
the commands whose inputs changed, deletes of the ones the program no longer registers
(tools/rehearsal/program.py).

The tests run in order on the same VMs: create (while first-boot apt jobs hold apt's locks on
the workers), a second run of every step, reboots, failure scenarios, then day two: the upgrade
to the next patch release and the removal of a worker. Stage timings appear in the terminal
summary ("rehearsal timings").
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from datetime import timedelta
from typing import Any

import pytest

from components import hardware, versions
from components.bootstrap import RESET_ON_DELETE, TOKEN_REFRESH_MINUTES, WORKER_TOKEN_TTL
from components.bootstrap.scripts import SCRIPTS_DIR
from tools.rehearsal import firstboot, remote
from tools.rehearsal import mirror as mirror_module
from tools.rehearsal.program import COMMAND_TYPE, COPY_COMMAND, COPY_TYPE, DELETE, REPLACE, UPDATE, LiveRun, plan
from tools.rehearsal.session import Rehearsal
from tools.rehearsal.vms import VM

pytestmark = pytest.mark.rehearsal

#: What earlier tests left for later ones (the same VMs go through every scenario).
DONE: dict[str, Any] = {}

K8S = versions.KUBERNETES_DEFAULT_VERSION
PACKAGE_VERSION = f"{K8S}-{mirror_module.PACKAGE_REVISION}"
HELD = ("kubelet", "kubeadm", "kubectl")
#: The upgrade path's target: the next patch release, which the mirror also serves.
K8S_NEXT = mirror_module.next_patch(K8S)
#: os-release's VERSION_ID of each suite the VMs boot.
VERSION_ID = {"bookworm": "12", "trixie": "13"}
#: Seconds the mirror holds the first-boot jobs' InRelease (their apt-get update, the lists lock)
#: at least; every second of it is on the create's critical path (the workers' prep). It holds
#: longer when node prep starts late (a loaded host: once prep started 630 s into a create whose
#: jobs had let go after 30): until mirror.SLOW_AFTER_MARKER after the first request for the
#: package mirror's repository, node prep's connectivity check (mirror.MirrorServer.slow_marker).
SLOW_SECONDS = 30

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
section os
. /etc/os-release && echo "$ID $VERSION_ID"
section files
for f in /etc/kubernetes/admin.conf /etc/kubernetes/kubelet.conf /etc/kubernetes/pki/ca.crt /var/lib/kubelet/config.yaml; do
  if [ -f "$f" ]; then sha256sum "$f"; else echo "missing $f"; fi
done
section kubeadm-calls
cat /var/log/kc-standin/kubeadm.jsonl 2>/dev/null || true
"""

#: containerd and runc really run a container: a root of the node's own /usr (read-only), where
#: pid 1 of the new PID namespace is the shell.
CONTAINER = r"""
root=$(mktemp -d /run/kc-rootfs.XXXXXX)
mkdir "$root/usr" && ln -s usr/bin "$root/bin" && ln -s usr/lib "$root/lib" && ln -s usr/lib64 "$root/lib64"
ctr -n kc-rehearsal run --rm --rootfs --mount type=bind,src=/usr,dst=/usr,options=rbind:ro "$root" kc-check \
  /bin/sh -c 'echo "container pid1=$(cat /proc/1/comm)"' 2>&1 || echo "container failed: exit $?"
rm -rf "$root"
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
    return parse_facts(rehearsal.sh(vm, FACTS))


def facts_all(rehearsal: Rehearsal) -> list[dict[str, str]]:
    """The facts of every VM (gathered at once)."""
    return [parse_facts(result) for result in rehearsal.sh_all(FACTS)]


def parse_facts(result: remote.Result) -> dict[str, str]:
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
    """The remote steps a create runs: every registered command that has a ``create``, and every
    copy of the node scripts (one per node)."""
    registered = plan(rehearsal.config())
    copies = {r.name for r in registered.of_type(COPY_TYPE)}
    assert len(copies) == len(rehearsal.vms), f"not one copy of the scripts per node: {sorted(copies)}"
    return {r.name for r in registered.of_type(COMMAND_TYPE) if r.input("create")} | copies


def start_first_boot_apt_jobs(rehearsal: Rehearsal) -> None:
    """A first boot is busy (tools/rehearsal/firstboot.py): Debian's apt-daily.service on the first
    worker, an apt job of its own on the second, each holding apt's locks (checked in
    /proc/locks) when node prep starts."""
    assert rehearsal.server is not None
    repo = mirror_module.K8S_REPO_PATH.format(minor="v1.36")
    slow = f"{rehearsal.server.base_url()}/slow/{SLOW_SECONDS}/{repo}"
    # The jobs let go of apt's locks only once node prep has started (its connectivity check).
    rehearsal.server.slow_marker, rehearsal.server.marker_seen = f"/{repo}", None
    jobs = ((rehearsal.vms[1], firstboot.apt_daily(slow), [firstboot.LISTS_LOCK]),
            (rehearsal.vms[2], firstboot.apt_job(slow), [firstboot.LISTS_LOCK, firstboot.FRONTEND_LOCK]))
    with rehearsal.timed("  of which: starting the first-boot apt jobs"):
        for vm, script, locks in jobs:
            started = rehearsal.sh(vm, script)
            assert started.ok, started.explain()
            held = rehearsal.sh(vm, firstboot.lock_held(*locks))
            assert held.ok, f"{vm.name}: the first-boot job does not hold {locks}: {held.explain()}"


def test_create_on_fresh_vms_in_the_programs_order(rehearsal: Rehearsal) -> None:
    start_first_boot_apt_jobs(rehearsal)
    live = rehearsal.run("create: prepare + init + tokens + joins")
    assert rehearsal.server is not None
    rehearsal.server.slow_marker = None
    DONE["create-run"] = live
    assert_all_ok(live)
    assert {s.name for s in live.steps} == expected_steps(rehearsal), live.explain()
    DONE["state"] = live.state

    # The node scripts were copied over SFTP (the workers' through the jump host) before any step
    # sourced them, and each node holds them byte for byte as the checkout has them.
    local = {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in SCRIPTS_DIR.glob("*.sh")}
    for vm in rehearsal.vms:
        node = f"rehearsal-{'cp-0' if vm.index == 0 else f'general-{vm.index - 1}'}"
        copied = live.step(f"{node}-scripts")
        assert copied.command == COPY_COMMAND and " via " in copied.target, (copied.command, copied.target)
        assert copied.finished <= live.step(f"{node}-prepare").started, f"{node}: prep started before its copy"
        # Where a step finds them: relative to the directory its session starts in (sudo keeps it).
        listing = rehearsal.sh(vm, "cd kubeadm-cluster/scripts && sha256sum -- *.sh")
        assert listing.ok, listing.explain()
        remote_hashes = {name: digest for digest, name in (line.split() for line in listing.stdout.splitlines())}
        assert remote_hashes == local, f"{vm.name}: the copy differs from the checkout's scripts"

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
    for step in prepares:
        rehearsal.timings[f"    prepare {step.name.removeprefix('rehearsal-').removesuffix('-prepare')}"] = step.seconds
    rehearsal.timings["  of which: init"] = init.seconds

    ca_hashes = set()
    for vm, node in zip(rehearsal.vms, facts_all(rehearsal)):
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
        # Debian 12 and 13 alike (the preflight accepted both).
        assert node["os"].split() == ["debian", VERSION_ID[vm.image.suite]], f"{vm.name}: {node['os']}"
    assert len(ca_hashes) == 1, f"the nodes do not share one cluster CA: {ca_hashes}"
    for vm, ran in zip(rehearsal.vms, rehearsal.sh_all(CONTAINER)):
        assert "container pid1=sh" in ran.stdout, f"{vm.name} ({vm.image.suite}): runc ran no container:\n{ran.stdout}"

    # Real kubectl (Debian's 1.36) on the control plane sees the three Nodes the kubelets registered.
    nodes = rehearsal.sh(rehearsal.vms[0], "kubectl --kubeconfig /etc/kubernetes/admin.conf get nodes -o name")
    assert nodes.ok, nodes.explain()
    assert sorted(nodes.stdout.split()) == [f"node/rehearsal-{n}" for n in ("cp-0", "general-0", "general-1")]
    admin = live.step("rehearsal-cp-0-kubeconfig").result.stdout
    assert f"server: https://{rehearsal.vms[0].private_ip}:6443" in admin

    # The control plane's maintenance step installed the etcd-snapshot and certs-renew timers: real
    # systemd loads them, verifies their units, and has them enabled with a next run scheduled.
    timers = ["kubeadm-cluster-etcd-snapshot.timer", "kubeadm-cluster-certs-renew.timer"]
    units = " ".join(f"/etc/systemd/system/{t.removesuffix('.timer')}.{kind}" for t in timers for kind in ("timer", "service"))
    loaded = rehearsal.sh(rehearsal.vms[0], f"systemctl is-enabled {' '.join(timers)} && systemctl is-active {' '.join(timers)} "
                                            f"&& systemd-analyze verify {units} && systemctl list-timers --all --no-pager 'kubeadm-cluster-*'")
    assert loaded.ok, f"the maintenance timers are not loaded and scheduled on the control plane:\n{loaded.explain()}"
    for timer in timers:
        assert timer in loaded.stdout, f"{timer} is not listed by systemctl list-timers:\n{loaded.stdout}"
    # The renewal's service runs under real systemd (a oneshot: start waits for it) and reads the
    # expiry of the certificates kubeadm init made: a new cluster has nothing to renew.
    renew = rehearsal.sh(rehearsal.vms[0], "systemctl start kubeadm-cluster-certs-renew.service && "
                                           "systemctl show -p Result --value kubeadm-cluster-certs-renew.service && "
                                           "journalctl -u kubeadm-cluster-certs-renew.service -o cat --no-pager")
    assert renew.ok and renew.stdout.startswith("success\n"), f"the certs-renew service failed:\n{renew.explain()}"
    assert "apiserver.crt expires" in renew.stdout and "nothing to renew" in renew.stdout, (
        f"the certs-renew service did not read the new cluster's certificates:\n{renew.stdout}")

    # What the node sandbox (tests/test_scripts.py) asserted with stubs, shown by the real nodes
    # (issue 11). Stdout is a step's output only (mint-token's JSON line, the admin kubeconfig):
    # apt, dpkg, systemd and kubeadm print to stderr.
    for step in live.steps:
        if not step.name.endswith(("-join-token", "-join-command", "-kubeconfig")):
            assert step.result.stdout == "", f"{step.name} printed on stdout:\n{step.result.stdout[-2000:]}"
    # read-kubeconfig.sh printed the control plane's admin.conf unchanged.
    admin_conf = rehearsal.sh(rehearsal.vms[0], "cat /etc/kubernetes/admin.conf")
    assert admin_conf.ok and admin == admin_conf.stdout, "the kubeconfig step did not print /etc/kubernetes/admin.conf as it is"
    # mint-token.sh printed one JSON line per join: a bootstrap token kubeadm created for that node
    # with the program's TTL, and the sha256 of the CA's public key.
    pin = rehearsal.sh(rehearsal.vms[0], "openssl x509 -pubkey -noout -in /etc/kubernetes/pki/ca.crt "
                                         "| openssl pkey -pubin -outform der | sha256sum")
    assert pin.ok, pin.explain()
    cp_calls = [json.loads(line) for line in facts(rehearsal, rehearsal.vms[0])["kubeadm-calls"].splitlines() if line.strip()]
    for worker in ("general-0", "general-1"):
        lines = live.step(f"rehearsal-{worker}-join-token").result.stdout.splitlines()
        assert len(lines) == 1, f"mint-token printed {len(lines)} lines on stdout for {worker}, not one JSON line"
        minted = json.loads(lines[0])
        assert sorted(minted) == ["caCertHash", "token"] and re.fullmatch(r"[a-z0-9]{6}\.[a-z0-9]{16}", minted["token"]), (
            f"mint-token's JSON for {worker} has the keys {sorted(minted)} or a malformed token")
        assert minted["caCertHash"] == f"sha256:{pin.stdout.split()[0]}", f"{worker}: {minted['caCertHash']} is not the CA's pin"
        # (the description comes from --description or, for a token of the stack's own, the
        # bootstrapTokens entry of the --config file: both as kubeadm reads them)
        ttls = [c.get("ttl") for c in cp_calls if c.get("event") == "token-create"
                and c.get("description") == f"kubeadm-cluster join of rehearsal-{worker}"]
        assert ttls == [WORKER_TOKEN_TTL], f"kubeadm token create for {worker}: TTLs {ttls}"
    # kubeadm-init.sh validated its config, then ran `kubeadm init --config <it> --skip-token-print`
    # (no token in the output) and left the config readable by root only.
    ran = [c.get("event") for c in cp_calls if c.get("event") in ("config-validate", "init")]
    assert ran == ["config-validate", "init"], f"kubeadm on the control plane: {ran}"
    argv = next(c["argv"] for c in cp_calls if c.get("event") == "init")
    assert "--skip-token-print" in argv and argv[argv.index("--config") + 1] == "/etc/kubernetes/kubeadm-config.yaml", argv
    mode = rehearsal.sh(rehearsal.vms[0], "stat -c %a /etc/kubernetes/kubeadm-config.yaml")
    assert mode.ok and mode.stdout.strip() == "600", f"the kubeadm config is not mode 0600: {mode.explain()}"

    # Node prep on fresh nodes, by its own log in the order it did things: the base packages after
    # an apt-get update, kubernetes.list written, apt-get update again, then the Kubernetes packages
    # (the apt-ordering defect of issue 10); one update per state of the sources, no more.
    node_prep = r"""
echo '### base'
dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' apt-transport-https ca-certificates curl gpg conntrack socat ebtables ethtool
echo '### crictl'; cat /etc/crictl.yaml
echo '### modules-load'; grep -v '^#' /etc/modules-load.d/kubeadm-cluster.conf
echo '### rbd'; test -d /sys/module/rbd && echo loaded
echo '### cloud-init'; command -v cloud-init || echo none
"""
    for name, shown in zip(("cp-0", "general-0", "general-1"), rehearsal.sh_all(node_prep)):
        prep = live.step(f"rehearsal-{name}-prepare").result.stderr
        said = [line.removeprefix("[kubeadm-cluster prepare-node] ") for line in prep.splitlines()
                if line.startswith("[kubeadm-cluster prepare-node] ")]
        updates = [i for i, line in enumerate(said) if line == "apt-get update"]
        base = next((i for i, line in enumerate(said) if line.startswith("installing ") and "socat" in line), -1)
        source = next((i for i, line in enumerate(said) if line == "wrote /etc/apt/sources.list.d/kubernetes.list"), -1)
        k8s = next((i for i, line in enumerate(said) if line.startswith(f"installing kubelet={K8S}-* ")), -1)
        assert len(updates) == 2 and 0 <= base < updates[0] < source < updates[1] < k8s, (
            f"{name}: expected base packages, apt-get update, kubernetes.list, apt-get update, the Kubernetes packages:\n"
            + "\n".join(said))
        # The bundle (preflight, then node prep, on `sudo bash -s` stdin) ran to its end.
        assert f"[kubeadm-cluster preflight] preflight: node rehearsal-{name} OK" in prep, prep[-3000:]
        for artefact in (f"containerd-{versions.CONTAINERD_VERSION}-linux-amd64.tar.gz", "runc.amd64"):
            assert f"verified the sha256 of {artefact}" in said, f"{name}: {artefact} not checked against its .sha256sum"
        node = parse_facts(shown)
        status = {line.split()[0]: line.split()[1:] for line in node["base"].splitlines()}
        assert all(s == ["ii"] for s in status.values()) and len(status) == 8, f"{name}: base packages {status}"
        assert "runtime-endpoint: unix:///run/containerd/containerd.sock" in node["crictl"], node["crictl"]
        assert node["modules-load"].split() == ["overlay", "br_netfilter", "rbd"], node["modules-load"]
        assert node["rbd"].strip() == "loaded", f"{name}: rbd is not loaded"
        # No cloud-init on these VMs: node prep does not wait for it (nor mention it).
        assert node["cloud-init"].strip() == "none" and not [line for line in said if "cloud-init" in line], said
    DONE["create"] = True


def test_first_boot_apt_jobs_held_apts_locks_and_node_prep_waited_for_them(rehearsal: Rehearsal) -> None:
    require("create")
    live: LiveRun = DONE["create-run"]
    daily_vm, job_vm = rehearsal.vms[1], rehearsal.vms[2]
    try:
        # Debian's apt-daily.service was updating the lists: kc_apt_settle waited for the unit.
        daily = live.step("rehearsal-general-0-prepare").result.stderr
        assert re.search(r"waiting for apt-daily\.service \((activating|active)\) to finish", daily), daily
        waited = re.search(r"the apt-daily services are done after ([1-9]\d*)s", daily)
        assert waited, daily
        rehearsal.timings["    (in create) general-0 waited for apt-daily"] = float(waited.group(1))
        unit = rehearsal.sh(daily_vm, "systemctl show -p Result -p ExecMainStatus apt-daily.service")
        assert "Result=success" in unit.stdout and "ExecMainStatus=0" in unit.stdout, unit.stdout
        # Both jobs' apt-get update read the slow source in full (apt-daily's and the other job's).
        assert rehearsal.server is not None
        slow = [(r.path, r.status) for r in rehearsal.server.requests if r.path.startswith("/slow/")]
        assert [status for path, status in slow if path.endswith("/InRelease")] == [200, 200], slow

        # The other job held the lists lock (apt-get update), then lock-frontend (apt-get install):
        # node prep's apt-get waited for both and its own install went through afterwards.
        job = live.step("rehearsal-general-1-prepare").result.stderr
        assert "another apt or dpkg holds a lock apt-get needs: waiting" in job, job
        assert re.search(r"Could not get lock /var/lib/apt/lists/lock\. It is held by process \d+ \(apt-get\)", job), job
        assert re.search(r"Waiting for cache lock: Could not get lock /var/lib/dpkg/lock-frontend\. It is held by "
                         r"process \d+ \(apt-get\)", job), job
        # Waiting for a lock is not a failed attempt: no apt-get attempt of node prep failed.
        assert not re.search(r"'kc_apt_get_locked [^']*' failed \(exit", job), job
        unit = rehearsal.sh(job_vm, f"systemctl show -p Result -p ExecMainStatus {firstboot.JOB_UNIT}; "
                                    f"dpkg-query -W -f='${{db:Status-Abbrev}}\n' {firstboot.JOB_PACKAGE}; "
                                    f"journalctl -q -o cat -u {firstboot.JOB_UNIT}")
        assert "Result=success" in unit.stdout and "ExecMainStatus=0" in unit.stdout, unit.stdout
        assert "ii " in unit.stdout, f"the first-boot job's package was not installed:\n{unit.stdout}"
        assert "postinst: the node's apt-get install is waiting" in unit.stdout, (
            f"node prep's apt-get install never waited for lock-frontend:\n{unit.stdout}")
    finally:
        for vm in (daily_vm, job_vm):
            cleaned = rehearsal.sh(vm, firstboot.cleanup())
            assert cleaned.ok, cleaned.explain()


def test_a_second_run_of_every_step_changes_nothing(rehearsal: Rehearsal) -> None:
    require("create")
    before = fingerprints(rehearsal)
    live = rehearsal.run("second run of every step")
    assert_all_ok(live)
    DONE["state"] = live.state
    after = fingerprints(rehearsal)
    for vm, old, new in zip(rehearsal.vms, before, after):
        changed = sorted(set(old.splitlines()) ^ set(new.splitlines()))
        assert old == new, f"{vm.name}: a second run changed the node:\n" + "\n".join(changed)
    for step in live.steps:
        noisy = [line for line in step.result.stderr.splitlines()
                 if re.search(r"\] (wrote|installing|restarting|downloading|apt-get update)", line)]
        assert not noisy, f"{step.name} did work on its second run:\n" + "\n".join(noisy)
        # Nor loaded a module, applied sysctls or enabled/started a unit again; stdout stays clean.
        again = [line for line in step.result.stderr.splitlines() if re.search(
            r"\] (loading the kernel module|applying sysctls|enabling|starting|turning swap off|disabling the swap)", line)]
        assert not again, f"{step.name} turned things on again on its second run:\n" + "\n".join(again)
        if not step.name.endswith(("-join-token", "-join-command", "-kubeconfig")):
            assert step.result.stdout == "", f"{step.name} printed on stdout:\n{step.result.stdout[-2000:]}"
    # The initialised control plane and the joined workers were skipped: kubeadm init and join ran
    # once on each node in all, and no join config (it holds a token) is left on a worker.
    init = live.step("rehearsal-cp-0-init").result.stderr
    assert "rehearsal-cp-0 is already initialised" in init and "the API server on rehearsal-cp-0 is ready" in init, init
    for worker in ("general-0", "general-1"):
        join = live.step(f"rehearsal-{worker}-join").result.stderr
        assert f"node rehearsal-{worker} has already joined" in join and "skipping kubeadm join" in join, join
    for vm, node in zip(rehearsal.vms, facts_all(rehearsal)):
        events = [json.loads(line).get("event") for line in node["kubeadm-calls"].splitlines() if line.strip()]
        assert events.count("init") + events.count("join") == 1, f"{vm.name}: kubeadm init/join ran again: {events}"
    for vm, left in zip(rehearsal.vms, rehearsal.sh_all("test ! -e /etc/kubernetes/kubeadm-join.yaml")):
        assert left.ok, f"{vm.name}: the join config (with its token) was left in /etc/kubernetes"
    DONE["idempotent"] = True


def test_after_a_reboot_modules_sysctls_containerd_and_the_api_come_back(rehearsal: Rehearsal) -> None:
    require("create")
    rehearsal.reboot_all()
    deadline = time.monotonic() + 120
    for vm, node in zip(rehearsal.vms, facts_all(rehearsal)):
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


def test_a_run_in_the_next_token_window_re_mints_only_the_tokens_and_nobody_joins_again(rehearsal: Rehearsal) -> None:
    """The join-token steps' trigger is the TOKEN_REFRESH_MINUTES window (a join retried later
    finds its token valid again). The first ``up`` of a new window replaces them: on nodes that are
    in the cluster and Ready, mint-token.sh creates nothing and prints the same token; no join,
    no other step runs."""
    require("create")
    rehearsal.clock += timedelta(minutes=TOKEN_REFRESH_MINUTES)
    live = rehearsal.run("a new token window", state=DONE["state"])
    assert_all_ok(live)
    DONE["state"] = live.state
    workers = ("rehearsal-general-0", "rehearsal-general-1")
    assert {(s.name, s.op) for s in live.steps} == {(f"{w}-join-token", REPLACE) for w in workers}, live.explain()
    created = DONE["create-run"]
    for w in workers:
        step = live.step(f"{w}-join-token")
        assert f"{w} is already in the cluster and Ready" in step.result.stderr, step.result.explain()
        assert "creating the bootstrap token" not in step.result.stderr, step.result.explain()
        assert step.result.stdout == created.step(f"{w}-join-token").result.stdout, f"{w}: another token was printed"
        assert step.target.startswith(f"kubeadm@{rehearsal.vms[0].private_ip}:"), step.target


#: What the day-two runs change in the stack, besides what they test (a batch of two workers:
#: both upgrade at once).
#: The day-two runs' settings. backup.beforeUpgrade (the default) is on: the control plane's
#: upgrade step first snapshots its real etcd (test_etcd_on_vms.py checks the backup).
DAY_TWO = {"upgrade": {"workerBatchSize": 2}, "backup": {"beforeUpgrade": True}}
#: kubelet's main PID and when it (re)started, per node.
KUBELET = "systemctl show -p MainPID -p ActiveEnterTimestampMonotonic kubelet; kubelet --version"


def test_the_upgrade_to_the_next_patch_release_runs_kubeadm_upgrade_on_every_node(rehearsal: Rehearsal) -> None:
    require("create")
    cp, workers = "rehearsal-cp-0", ("rehearsal-general-0", "rehearsal-general-1")
    before = [r.stdout for r in rehearsal.sh_all(KUBELET)]
    live = rehearsal.run("upgrade to the next patch release", config=rehearsal.config(kubernetesVersion=K8S_NEXT, **DAY_TWO),
                         state=DONE["state"])
    assert_all_ok(live)
    DONE["state"] = live.state
    DONE["version"] = K8S_NEXT
    # What pulumi-command runs for a changed kubernetesVersion: the steps whose inputs changed,
    # each its update command (or its create when it has none); the joins and tokens keep their
    # recorded outputs (nobody joins again).
    expected = {f"{cp}-version-check", f"{cp}-init", f"{cp}-upgrade"} | {f"{n}-prepare" for n in (cp, *workers)} | {
        f"{w}-{s}" for w in workers for s in ("upgrade-drain", "upgrade", "upgrade-uncordon")}
    assert expected <= live.ran(UPDATE) and live.ran() == live.ran(UPDATE), live.explain()
    kept = {f"{cp}-kubeconfig", f"{cp}-join-command"} | {f"{w}-{s}" for w in workers for s in ("join", "join-token")}
    assert kept <= set(live.unchanged), f"ran again: {sorted(kept - set(live.unchanged))}"
    check = live.step(f"{cp}-version-check")
    assert all(check.finished <= live.step(f"{n}-prepare").started for n in (cp, *workers)), live.explain()
    assert live.step(f"{cp}-upgrade").started >= live.step(f"{cp}-init").finished
    for w in workers:
        assert live.step(f"{cp}-upgrade").finished <= live.step(f"{w}-upgrade-drain").started
        assert live.step(f"{w}-upgrade-drain").finished <= live.step(f"{w}-upgrade").started
        assert live.step(f"{w}-upgrade").finished <= live.step(f"{w}-upgrade-uncordon").started
    upgrades = [live.step(f"{w}-upgrade") for w in workers]
    assert max(s.started for s in upgrades) < min(s.finished for s in upgrades), "a batch of 2 did not upgrade at once"
    rehearsal.timings["  of which: upgrade of the control plane"] = live.step(f"{cp}-upgrade").seconds
    rehearsal.timings["  of which: upgrade of the workers (batch of 2)"] = max(s.seconds for s in upgrades)
    assert "planned upgrade: the cluster goes from" in check.result.stderr, check.result.explain()
    # Node prep ran again (its inputs changed) and left the joined nodes' versions to the upgrade.
    for n in (cp, *workers):
        prep = live.step(f"{n}-prepare").result
        assert f"node prep is not changing it to {K8S_NEXT}" in " ".join(prep.stderr.split()), prep.explain()
        assert not re.search(r"\] installing ", prep.stderr), f"node prep installed packages on a joined node:\n{prep.explain()}"

    version = f"{K8S_NEXT}-{mirror_module.PACKAGE_REVISION}"
    for vm, old, node in zip(rehearsal.vms, before, facts_all(rehearsal)):
        packages = {line.split()[0]: line.split()[1:] for line in node["packages"].splitlines()}
        for package in HELD:
            assert packages.get(package) == [version, "hi"], f"{vm.name}: {package}: {packages.get(package)}"
            assert package in node["holds"].split(), f"{vm.name}: {package} is no longer held: {node['holds']}"
        now = rehearsal.sh(vm, KUBELET + "; test ! -e /var/lib/kubeadm-cluster/upgrading-to")
        assert now.ok, f"{vm.name}: the upgrade marker is still there: {now.explain()}"
        assert f"Kubernetes v{K8S_NEXT}" in now.stdout and "MainPID=0" not in now.stdout, now.stdout
        assert now.stdout.splitlines()[:2] != old.splitlines()[:2], f"{vm.name}: kubelet was not restarted:\n{now.stdout}"
        calls = [json.loads(line) for line in node["kubeadm-calls"].splitlines() if line.strip()]
        events = [c for c in calls if c.get("event", "").startswith("upgrade")]
        if vm.index == 0:
            assert [(e["event"], e["target"]) for e in events] == [("upgrade-apply", f"v{K8S_NEXT}")], events
        else:
            assert [e["event"] for e in events] == ["upgrade-node"], f"{vm.name}: {events}"
    # The API: every Node reports the new kubelet, schedulable, without the upgrade annotation;
    # the cluster's version is the new one.
    nodes = rehearsal.sh(rehearsal.vms[0], "kubectl --kubeconfig /etc/kubernetes/admin.conf get nodes -o json")
    assert nodes.ok, nodes.explain()
    for item in json.loads(nodes.stdout)["items"]:
        name = item["metadata"]["name"]
        assert item["status"]["nodeInfo"]["kubeletVersion"] == f"v{K8S_NEXT}", f"{name}: {item['status']['nodeInfo']}"
        assert not item["spec"].get("unschedulable"), f"{name} is still cordoned"
        assert "kubeadm-cluster.io/upgrading-to" not in (item["metadata"].get("annotations") or {}), name
    cluster = rehearsal.sh(rehearsal.vms[0], "kubectl --kubeconfig /etc/kubernetes/admin.conf -n kube-system get "
                                             "configmap kubeadm-config -o jsonpath='{.data.ClusterConfiguration}'")
    assert re.search(rf"kubernetesVersion: v?{re.escape(K8S_NEXT)}\b", cluster.stdout), cluster.explain()

    # What each step did, in order, by its log and real kubectl's answers from the API (what the
    # node sandbox of tests/test_lifecycle_scripts.py asserted with stubs, issue 11): kubeadm
    # first, then the cluster (first control plane) or the node's configuration (a worker), the
    # drain (a control plane drains itself; a worker is annotated and drained from the first
    # control plane), kubelet and kubectl, the kubelet restarted, the uncordon.
    def in_order(name: str, *said: str) -> None:
        log, at = live.step(name).result.stderr, 0
        for needle in said:
            found = log.find(needle, at)
            assert found >= 0, f"{name}: {needle!r} is missing or out of order (expected in order: {said}):\n{log[-5000:]}"
            at = found + len(needle)

    new = f"{K8S_NEXT}-*"
    in_order(f"{cp}-upgrade", f"upgrading {cp} (first-control-plane) to {K8S_NEXT}", f"installing kubeadm={new}",
             f"kubeadm upgrade apply v{K8S_NEXT}", f"draining {cp}", f"node/{cp} cordoned",
             f"installing kubelet={new} kubectl={new}", "restarting kubelet", f"uncordoning {cp}", f"node/{cp} uncordoned",
             f"{cp} is upgraded to {K8S_NEXT}")
    for w in workers:
        in_order(f"{w}-upgrade-drain", f"draining node {w} (kubelet v{K8S}) for its upgrade to v{K8S_NEXT}",
                 f"node/{w} annotated", f"node/{w} cordoned")
        in_order(f"{w}-upgrade", f"upgrading {w} (worker) to {K8S_NEXT}", f"installing kubeadm={new}", "kubeadm upgrade node",
                 f"installing kubelet={new} kubectl={new}", "restarting kubelet", f"{w} is upgraded to {K8S_NEXT}")
        assert f"] draining {w}" not in live.step(f"{w}-upgrade").result.stderr, "a worker drained itself"
        in_order(f"{w}-upgrade-uncordon", f"uncordoning node {w} (kubelet v{K8S_NEXT})", f"node/{w} uncordoned",
                 f"node/{w} annotated", f"node {w} is upgraded and schedulable again")
    for step in live.steps:
        assert step.result.stdout == "", f"{step.name} printed on stdout:\n{step.result.stdout[-2000:]}"
        if step.name.endswith("-upgrade"):
            updates = [line for line in step.result.stderr.splitlines() if line.endswith("] apt-get update")]
            assert len(updates) == 1, f"{step.name}: apt-get update ran {len(updates)} times, not once"
    DONE["upgrade"] = True


def test_removing_a_worker_drains_deletes_and_resets_it_and_leaves_the_others_alone(rehearsal: Rehearsal) -> None:
    require("create")
    gone, gone_vm, stay = "rehearsal-general-1", rehearsal.vms[2], rehearsal.vms[:2]
    config = rehearsal.config(kubernetesVersion=DONE.get("version", K8S), **DAY_TWO)
    config["existingHosts"]["workers"] = config["existingHosts"]["workers"][:-1]
    before = fingerprints(rehearsal)[:2]
    live = rehearsal.run("remove a worker", config=config, state=DONE["state"])
    assert_all_ok(live)
    # pulumi-command runs the delete commands of the node's resources, dependents first: the
    # membership step (remove-node.sh on the first control plane), then its join's reset.
    assert [(s.name, s.op) for s in live.steps] == [(f"{gone}-membership", DELETE), (f"{gone}-join", DELETE)], live.explain()
    membership, join = live.steps
    assert membership.finished <= join.started
    assert membership.target.startswith(f"kubeadm@{rehearsal.vms[0].private_ip}:"), membership.target
    assert f"draining {gone}" in membership.result.stderr and f"node {gone} removed from the cluster" in membership.result.stderr, (
        membership.result.explain())
    # kubectl talked to the API stand-in cleanly (no stray answer on a kept-alive connection).
    assert "Unsolicited response" not in membership.result.stderr, membership.result.explain()
    # In that order, by real kubectl's answers: cordoned and drained, then the Node deleted; stdout
    # stays clean.
    log = membership.result.stderr
    steps = [log.find(f"draining {gone}"), log.find(f"node/{gone} cordoned"), log.find(f'node "{gone}" deleted'),
             log.find(f"node {gone} removed from the cluster")]
    assert -1 not in steps and steps == sorted(steps), f"expected drain, cordon, delete, removed in order:\n{log}"
    assert membership.result.stdout == "", membership.result.stdout
    assert join.command == RESET_ON_DELETE and gone_vm.private_ip in join.target, join.target
    assert not [name for name in live.state if name.startswith(gone)], sorted(live.state)

    nodes = rehearsal.sh(rehearsal.vms[0], "kubectl --kubeconfig /etc/kubernetes/admin.conf get nodes -o name")
    assert nodes.ok, nodes.explain()
    assert sorted(nodes.stdout.split()) == ["node/rehearsal-cp-0", "node/rehearsal-general-0"], nodes.stdout
    node = facts(rehearsal, gone_vm)
    calls = [json.loads(line) for line in node["kubeadm-calls"].splitlines() if line.strip()]
    assert [c.get("event") for c in calls if c.get("event")][-1:] == ["reset"], calls[-3:]
    for path in ("/etc/kubernetes/kubelet.conf", "/etc/kubernetes/pki/ca.crt", "/var/lib/kubelet/config.yaml"):
        assert f"missing {path}" in node["files"], f"{gone}: {path} is still there after the reset:\n{node['files']}"
    assert node["units"].startswith("containerd active") and "kubelet inactive" in node["units"], node["units"]
    after = fingerprints(rehearsal)[:2]
    for vm, old, new in zip(stay, before, after):
        assert old == new, f"{vm.name} changed when another node left:\n" + "\n".join(sorted(set(old.splitlines()) ^ set(new.splitlines())))
