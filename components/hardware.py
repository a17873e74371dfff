"""The single hardware truth: the minimums a kubeadm node needs, what GCP machines offer, and
the disk type each machine series takes (N4, C4 and C4A: Hyperdisk only).

Used by the stack-config validation (``components.config``), by the CrossGuard policy
pack (``policies/``) and, through the variables ``preflight_env()`` renders, by the node
preflight script (``components/bootstrap/scripts/preflight.sh``). Change a number here and
all three follow.

The spec (from the kubeadm "before you begin" requirements this project grew from):
64-bit Linux on x86-64 or ARM, at least 2 vCPU, at least 4 GB RAM (8 GB recommended),
at least 30 GB of disk, nodes networked together with outbound internet access; and, for the
node scripts, one of the operating systems in ``SUPPORTED_OS``.

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
#: The kernels kubeadm supports (its SystemVerification preflight, k8s.io/system-validators
#: v1.12.1 KernelSpec.Versions: tests/upstream/kubeadm): the 5.4, 5.10 and 5.15 long-term lines,
#: and any release from MIN_KERNEL on. Other 5.x releases (5.8, 5.11, 5.19 ...) are not supported
#: upstream (kubeadm warns "kernel release ... is unsupported"); the node preflight refuses them.
#: cgroup v2, which kubelet 1.35+ requires, is checked apart from the version (preflight.sh).
KERNEL_LTS_LINES: tuple[tuple[int, int], ...] = ((5, 4), (5, 10), (5, 15))
MIN_KERNEL = (6, 0)
#: What a running node may report below the nominal size: the kernel and firmware keep part
#: of the RAM (a 4 GiB VM shows ~3.8 GiB in MemTotal) and the filesystem keeps part of the
#: disk (a 30 GB boot disk is a ~29 GB root filesystem). Used by the node preflight only.
NODE_REPORTED_TOLERANCE_PERCENT = 10


@dataclass(frozen=True)
class OperatingSystem:
    """A supported node operating system, as its os-release(5) file names it."""

    #: ``ID`` in /etc/os-release (lower case: ``ubuntu``, ``debian``).
    id: str
    #: ``VERSION_ID`` in /etc/os-release (``24.04``, ``12``: Debian gives the major release only).
    version_id: str
    #: What messages and the README call it.
    name: str


#: The operating systems a node may run, in the order messages list them. GCP nodes boot
#: Ubuntu 24.04 (``versions.GCP_IMAGES``, which must stay in this list: tests/test_preflight_os.py);
#: own servers (``provider: existing``) may also run Debian 12 or 13, which the VM rehearsal boots
#: (tools/rehearsal). The node preflight refuses any other system, or a host without os-release.
SUPPORTED_OS: tuple[OperatingSystem, ...] = (
    OperatingSystem("ubuntu", "24.04", "Ubuntu 24.04 LTS"),
    OperatingSystem("debian", "12", "Debian 12 (bookworm)"),
    OperatingSystem("debian", "13", "Debian 13 (trixie)"),
)


#: The GCE disk types the program creates (the API's names): balanced Persistent Disk where the
#: machine series takes Persistent Disk, Hyperdisk Balanced where it takes Hyperdisk only.
PD_BALANCED = "pd-balanced"
HYPERDISK_BALANCED = "hyperdisk-balanced"
#: GCE's largest volume of each disk type the program creates, in GB (GCE's disk "GB" are GiB):
#: a Persistent Disk volume holds up to 64 TiB (cloud.google.com/compute/docs/disks/persistent-disks),
#: a Hyperdisk Balanced volume 4 GiB to 64 TiB (.../disks/hd-types/hyperdisk-balanced). Larger
#: sizes fail at `pulumi up`, when the VMs around them already exist.
MAX_DISK_GB: dict[str, int] = {PD_BALANCED: 64 * 1024, HYPERDISK_BALANCED: 64 * 1024}


@dataclass(frozen=True)
class MachineSpec:
    """What one machine type offers."""

    name: str
    vcpus: float
    memory_mb: int
    arch: str  # "x86_64" or "arm64"
    shared_core: bool = False
    #: The machine series (``n4``; ``n1`` for ``custom-*``), "" when not known here.
    series: str = ""

    @property
    def disk_types(self) -> tuple[str, ...]:
        """Every durable block-storage type GCE lets the series use (empty: not known here)."""
        family = _FAMILIES.get(self.series)
        return family.disk_types if family else ()

    @property
    def disk_type(self) -> str:
        """The type of the node's boot disk and Ceph disk (a type its series accepts for both)."""
        family = _FAMILIES.get(self.series)
        return family.disk_type if family else PD_BALANCED


