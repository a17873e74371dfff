"""etcd backups and their restore on the rehearsal's real etcd (issue 14), on the VMs.

The control plane's etcd is a real one: the kubelet stand-in runs kubeadm's etcd static pod as a
container of the node's real containerd, from the image ``registry.k8s.io/etcd:3.6.8-0`` that
containerd pulls from the rehearsal mirror's registry (Debian's etcd 3.5 inside; see
tools/rehearsal/mirror.py), with kubeadm's certificates and /var/lib/etcd. The node scripts reach
it as they would on a real control plane: ``crictl ps`` finds the container, ``crictl exec``
runs the image's etcdctl in it, and etcd-restore.sh pulls and mounts the image for its etcdutl.

In order, on the control plane the other scenarios built (tests/rehearsal/test_rehearsal.py runs
first, conftest.py orders it so; run alone, this module creates the cluster itself):

* the installed timer's service (real systemd) saves a snapshot of etcd holding our keys, and the
  newest ``backup.keep`` scheduled backups are kept;
* the upgrade to the next patch (backup.beforeUpgrade, the default) took its snapshot first;
* a missing, a corrupt and a tampered backup are refused with their message, and change nothing:
  same etcd container, same data directory, same PKI, no kubeadm reset or init;
* the backup restored on the control plane (RESTORE_WIPE=1, with the node's kubeadm configuration
  removed first, as on a machine where kubeadm init never ran: the backup's own copy is used and
  put back) brings the same keys back, and not the ones written after it, in a one-member etcd
  kubeadm init started on the restored data.
"""

from __future__ import annotations

import calendar
import json
import re
import shlex
import time
from typing import Any

import pytest

from components.bootstrap import maintenance
from tests.rehearsal import test_rehearsal as scenarios
from tools.rehearsal import mirror
from tools.rehearsal.session import Rehearsal
from tools.rehearsal.vms import VM

pytestmark = pytest.mark.rehearsal

NODE = "rehearsal-cp-0"
#: What these scenarios leave for the next ones.
FOUND: dict[str, Any] = {}
#: Keys put into etcd before the scheduled snapshot (the restore must bring them back).
KEYS = {"/registry/secrets/default/db-password": "s3cret", "/registry/configmaps/default/app": "v1",
        "/kc/rehearsal": "before-the-backup"}
RESTORE = f"{maintenance.INSTALL_DIR}/etcd-restore.sh"
BACKUPS = maintenance.BACKUP_DIR
#: etcdctl in the etcd pod, with kubeadm's health-check client certificate (client-cert auth).
ETCDCTL = (
    "etcd_id=$(crictl ps --name '^etcd$' --label io.kubernetes.pod.namespace=kube-system --state Running -q | head -n 1)\n"
    '[ -n "$etcd_id" ] || { echo "no running etcd container" >&2; exit 1; }\n'
    'etcdctl() { crictl exec "$etcd_id" etcdctl --endpoints=https://127.0.0.1:2379 '
    "--cacert=/etc/kubernetes/pki/etcd/ca.crt --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt "
    '--key=/etc/kubernetes/pki/etcd/healthcheck-client.key "$@"; }\n'
)
#: What must not change when a bad backup is refused: the etcd container, the data directory's
#: entries (names and inodes: a restore renames a new directory into place), the PKI and
#: kubeconfigs (content), and kubeadm's calls.
UNTOUCHED = r"""
crictl ps --name '^etcd$' --state Running -q
stat -c '%n %i' /var/lib/etcd /var/lib/etcd/member /var/lib/etcd/member/* /var/lib/etcd/member/*/*
find /etc/kubernetes -type f -printf '%P ' -exec sha256sum {} \; | cut -c1-120 | sort
grep -c -E '"event": "(reset|init)"' /var/log/kc-standin/kubeadm.jsonl
ls -d /var/lib/.kubeadm-cluster-restore.* 2>/dev/null || true
"""


def cp(rehearsal: Rehearsal) -> VM:
    return rehearsal.vms[0]


