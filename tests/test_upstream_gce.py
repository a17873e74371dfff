"""GCE against its own documentation (tests/upstream/gce): the machine catalogue and the disk
type of each machine series in components/hardware.py, and the disks the program creates.

* Each series the catalogue accepts takes the disk types GCE lists under "Supported disk types
  for <series>"; N4, C4 and C4A list Hyperdisk only ("doesn't support Persistent Disk"), so their
  boot and Ceph disks are ``hyperdisk-balanced`` (defect 6: ``pd-balanced`` there passed the
  config validation and the policy pack, then failed at ``pulumi up``).
* The catalogue's predefined machine types are GCE's: the same names, vCPUs and memory.
* The program (under Pulumi's mocks) gives a node's boot disk and Ceph disk the series' type,
  and the policy pack agrees with the plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

import pytest

from components import hardware
from tests.conftest import stack_config
from tests.upstream_artifacts import facts
from tools import plan_check
from tools.mock_engine import Plan, run_program
from tools.policy_client import analyze_resources
from tools.upstream_digest import DigestError, extract_line_groups

AREA = "gce"
PAGE = "general-purpose-machines.digest.yaml"
INSTANCE = "gcp:compute/instance:Instance"
DISK = "gcp:compute/disk:Disk"


@dataclass
class Series:
    """What GCE's page says of one machine series."""

    name: str
    #: predefined machine type -> (vCPUs, memory GB)
    machine_types: dict[str, tuple[int, float]] = field(default_factory=dict)
    #: the disk types a VM instance (not a bare-metal one) of the series can use
    disk_types: set[str] = field(default_factory=set)
    no_persistent_disk: bool = False


def _page_lines() -> list[tuple[int, str, list[str]]]:
    """The digest's facts as the page's lines, in order: (line, fact, groups)."""
    digest = facts(AREA, PAGE)
    found = [(row["line"], fact, list(row["groups"])) for fact, rows in digest["lines"].items() for row in rows]
    found += [(row[0], fact, list(row[1:])) for fact, rows in digest["line-groups"].items() for row in rows]
    return sorted(found)


@cache
def gce() -> dict[str, Series]:
    """The page's series, by lowercase series name (``c4a``): its machine-type rows, and the
    disk types listed in its "Supported disk types" section up to a bare-metal heading or a cut."""
    found: dict[str, Series] = {}
    current: Series | None = None
    in_disks = False
    for line, fact, groups in _page_lines():
        if fact == "series":
            current = found.setdefault(groups[0].lower(), Series(groups[0].lower()))
            in_disks = False
            continue
        if current is None:
            continue
        if fact == "disk_sections":
            assert groups[0].lower() == current.name, f"line {line}: the disks of {groups[0]} inside the {current.name} section"
            in_disks = True
        elif fact == "disk_section_ends":
            in_disks = False
        elif fact == "disk_types" and in_disks:
            current.disk_types.add(groups[0].lower())  # the page spells one "hyperdisk-ML"
        elif fact == "machine_types":
            current.machine_types[groups[0]] = (int(groups[1]), float(groups[2].replace(",", "")))
        elif fact == "no_persistent_disk" and groups[0] == current.name.upper():
            current.no_persistent_disk = True
    return found


def test_line_groups_keep_the_captures_and_the_line_not_the_text() -> None:
    """The line-groups extractor (tools/upstream_digest.py) the page digest's tables use."""
    page = "## A\n\n| `a-1` | 2 | 8 | Up to 10 |\n| `a-2` | 4 | 1,024 | N/A |\ntext\n- Disk (`pd-x`)\n"
    assert extract_line_groups(page, {"rows": r"^\| `([a-z0-9-]+)` \| (\d+) \| ([\d.,]+) \|", "disks": r"\(`([\w-]+)`\)"}) == {
        "rows": [[3, "a-1", "2", "8"], [4, "a-2", "4", "1,024"]], "disks": [[6, "pd-x"]]}
    assert extract_line_groups(page, {"none": r"^nothing (here)$"}) == {"none": []}
    with pytest.raises(DigestError, match="captures no group"):
        extract_line_groups(page, {"rows": r"^\|"})


def _catalogue(series: str) -> dict[str, hardware.MachineSpec]:
    return {n: s for n, s in hardware.GCP_MACHINE_TYPES.items() if s.series == series and not s.shared_core}


def test_the_page_covers_every_series_of_the_catalogue() -> None:
    catalogue = {s.series for s in hardware.GCP_MACHINE_TYPES.values()}
    page = gce()
    assert catalogue == set(page), f"series in the catalogue, not on GCE's page excerpt: {catalogue - set(page)}; " \
        f"on the page, not in the catalogue: {set(page) - catalogue}"
    for series in page.values():
        assert series.machine_types and series.disk_types, f"{series.name}: the excerpt lost its tables or disk list"


@pytest.mark.parametrize("series", sorted(gce()))
def test_disk_types_are_the_ones_gce_lists_for_the_series(series: str) -> None:
    upstream = gce()[series]
    for name, spec in _catalogue(series).items():
        assert set(spec.disk_types) == upstream.disk_types, (
            f"{name}: hardware.py says the {series.upper()} series takes {sorted(spec.disk_types)}, "
            f"GCE's page lists {sorted(upstream.disk_types)}"
        )
        assert spec.disk_type in upstream.disk_types, (
            f"{name}: its boot and Ceph disks would be {spec.disk_type}, which GCE does not give the "
            f"{series.upper()} series (it lists {sorted(upstream.disk_types)}): pulumi up would fail"
        )


