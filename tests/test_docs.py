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


def test_control_plane_counts_in_the_docs_are_the_models() -> None:
    """Every count of control planes the docs list (Pulumi.yaml's descriptions, the READMEs) is
    the model's ``CONTROL_PLANE_COUNTS``: all of them (``count 1, 3, 5 or 7``) or the HA ones
    (``apiLoadBalancer required with 3, 5 or 7``)."""
    from components.config import CONTROL_PLANE_COUNTS

    def listed(counts: tuple[int, ...], comma: str, word: str) -> str:
        *head, last = (str(count) for count in counts)
        return f"{comma.join(head)}{word}{last}"

    allowed = {(comma, word): {listed(CONTROL_PLANE_COUNTS, comma, word), listed(CONTROL_PLANE_COUNTS[1:], comma, word)}
               for comma, word in ((", ", " or "), ("、", " 或 "))}
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text(encoding="utf-8"))
    texts = [(f"Pulumi.yaml {key}", str(entry.get("description", ""))) for key, entry in project["template"]["config"].items()
             if key in (f"{NAMESPACE}:controlPlane", f"{NAMESPACE}:existingHosts")]
    assert len(texts) == 2, "Pulumi.yaml no longer describes controlPlane and existingHosts"
    for readme in ("README.md", "README.zh-CN.md"):
        text = (ROOT / readme).read_text(encoding="utf-8")
        # A list of numbers close before "control plane(s)" / "控制平面", or after "count".
        texts += [(readme, m.group(0)) for m in re.finditer(r"[^\n]{0,80}(control[- ]planes?|控制平面)[^\n]{0,10}", text)]
    wrong = []
    for where, text in texts:
        for comma, word in allowed:
            for found in re.findall(rf"\b\d+(?:{comma}\d+)*{word}\d+\b", text):
                if found not in allowed[(comma, word)]:
                    wrong.append(f"{where}: {found!r} in {text!r}")
    assert not wrong, (
        f"control-plane counts in the docs differ from components/config.py CONTROL_PLANE_COUNTS {CONTROL_PLANE_COUNTS}:\n  "
        + "\n  ".join(wrong)
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


# --- README.zh-CN carries every section of the English README -----------------------------------

#: Each English heading and its heading in README.zh-CN.md, in document order. A section added to
#: one README and not the other (or renamed) fails the test below until this map and both
#: READMEs agree.
ZH_HEADINGS: dict[str, str] = {
    "kubeadm-cluster": "kubeadm-cluster（中文说明）",
    "Quick start": "快速开始",
    "Backups and year two": "备份与第二年",
    "Stack configuration": "栈配置",
    "The hardware spec, in one place": "硬件要求（唯一出处）",
    "Pinned versions": "固定版本",
    "The tutorial's kubeadm flags, today": "教程里的 kubeadm 参数，今天的情况",
    "Outputs": "输出",
    "Add-ons": "插件",
    "Networking (`cni`)": "网络（`cni`）",
    "Taints and tolerations": "污点与容忍（Taint / Toleration）",
    "Dashboard (`dashboard`)": "Dashboard（`dashboard`）",
    "Storage (`rook`)": "存储（`rook`）",
    "Day two": "日常运维",
    "Your own servers and restricted networks": "自有服务器与受限网络",
    "Mirrors (`mirrors`, `imageRepository`)": "镜像（`mirrors`、`imageRepository`）",
    "Guard rails": "安全护栏",
    "How it is built": "实现方式",
    "Speed": "速度",
    "Tests": "测试",
}


def _outline(readme: Path) -> list[tuple[int, str, list[tuple[str, object]], list[int]]]:
    """The README's sections in order: (heading level, title, code blocks, table row counts).

    A code block is compared by what does not get translated: a bash block by its commands
    (comments and quoted example values dropped), a YAML block by its data (comments are not
    data), any other block by the first word of each line (the file tree of "How it is built")."""
    sections: list[tuple[int, str, list[tuple[str, object]], list[int]]] = []
    fence: str | None = None
    body: list[str] = []
    rows = 0
    for line in readme.read_text(encoding="utf-8").splitlines() + [""]:
        if fence is not None:
            if line.startswith("```"):
                if fence == "bash":  # quoted words are example values, translated ('choose a passphrase')
                    commands = [re.sub(r"\s+#.*$", "", cmd).rstrip() for cmd in body if not cmd.lstrip().startswith("#")]
                    shape: object = [re.sub(r"'[^']*'", "'…'", cmd) for cmd in commands]
                elif fence == "yaml":
                    shape = list(yaml.safe_load_all("\n".join(body)))
                else:  # the paths of a file tree (continuation lines are indented prose)
                    shape = [cmd.split()[0] for cmd in body if cmd.strip() and not cmd[0].isspace()]
                sections[-1][2].append((fence, shape))
                fence = None
            else:
                body.append(line)
            continue
        if line.startswith("|"):
            rows += 1
            continue
        if rows:
            sections[-1][3].append(rows)
            rows = 0
        if match := re.match(r"^```(\w*)", line):
            fence, body = match.group(1), []
        elif match := re.match(r"^(#{1,6}) (.+)$", line):
            sections.append((len(match.group(1)), match.group(2).strip(), [], []))
    return sections


def test_readme_zh_cn_has_every_section_of_the_english_one() -> None:
    english, chinese = _outline(ROOT / "README.md"), _outline(ROOT / "README.zh-CN.md")
    expected = [(level, ZH_HEADINGS.get(title, f"<no translation of {title!r} in ZH_HEADINGS>")) for level, title, _, _ in english]
    actual = [(level, title) for level, title, _, _ in chinese]
    missing = [item for item in expected if item not in actual]
    extra = [item for item in actual if item not in expected]
    assert actual == expected, (
        f"README.zh-CN.md's sections differ from README.md's: missing {missing}, not in the English one {extra}; "
        f"order and levels must match too:\n  English: {expected}\n  Chinese: {actual}"
    )


def test_readme_zh_cn_carries_every_example_and_table() -> None:
    """Per section, the same code blocks (commands, YAML data, file tree) and tables (row counts)."""
    english, chinese = _outline(ROOT / "README.md"), _outline(ROOT / "README.zh-CN.md")
    by_title = {title: (blocks, tables) for _, title, blocks, tables in chinese}
    problems = []
    for _, title, blocks, tables in english:
        zh_title = ZH_HEADINGS.get(title, title)
        zh_blocks, zh_tables = by_title.get(zh_title, ([], []))
        for block in blocks:
            if block not in zh_blocks:
                problems.append(f"{title!r} / {zh_title!r}: the {block[0] or 'plain'} block {str(block[1])[:100]}... is missing or differs")
        if tables != zh_tables:
            problems.append(f"{title!r} / {zh_title!r}: tables with {tables} rows in English, {zh_tables} in Chinese")
        if len(zh_blocks) != len(blocks):
            problems.append(f"{title!r} / {zh_title!r}: {len(blocks)} code blocks in English, {len(zh_blocks)} in Chinese")
    assert not problems, "README.zh-CN.md lacks what README.md shows:\n  " + "\n  ".join(problems)