def on_cp(rehearsal: Rehearsal, script: str, timeout: float = 300) -> str:
    """``script`` as root on the control plane; its stdout (it must succeed)."""
    result = rehearsal.sh(cp(rehearsal), script, timeout=timeout)
    assert result.ok, result.explain()
    return result.stdout


def etcd_get(rehearsal: Rehearsal, *keys: str) -> dict[str, str]:
    """The values of ``keys`` in the running etcd (absent keys are left out)."""
    script = ETCDCTL + "".join(f"printf '%s=%s\\n' {shlex.quote(k)} \"$(etcdctl get {shlex.quote(k)} --print-value-only)\"\n"
                               for k in keys)
    values = {}
    for line in on_cp(rehearsal, script).splitlines():
        key, _, value = line.partition("=")
        if key in keys and value:
            values[key] = value
    return values


def backup_files(rehearsal: Rehearsal, reason: str) -> list[str]:
    """The backups of ``reason`` on the control plane (none while no snapshot made the directory:
    this module run alone, before the timer or an upgrade took one)."""
    return sorted(on_cp(rehearsal, f"if [[ -d {BACKUPS} ]]; then find {BACKUPS} -maxdepth 1 "
                                   f"-name 'etcd-{NODE}-*-{reason}.tar.gz' -printf '%f\\n'; fi").split())


def check_backup(rehearsal: Rehearsal, name: str) -> dict[str, str]:
    """The backup's members check against its SHA256SUMS on the node; its backup-info."""
    out = on_cp(rehearsal, f"""
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
tar -xzf {BACKUPS}/{name} -C "$work"
(cd "$work" && sha256sum --quiet -c SHA256SUMS)
cat "$work/backup-info"
""")
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


@pytest.fixture(scope="module")
def cluster(rehearsal: Rehearsal) -> Rehearsal:
    """The control plane of the other scenarios, or (this module alone) one created here."""
    if "create-run" in scenarios.DONE and not scenarios.DONE.get("create"):
        pytest.skip("the create scenario failed: no cluster to back up")
    if not scenarios.DONE.get("create"):
        live = rehearsal.run("create (for the etcd scenarios)")
        scenarios.assert_all_ok(live)
        scenarios.DONE.update({"state": live.state, "create": True})
    # kubeadm init waited for /readyz, whose etcd check needs the etcd pod: it runs.
    deadline = time.monotonic() + 120
    while True:
        running = rehearsal.sh(cp(rehearsal), "crictl ps --name '^etcd$' --state Running -q")
        if running.ok and running.stdout.strip():
            break
        assert time.monotonic() < deadline, f"the etcd static pod does not run on {NODE}:\n{running.explain()}\n" + \
            rehearsal.sh(cp(rehearsal), "journalctl -u kubelet -n 40 --no-pager; tail -n 20 /var/log/kc-standin/pods/*").stdout
        time.sleep(5)
    return rehearsal