def test_hyperdisk_only_series_get_hyperdisk_balanced() -> None:
    """Defect 6: N4, C4 and C4A take no Persistent Disk, boot disk included."""
    without_pd = sorted(name for name, s in gce().items() if s.no_persistent_disk)
    assert without_pd == ["c4", "c4a", "n4"], without_pd
    assert sorted(hardware.HYPERDISK_ONLY_SERIES) == without_pd
    for series in without_pd:
        assert "pd-balanced" not in gce()[series].disk_types
        for name in (f"{series}-standard-4", f"{series}-highmem-8"):
            assert hardware.disk_type(name) == "hyperdisk-balanced", f"{name} gets {hardware.disk_type(name)}"
    assert hardware.disk_type("n4-custom-4-16384") == "hyperdisk-balanced", "custom N4 is still N4"
    for name in ("e2-standard-2", "n2-standard-4", "t2a-standard-2", "c3-standard-4", "custom-2-4096"):
        assert hardware.disk_type(name) == "pd-balanced", f"{name} gets {hardware.disk_type(name)}"


@pytest.mark.parametrize("series", sorted(gce()))
def test_catalogue_shapes_are_gces(series: str) -> None:
    """Names, vCPUs and memory of every predefined type (bare-metal types are not offered)."""
    upstream = {n: v for n, v in gce()[series].machine_types.items() if not n.endswith("-metal")}
    ours = _catalogue(series)
    missing = sorted(set(upstream) - set(ours))
    invented = sorted(set(ours) - set(upstream))
    assert not invented, f"{series}: the catalogue accepts machine types GCE does not offer: {invented}"
    assert not missing, f"{series}: GCE offers machine types the catalogue refuses: {missing}"
    wrong = {
        name: ((spec.vcpus, spec.memory_mb), (upstream[name][0], round(upstream[name][1] * 1024)))
        for name, spec in ours.items()
        if (spec.vcpus, spec.memory_mb) != (upstream[name][0], round(upstream[name][1] * 1024))
    }
    assert not wrong, f"{series}: (vCPUs, memory MiB) ours vs GCE's: {wrong}"


def test_arm_series_are_arm64() -> None:
    assert {s.series for s in hardware.GCP_MACHINE_TYPES.values() if s.arch == "arm64"} == {"t2a", "c4a"}


# --- the program and the policy pack --------------------------------------------------------------
@cache
def plan(control_plane: str, workers: str) -> Plan:
    result = run_program(
        stack_config(
            controlPlane={"machineType": control_plane, "storageDiskSizeGb": 20},
            workerPools=[{"name": "general", "count": 1, "machineType": workers, "storageDiskSizeGb": 30}],
        )
    )
    assert result.error is None, result.error
    return result


@pytest.mark.parametrize(
    ("control_plane", "workers"),
    [("n4-standard-2", "c4-standard-4"), ("c4a-standard-2", "c4a-highmem-4"), ("e2-standard-2", "n2-standard-4"),
     ("t2a-standard-2", "c3-standard-4")],
)
def test_boot_and_ceph_disks_are_of_the_series_type(control_plane: str, workers: str) -> None:
    """Against the page itself: each node's boot disk and Ceph disk is of a type GCE gives its
    series, balanced Persistent Disk wherever the series takes it, else Hyperdisk Balanced."""
    p = plan(control_plane, workers)
    machine = {i.name: i.input("machineType") for i in p.of_type(INSTANCE)}

    def expected(machine_type: str) -> tuple[str, set[str]]:
        allowed = gce()[machine_type.split("-", 1)[0]].disk_types
        return ("pd-balanced" if "pd-balanced" in allowed else "hyperdisk-balanced"), allowed

    disks = {d.name.removesuffix("-storage"): d.input("type") for d in p.of_type(DISK)}
    assert len(disks) == 2, disks
    for instance in p.of_type(INSTANCE):
        want, allowed = expected(machine[instance.name])
        for what, got in (("boot disk", instance.input("bootDisk.initializeParams.type")),
                          ("Ceph disk", disks.get(instance.name, want))):
            assert got == want, (
                f"{instance.name} ({machine[instance.name]}): {what} {got}; GCE gives that series only "
                f"{sorted(allowed)} (pulumi up fails otherwise), so it must be {want}"
            )


def _resources(p: Plan) -> list[dict[str, Any]]:
    return plan_check._resources(p)


def test_policy_pack_passes_the_hyperdisk_plan_and_blocks_persistent_disk_on_n4() -> None:
    """The pack agrees with the plan, and blocks what pulumi up would have failed on (defect 6)."""
    resources = _resources(plan("n4-standard-2", "c4a-standard-2"))
    blocking = [v for v in analyze_resources(resources) if v.mandatory]
    assert not blocking, "\n".join(str(v) for v in blocking)
    for resource in resources:
        if resource["type"] == INSTANCE:
            resource["props"]["bootDisk"]["initializeParams"]["type"] = "pd-balanced"  # the code as it was
    blocking = [v for v in analyze_resources(resources) if v.mandatory]
    assert {v.policy for v in blocking} == {"node-disk-type-supported"}, "\n".join(str(v) for v in blocking)
    assert any("use hyperdisk-balanced" in v.message for v in blocking), blocking
