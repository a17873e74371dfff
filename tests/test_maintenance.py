"""The maintenance of the control planes in the program (components/bootstrap/maintenance.py):
timers installed on every control plane, the GCP backup bucket, the snapshots before upgrades and
removals, the config contract, the systemd units themselves, and the kubeconfig that is re-read
once per refresh window (two program runs compared under the mock engine, the clock set)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from components.bootstrap import maintenance
from components.bootstrap.scripts import script
from components.config import parse_cluster_config
from components.machines.gcp import BACKUP_WRITER_ROLE
from tests.conftest import expanded, stack_config
from tests.test_lifecycle import _env
from tests.test_program import _commands, _depends_on
from tests.test_scripts import Sandbox, _explain
from tools import mock_engine
from tools.mock_engine import Plan, Registered, run_program

POOL = {"name": "general", "count": 2, "storageDiskSizeGb": 50}
HA = stack_config(controlPlane={"count": 3}, workerPools=[POOL])
BUCKET = "gcp:storage/bucket:Bucket"
BUCKET_IAM = "gcp:storage/bucketIAMMember:BucketIAMMember"


def _plan(config: dict[str, object], monkeypatch: pytest.MonkeyPatch | None = None, now: datetime | None = None) -> Plan:
    plan = run_program(config, stack="dev", now=now)
    assert plan.error is None, plan.error
    return plan


def _installed(command: Registered) -> dict[str, tuple[str, str]]:
    """path -> (mode, content) of what a maintenance step installs."""
    env = _env(command)
    files = {}
    for index, line in enumerate(env["MAINTENANCE_FILES"].splitlines(), start=1):
        mode, path, *kind = line.split()
        # A link to the node's copy of a script carries no content ("node-script").
        files[path] = (mode, kind[0] if kind else env[f"MAINTENANCE_FILE_{index}"])
    return files


# --- what the program registers -----------------------------------------------------------------


def test_every_control_plane_installs_the_timers_off_the_critical_chain() -> None:
    plan = _plan(HA)
    commands = _commands(plan)
    steps = sorted(name for name in commands if name.endswith("-maintenance"))
    assert steps == ["dev-cp-0-maintenance", "dev-cp-1-maintenance", "dev-cp-2-maintenance"], steps
    for node in ("dev-cp-0", "dev-cp-1", "dev-cp-2"):
        step = commands[f"{node}-maintenance"]
        assert step.input("create") == "sudo bash -s" and "install-maintenance.sh" in str(step.input("stdin"))
        assert _depends_on(plan, step, commands[f"{node}-prepare"]), f"{node}: installed before its node prep"
        join = commands.get(f"{node}-join") or commands[f"{node}-init"]
        assert join.urn not in plan.ancestors_depend(step), f"{node}: the install waits for its join (the chain grows)"
        files = _installed(step)
        for name in maintenance.NODE_SCRIPTS:
            mode, content = files[f"/usr/local/lib/kubeadm-cluster/{name}"]
            assert content == "node-script", f"{name} is not a link to the node's copy of the scripts: {content[:80]!r}"
            assert mode == ("0644" if name == "lib.sh" else "0755"), (name, mode)
        for unit in maintenance.UNIT_FILES:
            assert files[f"/etc/systemd/system/{unit}"] == ("0644", maintenance.unit(unit)), unit
        mode, env_file = files[maintenance.ENV_FILE]
        assert mode == "0600" and f"BACKUP_NODE={node}\n" in env_file and "BACKUP_KEEP=24\n" in env_file
        assert "BACKUP_UPLOAD=gs://test-project-dev-etcd\n" in env_file, env_file
        env = _env(step)
        assert env["SNAPSHOT_SCHEDULE"] == "hourly"
        assert env["MAINTENANCE_TIMERS"] == "kubeadm-cluster-etcd-snapshot.timer kubeadm-cluster-certs-renew.timer"
    assert not [n for n in commands if n.startswith("dev-general") and n.endswith("-maintenance")], "workers need no timers"


def test_the_backup_bucket_is_private_versioned_expiring_and_written_only_by_the_nodes() -> None:
    plan = _plan(stack_config(backup={"bucketRetentionDays": 14}))
    (bucket,) = plan.of_type(BUCKET)
    assert bucket.input("name") == "test-project-dev-etcd" and bucket.input("location") == "europe-west1"
    assert bucket.input("uniformBucketLevelAccess") is True, "object ACLs must be off (uniform access)"
    assert bucket.input("publicAccessPrevention") == "enforced", "public access must be prevented"
    assert bucket.input("versioning") == {"enabled": True}
    assert bucket.input("forceDestroy") is False, "pulumi destroy must not delete the backups"
    rules = [(r["action"]["type"], r["condition"]) for r in bucket.input("lifecycleRules")]
    assert ("Delete", {"age": 14, "withState": "LIVE"}) in rules, rules
    assert ("Delete", {"daysSinceNoncurrentTime": 7, "withState": "ARCHIVED"}) in rules, rules
    (writer,) = plan.of_type(BUCKET_IAM)
    account = plan.named("dev-nodes-sa").outputs["email"]
    assert writer.input("role") == BACKUP_WRITER_ROLE == "roles/storage.objectCreator"
    assert writer.input("member") == f"serviceAccount:{account}" and writer.input("bucket") == "test-project-dev-etcd"
    assert plan.outputs["etcdBackups"].startswith("gs://test-project-dev-etcd and /var/backups/kubeadm-cluster/etcd")


def test_own_servers_keep_backups_on_the_node_or_upload_to_your_url() -> None:
    base = {
        "adminCidrs": ["203.0.113.7/32"], "provider": "existing", "rook": {"enabled": False},
        "sshPrivateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\nX\n-----END OPENSSH PRIVATE KEY-----\n",
        "existingHosts": {"controlPlane": [{"address": "192.168.1.10"}], "workers": [{"address": "192.168.1.20"}]},
    }
    plain = run_program(base, stack="dev", secret_keys=["kubeadm-cluster:sshPrivateKey"])
    assert plain.error is None, plain.error
    assert not plain.of_type(BUCKET)
    env_file = _installed(_commands(plain)["dev-cp-0-maintenance"])[maintenance.ENV_FILE][1]
    assert "BACKUP_UPLOAD=\n" in env_file, env_file
    assert plain.outputs["etcdBackups"] == "/var/backups/kubeadm-cluster/etcd on each control plane"
    url = run_program({**base, "backup": {"uploadUrl": "https://backups.example.com/dav/", "schedule": "daily"}},
                      stack="dev", secret_keys=["kubeadm-cluster:sshPrivateKey"])
    assert url.error is None, url.error
    step = _commands(url)["dev-cp-0-maintenance"]
    assert "BACKUP_UPLOAD=https://backups.example.com/dav\n" in _installed(step)[maintenance.ENV_FILE][1]
    assert _env(step)["SNAPSHOT_SCHEDULE"] == "daily"


def test_local_vms_can_upload_their_backups_too() -> None:
    """A local VM's disk goes with `pulumi destroy`, its backups with it: uploadUrl is accepted for
    `provider: local` as for own servers (before, it was refused with a message about GCP)."""
    from tests.test_local_provider import local_stack

    plan = run_program(local_stack(backup={"uploadUrl": "https://backups.example.com/dav"}), stack="lab")
    assert plan.error is None, plan.error
    env_file = _installed(_commands(plan)["lab-cp-0-maintenance"])[maintenance.ENV_FILE][1]
    assert "BACKUP_UPLOAD=https://backups.example.com/dav\n" in env_file, env_file
    assert plan.outputs["etcdBackups"].startswith("https://backups.example.com/dav and "), plan.outputs["etcdBackups"]


def test_control_planes_snapshot_before_their_upgrade_and_before_one_leaves() -> None:
    plan = _plan(HA)
    commands = _commands(plan)
    for node in ("dev-cp-0", "dev-cp-1", "dev-cp-2"):
        stdin = expanded(commands[f"{node}-upgrade"].input("stdin"))
        assert stdin.index("KC_STEP=etcd-snapshot") < stdin.index("KC_STEP=upgrade-node"), f"{node}: no snapshot first"
        env = _env(commands[f"{node}-upgrade"])
        assert env["BACKUP_REASON"] == "pre-upgrade" and env["BACKUP_REQUIRED"] == "1", env
    assert "KC_STEP=etcd-snapshot" not in expanded(commands["dev-general-0-upgrade"].input("stdin")), "workers have no etcd"
    for node in ("dev-cp-1", "dev-cp-2"):
        delete = expanded(commands[f"{node}-membership"].input("delete"))
        assert delete.index("KC_STEP=etcd-snapshot") < delete.index("KC_STEP=remove-control-plane"), delete[:200]
        assert f"BACKUP_REASON=pre-remove-{node}" in delete and "BACKUP_REQUIRED=0" in delete, (
            "a snapshot before a removal must never block it")


def test_before_upgrade_false_leaves_the_snapshot_out_of_the_upgrade_only() -> None:
    """``backup.beforeUpgrade: false``: the control planes' upgrade steps run upgrade-node.sh
    alone; the timers and the snapshot before a control plane leaves stay."""
    commands = _commands(_plan({**HA, "backup": {"beforeUpgrade": False}}))
    for node in ("dev-cp-0", "dev-cp-1", "dev-cp-2"):
        stdin = expanded(commands[f"{node}-upgrade"].input("stdin"))
        assert "KC_STEP=upgrade-node" in stdin and "KC_STEP=etcd-snapshot" not in stdin, f"{node}: snapshot still runs"
    assert "KC_STEP=etcd-snapshot" in expanded(commands["dev-cp-1-membership"].input("delete"))
    assert "dev-cp-0-maintenance" in commands


@pytest.mark.parametrize(
    ("backup", "field", "message"),
    [
        ({"keep": 0}, "backup.keep", "1 to 1000"),
        ({"schedule": "minutely"}, "backup.schedule", "every minute"),
        ({"schedule": "$(reboot)"}, "backup.schedule", "not a systemd calendar expression"),
        ({"bucketRetentionDays": 0}, "backup.bucketRetentionDays", "1 to 3650"),
        ({"uploadUrl": "https://x.example.com/b"}, "", "backup.uploadUrl is for provider 'existing' or 'local'"),
        ({"uploadUrl": "http://x.example.com/b"}, "backup.uploadUrl", "https://"),
        ({"uploadUrl": "https://user:pw@x.example.com/b"}, "backup.uploadUrl", "credentials"),
        ({"keepp": 3}, "backup.keepp", "unknown key"),
    ],
)
def test_bad_backup_settings_are_refused_before_any_resource(backup: dict[str, object], field: str, message: str) -> None:
    plan = run_program(stack_config(backup=backup), stack="dev")
    assert plan.error is not None and message in plan.error, plan.error
    if field:
        assert f"kubeadm-cluster:{field}" in plan.error, plan.error
    assert not plan.resources or all(r.type.startswith("pulumi:") for r in plan.resources), (
        f"resources registered despite bad config: {[r.name for r in plan.resources]}")


# --- the kubeconfig over the years -------------------------------------------------------------

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)


def _window_start(moment: datetime) -> datetime:
    days = (moment - datetime(1970, 1, 1, tzinfo=timezone.utc)).days // maintenance.KUBECONFIG_REFRESH_DAYS
    return datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(days=days * maintenance.KUBECONFIG_REFRESH_DAYS)


def _changed(before: Plan, after: Plan) -> dict[str, list[str]]:
    """What a later run changes, but the join tokens' half-hour refresh trigger (their own clock:
    tests/test_faults.py)."""
    a, b = before.by_urn(), after.by_urn()
    assert set(a) == set(b), "a later run must not add or remove resources"
    changed = {a[u].name: sorted(k for k in set(a[u].inputs) | set(b[u].inputs) if a[u].inputs.get(k) != b[u].inputs.get(k))
               for u in a if a[u].inputs != b[u].inputs}
    return {name: keys for name, keys in changed.items() if not (name.endswith("-join-token") and keys == ["triggers"])}


def test_the_kubeconfig_is_read_again_after_the_refresh_period_and_at_no_other_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    start = _window_start(T0)
    config = stack_config()
    first = _plan(config, monkeypatch, start)
    same_window = _plan(config, monkeypatch, start + timedelta(days=maintenance.KUBECONFIG_REFRESH_DAYS) - timedelta(seconds=1))
    assert _changed(first, same_window) == {}, "a run inside the same refresh window changed something"
    next_window = _plan(config, monkeypatch, start + timedelta(days=maintenance.KUBECONFIG_REFRESH_DAYS))
    assert _changed(first, next_window) == {"dev-cp-0-kubeconfig": ["triggers"]}, (
        "after the refresh period exactly the kubeconfig read step must run again (a trigger change replaces it)")
    a_year_on = _plan(config, monkeypatch, start + timedelta(days=365))
    assert _changed(first, a_year_on) == {"dev-cp-0-kubeconfig": ["triggers"]}
    kubeconfig = _commands(next_window)["dev-cp-0-kubeconfig"]
    assert kubeconfig.input("triggers") == [maintenance.kubeconfig_refresh_window(start + timedelta(days=7)),
                                            "dev-cp-0-init-id"]  # the init step's id (the mock's "<name>-id")
    assert "stdout" in kubeconfig.additional_secret_outputs and "kubeconfig" in next_window.secret_outputs


def test_a_new_kubeadm_init_reads_the_kubeconfig_again_in_the_same_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """`pulumi up --replace <init>` (a first control plane lost without a backup: a new, empty
    cluster with a new CA) gives the init step a new id. The provider's clusterIdentifier is that
    id, so the provider and every add-on are replaced in that run: the kubeconfig they get must be
    the new cluster's, read in the same run. Before, the read step's only trigger was its time
    window, so the new provider got the old cluster's credentials and every add-on failed."""
    config = stack_config()
    before = _plan(config)
    original = mock_engine.ClusterMocks.new_resource

    def new_resource(self: Any, args: Any) -> Any:
        resource_id, state = original(self, args)
        return (f"{resource_id}-replaced" if args.name == "dev-cp-0-init" else resource_id), state

    monkeypatch.setattr(mock_engine.ClusterMocks, "new_resource", new_resource)
    after = _plan(config)
    changed = _changed(before, after)
    assert changed.get("dev-cp-0-kubeconfig") == ["triggers"], (
        f"a new kubeadm init must re-read the kubeconfig (a trigger change replaces the step): {changed}")
    provider = next(r for r in after.resources if r.type == "pulumi:providers:kubernetes")
    assert provider.inputs.get("clusterIdentifier") == "dev-cp-0-init-id-replaced", provider.inputs
    assert "dev-cp-0-kubeconfig" in {after.by_urn()[u].name for u in after.ancestors_depend(provider)}, (
        "the provider does not get its kubeconfig from the read step")


