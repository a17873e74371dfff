"""Run the real program under Pulumi's mock engine and record everything it registers.

Used by the tests and by ``python -m tools.plan_check``: no cloud, no Pulumi CLI. The
recording monitor sees what the real engine would: each resource's type, name, parent,
dependencies, inputs (camelCase wire names) and which inputs are secret. It also does what
the engine does and the stock mock monitor does not: outputs named in
``additionalSecretOutputs`` come back as secrets, so secrecy can be asserted end to end.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import runpy
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime.proto import resource_pb2
from pulumi.runtime.settings import set_root_resource
from pulumi.runtime.stack import wait_for_rpcs
from pulumi.runtime.sync_await import _ensure_event_loop, _sync_await

ROOT = Path(__file__).resolve().parent.parent
PROGRAM = ROOT / "__main__.py"
PROJECT = "kubeadm-cluster"
SECRET_SIG = rpc._special_sig_key  # "4dabf18193072939515e22adb298388d"
SECRET_VALUE = rpc._special_secret_sig


@dataclass
class Registered:
    """One resource the program registered."""

    urn: str
    type: str
    name: str
    custom: bool
    parent: str
    provider: str
    dependencies: list[str]
    property_dependencies: dict[str, list[str]]
    inputs: dict[str, Any]  # plain values, secrets unwrapped
    secret_inputs: set[str]  # dotted paths of inputs that arrived as secrets
    additional_secret_outputs: list[str]
    outputs: dict[str, Any]  # what the mocks answered
    raw_inputs: dict[str, Any] = field(default_factory=dict)  # with secret wrappers kept
    #: ``ignoreChanges``: inputs whose new value the engine ignores once the resource exists.
    ignore_changes: list[str] = field(default_factory=list)

    def input(self, path: str, default: Any = None) -> Any:
        """An input by dotted path (``bootDisk.initializeParams.size``, ``allows.0.ports``)."""
        value: Any = self.inputs
        for part in path.split("."):
            if isinstance(value, list) and part.isdigit() and int(part) < len(value):
                value = value[int(part)]
            elif isinstance(value, dict) and part in value:
                value = value[part]
            else:
                return default
        return value

    get = input

    @property
    def k8s_name(self) -> str:
        """``metadata.name`` of a Kubernetes object ("" for other resources)."""
        return str(self.input("metadata.name", ""))


@dataclass
class Plan:
    """What one program run under mocks did."""

    resources: list[Registered]
    outputs: dict[str, Any]
    secret_outputs: set[str]
    warnings: list[str]
    error: str | None = None

    def of_type(self, type_: str) -> list[Registered]:
        return [r for r in self.resources if r.type == type_]

    def named(self, name: str) -> Registered:
        matches = [r for r in self.resources if r.name == name]
        if len(matches) != 1:
            raise KeyError(f"expected one resource named {name!r}, found {len(matches)}: {self.names()}")
        return matches[0]

    def names(self) -> list[str]:
        return sorted(r.name for r in self.resources)

    def by_urn(self) -> dict[str, Registered]:
        return {r.urn: r for r in self.resources}

    def ancestors_depend(self, resource: Registered) -> set[str]:
        """URNs this resource waits for: its dependencies, transitively."""
        index = self.by_urn()
        seen: set[str] = set()
        todo = list(resource.dependencies) + [u for deps in resource.property_dependencies.values() for u in deps]
        while todo:
            urn = todo.pop()
            if urn in seen:
                continue
            seen.add(urn)
            found = index.get(urn)
            if found is not None:
                todo += found.dependencies + [u for deps in found.property_dependencies.values() for u in deps]
        return seen


def fake_ip(name: str, prefix: str = "10.240.0") -> str:
    return f"{prefix}.{int(hashlib.sha256(name.encode()).hexdigest(), 16) % 200 + 20}"


FAKE_CA_HASH = "sha256:" + "ab" * 32


def fake_token(name: str) -> str:
    digest = hashlib.sha256(name.encode()).hexdigest()
    return f"{digest[:6]}.{digest[6:22]}"


FAKE_ADMIN_CONF = """apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority-data: Q0EK
    server: https://10.240.0.2:6443
  name: kubernetes
contexts:
- context: {cluster: kubernetes, user: kubernetes-admin}
  name: kubernetes-admin@kubernetes
current-context: kubernetes-admin@kubernetes
users:
- name: kubernetes-admin
  user: {client-certificate-data: Q0VSVAo=, client-key-data: S0VZCg==}
