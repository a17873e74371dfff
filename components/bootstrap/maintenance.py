"""Day two on the control planes: etcd backups, certificate renewal, and a kubeconfig that stays valid.

What each control plane gets (``install_env``, run by ``scripts/install-maintenance.sh`` after its
``kubeadm init`` or ``join``):

* ``kubeadm-cluster-etcd-snapshot.timer`` (``backup.schedule``): ``etcd-snapshot.sh`` saves a
  snapshot through the etcd static pod, packs it with the cluster's CAs, keeps the newest
  ``backup.keep`` in :data:`BACKUP_DIR` and uploads it (GCP: the stack's bucket; ``provider:
  existing``: ``backup.uploadUrl`` when set). The upgrade and removal steps take one too
  (:func:`snapshot_env`).
* ``kubeadm-cluster-certs-renew.timer`` (daily): ``certs-renew.sh`` renews kubeadm's
  certificates when one has fewer than :data:`RENEW_BEFORE_DAYS` days left.
* ``etcd-restore.sh`` in :data:`INSTALL_DIR`, for a restore by hand onto a fresh first control plane.

The admin kubeconfig the stack exports (and the Kubernetes provider uses) is a copy of the first
control plane's ``admin.conf``, whose client certificate kubeadm signs for a year. Its read step
is re-run once per :data:`KUBECONFIG_REFRESH_DAYS`-day window (:func:`kubeconfig_refresh_window`,
the step's ``triggers``): a renewal on the node reaches the output at the next ``pulumi up`` after
the window turns, long before the old certificate expires.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import cache
from pathlib import Path

import pulumi

from components.config import ClusterConfig

UNITS_DIR = Path(__file__).parent / "units"
#: Where the maintenance scripts live on a control plane (the units run them from there).
INSTALL_DIR = "/usr/local/lib/kubeadm-cluster"
#: Their settings (systemd EnvironmentFile= syntax; etcd-snapshot.sh reads it too).
ENV_FILE = "/etc/kubeadm-cluster/maintenance.env"
#: The local backups of each control plane.
BACKUP_DIR = "/var/backups/kubeadm-cluster/etcd"
#: The scripts installed on the node (lib.sh first: the others source it from their directory).
NODE_SCRIPTS = ("lib.sh", "etcd-snapshot.sh", "etcd-restore.sh", "certs-renew.sh")
SNAPSHOT_TIMER = "kubeadm-cluster-etcd-snapshot.timer"
CERTS_TIMER = "kubeadm-cluster-certs-renew.timer"
UNIT_FILES = (
    "kubeadm-cluster-etcd-snapshot.service",
    SNAPSHOT_TIMER,
    "kubeadm-cluster-certs-renew.service",
    CERTS_TIMER,
)
#: certs-renew.sh renews when a certificate has fewer days left than this.
RENEW_BEFORE_DAYS = 30
#: kubeadm signs its leaf certificates for one year (its constants.CertificateValidityPeriod).
CERTIFICATE_DAYS = 365
#: How often the stack re-reads admin.conf into its kubeconfig output. Renewal happens with
#: RENEW_BEFORE_DAYS left (the timer runs daily), so a `pulumi up` at any time after a renewal
#: and before the old certificate expires re-reads the new one when this is at most
#: RENEW_BEFORE_DAYS - 1 days; a week leaves room for a renewal timer that failed for weeks.
KUBECONFIG_REFRESH_DAYS = 7
#: The reasons etcd-snapshot.sh names its backups with (besides ``scheduled``, the timer's).
PRE_UPGRADE = "pre-upgrade"
PRE_REMOVE = "pre-remove"
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@cache
def unit(name: str) -> str:
    """The text of ``units/<name>``."""
    return (UNITS_DIR / name).read_text(encoding="utf-8")


def env_file(config: ClusterConfig, node_name: str, upload: str) -> str:
    """/etc/kubeadm-cluster/maintenance.env of one control plane: KEY=value lines (systemd
    EnvironmentFile= syntax, no quoting needed: every value is validated plain text)."""
    lines = {
        "BACKUP_NODE": node_name,
        "BACKUP_DIR": BACKUP_DIR,
        "BACKUP_KEEP": str(config.backup.keep),
        "BACKUP_UPLOAD": upload,
        "RENEW_BEFORE_DAYS": str(RENEW_BEFORE_DAYS),
    }
    return "# Written by kubeadm-cluster (install-maintenance.sh); read by its maintenance units.\n" + "".join(
        f"{key}={value}\n" for key, value in lines.items()
    )


def upload_target(config: ClusterConfig, bucket_url: pulumi.Input[str] | None) -> pulumi.Output[str]:
    """Where the snapshots go besides the node: the stack's bucket (GCP) or ``backup.uploadUrl``."""
    if bucket_url is not None:
        return pulumi.Output.from_input(bucket_url)
    return pulumi.Output.from_input(config.backup.upload_url)