def test_the_snapshot_timers_service_saves_the_real_etcd_and_keeps_the_newest(cluster: Rehearsal) -> None:
    rehearsal = cluster
    puts = ETCDCTL + "".join(f"etcdctl put {shlex.quote(k)} {shlex.quote(v)} >/dev/null\n" for k, v in KEYS.items())
    on_cp(rehearsal, puts)
    assert etcd_get(rehearsal, *KEYS) == KEYS, "the keys put into etcd (etcdctl in its pod) do not read back"
    settings = dict(line.split("=", 1) for line in on_cp(rehearsal, f"cat {maintenance.ENV_FILE}").splitlines() if "=" in line)
    keep = int(settings["BACKUP_KEEP"])
    assert settings["BACKUP_NODE"] == NODE and settings["BACKUP_DIR"] == BACKUPS, settings
    # As many older scheduled backups as are kept (and one of another kind): the new one
    # pushes the oldest scheduled one out, and only that one.
    old = [f"etcd-{NODE}-2020{month:02d}01T000000Z-scheduled.tar.gz" for month in range(1, keep + 1)]
    other = f"etcd-{NODE}-20200101T000000Z-manual.tar.gz"
    # The timer is real (OnCalendar=hourly by default): a rehearsal that crossed the hour has a
    # scheduled backup of the timer's own already (a CI-like run did), which is newer than these.
    earlier = backup_files(rehearsal, "scheduled")
    on_cp(rehearsal, f"mkdir -p {BACKUPS} && cd {BACKUPS} && touch {' '.join(old)} {other}")
    started = time.monotonic()
    ran = on_cp(rehearsal, "systemctl start kubeadm-cluster-etcd-snapshot.service; "
                           "systemctl show -p Result -p ExecMainStatus kubeadm-cluster-etcd-snapshot.service; "
                           "journalctl -q -o cat -u kubeadm-cluster-etcd-snapshot.service -n 30")
    rehearsal.timings["  of which: etcd snapshot (timer's service)"] = round(time.monotonic() - started, 1)
    assert "Result=success" in ran and "ExecMainStatus=0" in ran, f"the snapshot service failed:\n{ran}"
    # The journal's last backup line is this run's (the timer may have run on its own just before).
    logged = re.findall(rf"etcd backup of {NODE}: {BACKUPS}/(etcd-{NODE}-\d{{8}}T\d{{6}}Z-scheduled\.tar\.gz)", ran)
    assert logged and logged[-1] not in earlier, f"the service logged no new backup:\n{ran}"
    new_backup = logged[-1]
    scheduled = backup_files(rehearsal, "scheduled")
    assert len(scheduled) == keep, f"{len(scheduled)} scheduled backups kept, not {keep}: {scheduled}"
    # Exactly the newest `keep` (names sort by time): the oldest one pushed out (two when the
    # timer had made one of its own), the new one kept.
    newest = sorted({*earlier, *old, new_backup})[-keep:]
    assert scheduled == newest and old[0] not in scheduled and new_backup in scheduled, (
        f"kept {scheduled}, expected the newest {keep}: {newest} (the timer's own before the test: {earlier})")
    assert backup_files(rehearsal, "manual") == [other], "another kind's backups were pruned"
    info = check_backup(rehearsal, new_backup)
    assert info["reason"] == "scheduled" and info["etcd_image"] == mirror.ETCD_IMAGE, info
    assert int(info["snapshot_bytes"]) > 0, info
    # The snapshot was written through the pod's mount of the data directory and moved out of it.
    on_cp(rehearsal, "test ! -e /var/lib/etcd/kubeadm-cluster-snapshot.db && test ! -e /var/lib/etcd/kubeadm-cluster-snapshot.db.part")
    on_cp(rehearsal, f"cd {BACKUPS} && rm -f {' '.join(old)} {other}")
    FOUND["backup"] = new_backup


def test_the_upgrade_took_its_snapshot_of_the_real_etcd_first(cluster: Rehearsal) -> None:
    rehearsal = cluster
    assert scenarios.DAY_TWO.get("backup", {}).get("beforeUpgrade", True), (
        "the rehearsal's day-two stack turns backup.beforeUpgrade off: its upgrade takes no snapshot")
    if not scenarios.DONE.get("upgrade"):
        live = rehearsal.run("upgrade (for the etcd scenarios)", state=scenarios.DONE["state"],
                             config=rehearsal.config(kubernetesVersion=scenarios.K8S_NEXT, **scenarios.DAY_TWO))
        scenarios.assert_all_ok(live)
        scenarios.DONE.update({"state": live.state, "version": scenarios.K8S_NEXT, "upgrade": True})
        log = live.step(f"{NODE}-upgrade").result.stderr
        assert log.index("[kubeadm-cluster etcd-snapshot]") < log.index("[kubeadm-cluster upgrade-node]"), log
    upgrades = backup_files(rehearsal, maintenance.PRE_UPGRADE)
    assert len(upgrades) == 1, f"not one pre-upgrade backup on {NODE}: {upgrades}"
    info = check_backup(rehearsal, upgrades[0])
    assert info["reason"] == maintenance.PRE_UPGRADE and int(info["snapshot_bytes"]) > 0, info
    # Taken before kubeadm upgrade apply ran (its call is recorded with its time).
    calls = [json.loads(line) for line in on_cp(rehearsal, "cat /var/log/kc-standin/kubeadm.jsonl").splitlines()]
    applied = [c["time"] for c in calls if c.get("event") == "upgrade-apply"]
    created = calendar.timegm(time.strptime(info["created"], "%Y%m%dT%H%M%SZ"))
    assert applied and created <= applied[-1], f"the backup ({info['created']}) is not older than the upgrade {applied}"
    # etcd ran through the upgrade (kubeadm's etcd phase waited for it to be healthy) and runs now.
    on_cp(rehearsal, ETCDCTL + "etcdctl endpoint health >/dev/null")