def test_the_refresh_period_outruns_the_renewal_window() -> None:
    """kubeadm's certificates last CERTIFICATE_DAYS; certs-renew.sh renews with RENEW_BEFORE_DAYS
    left (daily). A `pulumi up` after a renewal and before the old certificate expires crosses a
    window boundary, so it reads the renewed admin.conf: the period must be shorter than the
    renewal window, less the day the timer may take."""
    assert maintenance.KUBECONFIG_REFRESH_DAYS <= maintenance.RENEW_BEFORE_DAYS - 1
    assert maintenance.RENEW_BEFORE_DAYS < maintenance.CERTIFICATE_DAYS
    config = parse_cluster_config({"adminCidrs": '["203.0.113.7/32"]'})
    assert f"RENEW_BEFORE_DAYS={maintenance.RENEW_BEFORE_DAYS}" in maintenance.env_file(config, "dev-cp-0", "")
    assert "RENEW_BEFORE_DAYS=${RENEW_BEFORE_DAYS:-30}" in script("certs-renew.sh")
    # Windows are whole, consecutive and named by their first day.
    start = _window_start(T0)
    assert maintenance.kubeconfig_refresh_window(start) == maintenance.kubeconfig_refresh_window(
        start + timedelta(days=7, seconds=-1))
    assert maintenance.kubeconfig_refresh_window(start) != maintenance.kubeconfig_refresh_window(start + timedelta(days=7))
    assert start.date().isoformat() in maintenance.kubeconfig_refresh_window(start)


