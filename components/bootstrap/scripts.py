"""The node scripts (``scripts/*.sh``) and how they reach a node and run there.

The scripts are copied once per node (``copy_scripts``: a ``pulumi_command.remote.CopyToRemote``
of this directory over SFTP to ``~/kubeadm-cluster/scripts`` of the SSH user), and a step runs as
``sudo bash -s`` with a short *bundle* on stdin: strict mode, the step's inputs as exported
variables, then lines that source ``lib.sh`` (logging, retries) and the step's scripts from that
copy. The bundle names the scripts, never their text, so a release that changes a script changes
only the copies' inputs (their ``triggers`` carry each script's content hash): one-shot steps
(init, tokens, joins) never run again because a script changed. Inputs travel on stdin, never on
the command line (no secrets in ``ps`` or in sshd's AcceptEnv), and a secret input keeps the whole
bundle secret in the Pulumi state.
"""

from __future__ import annotations

import hashlib
import shlex
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import pulumi
from pulumi_command import remote

SCRIPTS_DIR = Path(__file__).parent / "scripts"
#: What each remote step runs; the step's bundle arrives on stdin.
RUN_BUNDLE = "sudo bash -s"
#: The copy's ``remote_path``: relative, so under the SSH user's home, where both an SFTP session
#: and an SSH command start (pulumi-command 1.2.1 copies a directory ``D`` given without a trailing
#: slash to ``<remote_path>/<basename of D>``: provider/pkg/provider/remote/copyController.go).
REMOTE_PATH = "kubeadm-cluster"
#: Where a step finds the scripts: relative to the directory its SSH session starts in (``sudo``
#: keeps it). KC_SCRIPTS_DIR overrides it (the sandbox tests; ``sudo`` drops it on a node).
NODE_SCRIPTS_DIR = f"{REMOTE_PATH}/scripts"
#: The first line of a bundle's script list: which scripts it sources (tools/preview_comment.py).
RUN_MARKER = "# kc-run"


@contextmanager
def scripts_from(directory: Path | None) -> Iterator[None]:
    """The node scripts (and their bundle markers) read from ``directory`` instead of ``scripts/``
    while the block runs: another release's scripts, for the rehearsal and the preview-comment
    tests. Nothing changes when ``directory`` is None."""
    global SCRIPTS_DIR
    if directory is None:
        yield
        return
    if directory.name != SCRIPTS_DIR.name:  # the copy lands in <REMOTE_PATH>/<its basename>
        raise ValueError(f"{directory}: the node scripts' directory must be named {SCRIPTS_DIR.name!r}")
    original = SCRIPTS_DIR
    SCRIPTS_DIR = directory
    _clear()
    try:
        yield
    finally:
        SCRIPTS_DIR = original
        _clear()


def _clear() -> None:
    script.cache_clear()
    script_marker.cache_clear()
    manifest.cache_clear()


@cache
def script(name: str) -> str:
    """The text of ``scripts/<name>``."""
    return (SCRIPTS_DIR / name).read_text(encoding="utf-8")


@cache
def script_marker(name: str) -> str:
    """The comment line that precedes ``scripts/<name>`` in a bundle: its name and content hash,
    which ``tools/preview_comment.py`` reads to name the scripts a preview changes."""
    return f"# kc-script {name} sha256:{hashlib.sha256(script(name).encode()).hexdigest()}"


def script_names() -> list[str]:
    """Every node script (``*.sh`` in the scripts directory), sorted."""
    return sorted(path.name for path in SCRIPTS_DIR.glob("*.sh"))


@cache
def manifest() -> str:
    """One ``script_marker`` line per node script: what a node's copy holds. The copy's trigger,
    so a changed script copies again (and ``tools/preview_comment.py`` names it, once)."""
    return "\n".join(script_marker(name) for name in script_names())


def scripts_hash(names: Sequence[str]) -> str:
    """One content hash of the scripts ``names`` (with lib.sh): an input of a step that must run
    again when what it installs or configures changes (node prep)."""
    markers = "\n".join(script_marker(name) for name in ["lib.sh", *names])
    return "sha256:" + hashlib.sha256(markers.encode()).hexdigest()


