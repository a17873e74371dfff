"""The node scripts (``scripts/*.sh``) and how they are shipped to a node.

A step runs as ``sudo bash -s`` with a *bundle* on stdin: strict mode, the step's inputs as
exported variables, ``lib.sh`` (logging, retries) and the step script itself. Inputs travel on
stdin, never on the command line (no secrets in ``ps`` or in sshd's AcceptEnv), and a secret
input keeps the whole bundle secret in the Pulumi state.
"""

from __future__ import annotations

import hashlib
import shlex
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import pulumi

SCRIPTS_DIR = Path(__file__).parent / "scripts"
#: What each remote step runs; the step's bundle arrives on stdin.
RUN_BUNDLE = "sudo bash -s"


@contextmanager
def scripts_from(directory: Path | None) -> Iterator[None]:
    """The node scripts (and their bundle markers) read from ``directory`` instead of ``scripts/``
    while the block runs: another release's scripts, for the rehearsal and the preview-comment
    tests. Nothing changes when ``directory`` is None."""
    global SCRIPTS_DIR
    if directory is None:
        yield
        return
    original = SCRIPTS_DIR
    SCRIPTS_DIR = directory
    script.cache_clear()
    script_marker.cache_clear()
    try:
        yield
    finally:
        SCRIPTS_DIR = original
        script.cache_clear()
        script_marker.cache_clear()


@cache
def script(name: str) -> str:
    """The text of ``scripts/<name>``."""
    return (SCRIPTS_DIR / name).read_text(encoding="utf-8")


@cache
def script_marker(name: str) -> str:
    """The comment line that precedes ``scripts/<name>`` in a bundle: its name and content hash,
    which ``tools/preview_comment.py`` reads to name the scripts a preview changes."""
    return f"# kc-script {name} sha256:{hashlib.sha256(script(name).encode()).hexdigest()}"


def render_bundle(steps: str | Sequence[str], env: Mapping[str, str]) -> str:
    """The bash program a node runs for ``steps`` (file names in ``scripts/``) with ``env``."""
    names = [steps] if isinstance(steps, str) else list(steps)
    exports = [f"export {name}={shlex.quote(value)}" for name, value in env.items()]
    texts = [part for name in ["lib.sh", *names] for part in (script_marker(name), script(name))]
    return "\n".join(["set -euo pipefail", *exports, *texts]) + "\n"


def bundle(step: str | Sequence[str], env: Mapping[str, pulumi.Input[str]]) -> pulumi.Output[str]:
    """``render_bundle`` for inputs that may be Outputs (secrets stay secret)."""
    names = list(env)
    return pulumi.Output.all(*[env[name] for name in names]).apply(
        lambda values: render_bundle(step, dict(zip(names, (str(v) for v in values))))
    )
