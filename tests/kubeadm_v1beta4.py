"""kubeadm's v1beta4 types (and the kubelet's v1beta1 config), as upstream's Go source has them.

The schema is not written down here: it is built from the go-structs digests in
``tests/upstream/kubeadm/`` (see its SOURCES.yaml), which tools/upstream_digest.py parses from
upstream's Go files -- each ``type X struct`` with its fields' json names and Go types, embedded
(``json:",inline"``) structs (``metav1.TypeMeta`` gives ``apiVersion`` and ``kind``), pointers,
slices and ``map[string]T``; ``metav1.Duration`` and ``metav1.Time`` are strings on the wire.
Validation is strict, like ``kubeadm config validate``: a field the type does not have is an
error, and so is a scalar of the wrong type (``bindPort: "6443"``).

A type the digests do not define (``bootstraptokenv1.BootstrapToken``,
``corev1.EnvVarSource``, the kubelet's logging and tracing options) is *opaque*: any value is
accepted there, and :data:`OPAQUE` lists every such type so that a new one is seen in review.

API::

    validate(value, "ClusterConfiguration", path)   # problems of one value against one type
    document_problems(document)                      # one YAML document, by apiVersion and kind
    TYPES                                            # the field table (old format, for tools)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from tests.upstream_artifacts import go_structs

AREA = "kubeadm"
KUBEADM_API = "kubeadm.k8s.io/v1beta4"
KUBELET_API = "kubelet.config.k8s.io/v1beta1"

#: Go package (the alias the Go files import it under) -> the digest of the file defining its types.
PACKAGES: dict[str, str] = {
    "kubeadm": "v1beta4-types.digest.yaml",
    "kubelet": "kubelet-config-v1beta1-types.digest.yaml",
    "corev1": "core-v1-types.digest.yaml",
}
#: Import aliases of the same package in the files (kubelet's types.go imports core/v1 as ``v1``).
ALIASES = {"v1": "corev1"}
#: Kinds of each API version and the package defining them.
KINDS: dict[str, tuple[str, tuple[str, ...]]] = {
    KUBEADM_API: ("kubeadm", ("InitConfiguration", "ClusterConfiguration", "JoinConfiguration",
                               "ResetConfiguration", "UpgradeConfiguration")),
    KUBELET_API: ("kubelet", ("KubeletConfiguration",)),
}
#: Types the digests do not define: any value passes there (see the module docstring).
OPAQUE = frozenset({
    "bootstraptokenv1.BootstrapToken",
    "corev1.EnvVarSource",
    "corev1.NodeConfigSource",
    "corev1.ResourceList",
    "logsapi.LoggingConfiguration",
    "tracingapi.TracingConfiguration",
})
#: Go scalars -> the JSON type they take.
GO_SCALARS = {
    "string": "string", "bool": "boolean", "float32": "number", "float64": "number",
    **{t: "integer" for t in ("int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64")},
}
#: apimachinery types with their own JSON form.
META = {"metav1.Duration": "string", "metav1.Time": "string", "metav1.MicroTime": "string"}
#: ``metav1.TypeMeta`` inline.
TYPE_META = {"apiVersion": ("scalar", "string"), "kind": ("scalar", "string")}

TypeExpr = tuple[Any, ...]


@dataclass(frozen=True)
class Struct:
    name: str  # qualified: "kubeadm.InitConfiguration"
    fields: dict[str, TypeExpr]


def _package(package: str, digest: dict[str, Any]) -> tuple[dict[str, Struct], dict[str, str]]:
    """The structs and the named scalar types (``type X string``) of one go-structs digest."""
    structs: dict[str, Struct] = {}
    named = {f"{package}.{name}": GO_SCALARS[t["type"]] for name, t in digest["named"].items() if t["type"] in GO_SCALARS}
    for name, struct in digest["structs"].items():
        # embedded: encoding/json inlines its fields (with or without the inline tag)
        fields: dict[str, TypeExpr] = {f"...{go_type}": ("inline", _qualify(package, go_type)) for go_type in struct["embedded"]}
        fields.update({json_name: _type_expr(package, go_type) for json_name, go_type in struct["fields"].items()})
        structs[f"{package}.{name}"] = Struct(f"{package}.{name}", fields)
    return structs, named


def _qualify(package: str, go_type: str) -> str:
    if "." in go_type:
        alias, name = go_type.split(".", 1)
        return f"{ALIASES.get(alias, alias)}.{name}"
    return f"{package}.{go_type}"


def _type_expr(package: str, go_type: str) -> TypeExpr:
    if go_type.startswith("*"):
        return _type_expr(package, go_type[1:])
    if go_type == "[]byte":
        return ("scalar", "string")
    if go_type.startswith("[]"):
        return ("list", _type_expr(package, go_type[2:]))
    if go_type.startswith("map[string]"):
        return ("map", _type_expr(package, go_type[len("map[string]") :]))
    if go_type in GO_SCALARS:
        return ("scalar", GO_SCALARS[go_type])
    return ("named", _qualify(package, go_type))


@dataclass(frozen=True)
class Schema:
    structs: dict[str, Struct]
    named: dict[str, str]

    def fields(self, qualified: str) -> dict[str, TypeExpr] | None:
        """A struct's JSON fields with its inline embeddings flattened; None when opaque."""
        if qualified == "metav1.TypeMeta":
            return dict(TYPE_META)
        struct = self.structs.get(qualified)
        if struct is None:
            return None
        out: dict[str, TypeExpr] = {}
        for name, expr in struct.fields.items():
            if expr[0] == "inline":
                inner = self.fields(expr[1])
                if inner is None:
                    raise AssertionError(f"{qualified} inlines {expr[1]}, which no digest defines")
                out.update(inner)
            else:
                out[name] = expr
        return out

    def resolve(self, expr: TypeExpr) -> TypeExpr:
        """A ``named`` type as a scalar, a struct or opaque."""
        if expr[0] != "named":
            return expr
        name = expr[1]
        if name in META:
            return ("scalar", META[name])
        if name in self.named:
            return ("scalar", self.named[name])
        if name in self.structs or name == "metav1.TypeMeta":
            return ("struct", name)
        if name in OPAQUE:
            return ("opaque", name)
        raise AssertionError(f"type {name} is neither in the digests nor listed in OPAQUE")