"""


class ClusterMocks(pulumi.runtime.Mocks):
    """Plausible provider answers: addresses for VMs, tokens and a kubeconfig for commands."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        state = dict(args.inputs)
        typ, name = args.typ, args.name
        if typ == "gcp:compute/instance:Instance":
            nics = [dict(n) for n in state.get("networkInterfaces", [])]
            for nic in nics:
                nic.setdefault("networkIp", fake_ip(name))
            state["networkInterfaces"] = nics
            # GCE's server-assigned id of the VM (a recreated VM has another one).
            state.setdefault("instanceId", str(int(hashlib.sha256(name.encode()).hexdigest()[:15], 16)))
        elif typ == "gcp:compute/address:Address":
            external = state.get("addressType") == "EXTERNAL"
            state.setdefault("address", fake_ip(name, "203.0.113") if external else fake_ip(name))
        elif typ == "gcp:serviceaccount/account:Account":
            state["email"] = f"{state.get('accountId', name)}@project.iam.gserviceaccount.com"
        elif typ == "tls:index/privateKey:PrivateKey":
            state["privateKeyOpenssh"] = "-----BEGIN OPENSSH PRIVATE KEY-----\nFAKE\n-----END OPENSSH PRIVATE KEY-----\n"
            state["publicKeyOpenssh"] = "ssh-ed25519 AAAAC3NzaFAKE"
        elif typ == "random:index/randomBytes:RandomBytes":
            # Deterministic stand-in for the provider's random bytes (hex and base64 of them).
            raw = hashlib.sha256(name.encode()).digest()[: int(state.get("length", 32))]
            state["hex"] = raw.hex()
            state["base64"] = base64.b64encode(raw).decode()
        elif typ == "command:remote:Command":
            # A bundle names the scripts it sources from the node's copy (components.bootstrap.scripts).
            stdin = str(state.get("stdin", ""))
            if "/mint-token.sh" in stdin:
                state["stdout"] = json.dumps({"token": fake_token(name), "caCertHash": FAKE_CA_HASH})
            elif "/read-kubeconfig.sh" in stdin:
                state["stdout"] = FAKE_ADMIN_CONF
            else:
                state["stdout"] = ""
            state["stderr"] = ""
        return f"{name}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None


def _is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SECRET_SIG) == SECRET_VALUE


