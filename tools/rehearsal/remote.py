"""Run a step on a VM the way pulumi-command's ``remote.Command`` does, and copy files to it the
way its ``remote.CopyToRemote`` does.

pulumi-command opens an SSH session to ``connection.host`` (through ``connection.proxy`` when set:
a jump host), runs the ``create`` command (``sudo bash -s`` for every step of this program) with
the ``stdin`` input written to it and no terminal, and keeps stdout, stderr and the exit status.
Here OpenSSH does the same: ``ssh -J proxy host 'sudo bash -s' < bundle``, with the private key
the connection carries. A copy is an SFTP session over the same connection (``sftp -J``): a
local directory ``D`` goes to ``<remote path>/<basename of D>``, relative paths under the SSH
user's home, directories made as needed, files overwritten, new ones created 0644
(provider/pkg/provider/remote/copyController.go of pulumi-command 1.2.1, with pkg/sftp's Create).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.rehearsal import cache_dir
from tools.rehearsal.image import USER, ssh_key

#: OpenSSH options of every connection: test VMs, fresh host keys on each boot, no prompts.
SSH_OPTIONS = (
    "-o", "StrictHostKeyChecking=no",
    "-o", "UserKnownHostsFile=/dev/null",
    "-o", "LogLevel=ERROR",
    "-o", "BatchMode=yes",
    "-o", "IdentitiesOnly=yes",
    "-o", "ServerAliveInterval=15",
    "-o", "ServerAliveCountMax=8",
)


def _write_atomic(path: Path, text: str, mode: int = 0o600) -> None:
    """Write ``text`` to ``path`` through a renamed temporary file (steps run in parallel threads)."""
    tmp = path.with_name(f".{path.name}.{threading.get_ident()}")
    tmp.touch(mode=mode)
    tmp.write_text(text)
    tmp.replace(path)


def _key_file(private_key: str | None) -> Path:
    """A file holding ``private_key`` (the connection's key), or the test key when none is given."""
    if not private_key:
        return ssh_key()
    directory = cache_dir() / "ssh" / "connections"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / hashlib.sha256(private_key.encode()).hexdigest()[:16]
    if not path.exists():
        _write_atomic(path, private_key if private_key.endswith("\n") else private_key + "\n")
    return path


def _config_file(key: Path, connect_timeout: int) -> Path:
    """An ssh_config with the key and options: ``-J`` passes ``-F`` on to the jump connection."""
    directory = cache_dir() / "ssh"
    path = directory / f"config-{key.name}-{connect_timeout}"
    text = "Host *\n" + "".join(
        f"  {value.replace('=', ' ', 1)}\n" for flag, value in zip(SSH_OPTIONS[::2], SSH_OPTIONS[1::2]) if flag == "-o"
    ) + f"  IdentityFile {key}\n  ConnectTimeout {connect_timeout}\n"
    if not path.exists() or path.read_text() != text:
        _write_atomic(path, text, 0o644)
    return path


def mux_directory() -> Path:
    """Where the shared connections' control sockets live: short (a socket path has at most 108
    bytes, and OpenSSH's ``%C`` alone is 40), private to this user."""
    directory = Path(f"/tmp/kc-ssh-mux-{os.getuid()}")
    directory.mkdir(mode=0o700, exist_ok=True)
    if directory.stat().st_uid != os.getuid() or directory.stat().st_mode & 0o077:
        raise RuntimeError(f"{directory} is not this user's private directory: remove it")
    return directory


#: How long an idle shared connection stays open (seconds).
MUX_PERSIST = 60


def ssh_base(port: int = 22, private_key: str | None = None, connect_timeout: int = 10, proxy: str | None = None,
             shared: bool = False) -> list[str]:
    """``ssh`` with the rehearsal's options (the command and destination still to add).

    ``shared``: one SSH connection per destination, reused by the next commands (OpenSSH's
    ControlMaster): the tests' own checks on a VM cost a session, not a handshake (1.3 s each under
    software emulation, measured). Never for the program's steps: pulumi-command opens a
    connection of its own for each command, and so must the rehearsal."""
    command = ["ssh", "-F", str(_config_file(_key_file(private_key), connect_timeout)), "-p", str(port)]
    if shared:
        command += ["-o", "ControlMaster=auto", "-o", f"ControlPath={mux_directory()}/%C",
                    "-o", f"ControlPersist={MUX_PERSIST}"]
    if proxy:
        command += ["-J", proxy]
    return command


def close_shared(port: int, user: str = USER) -> None:
    """Close the shared connection to the VM behind ``port`` (before it reboots or stops: a master
    whose server is gone would hold the next command until its keepalives give up)."""
    subprocess.run([*ssh_base(port=port, shared=True), "-O", "exit", f"{user}@127.0.0.1"],
                   stdin=subprocess.DEVNULL, capture_output=True, timeout=30)


@dataclass
class Result:
    """What one remote command left: pulumi-command's stdout/stderr outputs and the exit status."""

    target: str
    command: str
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def explain(self, lines: int = 60) -> str:
        """A failure message: the command, its exit status and the tail of its stderr."""
        tail = "\n".join(self.stderr.splitlines()[-lines:])
        return f"{self.command!r} on {self.target} exited {self.returncode} after {self.seconds:.0f}s; stderr tail:\n{tail}"


def destination(connection: Mapping[str, Any]) -> tuple[list[str], str]:
    """``(ssh command without the remote command, a readable target)`` for a pulumi-command connection."""
    proxy = connection.get("proxy") or None
    jump = None
    if proxy:
        jump = f"{proxy.get('user') or 'root'}@{proxy['host']}:{int(proxy.get('port') or 22)}"
    base = ssh_base(
        port=int(connection.get("port") or 22),
        private_key=connection.get("privateKey"),
        proxy=jump,
        shared=bool(connection.get("shared")),
    )
    target = f"{connection.get('user') or 'root'}@{connection['host']}"
    readable = f"{target}:{int(connection.get('port') or 22)}" + (f" via {jump}" if jump else "")
    return [*base, target], readable


def copy(connection: Mapping[str, Any], source: Path, remote_path: str, timeout: float = 600) -> Result:
    """Copy the local directory ``source`` to ``<remote_path>/<source's name>`` over SFTP through
    ``connection`` (its jump host included), as pulumi-command's CopyToRemote does."""
    ssh, readable = destination(connection)
    config = ssh[ssh.index("-F") + 1]
    proxy = ssh[ssh.index("-J") + 1] if "-J" in ssh else None
    port = ssh[ssh.index("-p") + 1]
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="kc-copy-") as tmp:
        # What is sent: the files with the mode pkg/sftp's Create gives a new remote file (0644;
        # OpenSSH's sftp sends the local mode, which an existing remote file does not take).
        staged = Path(tmp) / source.name
        shutil.copytree(source, staged)
        for path in staged.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)
        top = f"{remote_path.rstrip('/')}/{source.name}"
        lines = [f"-mkdir {part}" for part in _parents(remote_path)] + [f"-mkdir {top}"]
        for path in sorted(staged.rglob("*")):
            relative = path.relative_to(staged).as_posix()
            lines.append(f"-mkdir {top}/{relative}" if path.is_dir() else f"put {path} {top}/{relative}")
        batch = Path(tmp) / "batch"
        batch.write_text("\n".join(lines) + "\n")
        command = ["sftp", "-F", config, "-P", port, "-b", str(batch), *(["-J", proxy] if proxy else []), ssh[-1]]
        try:
            completed = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
            # A copy has no stdout output (CopyToRemote's outputs are its inputs): sftp's echo of
            # the batch goes with its messages.
            code, out, err = completed.returncode, "", completed.stdout + completed.stderr
        except subprocess.TimeoutExpired:
            code, out, err = 124, "", f"(the copy timed out after {timeout:.0f}s)"
    return Result(readable, f"sftp {source} -> {top}", code, out, err, round(time.monotonic() - started, 1))


