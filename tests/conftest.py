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
