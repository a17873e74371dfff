"""The documentation's config tables match the config model (README, README.zh-CN, Pulumi.yaml)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from components.config import NAMESPACE, SECRET_KEYS, ClusterConfig

ROOT = Path(__file__).resolve().parent.parent
MODEL_KEYS = {field.alias or name for name, field in ClusterConfig.model_fields.items()} | set(SECRET_KEYS)


def _table_keys(readme: Path) -> set[str]:
    """First-column keys of the config table: the table whose header starts with `| key |` / `| 键 |`."""
    keys: set[str] = set()
    in_table = False
    for line in readme.read_text(encoding="utf-8").splitlines():
        if re.match(r"^\|\s*(key|键)\s*\|", line):
            in_table = True
            continue
        if in_table:
            if not line.startswith("|"):
                break
            match = re.match(r"^\|\s*`([A-Za-z]+)`\s*\|", line)
            if match:
                keys.add(match.group(1))
    return keys


@pytest.mark.parametrize("readme", ["README.md", "README.zh-CN.md"])
def test_readme_config_table_lists_exactly_the_model_keys(readme: str) -> None:
    path = ROOT / readme
    assert path.exists(), f"{readme} is missing"
    documented = _table_keys(path)
    assert documented == MODEL_KEYS, (
        f"{readme} config table differs from the config model: "
        f"undocumented {sorted(MODEL_KEYS - documented)}, not in the model {sorted(documented - MODEL_KEYS)}"
    )


def test_pulumi_yaml_documents_every_key() -> None:
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text(encoding="utf-8"))
    assert project["name"] == "kubeadm-cluster"
    assert project["runtime"] == {"name": "python", "options": {"toolchain": "pip", "virtualenv": "venv"}}
    documented = {key.split(":", 1)[1] for key in project["template"]["config"] if key.startswith(f"{NAMESPACE}:")}
    assert documented == MODEL_KEYS, (
        f"Pulumi.yaml documents {sorted(documented ^ MODEL_KEYS)} differently from the model"
    )


def test_readme_test_command_is_what_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    command = "venv/bin/python -m pytest"
    assert f"\n{command}\n" in readme, "the README no longer gives the test command"
    assert ci.rstrip().endswith(command), ".ci/run must end by running the README's test command"


def _pins_table(readme: Path) -> str:
    """The text of the pinned-versions table (the table after '### Pinned versions' / '### 固定版本')."""
    text = readme.read_text(encoding="utf-8")
    match = re.search(r"^### (Pinned versions|固定版本)\n(.*?)(?=^#)", text, re.S | re.M)
    assert match, f"{readme.name} has no pinned-versions section"
    return match.group(2)


@pytest.mark.parametrize("readme", ["README.md", "README.zh-CN.md"])
def test_readme_pinned_versions_are_the_pins(readme: str) -> None:
    from components import versions

    table = _pins_table(ROOT / readme)
    expected = {
        "KUBERNETES_DEFAULT_VERSION": versions.KUBERNETES_DEFAULT_VERSION,
        "CONTAINERD_VERSION": versions.CONTAINERD_VERSION,
        "RUNC_VERSION": versions.RUNC_VERSION,
        "WEAVE_VERSION": versions.WEAVE_VERSION,
        "FLANNEL_CHART_VERSION": versions.FLANNEL_CHART_VERSION,
        "CALICO_CHART_VERSION": versions.CALICO_CHART_VERSION,
        "DASHBOARD_IMAGE": versions.DASHBOARD_IMAGE.rsplit(":", 1)[1],
        "DASHBOARD_METRICS_SCRAPER_IMAGE": versions.DASHBOARD_METRICS_SCRAPER_IMAGE.rsplit(":", 1)[1],
        "HEADLAMP_CHART_VERSION": versions.HEADLAMP_CHART_VERSION,
        "ROOK_CHART_VERSION": versions.ROOK_CHART_VERSION,
        "CEPH_IMAGE": versions.CEPH_IMAGE.rsplit(":", 1)[1],
        "CEPH_CSI_DRIVERS_CHART_VERSION": versions.CEPH_CSI_DRIVERS_CHART_VERSION,
        **{f"PAUSE_VERSIONS[{minor}]": tag for minor, tag in versions.PAUSE_VERSIONS.items()},
    }
    missing = {name: value for name, value in expected.items() if not re.search(rf"(?<![\w.]){re.escape(value)}(?![\w.])", table)}
    assert not missing, f"{readme}'s pinned-versions table does not show these pins of components/versions.py: {missing}"
    minors = [f"1.{minor}" for minor in versions.KUBERNETES_SUPPORTED_MINORS]
    assert all(m in table for m in minors), f"{readme}'s pinned-versions table does not name the supported minors {minors}"