@cache
def schema() -> Schema:
    structs: dict[str, Struct] = {}
    named: dict[str, str] = {}
    for package, file in PACKAGES.items():
        s, n = _package(package, go_structs(AREA, file))
        structs.update(s)
        named.update(n)
    return Schema(structs, named)


_JSON_TYPES: dict[str, tuple[type, ...]] = {"string": (str,), "boolean": (bool,), "integer": (int,), "number": (int, float)}


def _problems(value: Any, expr: TypeExpr, path: str) -> list[str]:
    s = schema()
    expr = s.resolve(expr)
    kind = expr[0]
    if kind == "opaque":
        return []
    if kind == "scalar":
        expected = _JSON_TYPES[expr[1]]
        if not isinstance(value, expected) or (expr[1] != "boolean" and isinstance(value, bool)):
            return [f"{path}: expected {expr[1]}, got {type(value).__name__} {value!r}"]
        return []
    if kind == "list":
        if not isinstance(value, list):
            return [f"{path}: expected a list, got {type(value).__name__}"]
        return [p for i, item in enumerate(value) for p in _problems(item, expr[1], f"{path}[{i}]")]
    if kind == "map":
        if not isinstance(value, dict):
            return [f"{path}: expected a map, got {type(value).__name__}"]
        return [p for k, v in value.items() for p in _problems(v, expr[1], f"{path}.{k}")]
    name = expr[1]
    fields = s.fields(name)
    assert fields is not None
    short = name.split(".", 1)[1]
    if not isinstance(value, dict):
        return [f"{path}: expected a {short} object, got {type(value).__name__}"]
    problems: list[str] = []
    for key, item in value.items():
        if key not in fields:
            problems.append(f"{path}.{key}: unknown field of {short} (known: {', '.join(sorted(fields))})")
        else:
            problems += _problems(item, fields[key], f"{path}.{key}")
    return problems


def validate(value: Any, type_name: str, path: str = "") -> list[str]:
    """Every place where ``value`` does not fit ``type_name`` (a kubeadm v1beta4 type such as
    ``ClusterConfiguration`` or ``APIServer``, ``KubeletConfiguration``, or qualified
    ``package.Name``); empty when it fits."""
    qualified = type_name if "." in type_name else _find(type_name)
    return _problems(value, ("named", qualified), path or type_name)


def _find(name: str) -> str:
    for package in PACKAGES:
        if f"{package}.{name}" in schema().structs:
            return f"{package}.{name}"
    raise KeyError(f"no type {name} in the kubeadm digests")


def document_problems(document: Any) -> list[str]:
    """One document of a kubeadm config file, checked by its apiVersion and kind."""
    if not isinstance(document, dict):
        return [f"a document is a {type(document).__name__}, not a map"]
    api_version, kind = document.get("apiVersion"), document.get("kind")
    if api_version not in KINDS:
        return [f"{kind}: apiVersion {api_version!r} is not one of {sorted(KINDS)}"]
    package, kinds = KINDS[api_version]
    if kind not in kinds:
        return [f"kind {kind!r} is not a kind of {api_version} ({', '.join(kinds)})"]
    return validate(document, f"{package}.{kind}", kind)


def config_problems(config_text: str) -> list[str]:
    """Every document of a generated kubeadm config file (YAML, ``---`` separated)."""
    import yaml

    documents = [d for d in yaml.safe_load_all(config_text) if d is not None]
    if not documents:
        return ["the config has no documents"]
    return [p for d in documents for p in document_problems(d)]


def _old_format(expr: TypeExpr) -> Any:
    """A type expression in the field-table format tools/rehearsal reads."""
    s = schema()
    expr = s.resolve(expr)
    if expr[0] == "scalar":
        return {"string": "string", "integer": "int", "boolean": "bool", "number": "int"}[expr[1]]
    if expr[0] == "list":
        return [_old_format(expr[1])]
    if expr[0] == "map":
        return {"string": _old_format(expr[1])}
    return expr[1].split(".", 1)[1]


def _table() -> dict[str, dict[str, Any]]:
    """The field table of every struct reachable from the config kinds (opaque fields left out)."""
    s = schema()
    table: dict[str, dict[str, Any]] = {}
    todo = [f"{package}.{kind}" for package, kinds in KINDS.values() for kind in kinds]
    while todo:
        name = todo.pop()
        short = name.split(".", 1)[1]
        if short in table:
            continue
        fields = s.fields(name) or {}
        row: dict[str, Any] = {}
        for key, expr in fields.items():
            resolved = s.resolve(expr)
            while resolved[0] in ("list", "map"):
                resolved = s.resolve(resolved[1])
            if resolved[0] == "opaque":
                continue
            if resolved[0] == "struct":
                todo.append(resolved[1])
            row[key] = _old_format(expr)
        table[short] = row
    return table


#: type name -> {json field -> "string" | "int" | "bool" | [T] | {"string": T} | type name}:
#: the format of the former hand-written table, derived from the digests (tools/rehearsal reads it).
TYPES: dict[str, dict[str, Any]] = _table()