@dataclass(frozen=True)
class Minimums:
    """Thresholds a machine is checked against (the policy pack can raise them)."""

    vcpus: float = MIN_VCPUS
    memory_mb: int = MIN_MEMORY_MB
    recommended_memory_mb: int = RECOMMENDED_MEMORY_MB
    disk_gb: int = MIN_DISK_GB


DEFAULT_MINIMUMS = Minimums()

# --- The Google Cloud machine catalogue ------------------------------------------------
# Checked against GCE's own page of the general-purpose machine family (machine types, and
# "Supported disk types for <series>"): tests/upstream/gce, tests/test_upstream_gce.py.

_PD = (PD_BALANCED, "pd-ssd", "pd-standard")
_HD_BALANCED = (HYPERDISK_BALANCED, "hyperdisk-balanced-high-availability")


@dataclass(frozen=True)
class _Family:
    """One machine series: its CPU architecture, its predefined shapes and its disk types."""

    arch: str
    #: shape -> (memory GiB per vCPU, the vCPU counts GCE offers in that shape)
    shapes: dict[str, tuple[float, tuple[int, ...]]]
    #: Every durable block-storage type GCE lets the series use, boot and data disks alike
    #: (Local SSD, a scratch disk that only some machine types attach, is left out).
    disk_types: tuple[str, ...]

    @property
    def disk_type(self) -> str:
        """Balanced Persistent Disk where the series takes it, else Hyperdisk Balanced (both boot)."""
        if PD_BALANCED in self.disk_types:
            return PD_BALANCED
        assert HYPERDISK_BALANCED in self.disk_types, "a series without pd-balanced takes hyperdisk-balanced"
        return HYPERDISK_BALANCED


_E2 = (2, 4, 8, 16, 32)
_N1 = (2, 4, 8, 16, 32, 64, 96)
_N2 = (2, 4, 8, 16, 32, 48, 64, 80, 96, 128)
_N2D = (2, 4, 8, 16, 32, 48, 64, 80, 96, 128, 224)
_N4 = (2, 4, 8, 16, 32, 48, 64, 80)
_C3 = (4, 8, 22, 44, 88, 176)
_C3D = (4, 8, 16, 30, 60, 90, 180, 360)
_C4 = (2, 4, 8, 16, 24, 32, 48, 96, 144, 192, 288)
_C4A = (1, 2, 4, 8, 16, 32, 48, 64, 72)

