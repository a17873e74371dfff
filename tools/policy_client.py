"""Talk to the CrossGuard policy pack (``policies/``) through its real Analyzer gRPC protocol.

The one function other code needs (the offline plan check)::

    from tools.policy_client import analyze_resources

    violations = analyze_resources(resources, config=None, dry_run=True)
    blocking = [v for v in violations if v.mandatory]

``analyze_resources(resources: list[dict], config: dict | None = None, *, dry_run: bool = True)
-> list[Violation]`` starts the pack the way the Pulumi engine does, configures it the way
the engine does (each policy's schema defaults, then ``config``), sends every resource
through ``Analyze`` (the per-resource check the engine runs before it creates a resource)
and all of them through ``AnalyzeStack``, stops the pack and returns every diagnostic.

Each resource is a dict::

    {"type": "gcp:compute/instance:Instance",            # the resource type token
     "name": "cp-0",                                      # the resource name
     "urn": "urn:pulumi:dev::kubeadm-cluster::...::cp-0", # its URN
     "props": {...},                                      # its inputs, camelCase wire names
     # optional:
     "provider": "<provider URN>" or "<provider URN>::<id>",  # a provider in the same list
     "parent": "<URN>", "dependencies": ["<URN>", ...],
     "additionalSecretOutputs": ["..."], "protect": False}

``props`` are in the engine's wire encoding, as ``tools.mock_engine.Registered.raw_inputs``
holds them: a secret is ``{"4dabf18193072939515e22adb298388d":
"1b47061264138c4ac30d75fd1eb44270", "value": ...}`` (``secret(value)`` builds one), an
unknown preview value is one of the UNKNOWN sentinel strings (``UNKNOWN`` is the string
one). ``pulumi_policy.Secret`` values are encoded as secrets too. Numbers travel as
``google.protobuf.Struct`` numbers (doubles), exactly as the engine sends them.

``config`` maps a policy name to its settings, as in a ``--policy-pack-config`` file:
``{"node-machine-type-minimums": {"minVcpus": 4}, "all": "advisory"}``; it is validated
against the pack's schemas like the engine does (``ValueError`` when invalid).

``Violation`` fields: ``policy``, ``level`` ("mandatory" / "advisory" / ...), ``message``,
``urn`` (the analyzed resource's, as the engine attributes a resource policy's report),
``resource`` and ``resource_type`` (of the request that produced it; "" for AnalyzeStack),
``mandatory`` (a property).

For finer control (one pack for many calls, as the tests do) use ``PolicyPackProcess``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime import rpc
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc, plugin_pb2

ROOT = Path(__file__).resolve().parent.parent
POLICIES = ROOT / "policies"
PROJECT = "kubeadm-cluster"

SECRET_SIG_KEY = rpc._special_sig_key  # "4dabf18193072939515e22adb298388d"
SECRET_SIG = rpc._special_secret_sig  # "1b47061264138c4ac30d75fd1eb44270"
UNKNOWN = rpc.UNKNOWN  # "04da6b54-80e4-46f7-96ec-b56ff0331ba9" (an unknown string)
UNKNOWN_NUMBER = "3eeb2bf0-c639-47a8-9e75-3b44932eb421"
UNKNOWN_ARRAY = "6a19a0b0-7e62-4c92-b797-7f8e31da9cc2"
UNKNOWN_OBJECT = "dd056dcd-154b-4c76-9bd3-c8f88648b5ff"

#: The engine passes its own gRPC address first; the pack only parses it (nothing here serves it).
ENGINE_ADDRESS_PLACEHOLDER = "127.0.0.1:1"
START_TIMEOUT = 30.0
CALL_TIMEOUT = 20.0

_LEVEL_NAMES = {
    analyzer_pb2.ADVISORY: "advisory",
    analyzer_pb2.MANDATORY: "mandatory",
    analyzer_pb2.DISABLED: "disabled",
    analyzer_pb2.REMEDIATE: "remediate",
}
_LEVELS = {name: value for value, name in _LEVEL_NAMES.items()}


@dataclass(frozen=True)
class Violation:
    """One diagnostic the pack returned."""

    policy: str
    level: str
    message: str
    urn: str
    resource: str = ""
    resource_type: str = ""

    @property
    def mandatory(self) -> bool:
        return self.level == "mandatory"

    def __str__(self) -> str:
        where = self.resource or self.urn or "stack"
        return f"[{self.level}] {self.policy} on {where}: {self.message}"


def secret(value: Any) -> dict[str, Any]:
    """``value`` as the engine sends a secret."""
    return {SECRET_SIG_KEY: SECRET_SIG, "value": value}


def _wire(value: Any) -> Any:
    """Plain Python -> what ``google.protobuf.Struct`` takes (secrets kept wrapped)."""
    # Imported lazily: only needed when a caller passes pulumi_policy.Secret values.
    try:
        from pulumi_policy import Secret
    except ImportError:  # pragma: no cover - pulumi-policy is a test dependency
        Secret = None  # type: ignore[assignment,misc]
    if Secret is not None and isinstance(value, Secret):
        return secret(_wire(value.value))
    if isinstance(value, Mapping):
        return {str(k): _wire(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_wire(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot send a {type(value).__name__} to the policy pack: {value!r}")


def to_struct(props: Mapping[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(_wire(props))
    return struct


def _reference_urn(reference: str, urns: Iterable[str]) -> str | None:
    """A provider reference (``URN::ID``) or URN -> the URN among ``urns``."""
    known = set(urns)
    if reference in known:
        return reference
    head = reference.rsplit("::", 1)[0]
    return head if head in known else None


class PolicyPackProcess:
    """The policy pack started as the engine starts it, with a client for its Analyzer service."""

    def __init__(
        self,
        pack_dir: Path = POLICIES,
        *,
        python: str = sys.executable,
        stack: str = "test",
        dry_run: bool = True,
        stack_config: Mapping[str, str] | None = None,
    ) -> None:
        self.pack_dir = pack_dir
        self.stack = stack
        self.dry_run = dry_run
        self.stack_config = dict(stack_config or {})
        env = {k: v for k, v in os.environ.items() if not k.startswith("PULUMI_")}
        # What the Python language host adds for a policy pack (from the engine's ConfigureStack).
        env.update(
            {
                "PULUMI_PROJECT": PROJECT,
                "PULUMI_STACK": stack,
                "PULUMI_ORGANIZATION": "organization",
                "PULUMI_DRY_RUN": "true" if dry_run else "false",
                "PULUMI_CONFIG": json.dumps(self.stack_config),
                "PYTHONUNBUFFERED": "1",
            }
        )
        # `python -u -m pulumi.policy <engine address> <pack dir>`, in the pack's directory:
        # what pulumi-language-python's RunPlugin runs for kind=analyzer.
        self.command = [python, "-u", "-m", "pulumi.policy", ENGINE_ADDRESS_PLACEHOLDER, str(pack_dir)]
        self.process = subprocess.Popen(
            self.command,
            cwd=pack_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self._stdout: list[bytes] = []
        self._stderr: list[bytes] = []
        self._port_line = threading.Event()
        self._readers = [
            threading.Thread(target=self._drain, args=(self.process.stdout, self._stdout, True), daemon=True),
            threading.Thread(target=self._drain, args=(self.process.stderr, self._stderr, False), daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        self.port = self._await_port()
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        try:
            grpc.channel_ready_future(self.channel).result(timeout=START_TIMEOUT)
        except grpc.FutureTimeoutError:
            self.close()
            raise RuntimeError(f"policy pack listens on no port {self.port}:\n{self.output()}") from None
        self.stub = analyzer_pb2_grpc.AnalyzerStub(self.channel)

    # -- process plumbing ---------------------------------------------------------------

    def _drain(self, stream: Any, into: list[bytes], first_line_is_port: bool) -> None:
        for line in iter(stream.readline, b""):
            into.append(line)
            if first_line_is_port:
                self._port_line.set()
        self._port_line.set()  # EOF: the process ended

    def _await_port(self) -> int:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._port_line.wait(0.05) and self._stdout:
                text = self._stdout[0].decode(errors="replace").strip()
                if text.isdigit():
                    return int(text)
                self.close()
                raise RuntimeError(f"policy pack printed {text!r} instead of its port:\n{self.output()}")
            if self.process.poll() is not None:
                self._readers[1].join(timeout=2)
                raise RuntimeError(
                    f"policy pack exited with {self.process.returncode} before printing its port "
                    f"({' '.join(self.command)}):\n{self.output()}"
                )
        self.close()
        raise RuntimeError(f"policy pack printed no port within {START_TIMEOUT:g}s:\n{self.output()}")

    def output(self) -> str:
        """What the pack printed (stdout, then stderr)."""
        out = b"".join(self._stdout).decode(errors="replace")
        err = b"".join(self._stderr).decode(errors="replace")
        return f"--- stdout ---\n{out}--- stderr ---\n{err}"

    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self) -> None:
        channel = getattr(self, "channel", None)
        if channel is not None:
            channel.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()

    def __enter__(self) -> PolicyPackProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the Analyzer service -----------------------------------------------------------

    def analyzer_info(self) -> analyzer_pb2.AnalyzerInfo:
        return self.stub.GetAnalyzerInfo(empty_pb2.Empty(), timeout=CALL_TIMEOUT)

    def plugin_info(self) -> plugin_pb2.PluginInfo:
        return self.stub.GetPluginInfo(empty_pb2.Empty(), timeout=CALL_TIMEOUT)

    def configure_stack(self, tags: Mapping[str, str] | None = None) -> None:
        self.stub.ConfigureStack(
            analyzer_pb2.AnalyzerStackConfigureRequest(
                stack=self.stack,
                project=PROJECT,
                organization="organization",
                dry_run=self.dry_run,
                config=self.stack_config,
                tags=dict(tags or {}),
            ),
            timeout=CALL_TIMEOUT,
        )

    def engine_config(self, config: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
        """The config the engine would send: schema defaults, then ``config`` (validated)."""
        info = self.analyzer_info()
        result: dict[str, dict[str, Any]] = {}
        schemas: dict[str, dict[str, Any]] = {}
        for policy in info.policies:
            properties = json_format.MessageToDict(policy.configSchema.properties)
            schemas[policy.name] = {"type": "object", "properties": properties}
            if policy.configSchema.required:
                schemas[policy.name]["required"] = list(policy.configSchema.required)
            defaults = {k: v["default"] for k, v in properties.items() if isinstance(v, dict) and "default" in v}
            result[policy.name] = {"enforcementLevel": _LEVEL_NAMES[policy.enforcementLevel], **defaults}
        for name, given in (config or {}).items():
            if name == "all":
                level = given if isinstance(given, str) else given.get("enforcementLevel")
                for entry in result.values():
                    entry["enforcementLevel"] = level
                continue
            if name not in result:
                raise ValueError(f"policy pack config names an unknown policy {name!r}; policies: {sorted(result)}")
            if isinstance(given, str):
                result[name]["enforcementLevel"] = given
            else:
                result[name].update(given)
        try:
            import jsonschema
        except ImportError:  # pragma: no cover - jsonschema comes with kubernetes-validate
            jsonschema = None  # type: ignore[assignment]
        errors: list[str] = []
        for name, entry in result.items():
            if entry["enforcementLevel"] not in _LEVELS:
                errors.append(f"{name}: unknown enforcement level {entry['enforcementLevel']!r}")
            if jsonschema is not None:
                properties = {k: v for k, v in entry.items() if k != "enforcementLevel"}
                validator = jsonschema.Draft7Validator(schemas[name])
                errors += [
                    f"{name}: {'.'.join(str(x) for x in e.absolute_path) or '(config)'}: {e.message}"
                    for e in validator.iter_errors(properties)
                ]
        if errors:
            raise ValueError("invalid policy pack config: " + "; ".join(errors))
        return result

    def configure(self, config: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
        """``Configure`` as the engine does it (every policy, defaults filled in); returns what was sent."""
        full = self.engine_config(config)
        request = analyzer_pb2.ConfigureAnalyzerRequest()
        for name, entry in full.items():
            properties = {k: v for k, v in entry.items() if k != "enforcementLevel"}
            request.policyConfig[name].CopyFrom(
                analyzer_pb2.PolicyConfig(
                    enforcementLevel=_LEVELS[entry["enforcementLevel"]], properties=to_struct(properties)
                )
            )
        self.stub.Configure(request, timeout=CALL_TIMEOUT)
        return full

    def _provider_message(
        self, resource: Mapping[str, Any], index: Mapping[str, Mapping[str, Any]]
    ) -> analyzer_pb2.AnalyzerProviderResource | None:
        reference = resource.get("provider")
        if not reference:
            return None
        urn = _reference_urn(str(reference), index)
        if urn is None:
            return None
        provider = index[urn]
        return analyzer_pb2.AnalyzerProviderResource(
            type=provider["type"], urn=provider["urn"], name=provider["name"], properties=to_struct(provider["props"])
        )

    @staticmethod
    def _options(resource: Mapping[str, Any]) -> analyzer_pb2.AnalyzerResourceOptions:
        return analyzer_pb2.AnalyzerResourceOptions(
            protect=bool(resource.get("protect", False)),
            additionalSecretOutputs=list(resource.get("additionalSecretOutputs") or []),
            parent=str(resource.get("parent") or ""),
        )

    def analyze(
        self, resource: Mapping[str, Any], others: Iterable[Mapping[str, Any]] = ()
    ) -> list[Violation]:
        """``Analyze`` one resource (its provider looked up among ``others``)."""
        index = {r["urn"]: r for r in others}
        request = analyzer_pb2.AnalyzeRequest(
            type=resource["type"],
            urn=resource["urn"],
            name=resource["name"],
            properties=to_struct(resource.get("props") or {}),
            options=self._options(resource),
        )
        provider = self._provider_message(resource, index)
        if provider is not None:
            request.provider.CopyFrom(provider)
        response = self.stub.Analyze(request, timeout=CALL_TIMEOUT)
        return [_violation(d, resource["name"], resource["type"], resource["urn"]) for d in response.diagnostics]

    def analyze_stack(self, resources: Iterable[Mapping[str, Any]]) -> list[Violation]:
        """``AnalyzeStack`` over all the resources."""
        resources = list(resources)
        index = {r["urn"]: r for r in resources}
        request = analyzer_pb2.AnalyzeStackRequest()
        for resource in resources:
            message = analyzer_pb2.AnalyzerResource(
                type=resource["type"],
                urn=resource["urn"],
                name=resource["name"],
                properties=to_struct(resource.get("props") or {}),
                options=self._options(resource),
                parent=str(resource.get("parent") or ""),
                dependencies=list(resource.get("dependencies") or []),
            )
            provider = self._provider_message(resource, index)
            if provider is not None:
                message.provider.CopyFrom(provider)
            request.resources.append(message)
        response = self.stub.AnalyzeStack(request, timeout=CALL_TIMEOUT)
        by_urn = {r["urn"]: r for r in resources}
        return [
            _violation(d, by_urn.get(d.urn, {}).get("name", ""), by_urn.get(d.urn, {}).get("type", ""))
            for d in response.diagnostics
        ]


def _violation(diagnostic: analyzer_pb2.AnalyzeDiagnostic, name: str, type_: str, urn: str = "") -> Violation:
    # Resource policies report without a URN: the engine attributes them to the analyzed resource.
    return Violation(
        policy=diagnostic.policyName,
        level=_LEVEL_NAMES.get(diagnostic.enforcementLevel, str(diagnostic.enforcementLevel)),
        message=diagnostic.message,
        urn=diagnostic.urn or urn,
        resource=name,
        resource_type=type_,
    )


def analyze_resources(
    resources: list[dict[str, Any]],
    config: Mapping[str, Any] | None = None,
    *,
    dry_run: bool = True,
    stack: str = "plan",
    stack_config: Mapping[str, str] | None = None,
) -> list[Violation]:
    """Every diagnostic the policy pack reports on these resources (see the module docstring).
    ``stack_config`` is the stack's config as the engine hands it to the pack (``ns:key`` -> text,
    in ConfigureStack and PULUMI_CONFIG): the pack reads settings such as allowAdminFromInternet."""
    for resource in resources:
        missing = [k for k in ("type", "name", "urn") if not resource.get(k)]
        if missing:
            raise ValueError(f"resource {resource!r} lacks {missing}")
    with PolicyPackProcess(stack=stack, dry_run=dry_run, stack_config=stack_config) as pack:
        pack.configure_stack()
        pack.configure(config)
        violations: list[Violation] = []
        for resource in resources:
            violations += pack.analyze(resource, resources)
        violations += pack.analyze_stack(resources)
        return violations