def backups_description(upload: pulumi.Input[str]) -> pulumi.Output[str]:
    """The stack output ``etcdBackups``: where the backups are."""
    local = f"{BACKUP_DIR} on each control plane"
    return pulumi.Output.from_input(upload).apply(lambda url: f"{url} and {local}" if url else local)


def install_env(config: ClusterConfig, node_name: str, upload: pulumi.Input[str]) -> dict[str, pulumi.Input[str]]:
    """The inputs of ``install-maintenance.sh`` on ``node_name``: every file it installs (mode,
    path, content), the snapshot schedule and the timers to enable. The scripts are links to the
    node's copy of them (components.bootstrap.scripts.copy_scripts), not content: a release that
    changes them copies them again and runs no install."""
    links = "".join(f"{'0644' if name == 'lib.sh' else '0755'} {INSTALL_DIR}/{name} node-script\n" for name in NODE_SCRIPTS)
    files: list[tuple[str, str, pulumi.Input[str]]] = []
    files += [("0644", f"/etc/systemd/system/{name}", unit(name)) for name in UNIT_FILES]
    files.append(
        ("0600", ENV_FILE, pulumi.Output.from_input(upload).apply(lambda url: env_file(config, node_name, url)))
    )
    env: dict[str, pulumi.Input[str]] = {
        "MAINTENANCE_FILES": links + "".join(f"{mode} {path}\n" for mode, path, _ in files),
        "SNAPSHOT_SCHEDULE": config.backup.schedule,
        "MAINTENANCE_TIMERS": f"{SNAPSHOT_TIMER} {CERTS_TIMER}",
    }
    for index, (_, _, content) in enumerate(files, start=len(NODE_SCRIPTS) + 1):
        env[f"MAINTENANCE_FILE_{index}"] = content
    return env


def snapshot_env(reason: str, *, required: bool = True) -> dict[str, str]:
    """The inputs of ``etcd-snapshot.sh`` in a bundle before another step (the rest comes from the
    node's maintenance.env). ``required=False``: a failed snapshot is a warning, not an error."""
    return {"BACKUP_REASON": reason, "BACKUP_REQUIRED": "1" if required else "0"}


def utcnow() -> datetime:
    """The clock the kubeconfig refresh window is read from (tests replace it)."""
    return datetime.now(timezone.utc)


def kubeconfig_refresh_window(now: datetime | None = None) -> str:
    """The refresh window ``now`` falls in: windows of KUBECONFIG_REFRESH_DAYS days from the Unix
    epoch, named by their first day. The kubeconfig read step has it as its trigger, so the step
    runs again at the first ``pulumi up`` of each new window, and at no other time."""
    moment = (now or utcnow()).astimezone(timezone.utc)
    index = (moment - _EPOCH).days // KUBECONFIG_REFRESH_DAYS
    start = _EPOCH + timedelta(days=index * KUBECONFIG_REFRESH_DAYS)
    return f"admin.conf re-read in the {KUBECONFIG_REFRESH_DAYS}-day window from {start.date().isoformat()}"