_FAMILIES: dict[str, _Family] = {
    "e2": _Family("x86_64", {"standard": (4, _E2), "highmem": (8, _E2[:-1]), "highcpu": (1, _E2)}, _PD),
    "n1": _Family("x86_64", {"standard": (3.75, (1, *_N1)), "highmem": (6.5, _N1), "highcpu": (0.9, _N1)}, _PD),
    "n2": _Family(
        "x86_64",
        {"standard": (4, _N2), "highmem": (8, _N2), "highcpu": (1, _N2[:-1])},
        (*_PD, "pd-extreme", "hyperdisk-extreme", "hyperdisk-throughput"),
    ),
    "n2d": _Family(
        "x86_64",
        {"standard": (4, _N2D), "highmem": (8, _N2D[:-2]), "highcpu": (1, _N2D)},
        (*_PD, "hyperdisk-throughput"),
    ),
    # N4, C4 and C4A take Hyperdisk only: "doesn't support Persistent Disk".
    "n4": _Family(
        "x86_64", {"standard": (4, _N4), "highmem": (8, _N4), "highcpu": (2, _N4)}, (*_HD_BALANCED, "hyperdisk-throughput")
    ),
    "c3": _Family(
        "x86_64",
        {"standard": (4, _C3), "highmem": (8, _C3), "highcpu": (2, _C3)},
        (PD_BALANCED, "pd-ssd", *_HD_BALANCED, "hyperdisk-extreme", "hyperdisk-ml", "hyperdisk-throughput"),
    ),
    "c3d": _Family(
        "x86_64",
        {"standard": (4, _C3D), "highmem": (8, _C3D), "highcpu": (2, _C3D)},
        (PD_BALANCED, "pd-ssd", *_HD_BALANCED, "hyperdisk-extreme", "hyperdisk-ml", "hyperdisk-throughput"),
    ),
    "c4": _Family(
        "x86_64",
        {"standard": (3.75, _C4), "highmem": (7.75, _C4), "highcpu": (2, _C4)},
        (*_HD_BALANCED, "hyperdisk-extreme", "hyperdisk-throughput"),
    ),
    "t2d": _Family("x86_64", {"standard": (4, (1, 2, 4, 8, 16, 32, 48, 60))}, (*_PD, "hyperdisk-throughput")),
    "t2a": _Family("arm64", {"standard": (4, (1, 2, 4, 8, 16, 32, 48))}, _PD),
    "c4a": _Family(
        "arm64",
        {"standard": (4, _C4A), "highmem": (8, _C4A), "highcpu": (2, _C4A)},
        (*_HD_BALANCED, "hyperdisk-extreme", "hyperdisk-ml", "hyperdisk-throughput"),
    ),
}

#: Predefined types whose memory is not vCPUs x GiB per vCPU (GCE rounds or caps them), in GiB.
_MEMORY_GB_EXCEPTIONS: dict[str, float] = {
    "n2-highmem-128": 864,
    "c3d-highcpu-30": 59,
    "c3d-highcpu-60": 118,
    "c3d-highcpu-90": 177,
    "c3d-highcpu-180": 354,
    "c3d-highcpu-360": 708,
    "c4-standard-2": 7,
    "c4-highmem-2": 15,
}


def _spec(series: str, name: str, vcpus: float, memory_mb: int, shared_core: bool = False) -> MachineSpec:
    return MachineSpec(name, vcpus, memory_mb, _FAMILIES[series].arch, shared_core, series=series)


# Shared-core types: a fraction of a core, sustained (they burst to 2 vCPUs for short times).
_SHARED_CORE: dict[str, MachineSpec] = {
    m.name: m
    for m in (
        _spec("e2", "e2-micro", 0.25, 1024, shared_core=True),
        _spec("e2", "e2-small", 0.5, 2048, shared_core=True),
        _spec("e2", "e2-medium", 1.0, 4096, shared_core=True),
        _spec("n1", "f1-micro", 0.2, 614, shared_core=True),
        _spec("n1", "g1-small", 0.5, 1741, shared_core=True),
    )
}

# Series that accept custom shapes ("custom-" alone is N1).
_CUSTOM_FAMILIES: dict[str, str] = {"": "n1", "n1": "n1", "e2": "e2", "n2": "n2", "n2d": "n2d", "n4": "n4"}
_CUSTOM_RE = re.compile(
    r"^(?:(?P<family>[a-z][a-z0-9]*)-)?custom-(?P<cpus>\d+|micro|small|medium)-(?P<mb>\d+)(?P<ext>-ext)?$"
)
_SHARED_CUSTOM_CPUS = {"micro": 0.25, "small": 0.5, "medium": 1.0}
#: Custom memory comes in steps of 256 MB, every series (Cloud Billing API CustomMachineType:
#: "Must be an increment of 0.25 (256 MB)"; Google's custom machine type sample checks it too).
CUSTOM_MEMORY_STEP_MB = 256


