"""First-boot package activity on a rehearsal VM: real apt jobs holding apt's locks while node prep starts.

A fresh cloud VM is rarely idle: the apt-daily timers start ``apt-get update`` (and downloads)
right after the first boot, and an admin's or a configuration tool's apt job may still run. Two
real jobs, each made to last long enough to overlap the node's own apt work:

* ``apt_daily``: Debian's own ``apt-daily.service`` (its shipped unit and
  /usr/lib/apt/apt.systemd.daily), told through a runtime drop-in (``APT_CONFIG``, under /run:
  gone at the next boot) to update the package lists daily and to read one source, served
  slowly by the host's mirror. Its ``apt-get update`` holds the lists lock, and the unit is
  ``activating``, for as long as the mirror delays the repository's InRelease.
  kc_apt_settle (lib.sh) must wait for the unit.
* ``apt_job``: a transient unit that is none of the units kc_apt_settle knows (an admin's or a
  tool's apt job): an ``apt-get update`` of the slow source (the lists lock) and, at the same
  time, an ``apt-get install`` of a local package whose maintainer script takes a while (apt holds
  /var/lib/dpkg/lock-frontend meanwhile). The script lasts until the node step's own
  ``apt-get install`` is waiting for the lock, plus ``HOLD_AFTER`` seconds (at most
  ``HOLD_MAX``): the node's apt-get must wait for both locks (kc_apt_get_locked).

Both use only the slow source's lists (``Dir::Etc::SourceList``), never the node's own sources,
and keep the node's lists (``APT::Get::List-Cleanup false``).
"""

from __future__ import annotations

import shlex

#: Where the jobs keep their files on the VM (tmpfs: nothing survives a reboot).
RUN_DIR = "/run/kc-first-boot"
#: The transient unit of ``apt_job``.
JOB_UNIT = "kc-first-boot-apt.service"
#: The package ``apt_job`` installs.
JOB_PACKAGE = "kc-first-boot-job"
#: Seconds the job's maintainer script goes on once the node's apt-get install waits, and at most.
HOLD_AFTER = 10
HOLD_MAX = 300
#: The locks the jobs hold (what lock_held_script polls).
LISTS_LOCK = "/var/lib/apt/lists/lock"
FRONTEND_LOCK = "/var/lib/dpkg/lock-frontend"

_SOURCES = r"""
set -euo pipefail
dir={run_dir}
mkdir -p "$dir/sources.list.d"
printf 'deb [trusted=yes] %s /\n' {repo} >"$dir/slow.list"
cat >"$dir/apt.conf" <<EOF
Dir::Etc::SourceList "$dir/slow.list";
Dir::Etc::SourceParts "$dir/sources.list.d";
APT::Get::List-Cleanup "false";
APT::Periodic::Update-Package-Lists "1";
APT::Periodic::Unattended-Upgrade "0";
APT::Periodic::Download-Upgradeable-Packages "0";
EOF
"""


def apt_daily(slow_repo: str) -> str:
    """Root shell: start Debian's apt-daily.service on ``slow_repo`` (a mirror URL whose
    InRelease answers slowly) without waiting for it."""
    return _SOURCES.format(run_dir=RUN_DIR, repo=shlex.quote(slow_repo)) + r"""
mkdir -p /run/systemd/system/apt-daily.service.d
printf '[Service]\nEnvironment=APT_CONFIG=%s/apt.conf\n' "$dir" >/run/systemd/system/apt-daily.service.d/kc-first-boot.conf
systemctl daemon-reload
# apt.systemd.daily updates the lists once a day: as on a first boot, no stamp yet.
rm -f /var/lib/apt/periodic/update-stamp
systemctl start --no-block apt-daily.service
"""


def apt_job(slow_repo: str) -> str:
    """Root shell: start the transient apt job (``JOB_UNIT``) on ``slow_repo``, without waiting."""
    return _SOURCES.format(run_dir=RUN_DIR, repo=shlex.quote(slow_repo)) + rf"""
pkg="$dir/pkg"
mkdir -p "$pkg/DEBIAN"
cat >"$pkg/DEBIAN/control" <<EOF
Package: {JOB_PACKAGE}
Version: 1
Architecture: all
Maintainer: kubeadm-cluster rehearsal <rehearsal@example.invalid>
Description: a package whose maintainer script takes a while (first-boot contention)
EOF
# dpkg runs this while apt holds lock-frontend: it lasts until the node step's own apt-get install
# (kc_apt_get_locked passes DPkg::Lock::Timeout) is waiting for that lock, then {HOLD_AFTER}s more.
cat >"$pkg/DEBIAN/postinst" <<'EOF'
#!/bin/sh
for i in $(seq {HOLD_MAX}); do
  if pgrep -f 'DPkg::Lock::Timeout=.* install ' >/dev/null; then
    echo "postinst: the node's apt-get install is waiting (after $i s)"; sleep {HOLD_AFTER}; exit 0
  fi
  sleep 1
done
echo "postinst: no apt-get install came"
EOF
chmod 0755 "$pkg/DEBIAN/postinst"
dpkg-deb --build "$pkg" "$dir/{JOB_PACKAGE}.deb" >/dev/null
cat >"$dir/job.sh" <<EOF
#!/bin/bash
set -euo pipefail
export APT_CONFIG=$dir/apt.conf DEBIAN_FRONTEND=noninteractive
apt-get -q update &
update=\$!
apt-get -q -y install $dir/{JOB_PACKAGE}.deb
wait \$update
EOF
systemd-run --quiet --unit={JOB_UNIT} --remain-after-exit --description='first-boot apt job (rehearsal)' \
  /bin/bash "$dir/job.sh"
"""


def lock_held(*paths: str) -> str:
    """Root shell that exits 0 once some process holds a (POSIX record) lock on each of
    ``paths`` (they appear in /proc/locks by device and inode), 1 after 60 s."""
    quoted = " ".join(shlex.quote(p) for p in paths)
    return rf"""
for i in $(seq 120); do
  held=1
  for f in {quoted}; do
    [ -e "$f" ] || {{ held=0; break; }}
    inode=$(stat -c %i "$f")
    grep -q ":$inode " /proc/locks || {{ held=0; break; }}
  done
  [ "$held" = 1 ] && exit 0
  sleep 0.5
done
echo "not held: {quoted}" >&2
exit 1
"""


def cleanup() -> str:
    """Root shell: the jobs' traces gone (their package, the runtime drop-in, the lists of the
    slow source), as if the first-boot jobs had never been there."""
    return rf"""
set -euo pipefail
systemctl stop {JOB_UNIT} 2>/dev/null || true
systemctl reset-failed {JOB_UNIT} 2>/dev/null || true
if dpkg-query -W {JOB_PACKAGE} >/dev/null 2>&1; then dpkg --purge {JOB_PACKAGE} >/dev/null; fi
rm -rf /run/systemd/system/apt-daily.service.d/kc-first-boot.conf {RUN_DIR}
rm -f /var/lib/apt/lists/*_slow_*
systemctl daemon-reload
"""
