"""Shared fixtures: the repo root on sys.path and stack configs for the mock runs."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

GCP = {"gcp:project": "test-project", "gcp:region": "europe-west1", "gcp:zone": "europe-west1-b"}


def stack_config(**keys: Any) -> dict[str, Any]:
    """A stack's config: the GCP settings, an admin CIDR, and the given kubeadm-cluster keys."""
    config: dict[str, Any] = {**GCP, "adminCidrs": ["203.0.113.7/32"]}
    config.update(keys)
    return config


def expanded(bundle: Any) -> str:
    """A bundle (a step's stdin, or a ``sudo bash -c '<bundle>'`` delete command) as it runs on a
    node: each ``. "$KC_SCRIPTS_DIR/<name>"`` line replaced by that script's marker and text from
    the checkout (what the node's copy of the scripts holds), so a test reads what the step runs."""
    import re
    import shlex

    from components.bootstrap.scripts import script, script_marker

    text = str(bundle or "")
    if text.startswith("sudo bash -c "):
        text = shlex.split(text)[-1]
    return re.sub(
        r'^\. "\$KC_SCRIPTS_DIR/(?P<name>[\w.-]+)"$',
        lambda m: f"{script_marker(m['name'])}\n{script(m['name'])}",
        text,
        flags=re.M,
    )
