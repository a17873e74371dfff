"""The single hardware truth: the minimums a kubeadm node needs and what GCP machines offer.

Used by the stack-config validation (``components.config``), by the CrossGuard policy
pack (``policies/``) and, through the variables ``preflight_env()`` renders, by the node
preflight script (``components/bootstrap/scripts/preflight.sh``). Change a number here and
all three follow.

The spec (from the kubeadm "before you begin" requirements this project grew from):
64-bit Linux on x86-64 or ARM, at least 2 vCPU, at least 4 GB RAM (8 GB recommended),
at least 30 GB of disk, nodes networked together with outbound internet access.

This module must stay importable without Pulumi or pydantic (the policy pack imports it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Minimum vCPUs per node (kubeadm's preflight refuses fewer than 2 on a control plane).
MIN_VCPUS = 2
#: Minimum memory per node, in MiB (GCP's "GB" are GiB).
MIN_MEMORY_MB = 4096
#: Recommended memory per node, in MiB: below it a warning, not an error.
RECOMMENDED_MEMORY_MB = 8192
#: Minimum boot disk per node, in GB.
MIN_DISK_GB = 30
#: CPU architectures supported, as ``uname -m`` prints them, mapped to the project's names.
ARCHITECTURES: dict[str, str] = {"x86_64": "x86_64", "aarch64": "arm64"}
#: Oldest kernel supported: Kubernetes needs >= 4.19, cgroup v2 needs >= 5.8.
MIN_KERNEL = (5, 8)
#: What a running node may report below the nominal size: the kernel and firmware keep part
#: of the RAM (a 4 GiB VM shows ~3.8 GiB in MemTotal) and the filesystem keeps part of the
#: disk (a 30 GB boot disk is a ~29 GB root filesystem). Used by the node preflight only.
NODE_REPORTED_TOLERANCE_PERCENT = 10


@dataclass(frozen=True)
class MachineSpec:
    """What one machine type offers."""

    name: str
    vcpus: float
    memory_mb: int
    arch: str  # "x86_64" or "arm64"
    shared_core: bool = False


@dataclass(frozen=True)
class Minimums:
    """Thresholds a machine is checked against (the policy pack can raise them)."""

    vcpus: float = MIN_VCPUS
    memory_mb: int = MIN_MEMORY_MB
    recommended_memory_mb: int = RECOMMENDED_MEMORY_MB
    disk_gb: int = MIN_DISK_GB


DEFAULT_MINIMUMS = Minimums()

# --- The Google Cloud machine catalogue ------------------------------------------------
# family -> (architecture, {shape: memory GiB per vCPU}, allowed vCPU counts)
_PREDEFINED: dict[str, tuple[str, dict[str, float], tuple[int, ...]]] = {
    "e2": ("x86_64", {"standard": 4, "highmem": 8, "highcpu": 1}, (2, 4, 8, 16, 32)),
    "n1": ("x86_64", {"standard": 3.75, "highmem": 6.5, "highcpu": 0.9}, (1, 2, 4, 8, 16, 32, 64, 96)),
    "n2": ("x86_64", {"standard": 4, "highmem": 8, "highcpu": 1}, (2, 4, 8, 16, 32, 48, 64, 80, 96, 128)),
    "n2d": ("x86_64", {"standard": 4, "highmem": 8, "highcpu": 1}, (2, 4, 8, 16, 32, 48, 64, 80, 96, 128, 224)),
    "n4": ("x86_64", {"standard": 4, "highmem": 8, "highcpu": 2}, (2, 4, 8, 16, 32, 48, 64, 80)),
    "c3": ("x86_64", {"standard": 4, "highmem": 8, "highcpu": 2}, (4, 8, 22, 44, 88, 176)),
    "c3d": ("x86_64", {"standard": 4, "highmem": 8, "highcpu": 2}, (4, 8, 16, 30, 60, 90, 180, 360)),
    "c4": ("x86_64", {"standard": 3.75, "highmem": 7.75, "highcpu": 2}, (2, 4, 8, 16, 32, 48, 96, 192)),
    "t2d": ("x86_64", {"standard": 4}, (1, 2, 4, 8, 16, 32, 48, 60)),
    "t2a": ("arm64", {"standard": 4}, (1, 2, 4, 8, 16, 32, 48)),
    "c4a": ("arm64", {"standard": 4, "highmem": 8, "highcpu": 2}, (1, 2, 4, 8, 16, 32, 48, 64, 72)),
}

# Shared-core types: a fraction of a core, sustained (they burst to 2 vCPUs for short times).
_SHARED_CORE: dict[str, MachineSpec] = {
    m.name: m
    for m in (
        MachineSpec("e2-micro", 0.25, 1024, "x86_64", shared_core=True),
        MachineSpec("e2-small", 0.5, 2048, "x86_64", shared_core=True),
        MachineSpec("e2-medium", 1.0, 4096, "x86_64", shared_core=True),
        MachineSpec("f1-micro", 0.2, 614, "x86_64", shared_core=True),
        MachineSpec("g1-small", 0.5, 1741, "x86_64", shared_core=True),
    )
}

# Families that accept custom shapes, with their architecture ("custom-" alone is N1).
_CUSTOM_FAMILIES: dict[str, str] = {
    "": "x86_64",
    "n1": "x86_64",
    "e2": "x86_64",
    "n2": "x86_64",
    "n2d": "x86_64",
    "n4": "x86_64",
}
_CUSTOM_RE = re.compile(
    r"^(?:(?P<family>[a-z][a-z0-9]*)-)?custom-(?P<cpus>\d+|micro|small|medium)-(?P<mb>\d+)(?P<ext>-ext)?$"
)
_SHARED_CUSTOM_CPUS = {"micro": 0.25, "small": 0.5, "medium": 1.0}


def _predefined_catalogue() -> dict[str, MachineSpec]:
    catalogue: dict[str, MachineSpec] = dict(_SHARED_CORE)
    for family, (arch, shapes, counts) in _PREDEFINED.items():
        for shape, gib_per_cpu in shapes.items():
            for cpus in counts:
                name = f"{family}-{shape}-{cpus}"
                catalogue[name] = MachineSpec(name, float(cpus), int(round(cpus * gib_per_cpu * 1024)), arch)
    return catalogue


#: Every predefined GCP machine type this project knows, by name.
GCP_MACHINE_TYPES: dict[str, MachineSpec] = _predefined_catalogue()


def lookup_machine_type(name: str) -> MachineSpec | None:
    """The spec of a GCP machine type (predefined or ``FAMILY-custom-CPUS-MB``), or None."""
    spec = GCP_MACHINE_TYPES.get(name)
    if spec is not None:
        return spec
    match = _CUSTOM_RE.match(name)
    if match is None:
        return None
    family = match.group("family") or ""
    if family not in _CUSTOM_FAMILIES:
        return None
    cpus_text = match.group("cpus")
    memory_mb = int(match.group("mb"))
    if cpus_text in _SHARED_CUSTOM_CPUS:
        if family != "e2":
            return None
        return MachineSpec(name, _SHARED_CUSTOM_CPUS[cpus_text], memory_mb, "x86_64", shared_core=True)
    cpus = int(cpus_text)
    if cpus < 1 or memory_mb < 1:
        return None
    return MachineSpec(name, float(cpus), memory_mb, _CUSTOM_FAMILIES[family])


def machine_type_problems(name: str, minimums: Minimums = DEFAULT_MINIMUMS) -> list[str]:
    """Why a machine type misses the minimums (empty when it meets them)."""
    spec = lookup_machine_type(name)
    if spec is None:
        return [
            f"unknown machine type {name!r}: use a predefined type of the families "
            f"{', '.join(sorted(_PREDEFINED))} or FAMILY-custom-CPUS-MB "
            f"(for example n2-custom-4-16384)"
        ]
    problems: list[str] = []
    if spec.shared_core:
        problems.append(
            f"{name} is a shared-core machine type ({spec.vcpus:g} vCPU sustained); "
            f"a node needs at least {minimums.vcpus:g} dedicated vCPUs"
        )
    elif spec.vcpus < minimums.vcpus:
        problems.append(f"{name} has {spec.vcpus:g} vCPU; a node needs at least {minimums.vcpus:g}")
    if spec.memory_mb < minimums.memory_mb:
        problems.append(
            f"{name} has {format_mb(spec.memory_mb)} of memory; a node needs at least {format_mb(minimums.memory_mb)}"
        )
    return problems


def machine_type_warnings(name: str, minimums: Minimums = DEFAULT_MINIMUMS) -> list[str]:
    """Advisories for a machine type that meets the minimums but not the recommendation."""
    spec = lookup_machine_type(name)
    if spec is None or spec.memory_mb < minimums.memory_mb:
        return []
    if spec.memory_mb < minimums.recommended_memory_mb:
        return [
            f"{name} has {format_mb(spec.memory_mb)} of memory; "
            f"{format_mb(minimums.recommended_memory_mb)} is recommended"
        ]
    return []


def disk_problems(size_gb: float, minimums: Minimums = DEFAULT_MINIMUMS) -> list[str]:
    """Why a boot disk is too small (empty when it is large enough)."""
    if size_gb < minimums.disk_gb:
        return [f"boot disk of {size_gb:g} GB; a node needs at least {minimums.disk_gb} GB"]
    return []


def format_mb(memory_mb: float) -> str:
    """``4096`` -> ``"4 GB"``; ``3840`` -> ``"3.75 GB"``."""
    return f"{memory_mb / 1024:g} GB"


def preflight_env(minimums: Minimums = DEFAULT_MINIMUMS) -> dict[str, str]:
    """The variables the node preflight script checks a machine against."""
    return {
        "MIN_VCPUS": str(int(minimums.vcpus)),
        "MIN_MEMORY_MB": str(minimums.memory_mb),
        "RECOMMENDED_MEMORY_MB": str(minimums.recommended_memory_mb),
        "MIN_DISK_GB": str(minimums.disk_gb),
        "MIN_KERNEL": f"{MIN_KERNEL[0]}.{MIN_KERNEL[1]}",
        "SUPPORTED_ARCHS": " ".join(ARCHITECTURES),
        "TOLERANCE_PERCENT": str(NODE_REPORTED_TOLERANCE_PERCENT),
    }