@dataclass(frozen=True)
class _CustomShape:
    """What GCE accepts in a custom machine type of one series."""

    #: The vCPU counts the series takes.
    vcpus: tuple[int, ...]
    #: Memory per vCPU, in MB, without extended memory (``-ext``).
    min_mb_per_vcpu: int
    max_mb_per_vcpu: int
    #: The most memory a VM of the series may have with extended memory (0: no extended memory).
    extended_max_mb: int = 0


#: Custom shapes per series, as Google's own custom-machine-type helper (GoogleCloudPlatform
#: golang-samples, compute/custom-machine-type: typeLimit per series) checks them against
#: cloud.google.com/compute/docs/general-purpose-machines#custom_machine_types: N1 takes 1 or an
#: even count up to 96 vCPUs and 0.9-6.5 GB per vCPU; N2 even counts to 32 then multiples of 4
#: to 128; N2D 2, 4, 8, then multiples of 16 to 96; E2 even counts 2-32; N2, N2D and E2 take
#: 0.5-8 GB per vCPU; extended memory up to 624 GB (N1, N2) or 768 GB (N2D), none on E2.
#: N4 custom types are checked for the 256 MB step only (no such table was found upstream).
_CUSTOM_SHAPES: dict[str, _CustomShape] = {
    "n1": _CustomShape((1, *range(2, 97, 2)), 922, 6656, 624 * 1024),
    "n2": _CustomShape((*range(2, 33, 2), *range(36, 129, 4)), 512, 8192, 624 * 1024),
    "n2d": _CustomShape((2, 4, 8, 16, 32, 48, 64, 80, 96), 512, 8192, 768 * 1024),
    "e2": _CustomShape(tuple(range(2, 33, 2)), 512, 8192),
}


def _predefined_catalogue() -> dict[str, MachineSpec]:
    catalogue: dict[str, MachineSpec] = dict(_SHARED_CORE)
    for family_name, family in _FAMILIES.items():
        for shape, (gib_per_cpu, counts) in family.shapes.items():
            for cpus in counts:
                name = f"{family_name}-{shape}-{cpus}"
                gib = _MEMORY_GB_EXCEPTIONS.get(name, cpus * gib_per_cpu)
                catalogue[name] = _spec(family_name, name, float(cpus), int(round(gib * 1024)))
    return catalogue


#: Every predefined GCP machine type this project knows, by name.
GCP_MACHINE_TYPES: dict[str, MachineSpec] = _predefined_catalogue()
#: The machine series whose every disk must be Hyperdisk (GCE gives them no Persistent Disk).
HYPERDISK_ONLY_SERIES: tuple[str, ...] = tuple(n for n, f in _FAMILIES.items() if f.disk_type == HYPERDISK_BALANCED)


def lookup_machine_type(name: str) -> MachineSpec | None:
    """The spec of a GCP machine type (predefined or ``FAMILY-custom-CPUS-MB``), or None."""
    spec = GCP_MACHINE_TYPES.get(name)
    if spec is not None:
        return spec
    match = _CUSTOM_RE.match(name)
    if match is None:
        return None
    family_name = match.group("family") or ""
    if family_name not in _CUSTOM_FAMILIES:
        return None
    series = _CUSTOM_FAMILIES[family_name]
    cpus_text = match.group("cpus")
    memory_mb = int(match.group("mb"))
    if cpus_text in _SHARED_CUSTOM_CPUS:
        if family_name != "e2":
            return None
        return _spec(series, name, _SHARED_CUSTOM_CPUS[cpus_text], memory_mb, shared_core=True)
    cpus = int(cpus_text)
    if cpus < 1 or memory_mb < 1:
        return None
    return _spec(series, name, float(cpus), memory_mb)


def disk_type(machine_type: str) -> str:
    """The disk type of a node's boot disk and Ceph disk on this machine type.

    Raises ValueError for a machine type the catalogue does not know (config validation
    refuses those before any resource is built).
    """
    spec = lookup_machine_type(machine_type)
    if spec is None:
        raise ValueError(f"unknown machine type {machine_type!r}: no disk type for it")
    return spec.disk_type