def archive_hash(path: Path) -> str:
    """The content hash of a file or directory archive (the engine hashes an archive's files to
    tell whether it changed): sha256 over each file's relative name and bytes."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        digest.update(str(file.relative_to(path) if path.is_dir() else file.name).encode() + b"\0")
        digest.update(file.read_bytes() + b"\0")
    return digest.hexdigest()


def _file(value: pulumi.FileArchive | pulumi.FileAsset) -> dict[str, str]:
    """What the state keeps of a file archive or asset: its path and content hash, not its text
    (a CopyToRemote's source); the hash is what a changed file changes."""
    local = Path(str(value.path))
    return {"path": str(value.path), "hash": archive_hash(local) if local.exists() else ""}


def _wire(value: Any) -> Any:
    """``value`` with archives and assets in the form the engine's events and state carry them
    (the archive or asset signature, path and hash), secret wrappers kept."""
    if isinstance(value, pulumi.FileArchive):
        return {SECRET_SIG: rpc._special_archive_sig, **_file(value)}
    if isinstance(value, pulumi.FileAsset):
        return {SECRET_SIG: rpc._special_asset_sig, **_file(value)}
    if isinstance(value, dict):
        return {k: _wire(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_wire(v) for v in value]
    return value


def _unwrap(value: Any, path: str, secrets: set[str]) -> Any:
    if isinstance(value, (pulumi.FileArchive, pulumi.FileAsset)):
        return _file(value)
    if _is_secret(value):
        secrets.add(path)
        return _unwrap(value.get("value"), path, secrets)
    if isinstance(value, dict):
        return {k: _unwrap(v, f"{path}.{k}" if path else k, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap(v, f"{path}.{i}", secrets) for i, v in enumerate(value)]
    return value


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """The stock mock monitor plus a record of every registration, and the engine's secrecy."""

    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.registered: list[Registered] = []

    def RegisterResource(self, request: Any) -> Any:
        if request.type == "pulumi:pulumi:Stack":
            return super().RegisterResource(request)
        _ensure_event_loop()
        raw = rpc.deserialize_properties(request.object, keep_unknowns=True)
        secrets: set[str] = set()
        inputs = _unwrap(raw, "", secrets)
        urn = self.make_urn(request.parent, request.type, request.name)
        args = pulumi.runtime.MockResourceArgs(
            typ=request.type,
            name=request.name,
            inputs=inputs,
            provider=request.provider,
            resource_id=request.importId,
            custom=request.custom or False,
        )
        id_, state = self.mocks.new_resource(args)
        state = dict(state)
        # What the engine does with additionalSecretOutputs (and with inputs that were secret).
        for key in list(request.additionalSecretOutputs) + [s for s in secrets if "." not in s]:
            if key in state and not _is_secret(state[key]):
                state[key] = {SECRET_SIG: SECRET_VALUE, "value": state[key]}
        obj_proto = _sync_await(rpc.serialize_properties(state, {}))
        self.resources[urn] = pulumi_mocks.MockMonitor.ResourceRegistration(urn, id_ or "", state)
        self.registered.append(
            Registered(
                urn=urn,
                type=request.type,
                name=request.name,
                custom=bool(request.custom),
                parent=request.parent,
                provider=request.provider,
                dependencies=list(request.dependencies),
                property_dependencies={k: list(v.urns) for k, v in request.propertyDependencies.items()},
                inputs=inputs,
                secret_inputs=secrets,
                additional_secret_outputs=list(request.additionalSecretOutputs),
                outputs=_unwrap(state, "", set()),
                raw_inputs=_wire(raw),
                ignore_changes=list(request.ignoreChanges),
            )
        )
        return resource_pb2.RegisterResourceResponse(urn=urn, id=id_ or "", object=obj_proto)


class _WarningCollector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def stack_file(stack: str) -> Path:
    return ROOT / f"Pulumi.{stack}.yaml"


class InputFileError(ValueError):
    """A stack file or policy config that cannot be read: the message names the file."""


def _yaml_error(path: Path, error: yaml.YAMLError) -> InputFileError:
    """``path`` is not valid YAML: where (1-based line and column, as editors count) and why."""
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    return InputFileError(f"{path}{where}: not valid YAML: {problem}")


def read_input_file(path: Path) -> str:
    """The UTF-8 text of ``path``, or an :class:`InputFileError` naming it."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as error:
        raise InputFileError(f"{path}: cannot be read: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise InputFileError(f"{path}: not UTF-8 text") from None


def config_from_stack_file(path: Path) -> dict[str, Any]:
    """The ``config:`` block of a ``Pulumi.<stack>.yaml``, as plain values, or an
    :class:`InputFileError` naming the file (and the line) when it is not a stack file's YAML."""
    text = read_input_file(path)
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise _yaml_error(path, error) from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise InputFileError(f"{path}: not a stack file: expected a mapping with a config: block, found {type(document).__name__}")
    config = document.get("config") or {}
    if not isinstance(config, dict):
        raise InputFileError(f"{path}: config: must be a mapping of keys to values, found {type(config).__name__}")
    return dict(config)


def engine_config(values: Mapping[str, Any]) -> dict[str, str]:
    """What the CLI hands the program: ``ns:key`` -> text (objects and lists as JSON)."""
    result: dict[str, str] = {}
    for key, value in values.items():
        if ":" not in key:
            key = f"{PROJECT}:{key}"
        if isinstance(value, (dict, list)):
            result[key] = json.dumps(value)
        elif isinstance(value, bool):
            result[key] = "true" if value else "false"
        elif value is None:
            # A YAML null at the top level (``key: ~`` or nothing after the colon) reaches the
            # program as an empty text, not as "None" (pulumi/pulumi#19483).
            result[key] = ""
        else:
            result[key] = str(value)
    return result


#: The program's clock under the mocks (a fixed instant: runs are reproducible).
MOCK_NOW = datetime(2026, 11, 2, 12, 0, tzinfo=timezone.utc)


def run_program(
    config: Mapping[str, Any],
    *,
    stack: str = "dev",
    preview: bool = False,
    secret_keys: list[str] | None = None,
    now: datetime | None = None,
) -> Plan:
    """Run ``__main__.py`` for a stack whose config is ``config`` (keys with or without namespace).

    ``now`` is the clock the program reads (the kubeconfig refresh window): :data:`MOCK_NOW` unless
    given, so two runs compared by a test never straddle a window by accident."""
    with program_clock(now or MOCK_NOW):
        return _run_program(config, stack=stack, preview=preview, secret_keys=secret_keys)


@contextmanager
def program_clock(now: datetime | None) -> Iterator[None]:
    """The program reads ``now`` as its clock (``maintenance.utcnow``) inside the block; None:
    the real clock, untouched."""
    from components.bootstrap import maintenance

    real_clock = maintenance.utcnow
    if now is not None:
        maintenance.utcnow = lambda: now
    try:
        yield
    finally:
        maintenance.utcnow = real_clock


def _run_program(
    config: Mapping[str, Any],
    *,
    stack: str,
    preview: bool,
    secret_keys: list[str] | None,
) -> Plan:
    mocks = ClusterMocks()
    monitor = RecordingMonitor(mocks)
    logger = logging.getLogger(f"kubeadm-cluster.mock.{stack}")
    collector = _WarningCollector()
    logger.handlers = [collector]
    logger.propagate = False
    pulumi.runtime.set_all_config(engine_config(config), secret_keys or [])
    set_root_resource(None)  # type: ignore[arg-type]
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=preview, logger=logger, monitor=monitor)
    error: str | None = None
    try:
        runpy.run_path(str(PROGRAM), run_name="__main__")
        _sync_await(wait_for_rpcs())
    except pulumi.RunError as err:
        error = str(err)
    root = pulumi.runtime.settings.get_root_resource()
    outputs: dict[str, Any] = {}
    secret_outputs: set[str] = set()
    if error is None and root is not None:
        for name, value in getattr(root, "outputs", {}).items():
            output = pulumi.Output.from_input(value)
            outputs[name] = _sync_await(output.future())
            if _sync_await(output.is_secret()):
                secret_outputs.add(name)
    return Plan(
        resources=list(monitor.registered),
        outputs=outputs,
        secret_outputs=secret_outputs,
        warnings=collector.messages,
        error=error,
    )


def iter_stack_files() -> Iterator[tuple[str, Path]]:
    """Every committed stack: ``Pulumi.<stack>.yaml`` beside the program."""
    for path in sorted(ROOT.glob("Pulumi.*.yaml")):
        yield path.name[len("Pulumi.") : -len(".yaml")], path
