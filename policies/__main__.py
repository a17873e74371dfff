"""kubeadm-cluster's CrossGuard policy pack.

Run by the Pulumi engine: ``pulumi preview --policy-pack policies`` from the repository root.
The engine starts ``python -u -m pulumi.policy <engine address> <this directory>`` (working
directory: this directory, stack settings in PULUMI_PROJECT / PULUMI_STACK / PULUMI_DRY_RUN /
PULUMI_CONFIG); ``PolicyPack(...)`` below serves the Analyzer gRPC service on 127.0.0.1 and
prints its port on stdout. ``tests/policy_client.py`` starts it the same way.

Hardware numbers come from ``components/hardware.py`` (the single truth, stdlib only); the
thresholds can only be raised through the pack's config, e.g. for a prod stack::

    pulumi preview --policy-pack policies --policy-pack-config prod-policy.json
    # prod-policy.json:
    # {"node-machine-type-minimums": {"minVcpus": 4, "minMemoryGb": 16},
    #  "node-boot-disk-minimum": {"minDiskGb": 100},
    #  "node-memory-recommended": {"recommendedMemoryGb": 32}}

What the engine sends, and how these policies deal with it:

* ``args.props`` are the resource's *inputs* with the engine's camelCase names
  (``machineType``, ``bootDisk.initializeParams.size``, ``bootDisk.initializeParams.type``,
  ``sourceRanges``). A ``gcp:compute/disk:Disk`` names no machine type, so the disk-type policy
  checks the boot disk of an instance (and every disk of a template); the program gives a
  node's Ceph disk the same type as its boot disk (``hardware.disk_type``).
* Unknown values (preview, computed from other resources' outputs) arrive as the
  UNKNOWN sentinels; pulumi-policy's proxy raises ``UnknownValueError`` when one is read
  and reports it as an *advisory* "can't run policy ... during preview". No policy here
  turns an unknown into a mandatory violation; the engine analyzes the resource again with
  known inputs at ``pulumi up``, before it is created.
* Secrets arrive wrapped (``{"4dabf18...": "1b47061...", "value": ...}``) but pulumi-policy
  1.21 unwraps them before ``Analyze`` calls a policy, so ``args.props`` cannot tell a
  secret from plain text. The kubeconfig policy therefore reads the raw request: this
  module wraps the servicer's ``Analyze`` to keep the request's wire properties for the
  duration of the call (``_raw_properties()``).
* The stack's config arrives with ConfigureStack (pulumi-policy drops it: ``_capture_stack_config``
  keeps it) and in the pack process's PULUMI_CONFIG. The firewall policies read
  ``kubeadm-cluster:allowAdminFromInternet`` from it: only a stack that says so may open the
  admin ports to the whole internet (``0.0.0.0/0``, or ranges that cover it together, in one
  rule or across several).
* ``AnalyzeStack`` (the stack policy firewalls-together-no-public-admin-ports) gets every
  resource of the stack once all steps ran, in preview and in up, with the resources' *outputs*
  (pulumi/pulumi pkg/resource/deploy/step_generator.go, ``AnalyzeResources``): a firewall's
  ``network`` is then its self link, or unknown in a first preview, and each resource comes
  with its property dependencies.
* The engine analyzes provider resources too (``pulumi:providers:kubernetes``, default
  providers included), with their inputs; each other resource's request also carries its
  provider's properties (``args.provider``).
"""

from __future__ import annotations