def _parents(remote_path: str) -> list[str]:
    """``a``, ``a/b`` ... of a relative remote path (pulumi-command makes them: MkdirAll)."""
    parts = [part for part in remote_path.strip("/").split("/") if part]
    prefix = "/" if remote_path.startswith("/") else ""
    return [prefix + "/".join(parts[: i + 1]) for i in range(len(parts))]


def run(connection: Mapping[str, Any], command: str, stdin: str = "", timeout: float = 1800) -> Result:
    """Run ``command`` over ``connection`` with ``stdin`` on its standard input (no terminal)."""
    ssh, readable = destination(connection)
    started = time.monotonic()
    try:
        completed = subprocess.run([*ssh, command], input=stdin, capture_output=True, text=True, timeout=timeout)
        code, out, err = completed.returncode, completed.stdout, completed.stderr
    except subprocess.TimeoutExpired as expired:
        code = 124
        out = expired.stdout.decode(errors="replace") if isinstance(expired.stdout, bytes) else (expired.stdout or "")
        err = (expired.stderr.decode(errors="replace") if isinstance(expired.stderr, bytes) else (expired.stderr or ""))
        err += f"\n(timed out after {timeout:.0f}s)"
    return Result(readable, command, code, out, err, round(time.monotonic() - started, 1))


def direct(port: int, user: str = USER, shared: bool = False) -> dict[str, Any]:
    """A connection to a VM's forwarded SSH port on the host's loopback (no jump host);
    ``shared``: over one reused SSH connection (see ssh_base; not a pulumi-command field)."""
    return {"host": "127.0.0.1", "port": port, "user": user, **({"shared": True} if shared else {})}


def via(jump_port: int, host: str, user: str = USER) -> dict[str, Any]:
    """A connection to ``host`` (a private address) through the first VM's forwarded SSH port."""
    return {"host": host, "port": 22, "user": user, "proxy": {"host": "127.0.0.1", "port": jump_port, "user": user}}