@pytest.mark.parametrize("case", ["missing", "corrupt", "tampered"])
def test_a_missing_corrupt_or_tampered_backup_is_refused_and_changes_nothing(cluster: Rehearsal, case: str) -> None:
    rehearsal = cluster
    if "backup" not in FOUND:
        pytest.skip("needs the snapshot of the timer's service")
    good = f"{BACKUPS}/{FOUND['backup']}"
    target = {"missing": "/root/no-such-backup.tar.gz", "corrupt": "/root/corrupt.tar.gz",
              "tampered": "/root/tampered.tar.gz"}[case]
    make = {
        "missing": "",
        # 64 bytes flipped in the middle of the archive: gzip's CRC (or tar) fails.
        "corrupt": f"""python3 - {good} {target} <<'EOF'
import sys
data = bytearray(open(sys.argv[1], "rb").read())
for i in range(len(data) // 2, len(data) // 2 + 64):
    data[i] ^= 0xFF
open(sys.argv[2], "wb").write(bytes(data))
EOF""",
        # The snapshot's bytes changed and SHA256SUMS made again: only etcdutl's own integrity
        # hash can tell (the etcdutl of the etcd image, pulled and mounted on the node).
        "tampered": f"""work=$(mktemp -d)
tar -xzf {good} -C "$work"
python3 - "$work/etcd-snapshot.db" <<'EOF'
import sys
data = bytearray(open(sys.argv[1], "rb").read())
for i in range(len(data) // 2, len(data) // 2 + 32):
    data[i] ^= 0xFF
open(sys.argv[1], "wb").write(bytes(data))
EOF
(cd "$work" && find . -type f ! -name 'SHA256SUMS*' -printf '%P\\n' | LC_ALL=C sort | xargs -d '\\n' sha256sum >SHA256SUMS)
tar -C "$work" -czf {target} $(cd "$work" && ls -A)  # every member (the first control plane's kubeadm-config.yaml too)
rm -rf "$work\"""",
    }[case]
    message = {"missing": "no backup at", "corrupt": "is not a complete etcd backup",
               "tampered": "etcdutl refuses the snapshot"}[case]
    on_cp(rehearsal, make or "true")
    before = on_cp(rehearsal, UNTOUCHED)
    started = time.monotonic()
    result = rehearsal.sh(cp(rehearsal), f"RESTORE_WIPE=1 {RESTORE} {target}")
    rehearsal.timings[f"  of which: etcd restore refusing a {case} backup"] = round(time.monotonic() - started, 1)
    assert not result.ok, f"a {case} backup was restored:\n{result.explain()}"
    assert message in result.stderr, f"{case}: the error does not say {message!r}:\n{result.stderr}"
    assert "Nothing was changed" in result.stderr or case == "missing", result.stderr
    assert "kubeadm reset" not in result.stderr, result.stderr
    after = on_cp(rehearsal, UNTOUCHED)
    assert after == before, f"a {case} backup changed the node:\nbefore:\n{before}\nafter:\n{after}"
    assert etcd_get(rehearsal, *KEYS) == KEYS, "etcd lost keys after a refused restore"
    on_cp(rehearsal, f"rm -f {target}")