def render_bundle(steps: str | Sequence[str], env: Mapping[str, str], *, skip_without_copy: bool = False) -> str:
    """The bash program a node runs for ``steps`` (file names in ``scripts/``) with ``env``: it
    sources ``lib.sh`` and each step script from the node's copy (``copy_scripts``). Without that
    copy it fails, or with ``skip_without_copy`` ends at once with a warning (a step that may run
    before its node's copy exists: see components/machines/gcp.py)."""
    names = [steps] if isinstance(steps, str) else list(steps)
    missing = [name for name in names if not (SCRIPTS_DIR / name).is_file()]
    if missing:
        raise KeyError(f"{missing}: no such node script in {SCRIPTS_DIR}")
    exports = [f"export {name}={shlex.quote(value)}" for name, value in env.items()]
    where = f"KC_SCRIPTS_DIR=${{KC_SCRIPTS_DIR:-$PWD/{NODE_SCRIPTS_DIR}}}"
    check = (
        '[[ -f $KC_SCRIPTS_DIR/lib.sh ]] || { echo "kubeadm-cluster: no node scripts in $KC_SCRIPTS_DIR'
        + (
            ' (the node\'s -scripts copy has not run yet): nothing done" >&2; exit 0; }'
            if skip_without_copy
            else ' (the node\'s -scripts copy has not run)" >&2; exit 1; }'
        )
    )
    sources = [f'. "$KC_SCRIPTS_DIR/{name}"' for name in ["lib.sh", *names]]
    return "\n".join(
        ["set -euo pipefail", *exports, f"{RUN_MARKER} {' '.join(['lib.sh', *names])}", where, check, *sources]
    ) + "\n"


def render_standalone_bundle(steps: str | Sequence[str], env: Mapping[str, str]) -> str:
    """A bundle that carries ``lib.sh`` and the step scripts themselves (each after its
    ``script_marker``), for a step that must not wait for the node's copy: the jump host's sshd
    settings, which the copies to the other nodes go through."""
    names = [steps] if isinstance(steps, str) else list(steps)
    exports = [f"export {name}={shlex.quote(value)}" for name, value in env.items()]
    texts = [part for name in ["lib.sh", *names] for part in (script_marker(name), script(name))]
    return "\n".join(["set -euo pipefail", *exports, *texts]) + "\n"


def bundle(
    step: str | Sequence[str],
    env: Mapping[str, pulumi.Input[str]],
    *,
    standalone: bool = False,
    skip_without_copy: bool = False,
) -> pulumi.Output[str]:
    """``render_bundle`` (``standalone``: ``render_standalone_bundle``) for inputs that may be
    Outputs (secrets stay secret)."""
    names = list(env)

    def render(values: list[Any]) -> str:
        exported = dict(zip(names, (str(v) for v in values)))
        if standalone:
            return render_standalone_bundle(step, exported)
        return render_bundle(step, exported, skip_without_copy=skip_without_copy)

    return pulumi.Output.all(*[env[name] for name in names]).apply(render)


def copy_scripts(
    resource_name: str,
    connection: remote.ConnectionArgs,
    identity: pulumi.Input[str] | None,
    depends_on: Sequence[pulumi.Resource],
    parent: pulumi.Resource,
) -> remote.CopyToRemote:
    """The node scripts copied to a node (to ``NODE_SCRIPTS_DIR``), again whenever one of them
    changed (``manifest``) or the machine is a new one (``identity``: a recreated VM with the same
    address). The state keeps the archive's path and hash, not the scripts' text. Nothing is
    removed from the node when the resource goes (pulumi-command's CopyToRemote has no delete): a
    node's delete steps still find their scripts."""
    triggers: list[pulumi.Input[str]] = [manifest()] + ([identity] if identity is not None else [])
    return remote.CopyToRemote(
        resource_name,
        connection=connection,
        source=pulumi.FileArchive(str(SCRIPTS_DIR)),
        remote_path=REMOTE_PATH,
        triggers=triggers,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on)),
    )