def disk_type_problems(machine_type: str, disk_type_name: str) -> list[str]:
    """Why a disk of this type cannot be attached to (or boot) this machine type (empty when it
    can, or when the catalogue does not know the machine type: ``machine_type_problems`` says so)."""
    spec = lookup_machine_type(machine_type)
    if spec is None or not spec.disk_types:
        return []
    wanted = disk_type_name.strip().rstrip("/").rsplit("/", 1)[-1]
    if wanted in spec.disk_types:
        return []
    return [
        f"{machine_type} cannot use {wanted} disks: GCE gives the {spec.series.upper()} series only "
        f"{', '.join(spec.disk_types)}; use {spec.disk_type}"
    ]


def custom_shape_problems(name: str) -> list[str]:
    """Why GCE refuses a custom machine type's shape (empty for predefined or acceptable types)."""
    match = _CUSTOM_RE.match(name)
    if match is None or name in GCP_MACHINE_TYPES or match.group("cpus") in _SHARED_CUSTOM_CPUS:
        return []
    series = _CUSTOM_FAMILIES.get(match.group("family") or "")
    if series is None:
        return []
    cpus, memory_mb, extended = int(match.group("cpus")), int(match.group("mb")), bool(match.group("ext"))
    problems: list[str] = []
    if memory_mb % CUSTOM_MEMORY_STEP_MB:
        problems.append(
            f"{name}: custom memory comes in steps of {CUSTOM_MEMORY_STEP_MB} MB; {memory_mb} MB is not one "
            f"(e.g. {memory_mb // CUSTOM_MEMORY_STEP_MB * CUSTOM_MEMORY_STEP_MB or CUSTOM_MEMORY_STEP_MB} MB)"
        )
    shape = _CUSTOM_SHAPES.get(series)
    if shape is None or cpus < 1:
        return problems
    label = series.upper()
    if cpus not in shape.vcpus:
        problems.append(f"{name}: GCE's {label} custom types take {_counts(shape.vcpus)} vCPUs, not {cpus}")
        return problems
    per_vcpu = memory_mb / cpus
    if per_vcpu < shape.min_mb_per_vcpu:
        problems.append(
            f"{name}: {label} custom types need at least {_short_gb(shape.min_mb_per_vcpu)} per vCPU "
            f"({_short_gb(shape.min_mb_per_vcpu * cpus)} for {cpus} vCPUs)"
        )
    elif extended and not shape.extended_max_mb:
        problems.append(f"{name}: {label} custom types have no extended memory (-ext)")
    elif extended and memory_mb > shape.extended_max_mb:
        problems.append(f"{name}: {label} extended memory goes up to {_short_gb(shape.extended_max_mb)} per VM")
    elif not extended and per_vcpu > shape.max_mb_per_vcpu:
        hint = f", or add -ext for extended memory ({name}-ext)" if shape.extended_max_mb else ""
        problems.append(
            f"{name}: {label} custom types take at most {_short_gb(shape.max_mb_per_vcpu)} per vCPU "
            f"({_short_gb(shape.max_mb_per_vcpu * cpus)} for {cpus} vCPUs){hint}"
        )
    return problems


def _short_gb(memory_mb: float) -> str:
    """``922`` -> ``"0.9 GB"`` (three significant digits, as Google's tables write them)."""
    return f"{memory_mb / 1024:.3g} GB"


def _counts(values: tuple[int, ...]) -> str:
    """``1, 2, 4 ... 96`` for a long tuple of counts."""
    shown = [str(v) for v in values]
    return ", ".join(shown) if len(shown) <= 10 else f"{', '.join(shown[:6])} ... {shown[-1]}"


def disk_size_limit_problems(size_gb: float, disk_type_name: str) -> list[str]:
    """Why GCE refuses a disk of this size and type (empty when it takes it, or the type is unknown)."""
    limit = MAX_DISK_GB.get(disk_type_name)
    if limit is not None and size_gb > limit:
        return [f"{size_gb:g} GB is larger than GCE's largest {disk_type_name} disk, {limit} GB (64 TiB)"]
    return []