# --- the node side of the install step ---------------------------------------------------------


def _link_real(box: Sandbox, tool: str) -> bool:
    real = shutil.which(tool)
    if real is None:
        return False
    target = box.bin / tool
    if target.exists():
        target.unlink()
    target.symlink_to(os.path.realpath(real))
    return True


def test_the_program_s_install_bundle_installs_once_and_a_second_run_changes_nothing(tmp_path: Path) -> None:
    plan = _plan(stack_config(backup={"schedule": "*-*-* 00/6:00:00"}))
    bundle = str(_commands(plan)["dev-cp-0-maintenance"].input("stdin"))
    box = Sandbox(tmp_path)
    _link_real(box, "systemd-analyze")
    first = box.run([], bundle=bundle)
    assert first.rc == 0, _explain(first)
    installed = box.path("/usr/local/lib/kubeadm-cluster")
    for name in maintenance.NODE_SCRIPTS:
        assert (installed / name).read_text() == script(name)
        assert os.access(installed / name, os.X_OK) == (name != "lib.sh"), name
    dropin = box.path("/etc/systemd/system/kubeadm-cluster-etcd-snapshot.timer.d/schedule.conf").read_text()
    assert "OnCalendar=\nOnCalendar=*-*-* 00/6:00:00\n" in dropin, dropin
    assert box.path(maintenance.ENV_FILE).stat().st_mode & 0o777 == 0o600
    systemctl = [c for c in first.calls if c.startswith("systemctl")]
    timers = "kubeadm-cluster-etcd-snapshot.timer kubeadm-cluster-certs-renew.timer"
    assert systemctl == ["systemctl daemon-reload", f"systemctl enable {timers}", f"systemctl restart {timers}"], systemctl
    second = box.run([], bundle=bundle)
    assert second.rc == 0, _explain(second)
    assert [c for c in second.calls if c.startswith("systemctl")] == [f"systemctl enable {timers}", f"systemctl start {timers}"]
    assert "0 file(s) changed" in second.stderr, second.stderr


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here")
def test_a_schedule_systemd_rejects_stops_the_install(tmp_path: Path) -> None:
    # The config refuses such a schedule (components/systemd_calendar.py, tests/test_systemd_calendar.py);
    # the node's own check stays as a second line of defence, so it gets one behind the config's back.
    plan = _plan(stack_config(backup={"schedule": "*-*-* 00/5:00:00"}))
    bundle = str(_commands(plan)["dev-cp-0-maintenance"].input("stdin"))
    bundle = bundle.replace("export SNAPSHOT_SCHEDULE='*-*-* 00/5:00:00'", "export SNAPSHOT_SCHEDULE='Mon..Frii 25:00'")
    assert "SNAPSHOT_SCHEDULE='Mon..Frii 25:00'" in bundle, "the bundle no longer exports SNAPSHOT_SCHEDULE this way"
    box = Sandbox(tmp_path)
    _link_real(box, "systemd-analyze")
    result = box.run([], bundle=bundle)
    assert result.rc != 0 and "is not a calendar expression systemd accepts" in result.stderr, _explain(result)
    assert not box.path("/etc/systemd/system").exists(), "files were written before the schedule was checked"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here")