def test_the_backup_restores_the_same_keys_on_a_fresh_first_control_plane(cluster: Rehearsal) -> None:
    """Last: it replaces the control plane's cluster with the backup's."""
    rehearsal = cluster
    if "backup" not in FOUND:
        pytest.skip("needs the snapshot of the timer's service")
    backup = f"{BACKUPS}/{FOUND['backup']}"
    # What happened after the backup must be gone after the restore.
    on_cp(rehearsal, ETCDCTL + "etcdctl put /kc/after-the-backup new >/dev/null\n"
                               "etcdctl del /registry/configmaps/default/app >/dev/null")
    before = on_cp(rehearsal, ETCDCTL + "sha256sum /etc/kubernetes/pki/ca.crt /etc/kubernetes/pki/etcd/ca.crt\n"
                                        "echo \"$etcd_id\"\netcdctl get /kc/rehearsal -w json")
    old_id = before.splitlines()[2]
    revision = json.loads(before.splitlines()[3])["header"]["revision"]
    config = "/etc/kubernetes/kubeadm-config.yaml"
    config_sum = on_cp(rehearsal, f"sha256sum {config}").split()[0]
    started = time.monotonic()
    # Without the node's kubeadm configuration (a machine where kubeadm init never ran): the
    # backup's copy, taken from this same node, is used.
    result = rehearsal.sh(cp(rehearsal), f"mv {config} /root/kubeadm-config.before-restore\n"
                                          f"RESTORE_WIPE=1 {RESTORE} {backup}", timeout=600)
    rehearsal.timings["  of which: etcd restore (reset, etcdutl, kubeadm init)"] = round(time.monotonic() - started, 1)
    assert result.ok, f"the restore failed:\n{result.explain()}"
    ip = cp(rehearsal).private_ip
    assert f"etcdutl snapshot restore as member {NODE} (https://{ip}:2380)" in result.stderr, result.stderr
    assert result.stderr.index("etcdutl snapshot restore") < result.stderr.index("kubeadm reset -f"), result.stderr
    assert "runs again on this node" in result.stderr, result.stderr
    assert "using the backup's kubeadm configuration" in result.stderr, result.stderr
    assert on_cp(rehearsal, f"sha256sum {config}; stat -c %a {config}").split()[::2] == [config_sum, "600"], (
        "the backup's kubeadm configuration was not put back as the node's, mode 0600")

    after = on_cp(rehearsal, ETCDCTL + "sha256sum /etc/kubernetes/pki/ca.crt /etc/kubernetes/pki/etcd/ca.crt\n"
                                       "echo \"$etcd_id\"\netcdctl get /kc/rehearsal -w json\n"
                                       "etcdctl member list -w simple\n"
                                       "kubectl --kubeconfig /etc/kubernetes/admin.conf get --raw=/readyz; echo\n"
                                       "grep -o '\"event\": \"[a-z-]*\"' /var/log/kc-standin/kubeadm.jsonl | tail -n 2")
    lines = after.splitlines()
    assert lines[:2] == before.splitlines()[:2], "the cluster's CAs are not the backup's"
    assert lines[2] != old_id, "the etcd container was not replaced"
    # etcdutl --bump-revision 1000000000 over the snapshot's revision (older than `revision`).
    assert json.loads(lines[3])["header"]["revision"] > max(revision, 10**9), "the restored revision was not bumped"
    assert re.search(rf", started, {NODE}, https://{re.escape(ip)}:2380, https://{re.escape(ip)}:2379", lines[4]), (
        f"the restored member is not kubeadm's one-member cluster: {lines[4]}")
    assert lines[5] == "ok", f"the API server is not ready on the restored data: {lines[5:]}"
    assert lines[-2:] == ['"event": "reset"', '"event": "init"'], lines[-2:]
    values = etcd_get(rehearsal, *KEYS, "/kc/after-the-backup")
    assert values == KEYS, f"the restored etcd holds {values}, not the backup's {KEYS}"