def machine_type_problems(name: str, minimums: Minimums = DEFAULT_MINIMUMS) -> list[str]:
    """Why a machine type misses the minimums or is a shape GCE refuses (empty when neither)."""
    spec = lookup_machine_type(name)
    if spec is None:
        return [
            f"unknown machine type {name!r}: use a predefined type of the families "
            f"{', '.join(sorted(_FAMILIES))} or FAMILY-custom-CPUS-MB "
            f"(for example n2-custom-4-16384)"
        ]
    problems: list[str] = custom_shape_problems(name)
    if spec.shared_core:
        problems.append(
            f"{name} is a shared-core machine type ({spec.vcpus:g} vCPU sustained); "
            f"a node needs at least {minimums.vcpus:g} dedicated vCPUs"
        )
    # (a shared-core type's vCPUs are reported above; its memory is checked all the same)
    problems += _shape_problems(name, spec, minimums, vcpus=not spec.shared_core)
    return problems


def _shape_problems(name: str, spec: MachineSpec, minimums: Minimums, vcpus: bool = True) -> list[str]:
    """Where a machine's vCPUs (unless ``vcpus`` is false) and memory miss the minimums (a GCE
    type's or a local VM's)."""
    problems = []
    if vcpus and spec.vcpus < minimums.vcpus:
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
        "KERNEL_LTS": " ".join(f"{major}.{minor}" for major, minor in KERNEL_LTS_LINES),
        "SUPPORTED_ARCHS": " ".join(ARCHITECTURES),
        "TOLERANCE_PERCENT": str(NODE_REPORTED_TOLERANCE_PERCENT),
        # One line per system: "ID VERSION_ID display name" (the name may hold spaces).
        "SUPPORTED_OS": "\n".join(f"{system.id} {system.version_id} {system.name}" for system in SUPPORTED_OS),
    }


# --- Local VMs (``provider: local``) ----------------------------------------------------
#: A local VM's shape, written as a machine type: ``local-CPUS-MB`` (e.g. ``local-2-4096``).
#: A GCE type the catalogue knows is taken by its shape too (``e2-standard-2``: 2 vCPU, 8 GB).
_LOCAL_RE = re.compile(r"^local-(?P<cpus>[0-9]+)-(?P<mb>[0-9]+)$")
#: The default shape of a local VM: the minimums themselves (three of them fit a 16 GB laptop).
LOCAL_DEFAULT_MACHINE_TYPE = f"local-{MIN_VCPUS}-{MIN_MEMORY_MB}"


def local_machine_spec(name: str) -> MachineSpec | None:
    """The shape of a local VM's machine type (``local-CPUS-MB``, or a GCE type), or None."""
    match = _LOCAL_RE.match(name)
    if match is None:
        spec = lookup_machine_type(name)
        return None if spec is None or spec.shared_core else spec
    return MachineSpec(name=name, vcpus=float(int(match.group("cpus"))), memory_mb=int(match.group("mb")),
                       arch="x86_64", series="local")


def local_machine_type_problems(name: str, minimums: Minimums = DEFAULT_MINIMUMS) -> list[str]:
    """Why a local VM of this machine type misses the minimums (empty when it meets them)."""
    spec = local_machine_spec(name)
    if spec is None:
        return [
            f"unknown machine type {name!r} for a local VM: use local-CPUS-MB (for example "
            f"{LOCAL_DEFAULT_MACHINE_TYPE}: {MIN_VCPUS} vCPU, {format_mb(MIN_MEMORY_MB)}) or a predefined GCE type "
            "(its vCPUs and memory)"
        ]
    return _shape_problems(name, spec, minimums)


def local_machine_type_warnings(name: str, minimums: Minimums = DEFAULT_MINIMUMS) -> list[str]:
    """Advisories for a local VM that meets the minimums but not the recommendation."""
    spec = local_machine_spec(name)
    if spec is None or spec.memory_mb < minimums.memory_mb or spec.memory_mb >= minimums.recommended_memory_mb:
        return []
    return [f"{name} has {format_mb(spec.memory_mb)} of memory; {format_mb(minimums.recommended_memory_mb)} is recommended"]