import ipaddress
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The repository root (the parent of policies/) holds the hardware truth.
_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from google.protobuf import json_format  # noqa: E402
from pulumi_policy import (  # noqa: E402
    EnforcementLevel,
    Policy,
    PolicyConfigSchema,
    PolicyPack,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy import policy as _policy_impl  # noqa: E402
from pulumi_policy.proxy import UnknownValueError  # noqa: E402

from components import hardware  # noqa: E402
from components.machines.localvm import VM_DISK_GB_ENV, VM_MACHINE_TYPE_ENV  # noqa: E402

PACK_NAME = "kubeadm-cluster"

INSTANCE = "gcp:compute/instance:Instance"
INSTANCE_TEMPLATE = "gcp:compute/instanceTemplate:InstanceTemplate"
FIREWALL = "gcp:compute/firewall:Firewall"
NETWORK = "gcp:compute/network:Network"
SERVICE = "kubernetes:core/v1:Service"
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
K8S_PROVIDER = "pulumi:providers:kubernetes"
NODE_TYPES = (INSTANCE, INSTANCE_TEMPLATE)
#: A ``provider: local`` VM is a local command whose environment names its shape
#: (components/machines/local.py: ``KC_VM_MACHINE_TYPE``, ``KC_VM_DISK_GB``).
LOCAL_COMMAND = "command:local:Command"

#: Ports that must never be open to the internet: SSH, the API server, the kubelet API.
ADMIN_PORTS = (22, 6443, 10250)
#: A Service named, namespaced or labelled with one of these is a web UI.
DASHBOARD_KEYWORDS = ("dashboard", "headlamp")
EXPOSED_SERVICE_TYPES = ("LoadBalancer", "NodePort")

SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"

_MB_PER_GB = 1024  # GCP's "GB" of memory are GiB; the hardware module counts MiB


# --- Raw request capture (secrets) -----------------------------------------------------

_RAW = threading.local()


def _capture_raw_requests() -> None:
    """Keep each Analyze request's wire properties while the policies run on it."""
    servicer = _policy_impl._PolicyAnalyzerServicer
    if getattr(servicer, "_kubeadm_raw_capture", False):
        return
    original = servicer.Analyze

    def analyze(self: Any, request: Any, context: Any) -> Any:
        _RAW.properties = json_format.MessageToDict(request.properties)
        try:
            return original(self, request, context)
        finally:
            _RAW.properties = None

    servicer.Analyze = analyze  # type: ignore[method-assign]
    servicer._kubeadm_raw_capture = True  # type: ignore[attr-defined]


#: The stack config of the last ConfigureStack request (``ns:key`` -> text).
_STACK_CONFIG: dict[str, str] = {}


def _capture_stack_config() -> None:
    """Keep the stack config the engine sends with ConfigureStack (pulumi-policy drops it)."""
    servicer = _policy_impl._PolicyAnalyzerServicer
    if getattr(servicer, "_kubeadm_stack_capture", False):
        return
    original = servicer.ConfigureStack

    def configure_stack(self: Any, request: Any, context: Any) -> Any:
        _STACK_CONFIG.clear()
        _STACK_CONFIG.update(dict(request.config))
        return original(self, request, context)

    servicer.ConfigureStack = configure_stack  # type: ignore[method-assign]
    servicer._kubeadm_stack_capture = True  # type: ignore[attr-defined]


def _raw_properties() -> dict[str, Any] | None:
    """The wire properties (secrets still wrapped) of the resource being analyzed."""
    return getattr(_RAW, "properties", None)


def _is_secret(wire_value: Any) -> bool:
    return isinstance(wire_value, Mapping) and wire_value.get(SECRET_SIG_KEY) == SECRET_SIG


# --- Config ----------------------------------------------------------------------------


def _number(args: ResourceValidationArgs, key: str, default: float) -> float:
    """A threshold from the policy's config; it can raise the hardware minimum, never lower it."""
    value = args.get_config().get(key)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return max(float(value), float(default))
    return float(default)


def _minimums(args: ResourceValidationArgs) -> hardware.Minimums:
    base = hardware.DEFAULT_MINIMUMS
    return hardware.Minimums(
        vcpus=_number(args, "minVcpus", base.vcpus),
        memory_mb=int(round(_number(args, "minMemoryGb", base.memory_mb / _MB_PER_GB) * _MB_PER_GB)),
        recommended_memory_mb=int(
            round(_number(args, "recommendedMemoryGb", base.recommended_memory_mb / _MB_PER_GB) * _MB_PER_GB)
        ),
        disk_gb=int(_number(args, "minDiskGb", base.disk_gb)),
    )


def _gb(memory_mb: int) -> float:
    return memory_mb / _MB_PER_GB


# --- Helpers over the (proxied) inputs -------------------------------------------------


def _get(value: Any, *path: str | int) -> Any:
    """``value[path0][path1]...`` or None; an unknown on the way raises (pulumi-policy's proxy)."""
    for key in path:
        if isinstance(key, int):
            if isinstance(value, Sequence) and not isinstance(value, str) and -len(value) <= key < len(value):
                value = value[key]
            else:
                return None
        elif isinstance(value, Mapping) and key in value:
            value = value[key]
        else:
            return None
    return value


def _items(value: Any) -> list[Any]:
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [value[i] for i in range(len(value))]
    return []


def machine_type_name(value: str) -> str:
    """``projects/p/zones/z/machineTypes/e2-standard-2`` (or a full URL) -> ``e2-standard-2``."""
    return value.strip().rstrip("/").rsplit("/", 1)[-1]


def _machine_type(args: ResourceValidationArgs, report: ReportViolation) -> str | None:
    value = args.props.get("machineType")
    if not isinstance(value, str) or not value.strip():
        report(f"{args.resource_type} {args.name} sets no machineType; a node needs one that meets the minimums", None)
        return None
    return machine_type_name(value)


# --- Hardware policies -----------------------------------------------------------------


def _local_vm_shape(args: ResourceValidationArgs) -> tuple[str, Any] | None:
    """A local VM step's (machine type, boot disk GB) from its environment; None for other steps."""
    if args.resource_type != LOCAL_COMMAND:
        return None
    environment = args.props.get("environment")
    if not isinstance(environment, Mapping) or VM_MACHINE_TYPE_ENV not in environment:
        return None
    return str(environment[VM_MACHINE_TYPE_ENV]), environment.get(VM_DISK_GB_ENV)


def _validate_machine_type(args: ResourceValidationArgs, report: ReportViolation) -> None:
    local_vm = _local_vm_shape(args)
    if local_vm is not None:
        for problem in hardware.local_machine_type_problems(local_vm[0], _minimums(args)):
            report(f"{args.name}: {problem}", None)
        return
    if args.resource_type not in NODE_TYPES:
        return
    name = _machine_type(args, report)
    if name is None:
        return
    for problem in hardware.machine_type_problems(name, _minimums(args)):
        report(f"{args.name}: {problem}", None)


def _validate_memory_recommendation(args: ResourceValidationArgs, report: ReportViolation) -> None:
    local_vm = _local_vm_shape(args)
    if local_vm is not None:
        for warning in hardware.local_machine_type_warnings(local_vm[0], _minimums(args)):
            report(f"{args.name}: {warning}", None)
        return
    if args.resource_type not in NODE_TYPES:
        return
    value = args.props.get("machineType")
    if not isinstance(value, str) or not value.strip():
        return  # the mandatory policy reports it
    for warning in hardware.machine_type_warnings(machine_type_name(value), _minimums(args)):
        report(f"{args.name}: {warning}", None)


def _boot_disk_size(args: ResourceValidationArgs) -> tuple[float | None, str, bool]:
    """(size in GB or None, where it was looked for, whether an existing disk is attached)."""
    if args.resource_type == INSTANCE:
        boot = args.props.get("bootDisk")
        where = "bootDisk.initializeParams.size"
        return _as_number(_get(boot, "initializeParams", "size")), where, bool(_get(boot, "source"))
    where = "disks[] (boot: true).diskSizeGb"
    disks = _items(args.props.get("disks"))
    boot_disks = [d for d in disks if _get(d, "boot") is True] or disks[:1]  # GCP boots the first disk
    if not boot_disks:
        return None, where, False
    disk = boot_disks[0]
    return _as_number(_get(disk, "diskSizeGb")), where, bool(_get(disk, "source"))


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _validate_boot_disk(args: ResourceValidationArgs, report: ReportViolation) -> None:
    local_vm = _local_vm_shape(args)
    if local_vm is not None:
        size = _as_number(local_vm[1])
        if size is None:
            report(f"{args.name}: no boot disk size ({VM_DISK_GB_ENV}); a node needs at least "
                   f"{_minimums(args).disk_gb} GB", None)
            return
        for problem in hardware.disk_problems(size, _minimums(args)):
            report(f"{args.name}: {problem} ({VM_DISK_GB_ENV})", None)
        return
    if args.resource_type not in NODE_TYPES:
        return
    size, where, existing = _boot_disk_size(args)
    if existing and size is None:
        return  # an existing disk is attached: its size is not in the inputs
    minimums = _minimums(args)
    if size is None:
        report(
            f"{args.name}: no boot disk size ({where}); GCP would use the image's size (10 GB for "
            f"Ubuntu), a node needs at least {minimums.disk_gb} GB",
            None,
        )
        return
    for problem in hardware.disk_problems(size, minimums):
        report(f"{args.name}: {problem} ({where})", None)


def _disk_types(args: ResourceValidationArgs) -> list[tuple[str, str]]:
    """(where, disk type) of each disk whose type the inputs set: an instance's boot disk, every
    disk of a template. An unset type is GCE's default for the series, which the series takes."""
    if args.resource_type == INSTANCE:
        value = _get(args.props.get("bootDisk"), "initializeParams", "type")
        return [("bootDisk.initializeParams.type", value)] if isinstance(value, str) and value.strip() else []
    found: list[tuple[str, str]] = []
    for index, disk in enumerate(_items(args.props.get("disks"))):
        value = _get(disk, "diskType")
        if isinstance(value, str) and value.strip():
            found.append((f"disks[{index}].diskType", value))
    return found


def _validate_disk_type(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type not in NODE_TYPES:
        return
    value = args.props.get("machineType")
    if not isinstance(value, str) or not value.strip():
        return  # the machine-type policy reports it
    name = machine_type_name(value)
    for where, disk_type in _disk_types(args):
        for problem in hardware.disk_type_problems(name, disk_type):
            report(f"{args.name}: {problem} ({where})", None)


# --- Firewall --------------------------------------------------------------------------


#: The stack policy that unites the firewall rules' source ranges (_validate_firewalls_together).
FIREWALLS_TOGETHER_POLICY = "firewalls-together-no-public-admin-ports"

#: The stack config key (the program's namespace) that lets admin access come from anywhere. The
#: program refuses such adminCidrs without it too (components/config.py).
ALLOW_WORLD_KEY = "kubeadm-cluster:allowAdminFromInternet"


_Net = ipaddress.IPv4Network | ipaddress.IPv6Network
#: Each IP family's whole address space: what "open to the internet" means for it.
_EVERYTHING: tuple[tuple[int, str], ...] = ((4, "0.0.0.0/0"), (6, "::/0"))


def _networks(ranges: Sequence[str]) -> list[tuple[str, _Net]]:
    """Each source range with its network; a range that is no network is left out (GCE refuses
    the rule, and both firewall policies read it the same way)."""
    parsed: list[tuple[str, _Net]] = []
    for text in ranges:
        try:
            parsed.append((text, ipaddress.ip_network(text.strip(), strict=False)))
        except ValueError:
            continue
    return parsed


def _covers(nets: Sequence[_Net], version: int) -> bool:
    """Whether ``nets`` together hold every address of the IP family ``version``."""
    family = [n for n in nets if n.version == version]
    everything = ipaddress.ip_network(dict(_EVERYTHING)[version])
    # One family only (filtered above), as collapse_addresses wants; its stub cannot see that.
    collapsed = list(ipaddress.collapse_addresses(family))  # type: ignore[arg-type]
    return bool(family) and collapsed == [everything]


def _world(ranges: Sequence[str]) -> list[str]:
    """The source ranges that admit the whole internet of an IP family: ``0.0.0.0/0``, or a set
    that covers it together (``0.0.0.0/1`` + ``128.0.0.0/1``); likewise for IPv6."""
    found: list[str] = []
    parsed = _networks(ranges)
    for version, everything in _EVERYTHING:
        family = [(text, net) for text, net in parsed if net.version == version]
        if not _covers([net for _, net in family], version):
            continue
        whole = [text for text, net in family if net.prefixlen == 0]
        found += whole or [f"{' + '.join(text for text, _ in family)} (together {everything})"]
    return found


def _world_allowed() -> bool:
    """Whether the stack says admin access may come from anywhere (``allowAdminFromInternet``):
    read from the stack config the engine hands the pack (ConfigureStack, or PULUMI_CONFIG)."""
    value = _STACK_CONFIG.get(ALLOW_WORLD_KEY)
    if value is None:
        import pulumi

        value = pulumi.runtime.get_config(ALLOW_WORLD_KEY)
    return str(value).strip().lower() == "true"


def _port_ranges(ports: Any) -> list[tuple[int, int]] | None:
    """A firewall rule's ports as ranges; None means every port."""
    items = _items(ports)
    if not items:
        return None
    ranges: list[tuple[int, int]] = []
    for item in items:
        text = str(item).strip()
        low, _, high = text.partition("-")
        try:
            ranges.append((int(low), int(high or low)))
        except ValueError:
            ranges.append((0, 65535))  # unparsable: assume the worst
    return ranges


def _forbidden_ports(config: Mapping[str, Any]) -> list[int]:
    """The admin ports a policy's config names (``forbiddenPorts``), by default ADMIN_PORTS."""
    return sorted({int(p) for p in (config.get("forbiddenPorts") or ADMIN_PORTS)})


def _is_active_ingress(props: Mapping[str, Any]) -> bool:
    """Whether a firewall rule admits traffic at all: an ingress rule (GCE's default direction)
    that is not disabled. Egress rules and disabled rules open nothing to the internet."""
    return str(props.get("direction") or "INGRESS").upper() == "INGRESS" and props.get("disabled") is not True


def _source_ranges(props: Mapping[str, Any]) -> tuple[list[str], bool]:
    """An ingress rule's source ranges, and whether they are GCE's default: a rule with no
    source ranges, tags or service accounts admits ``0.0.0.0/0``. A rule with only source tags or
    service accounts admits traffic from the network's own instances, never from the internet."""
    ranges = [str(r) for r in _items(props.get("sourceRanges"))]
    if not ranges and not _items(props.get("sourceTags")) and not _items(props.get("sourceServiceAccounts")):
        return ["0.0.0.0/0"], True
    return ranges, False


def _admin_ports_allowed(props: Mapping[str, Any], forbidden: Sequence[int]) -> set[int]:
    """The ``forbidden`` ports a rule's ``allows`` blocks let through over TCP (``tcp``, ``6`` or
    ``all``; no ports listed means every port). ``denies`` blocks are not read here: see
    _validate_firewalls_together for why ignoring them is the safe side."""
    open_ports: set[int] = set()
    for allow in _items(props.get("allows")):
        protocol = str(_get(allow, "protocol") or "").lower()
        if protocol not in ("tcp", "6", "all"):
            continue
        port_ranges = _port_ranges(_get(allow, "ports"))
        for port in forbidden:
            if port_ranges is None or any(low <= port <= high for low, high in port_ranges):
                open_ports.add(port)
    return open_ports


def _validate_firewall(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != FIREWALL:
        return
    props = args.props
    if not _is_active_ingress(props):
        return
    ranges, defaulted = _source_ranges(props)
    world = ["0.0.0.0/0 (no source given)"] if defaulted else _world(ranges)
    if not world or _world_allowed():
        return
    open_ports = _admin_ports_allowed(props, _forbidden_ports(args.get_config()))
    if open_ports:
        report(
            f"{args.name} lets {', '.join(world)} reach TCP {', '.join(str(p) for p in sorted(open_ports))}; "
            f"restrict sourceRanges to the admin CIDRs (kubeadm-cluster:adminCidrs), or set {ALLOW_WORLD_KEY}: "
            f"true in the stack if admin access from anywhere is intended",
            None,
        )


# --- Firewalls together (a stack policy) -------------------------------------------------

@dataclass(frozen=True)
class _AdminReach:
    """One active ingress firewall rule that lets some source ranges reach some admin ports."""

    name: str
    ranges: tuple[str, ...]
    nets: tuple[_Net, ...]
    ports: frozenset[int]

    def covers(self, version: int) -> bool:
        return _covers(self.nets, version)


def _addresses(rule: _AdminReach, version: int) -> int:
    """How many addresses of the family ``version`` a rule admits."""
    family = [n for n in rule.nets if n.version == version]
    return sum(n.num_addresses for n in ipaddress.collapse_addresses(family))  # type: ignore[arg-type]


def _irreducible(rules: Sequence[_AdminReach], version: int) -> tuple[_AdminReach, ...]:
    """``rules`` (which cover the family together) less every rule the others cover without,
    narrowest first: the node-to-node rule's private ranges are not what opens the internet."""
    kept = list(rules)
    for rule in sorted(rules, key=lambda r: (_addresses(r, version), r.name)):
        rest = [r for r in kept if r is not rule]
        if _covers([n for r in rest for n in r.nets], version):
            kept = rest
    return tuple(sorted(kept, key=lambda r: r.name))


def _admin_reach(resource: PolicyResource, forbidden: Sequence[int]) -> _AdminReach | None:
    """What a firewall resource opens on the admin ports (None: nothing); the same reading of a
    rule as the per-resource policy's (_is_active_ingress, _source_ranges, _admin_ports_allowed).
    Raises UnknownValueError when a value it needs is not known yet (preview)."""
    props = resource.props
    if not _is_active_ingress(props):
        return None
    ranges, _ = _source_ranges(props)
    nets = [net for _, net in _networks(ranges)]
    if not nets:
        return None
    ports = _admin_ports_allowed(props, forbidden)
    if not ports:
        return None
    return _AdminReach(resource.name, tuple(ranges), tuple(nets), frozenset(ports))


def _network_key(resource: PolicyResource) -> str:
    """The VPC network a firewall rule belongs to, by name. The inputs give a name, an id
    (``projects/P/global/networks/N``) or a self link (the state's output): the last segment is
    the name. Networks of the same name in two projects are taken as one (the safe side). In the
    first preview the network's id is unknown: the rule is then placed by the Network resource its
    ``network`` input depends on (the engine sends property dependencies with AnalyzeStack)."""
    try:
        value = resource.props.get("network")
    except UnknownValueError:
        sources = resource.property_dependencies.get("network") or []
        if not sources:
            raise
        names: list[str] = []
        for source in sources:
            try:
                name = source.props.get("name") if source.resource_type == NETWORK else None
            except UnknownValueError:
                name = None
            names.append(str(name) if isinstance(name, str) and name.strip() else source.urn)
        return " + ".join(sorted(names))
    text = str(value or "").strip().rstrip("/")
    return text.rsplit("/", 1)[-1] if text else "default"  # GCE's default network when none is given


def _validate_firewalls_together(args: StackValidationArgs, report: ReportViolation) -> None:
    """Admin ports open to the whole internet through several firewall rules together.

    The per-resource policy (firewall-no-public-admin-ports) sees one rule at a time: rule A with
    ``0.0.0.0/1`` and rule B with ``128.0.0.0/1``, both allowing TCP 22, pass it although together
    they admit every IPv4 address. Here the source ranges of every active ingress rule are united
    per VPC network, admin port and IP family; a union that holds the whole family is a violation
    naming the rules and the port (only the rules it needs: a rule whose ranges the others cover
    anyway, such as the node-to-node rule's private ranges, is not named). Rules that open a port
    to the internet alone are left out of the union: the per-resource policy reports each of them,
    and a violation here would repeat it.

    What is ignored, always on the side of reporting:

    * ``denies`` blocks and priorities: in GCE the matching rule of the highest priority wins and a
      deny beats an allow of the same priority (cloud.google.com/vpc/docs/firewalls, "Priority"),
      so a deny could close part of what the allows open. The allows alone must not open the
      world: a deny is one edit away from going, and this policy does not weigh priorities.
    * ``targetTags`` / ``targetServiceAccounts``: rules aimed at different instances are united as
      if one instance carried every tag (a node may carry several, and tags change without the
      firewall changing).
    * ``destinationRanges`` on ingress rules, and firewall *policies* (the program makes none).

    Unknown values (preview): a rule the policy cannot read yet is left out; if the known rules
    already cover the internet that is a violation (unknown rules could only add to it), otherwise
    the unknown is raised, which pulumi-policy reports as an advisory "can't run during preview".
    """
    if _world_allowed():
        return
    forbidden = _forbidden_ports(args.get_config())
    networks: dict[str, list[_AdminReach]] = {}
    unknown: list[UnknownValueError] = []
    for resource in args.resources:
        if resource.resource_type != FIREWALL:
            continue
        try:
            reach = _admin_reach(resource, forbidden)
            if reach is not None:
                networks.setdefault(_network_key(resource), []).append(reach)
        except UnknownValueError as error:
            unknown.append(error)
    reported = False
    for network, reaches in sorted(networks.items()):
        for version, everything in _EVERYTHING:
            # The rules that cover the family together, for each admin port; one violation per
            # set of rules (halves that open 22 and 6443 alike are one finding, not two).
            ports_by_rules: dict[tuple[_AdminReach, ...], list[int]] = {}
            for port in forbidden:
                rules = tuple(
                    r for r in reaches if port in r.ports and not r.covers(version)
                    and any(n.version == version for n in r.nets)
                )
                if len(rules) > 1 and _covers([n for r in rules for n in r.nets], version):
                    ports_by_rules.setdefault(_irreducible(rules, version), []).append(port)
            for rules, ports in ports_by_rules.items():
                named = "; ".join(f"{r.name} ({', '.join(r.ranges)})" for r in rules)
                report(
                    f"firewall rules on network {network} together let {everything} reach TCP "
                    f"{', '.join(str(p) for p in ports)}, which none of them does alone: {named}; restrict their "
                    f"sourceRanges to the admin CIDRs (kubeadm-cluster:adminCidrs), or set {ALLOW_WORLD_KEY}: "
                    f"true in the stack if admin access from anywhere is intended",
                    None,
                )
                reported = True
    if unknown and not reported:
        raise unknown[0]


# --- Dashboard Services ----------------------------------------------------------------


def _keywords(args: ResourceValidationArgs) -> list[str]:
    configured = args.get_config().get("keywords")
    return [str(k).lower() for k in (configured or DASHBOARD_KEYWORDS)]


def _dashboard_hit(texts: list[Any], keywords: list[str]) -> str | None:
    for text in texts:
        if isinstance(text, str) and any(k in text.lower() for k in keywords):
            return text
    return None


def _validate_dashboard_service(args: ResourceValidationArgs, report: ReportViolation) -> None:
    keywords = _keywords(args)
    if args.resource_type == SERVICE:
        props = args.props
        service_type = _get(props, "spec", "type")
        if service_type not in EXPOSED_SERVICE_TYPES:
            return
        hit = _dashboard_hit(
            [
                _get(props, "metadata", "namespace"),
                _get(props, "metadata", "name"),
                _get(props, "metadata", "labels", "app.kubernetes.io/name"),
                args.name,
            ],
            keywords,
        )
        if hit is not None:
            report(
                f"Service {args.name} ({hit!r}) is of type {service_type}: a dashboard stays ClusterIP "
                f"and is reached through kubectl proxy or port-forward",
                None,
            )
    elif args.resource_type == HELM_RELEASE:
        props = args.props
        hit = _dashboard_hit(
            [props.get("chart"), props.get("name"), props.get("namespace"), args.name], keywords
        )
        if hit is None:
            return
        values = props.get("values")
        for path in (("service", "type"), ("kong", "proxy", "type"), ("app", "service", "type")):
            service_type = _get(values, *path)
            if service_type in EXPOSED_SERVICE_TYPES:
                report(
                    f"Helm release {args.name} ({hit!r}) sets values.{'.'.join(path)}={service_type}: "
                    f"a dashboard stays ClusterIP",
                    None,
                )


# --- Kubernetes provider kubeconfig ----------------------------------------------------


def _validate_kubeconfig_secret(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != K8S_PROVIDER:
        return
    raw = _raw_properties()
    if raw is None:
        report(
            f"provider {args.name}: cannot see the wire properties to check the kubeconfig's "
            f"secrecy (pulumi-policy internals changed?)",
            None,
        )
        return
    if "kubeconfig" not in raw:
        return  # no kubeconfig input (ambient config): nothing stored in the state
    wire = raw["kubeconfig"]
    if _is_secret(wire):
        return
    if isinstance(wire, str) and wire in _UNKNOWNS:
        report(
            f"provider {args.name}: the kubeconfig is computed and not marked secret; wrap it in "
            f"pulumi.Output.secret(...) so it is encrypted in the state",
            None,
        )
        return
    if isinstance(wire, str) and "\n" not in wire and "{" not in wire:
        return  # a path to a kubeconfig file, not its contents
    report(
        f"provider {args.name}: the kubeconfig (cluster-admin credentials) is plain text and would be "
        f"stored unencrypted in the state; pass pulumi.Output.secret(kubeconfig) "
        f"(additional_secret_outputs does not cover the stored inputs)",
        None,
    )


_UNKNOWNS = frozenset(
    {
        "1c4a061d-8072-4f0a-a4cb-0ff528b18fe7",
        "3eeb2bf0-c639-47a8-9e75-3b44932eb421",
        "04da6b54-80e4-46f7-96ec-b56ff0331ba9",
        "6a19a0b0-7e62-4c92-b797-7f8e31da9cc2",
        "030794c1-ac77-496b-92df-f27374a8bd58",
        "e48ece36-62e2-4504-bad9-02848725956a",
        "dd056dcd-154b-4c76-9bd3-c8f88648b5ff",
    }
)


# --- The pack --------------------------------------------------------------------------


def _number_schema(description: str, minimum: float) -> dict[str, Any]:
    return {"type": "number", "minimum": minimum, "default": minimum, "description": description}


def _policy(
    name: str,
    description: str,
    validate: Callable[[ResourceValidationArgs, ReportViolation], None],
    level: EnforcementLevel,
    config: dict[str, dict[str, Any]] | None = None,
) -> ResourceValidationPolicy:
    return ResourceValidationPolicy(
        name=name,
        description=description,
        validate=validate,
        enforcement_level=level,
        config_schema=PolicyConfigSchema(properties=config) if config else None,
    )


_MIN = hardware.DEFAULT_MINIMUMS

#: The admin ports of both firewall policies (each policy has its own config, as CrossGuard wants).
_FORBIDDEN_PORTS_SCHEMA: dict[str, dict[str, Any]] = {
    "forbiddenPorts": {
        "type": "array",
        "items": {"type": "integer", "minimum": 1, "maximum": 65535},
        "default": list(ADMIN_PORTS),
        "description": "TCP ports never open to 0.0.0.0/0 or ::/0",
    }
}

POLICIES: list[Policy] = [
    _policy(
        "node-machine-type-minimums",
        f"Nodes need at least {_MIN.vcpus:g} dedicated vCPUs and {_gb(_MIN.memory_mb):g} GB of memory "
        f"(no shared-core machine types)",
        _validate_machine_type,
        EnforcementLevel.MANDATORY,
        {
            "minVcpus": _number_schema("Minimum vCPUs per node (can only be raised)", _MIN.vcpus),
            "minMemoryGb": _number_schema("Minimum memory per node in GB (can only be raised)", _gb(_MIN.memory_mb)),
        },
    ),
    _policy(
        "node-boot-disk-minimum",
        f"Nodes need a boot disk of at least {_MIN.disk_gb} GB",
        _validate_boot_disk,
        EnforcementLevel.MANDATORY,
        {"minDiskGb": _number_schema("Minimum boot disk per node in GB (can only be raised)", _MIN.disk_gb)},
    ),
    _policy(
        "node-disk-type-supported",
        "Node disks must be of a type the machine series takes (N4, C4 and C4A: Hyperdisk only)",
        _validate_disk_type,
        EnforcementLevel.MANDATORY,
    ),
    _policy(
        "node-memory-recommended",
        f"Nodes should have at least {_gb(_MIN.recommended_memory_mb):g} GB of memory",
        _validate_memory_recommendation,
        EnforcementLevel.ADVISORY,
        {
            "recommendedMemoryGb": _number_schema(
                "Recommended memory per node in GB (can only be raised)", _gb(_MIN.recommended_memory_mb)
            )
        },
    ),
    _policy(
        "firewall-no-public-admin-ports",
        "Firewall rules must not open SSH (22), the API server (6443) or the kubelet (10250) to the internet "
        "(one range or several that cover it together), unless the stack sets allowAdminFromInternet",
        _validate_firewall,
        EnforcementLevel.MANDATORY,
        _FORBIDDEN_PORTS_SCHEMA,
    ),
    StackValidationPolicy(
        name=FIREWALLS_TOGETHER_POLICY,
        description="Firewall rules of one network must not open SSH (22), the API server (6443) or the kubelet "
        "(10250) to the internet together (rule A 0.0.0.0/1, rule B 128.0.0.0/1), unless the stack sets "
        "allowAdminFromInternet",
        validate=_validate_firewalls_together,
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=PolicyConfigSchema(properties=_FORBIDDEN_PORTS_SCHEMA),
    ),
    _policy(
        "dashboard-not-exposed",
        "A dashboard (Kubernetes Dashboard, Headlamp) must not be published through a LoadBalancer or NodePort Service",
        _validate_dashboard_service,
        EnforcementLevel.MANDATORY,
        {
            "keywords": {
                "type": "array",
                "items": {"type": "string"},
                "default": list(DASHBOARD_KEYWORDS),
                "description": "Name/namespace/app.kubernetes.io/name fragments that mark a dashboard",
            }
        },
    ),
    _policy(
        "kubeconfig-is-secret",
        "The Kubernetes provider's kubeconfig must be a secret",
        _validate_kubeconfig_secret,
        EnforcementLevel.MANDATORY,
    ),
]


def main() -> None:
    _capture_raw_requests()
    _capture_stack_config()
    PolicyPack(name=PACK_NAME, policies=list(POLICIES), enforcement_level=EnforcementLevel.MANDATORY)


if __name__ == "__main__":
    main()