def test_the_units_load_with_systemd_analyze_verify(tmp_path: Path) -> None:
    """`systemd-analyze verify` on the units as installed (--root: the scripts at their paths, the
    schedule drop-in, the machine's own system units for the targets they name). systemd only
    warns on unknown keys or bad values: any line about our files fails the test."""
    root = tmp_path / "root"
    units = root / "etc" / "systemd" / "system"
    units.mkdir(parents=True)
    for name in maintenance.UNIT_FILES:
        (units / name).write_text(maintenance.unit(name))
    dropin = units / f"{maintenance.SNAPSHOT_TIMER}.d"
    dropin.mkdir()
    (dropin / "schedule.conf").write_text("[Timer]\nOnCalendar=\nOnCalendar=*-*-* 00/6:00:00\n")
    bin_dir = root / "usr" / "local" / "lib" / "kubeadm-cluster"
    bin_dir.mkdir(parents=True)
    for name in maintenance.NODE_SCRIPTS:
        (bin_dir / name).write_text(script(name))
        (bin_dir / name).chmod(0o755)
    system = Path("/usr/lib/systemd/system")
    if not (system / "sysinit.target").exists():
        pytest.skip("this machine has no systemd unit directory for the targets the units name")
    (root / "usr" / "lib" / "systemd").mkdir(parents=True)
    (root / "usr" / "lib" / "systemd" / "system").symlink_to(system)
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", f"--root={root}", *maintenance.UNIT_FILES],
                            capture_output=True, text=True, timeout=60)
    ours = [line for line in (result.stdout + result.stderr).splitlines() if "kubeadm-cluster" in line]
    assert result.returncode == 0 and not ours, f"systemd-analyze verify (rc {result.returncode}):\n" + "\n".join(ours)
    # The schedules the config documents are calendar expressions systemd accepts.
    for schedule in ("hourly", "daily", "*-*-* 00/6:00:00"):
        check = subprocess.run(["systemd-analyze", "calendar", schedule], capture_output=True, text=True)
        assert check.returncode == 0, f"{schedule}: {check.stderr}"


def test_the_units_run_the_installed_scripts_and_read_the_env_file() -> None:
    """Without systemd too: each service runs its script from INSTALL_DIR with the env file."""
    for name, expected in (("kubeadm-cluster-etcd-snapshot.service", "etcd-snapshot.sh"),
                           ("kubeadm-cluster-certs-renew.service", "certs-renew.sh")):
        text = maintenance.unit(name)
        assert f"ExecStart={maintenance.INSTALL_DIR}/{expected}\n" in text and "Type=oneshot\n" in text, name
        assert f"EnvironmentFile=-{maintenance.ENV_FILE}\n" in text, name
    for timer in (maintenance.SNAPSHOT_TIMER, maintenance.CERTS_TIMER):
        text = maintenance.unit(timer)
        assert re.search(r"^Persistent=true$", text, re.M) and "WantedBy=timers.target" in text, timer
    assert "Environment=BACKUP_REASON=scheduled" in maintenance.unit("kubeadm-cluster-etcd-snapshot.service")
