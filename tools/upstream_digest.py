"""Digests of upstream files: the facts the tests hold the program against, without the files.

Upstream files (a chart's values.yaml, CRDs, Go types, a Makefile, a systemd unit, a markdown
page ...) are not committed: third-party files stay out of this repository. What ``tests/upstream/<area>/`` holds is,
per upstream file, a *digest* this tool makes from the file's exact bytes, and an entry in the
area's ``SOURCES.yaml`` with the provenance and the sha256 of those bytes::

    files:
      - file: rook-ceph-values.digest.yaml     # the digest (name ends in .digest.yaml / .digest.json)
        repository: rook/rook                  # GitHub owner/name, or e.g. "debian:unattended-upgrades"
        ref: v1.20.6                           # tag, commit or package version
        path: deploy/charts/rook-ceph/values.yaml
        sha256: 0123...                        # of the upstream bytes (written by --write)
        digest: yaml-data                      # the reducer below
        select: [CephCluster]                  # reducer options: any other key (see REDUCERS)
        local: ~/.cache/...                    # optional: where the bytes are on a machine without a snapshot
        pin: ROOK_CHART_VERSION                # optional (tests/test_upstream.py)
        pin_value: v1.20.6                     # optional
        note: why the file is there            # optional

Reducers (deterministic: the same bytes and options always give the same digest text):

* ``yaml-data`` -- the parsed YAML documents (comments are gone by parsing) with every string
  ``description`` key removed (CRD prose). Options: ``select`` (documents whose kind, name or CRD
  kind is listed), ``crd: structural`` (a CRD keeps its names, scope and, per version, the
  structural schema keywords only), ``versions`` (the CRD versions kept), ``prune`` (per CRD kind,
  schema property paths replaced by a schema nothing fits: parts no tested resource sets), ``keep`` (dotted key
  paths kept, ``*`` for every key or list item; everything else dropped).
* ``go-structs`` -- Go ``type X struct`` definitions as ``{X: {line, embedded, fields: {json name:
  Go type}}}``, named scalar types (``type X string``) and the imports. Option ``select``: the
  types kept (every selected one must parse; the others may not).
* ``facts`` -- named extractors (:data:`EXTRACTORS`), each an option key whose value configures
  it; every fact carries its upstream line number(s) as evidence.

Where the upstream bytes come from, first found wins: ``--from FILE``; a ``fetch`` snapshot
(``$KUBEADM_CLUSTER_MIRRORS``, default ``/work/.mirror``, ``<owner>+<name>/repo`` holding
``ref``: ``git cat-file blob ref:path``); the entry's ``local`` path; this tool's cache
(``$XDG_CACHE_HOME/kubeadm-cluster/upstream/<area>/<repository>/<ref>/<path>``, or
``$KUBEADM_CLUSTER_UPSTREAM_CACHE/...``, where ``--write`` keeps a copy of bytes that did not come
from a snapshot). The bytes must have the recorded sha256 (``--write`` records it).

CLI::

    python -m tools.upstream_digest [--area A] [--file DIGEST] [--from FILE] [--write | --check]

``--check`` (the default) regenerates every digest whose upstream bytes are on this machine and
compares it with the committed one; ``--write`` writes digests and sha256s. Entries whose bytes
are not here are reported as skipped.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
UPSTREAM = ROOT / "tests" / "upstream"
DIGEST_SUFFIXES = (".digest.yaml", ".digest.json")
#: SOURCES.yaml keys that are not reducer options.
PROVENANCE_KEYS = frozenset({"file", "repository", "ref", "path", "sha256", "digest", "local", "pin", "pin_value", "note"})

# libyaml's loader when there is one (fast on a 1 MB crds.yaml; the same data either way); the
# pure-Python dumper always, so the digest text never depends on whether libyaml is installed.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class DigestError(RuntimeError):
    """An upstream file cannot be digested as its entry says (the message says why)."""


# --- SOURCES.yaml ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """One entry of ``tests/upstream/<area>/SOURCES.yaml``."""

    area: str
    file: str
    repository: str
    ref: str
    path: str
    sha256: str | None = None
    digest: str | None = None
    local: str | None = None
    pin: str | None = None
    pin_value: str | None = None
    note: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @classmethod
    def from_entry(cls, area: str, entry: Mapping[str, Any]) -> Source:
        def optional(key: str) -> str | None:
            return None if entry.get(key) is None else str(entry[key])

        return cls(
            area=area,
            # required: an empty one is reported by tests/test_upstream.py
            file=str(entry.get("file") or ""),
            repository=str(entry.get("repository") or ""),
            ref=str(entry.get("ref") or ""),
            path=str(entry.get("path") or ""),
            sha256=optional("sha256"),
            digest=optional("digest"),
            local=optional("local"),
            pin=optional("pin"),
            pin_value=optional("pin_value"),
            note=optional("note"),
            options={k: v for k, v in entry.items() if k not in PROVENANCE_KEYS},
        )

    @property
    def committed(self) -> Path:
        """The file in the repository (a digest, or a raw copy in an area not converted yet)."""
        return UPSTREAM / self.area / self.file

    @property
    def is_digest(self) -> bool:
        return self.digest is not None

    def where(self) -> str:
        return f"{self.repository}@{self.ref}:{self.path}"


def areas(upstream: Path = UPSTREAM) -> list[str]:
    return sorted(p.name for p in upstream.iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))


def load_sources(area: str, upstream: Path = UPSTREAM) -> dict[str, Source]:
    """The entries of one area's SOURCES.yaml, by file name."""
    data = yaml.load((upstream / area / "SOURCES.yaml").read_text(encoding="utf-8"), Loader=_Loader)
    return {str(item["file"]): Source.from_entry(area, item) for item in data["files"]}


def set_sha256(sources_file: Path, file: str, sha256: str) -> bool:
    """Record ``sha256`` in the entry of ``file`` (a text edit: the comments stay); whether it changed."""
    lines = sources_file.read_text(encoding="utf-8").splitlines(keepends=True)
    start = next((i for i, ln in enumerate(lines) if re.fullmatch(rf"\s*- file:\s*[\"']?{re.escape(file)}[\"']?\s*", ln)), None)
    if start is None:
        raise DigestError(f"{sources_file}: no entry `- file: {file}`")
    end = next((i for i in range(start + 1, len(lines)) if re.match(r"\s*- file:", lines[i])), len(lines))
    for i in range(start + 1, end):
        match = re.match(r"(\s+)sha256:\s*(\S*)", lines[i])
        if match:
            if match.group(2).strip("\"'") == sha256:
                return False
            lines[i] = f"{match.group(1)}sha256: {sha256}\n"
            break
    else:
        after = next((i for i in range(start + 1, end) if re.match(r"\s+path:", lines[i])), None)
        if after is None:
            raise DigestError(f"{sources_file}: the entry of {file} has no `path:`")
        indent = re.match(r"\s+", lines[after])
        lines.insert(after + 1, f"{indent.group(0) if indent else '    '}sha256: {sha256}\n")
    sources_file.write_text("".join(lines), encoding="utf-8")
    return True


# --- where the upstream bytes are ------------------------------------------------------------------


def mirrors() -> Path:
    return Path(os.environ.get("KUBEADM_CLUSTER_MIRRORS", "/work/.mirror"))


def cache_root() -> Path:
    if os.environ.get("KUBEADM_CLUSTER_UPSTREAM_CACHE"):
        return Path(os.environ["KUBEADM_CLUSTER_UPSTREAM_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kubeadm-cluster" / "upstream"


def _repository_key(repository: str) -> str:
    return re.sub(r"[/:]", "+", repository)


def cache_path(source: Source) -> Path:
    return cache_root() / source.area / _repository_key(source.repository) / source.ref / source.path


def snapshot(source: Source) -> Path | None:
    """The snapshot (bare git directory) of a GitHub repository, when ``fetch`` brought one."""
    if ":" in source.repository or source.repository.count("/") != 1:
        return None
    repo = mirrors() / _repository_key(source.repository) / "repo"
    return repo if repo.is_dir() else None


@dataclass(frozen=True)
class Located:
    data: bytes
    origin: str  # where the bytes were read, for messages
    kind: str = "given"  # "given" (--from), "snapshot", "local" or "cache"


def locate(source: Source, explicit: Path | None = None) -> Located | None:
    """The upstream bytes of ``source``, or None when this machine has none (see the module doc)."""
    if explicit is not None:
        return Located(explicit.read_bytes(), str(explicit), "given")
    repo = snapshot(source)
    if repo is not None:
        proc = subprocess.run(["git", "-C", str(repo), "cat-file", "blob", f"{source.ref}:{source.path}"],
                              capture_output=True, check=False)
        if proc.returncode == 0:
            return Located(proc.stdout, f"snapshot {repo} {source.ref}:{source.path}", "snapshot")
    candidates = ([(Path(source.local).expanduser(), "local")] if source.local else []) + [(cache_path(source), "cache")]
    for candidate, kind in candidates:
        if candidate.is_file():
            return Located(candidate.read_bytes(), str(candidate), kind)
    return None


def tried(source: Source) -> str:
    """Where :func:`locate` looked (for a skip message)."""
    places = [f"a snapshot {mirrors() / _repository_key(source.repository) / 'repo'} holding {source.ref}"
              ] if ":" not in source.repository else []
    if source.local:
        places.append(str(Path(source.local).expanduser()))
    places.append(str(cache_path(source)))
    return ", ".join(places)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- yaml-data ------------------------------------------------------------------------------------

#: The structural keywords a CRD schema keeps under ``crd: structural`` (with x-kubernetes-*).
SCHEMA_KEYWORDS = frozenset({
    "type", "properties", "patternProperties", "items", "additionalProperties", "required", "enum", "format",
    "pattern", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minLength", "maxLength",
    "minItems", "maxItems", "uniqueItems", "minProperties", "maxProperties", "nullable", "default",
    "anyOf", "oneOf", "allOf", "not",
})
#: Mappings whose keys are names (of properties), not keywords: a key "description" there is a field.
_NAME_MAPS = frozenset({"properties", "patternProperties", "definitions"})


def _load_yaml_all(text: str) -> list[Any]:
    return [d for d in yaml.load_all(text, Loader=_Loader) if d is not None]


def _doc_names(doc: Any) -> set[str]:
    """What ``select`` matches a document by: kind, metadata.name and a CRD's spec.names.kind."""
    if not isinstance(doc, dict):
        return set()
    names = {str(doc.get("kind"))}
    meta = doc.get("metadata")
    if isinstance(meta, dict) and meta.get("name"):
        names.add(str(meta["name"]))
    spec = doc.get("spec")
    if doc.get("kind") == "CustomResourceDefinition" and isinstance(spec, dict) and isinstance(spec.get("names"), dict):
        names.add(str(spec["names"].get("kind")))
    return names


def _crd_kind(doc: Any) -> str | None:
    """The kind a CRD document defines (None for any other document)."""
    if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
        return str(doc["spec"]["names"]["kind"])
    return None


def drop_descriptions(value: Any, parent: str | None = None) -> Any:
    """``value`` without string ``description`` keys (a key named so under ``properties`` is a field)."""
    if isinstance(value, dict):
        return {k: drop_descriptions(v, str(k)) for k, v in value.items()
                if not (k == "description" and isinstance(v, str) and parent not in _NAME_MAPS)}
    if isinstance(value, list):
        return [drop_descriptions(v) for v in value]
    return value


def structural_schema(schema: Any) -> Any:
    """An openAPI v3 schema reduced to :data:`SCHEMA_KEYWORDS` and ``x-kubernetes-*``."""
    if isinstance(schema, list):
        return [structural_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("properties", "patternProperties"):
            out[key] = {name: structural_schema(sub) for name, sub in value.items()}
        elif key in ("items", "not", "additionalProperties", "anyOf", "oneOf", "allOf"):
            out[key] = structural_schema(value)
        elif key in SCHEMA_KEYWORDS or str(key).startswith("x-kubernetes-"):
            out[key] = value  # values (enum, default, validations) as they are
    return out


#: What a pruned part of a CRD schema becomes: a schema no value fits (tests/upstream_artifacts.py
#: crd_problems says "pruned from the digest" when a custom resource sets something there).
PRUNED = "x-digest-pruned"


def prune_schema(schema: dict[str, Any], path: str) -> dict[str, Any]:
    """``schema`` with the part at the dotted property ``path`` (``*``: a list's items or a map's
    values) replaced by ``{type, x-digest-pruned: true}``: a part the tests' resources never set,
    left out to keep the digest small -- setting it later fails the validation instead of passing."""
    head, _, rest = path.partition(".")
    out = dict(schema)
    if head == "*":
        key = "items" if isinstance(schema.get("items"), dict) else "additionalProperties"
        if not isinstance(schema.get(key), dict):
            raise DigestError(f"`*` of {path!r}: neither items nor additionalProperties is a schema")
        target: dict[str, Any] = schema[key]
        out[key] = prune_schema(target, rest) if rest else _pruned(target)
        return out
    properties = schema.get("properties")
    if not isinstance(properties, dict) or head not in properties:
        raise DigestError(f"no property {head!r} (pruning {path!r})")
    out["properties"] = {
        **properties, head: prune_schema(properties[head], rest) if rest else _pruned(properties[head])
    }
    return out


def _pruned(schema: dict[str, Any]) -> dict[str, Any]:
    return {**({"type": schema["type"]} if "type" in schema else {}), PRUNED: True}


def structural_crd(doc: Any, versions: list[str] | None, prune: list[str] | None = None) -> Any:
    """A CRD with its names, scope and, per (kept) version, the structural schema (``prune``d
    at the listed property paths); other documents as they are."""
    if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
        return doc
    spec = doc["spec"]
    kept = [v for v in spec["versions"] if versions is None or v["name"] in versions]
    missing = sorted(set(versions or []) - {v["name"] for v in kept})
    if missing:
        raise DigestError(f"CRD {doc['metadata']['name']} has no version {missing}")
    out_versions: list[dict[str, Any]] = []
    for version in kept:
        item: dict[str, Any] = {k: version[k] for k in ("name", "served", "storage") if k in version}
        if "schema" in version:
            schema = structural_schema(version["schema"]["openAPIV3Schema"])
            for path in prune or []:
                schema = prune_schema(schema, path)
            item["schema"] = {"openAPIV3Schema": schema}
        if "subresources" in version:
            item["subresources"] = version["subresources"]
        out_versions.append(item)
    return {
        "apiVersion": doc["apiVersion"],
        "kind": doc["kind"],
        "metadata": {"name": doc["metadata"]["name"]},
        "spec": {"group": spec["group"], "names": spec["names"], "scope": spec.get("scope"), "versions": out_versions},
    }


def keep_paths(value: Any, paths: list[str], where: str = "") -> Any:
    """Only the dotted ``paths`` of ``value`` (``*``: every key or list item); a missing key is an error."""
    deeper: dict[str, list[str]] = {}
    whole: set[str] = set()
    for path in paths:
        head, _, rest = path.partition(".")
        if rest:
            deeper.setdefault(head, []).append(rest)
        else:
            whole.add(head)
    heads = set(deeper) | whole
    if isinstance(value, list):
        if heads != {"*"}:
            raise DigestError(f"{where or '<root>'} is a list: only `*` selects in it, not {sorted(heads)}")
        if "*" in whole:
            return value
        return [keep_paths(item, deeper["*"], f"{where}[{i}]") for i, item in enumerate(value)]
    if not isinstance(value, dict):
        raise DigestError(f"{where or '<root>'} is not a mapping: cannot keep {sorted(heads)} of it")
    missing = sorted(heads - {"*"} - {str(k) for k in value})
    if missing:
        raise DigestError(f"{where or '<root>'} has no {missing}")
    out: dict[Any, Any] = {}
    for key, item in value.items():
        if str(key) in whole or "*" in whole:
            out[key] = item
            continue
        sub = deeper.get(str(key), []) + deeper.get("*", [])
        if sub:
            out[key] = keep_paths(item, sub, f"{where}.{key}" if where else str(key))
    return out


def reduce_yaml_data(text: str, options: Mapping[str, Any]) -> dict[str, Any]:
    docs = _load_yaml_all(text)
    select = options.get("select")
    if select is not None:
        wanted = [str(s) for s in select]
        docs = [d for d in docs if _doc_names(d) & set(wanted)]
        found = set().union(*(_doc_names(d) for d in docs)) if docs else set()
        if set(wanted) - found:
            raise DigestError(f"select: no document {sorted(set(wanted) - found)}")
    crd = options.get("crd")
    if crd not in (None, "structural"):
        raise DigestError(f"crd: {crd!r} (only `structural`)")
    versions = options.get("versions")
    if versions is not None and crd is None:
        raise DigestError("versions: only with `crd: structural`")
    prune: Mapping[str, Any] = options.get("prune") or {}
    if prune and crd is None:
        raise DigestError("prune: only with `crd: structural`")
    if crd == "structural":
        kinds = {_crd_kind(d) for d in docs} - {None}
        if set(prune) - kinds:
            raise DigestError(f"prune: no CRD of kind {sorted(set(prune) - kinds)}")
        kept = [str(v) for v in versions] if versions is not None else None
        docs = [structural_crd(d, kept, [str(p) for p in prune.get(_crd_kind(d) or "", [])]) for d in docs]
    docs = [drop_descriptions(d) for d in docs]
    keep = options.get("keep")
    if keep is not None:
        docs = [keep_paths(d, [str(p) for p in keep]) for d in docs]
    return {"digest": "yaml-data", "documents": docs}


# --- go-structs -----------------------------------------------------------------------------------

GO_SCALARS = frozenset({
    "string", "bool", "byte", "float32", "float64",
    "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64",
})
_TYPE_RE = re.compile(r"^type (\w+) (struct \{|(\S+))", re.M)
_FIELD_RE = re.compile(r"^\t(?:(\w+)\s+)?([^\s`]+)(?:\s+`([^`]*)`)?\s*$")
_JSON_TAG_RE = re.compile(r'json:"([^"]*)"')
_IMPORT_RE = re.compile(r'^\t(?:(\w+) )?"([^"]+)"$', re.M)


def _blank_block_comments(source: str) -> str:
    """Block comments that open a line (a license header, kubelet's ``/* ... */`` notes) as
    blank lines, so that line numbers stay; a ``/*`` inside a ``//`` comment is text."""
    return re.sub(r"^[ \t]*/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), source, flags=re.S | re.M)


def parse_go_struct(body: str, first_line: int) -> dict[str, Any]:
    """One struct body: ``{"embedded": [Go type], "fields": {json name: Go type}}``. Every line
    that is not blank nor a ``//`` comment must be a field (else :class:`DigestError`);
    ``json:"-"`` fields are left out (they are not on the wire)."""
    embedded: list[str] = []
    fields: dict[str, str] = {}
    for offset, line in enumerate(body.split("\n")):
        stripped = line.strip()
        if not stripped or stripped.startswith("//"):
            continue
        match = _FIELD_RE.match(line)
        if not match:
            raise DigestError(f"line {first_line + offset}: cannot read the field line {line!r}")
        go_name, go_type, tag = match.group(1), match.group(2), match.group(3) or ""
        json_tag = _JSON_TAG_RE.search(tag)
        json_name = (json_tag.group(1) if json_tag else "").split(",")[0]
        if json_name == "-":
            continue
        if go_name is None:  # embedded: encoding/json inlines its fields (with or without the tag)
            embedded.append(go_type)
            continue
        name = json_name or go_name
        if name in fields:
            raise DigestError(f"line {first_line + offset}: field {name} twice")
        fields[name] = go_type
    return {"embedded": embedded, "fields": fields}


def reduce_go_structs(text: str, options: Mapping[str, Any]) -> dict[str, Any]:
    source = _blank_block_comments(text)
    select = [str(s) for s in options["select"]] if options.get("select") is not None else None
    package = re.search(r"^package (\w+)", source, re.M)
    imports: dict[str, str] = {}
    block = re.search(r"^import \((.*?)^\)", source, re.S | re.M)
    for match in _IMPORT_RE.finditer(block.group(1) if block else ""):
        imports[match.group(1) or match.group(2).rsplit("/", 1)[-1]] = match.group(2)
    for match in re.finditer(r'^import (?:(\w+) )?"([^"]+)"$', source, re.M):
        imports[match.group(1) or match.group(2).rsplit("/", 1)[-1]] = match.group(2)
    named: dict[str, dict[str, Any]] = {}
    structs: dict[str, dict[str, Any]] = {}
    errors: dict[str, str] = {}
    for match in _TYPE_RE.finditer(source):
        name = match.group(1)
        line = source.count("\n", 0, match.start()) + 1
        if match.group(3):  # type X string
            if match.group(3) in GO_SCALARS:
                named[name] = {"line": line, "type": match.group(3)}
            continue
        end = source.find("\n}", match.end())
        if end < 0:
            errors[name] = f"line {line}: struct without its closing brace"
            continue
        try:
            structs[name] = {"line": line, **parse_go_struct(source[match.end() + 1 : end], line + 1)}
        except DigestError as error:
            errors[name] = str(error)
    if select is not None:
        bad = {n: e for n, e in errors.items() if n in select}
        if bad:
            raise DigestError(f"selected types that do not parse: {bad}")
        missing = sorted(set(select) - set(named) - set(structs))
        if missing:
            raise DigestError(f"select: no type {missing}")
        named = {n: v for n, v in named.items() if n in select}
        structs = {n: v for n, v in structs.items() if n in select}
    elif errors:
        raise DigestError(f"types that do not parse: {errors}")
    return {
        "digest": "go-structs",
        "package": package.group(1) if package else None,
        "imports": dict(sorted(imports.items())),
        "named": named,
        "structs": structs,
    }


# --- facts ----------------------------------------------------------------------------------------


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _function_span(lines: list[str], signature: str) -> tuple[int, int]:
    """0-based [start, end] of the function whose line holds ``signature``: to the next ``}`` at column 0."""
    start = next((i for i, ln in enumerate(lines) if signature in ln), None)
    if start is None:
        raise DigestError(f"no line holds {signature!r}")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].rstrip() == "}"), None)
    if end is None:
        raise DigestError(f"{signature!r}: no closing brace at column 0")
    return start, end


def extract_lines(text: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """``{fact: regex | {regex, within}}`` -> ``{fact: [{line, text[, groups]}]}``: the lines
    matching ``regex`` (in the function whose line holds ``within``, when given), stripped."""
    lines = text.split("\n")
    out: dict[str, Any] = {}
    for fact, spec in config.items():
        spec_map: Mapping[str, Any] = spec if isinstance(spec, Mapping) else {"regex": spec}
        regex = re.compile(str(spec_map["regex"]))
        lo, hi = (_function_span(lines, str(spec_map["within"])) if spec_map.get("within") else (0, len(lines) - 1))
        found: list[dict[str, Any]] = []
        for i in range(lo, hi + 1):
            match = regex.search(lines[i])
            if match:
                item: dict[str, Any] = {"line": i + 1, "text": lines[i].strip()}
                if match.groups():
                    item["groups"] = list(match.groups())
                found.append(item)
        out[str(fact)] = found
    return out


def extract_markdown_tables(text: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """``{fact: heading line}`` -> the first table after that heading: its header cells and its
    rows (cells stripped, the separator row left out), each with its line."""
    lines = text.split("\n")
    out: dict[str, Any] = {}
    for fact, heading in config.items():
        if heading not in lines:
            raise DigestError(f"no heading line {heading!r}")
        start = lines.index(heading)
        rows: list[tuple[int, list[str]]] = []
        for i in range(start + 1, len(lines)):
            if lines[i].startswith("|"):
                rows.append((i + 1, [c.strip() for c in lines[i].strip().strip("|").split("|")]))
            elif rows:
                break
        if not rows:
            raise DigestError(f"no table after {heading!r}")
        body = [(n, cells) for n, cells in rows[1:] if not set("".join(cells)) <= set("-: ")]
        out[str(fact)] = {
            "heading_line": start + 1,
            "header": rows[0][1],
            "rows": [{"line": n, "cells": cells} for n, cells in body],
        }
    return out


def unit_body(text: str) -> str:
    """A systemd unit below its leading comment block (license header), as compared by the tests."""
    lines = text.splitlines()
    while lines and (lines[0].startswith("#") or not lines[0].strip()):
        lines.pop(0)
    return "\n".join(lines) + "\n"


def extract_systemd_unit(text: str, config: Any) -> dict[str, Any]:
    """The directives of a unit file in order (section, key, value, line), and the sha256 of
    its body below the leading comment block (:func:`unit_body`): an exact comparison with a
    unit we write, without the unit's text."""
    directives: list[dict[str, Any]] = []
    section = ""
    for number, line in enumerate(text.split("\n"), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", ";")):
            continue
        if stripped.startswith("[") and stripped.endswith("]"):
            section = stripped[1:-1]
            continue
        key, sep, value = stripped.partition("=")
        if not sep:
            raise DigestError(f"line {number}: not a directive: {line!r}")
        directives.append({"line": number, "section": section, "key": key.strip(), "value": value.strip()})
    return {"body_sha256": sha256(unit_body(text).encode()), "directives": directives}


_TEMPLATE_REF_RE = re.compile(r"\$(\w+)((?:\.\w+)+)")


def extract_template_refs(text: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """``{fact: variable}`` (a Helm template's ``$variable``) -> what it is bound to (``$x :=
    .Values.y``, and whether by ``range``) and every ``$variable.a.b`` path it reads, with lines."""
    out: dict[str, Any] = {}
    for fact, variable in config.items():
        name = str(variable).lstrip("$")
        binding = re.search(rf"(range\s+(?:\$\w+\s*,\s*)?)?\${re.escape(name)}\s*:=\s*([^\s}}]+)", text)
        if binding is None:
            raise DigestError(f"${name} is never bound")
        refs: dict[str, list[int]] = {}
        for match in _TEMPLATE_REF_RE.finditer(text):
            if match.group(1) == name:
                refs.setdefault(match.group(2)[1:], []).append(_line_of(text, match.start()))
        out[str(fact)] = {
            "variable": f"${name}",
            "bound_to": binding.group(2),
            "range": binding.group(1) is not None,
            "line": _line_of(text, binding.start()),
            "refs": {path: sorted(set(lines)) for path, lines in sorted(refs.items())},
        }
    return out


_GO_STRING_RE = re.compile(r'`([^`]*)`|"((?:[^"\\]|\\.)*)"')


def extract_go_strings(text: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """``{fact: anchor regex}`` -> the string literals from the end of the anchor's match to the
    next ``}`` (a ``[]string{...}`` literal: the anchor ends with its ``{``), each with its line."""
    out: dict[str, Any] = {}
    for fact, anchor in config.items():
        match = re.search(str(anchor), text, re.S)
        if match is None:
            raise DigestError(f"no match of {anchor!r}")
        end = text.find("}", match.end())
        values = []
        for lit in _GO_STRING_RE.finditer(text, match.end(), end):
            value = lit.group(1) if lit.group(1) is not None else json.loads(f'"{lit.group(2)}"')
            values.append({"line": _line_of(text, lit.start()), "value": value})
        out[str(fact)] = values
    return out


def _yaml_node(root: yaml.Node, path: str) -> yaml.Node:
    node = root
    for key in path.split("."):
        if isinstance(node, yaml.MappingNode):
            found = [v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == key]
            if not found:
                raise DigestError(f"{path}: no key {key!r}")
            node = found[0]
        elif isinstance(node, yaml.SequenceNode) and key.isdigit() and int(key) < len(node.value):
            node = node.value[int(key)]
        else:
            raise DigestError(f"{path}: cannot step into {key!r}")
    return node


def extract_yaml_paths(text: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """``{fact: dotted path}`` (keys, list indexes) of a one-document YAML -> ``{line, value}``."""
    root = yaml.compose(text, Loader=_Loader)
    if root is None:
        raise DigestError("an empty YAML file")
    out: dict[str, Any] = {}
    for fact, path in config.items():
        node = _yaml_node(root, str(path))
        value = yaml.load(yaml.serialize(node, Dumper=yaml.SafeDumper), Loader=_Loader)
        out[str(fact)] = {"line": node.start_mark.line + 1, "value": drop_descriptions(value)}
    return out


def extract_minikube_kubeadm_images(text: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """minikube's ``KubeadmImages`` table (generated from ``kubeadm config images list`` of each
    release): ``{release: {line, <image>: tag}}`` for ``images`` and the releases matching ``releases``."""
    images = [str(i) for i in config["images"]]
    releases = re.compile(str(config.get("releases", ".")))
    out: dict[str, Any] = {}
    for match in re.finditer(r'^\t\t"(v[^"]+)": \{\n(.*?)^\t\t\},?$', text, re.S | re.M):
        if not releases.search(match.group(1)):
            continue
        row = dict(re.findall(r'^\t\t\t"([^"]+)":\s+"([^"]+)",$', match.group(2), re.M))
        absent = [i for i in images if i not in row]
        if absent:
            raise DigestError(f"{match.group(1)}: no image {absent}")
        out[match.group(1)] = {"line": _line_of(text, match.start()), **{i: row[i] for i in images}}
    if not out:
        raise DigestError("no release in the table")
    return {"releases": out}


def extract_line_groups(text: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """``{fact: regex with groups}`` -> ``{fact: [[line, group 1, group 2, ...]]}``: what each
    matching line's groups capture, with its line number but not its text (:func:`extract_lines`
    keeps the text): for long runs of rows -- a page's tables -- whose other cells no test reads."""
    lines = text.split("\n")
    out: dict[str, Any] = {}
    for fact, pattern in config.items():
        regex = re.compile(str(pattern))
        if not regex.groups:
            raise DigestError(f"{fact}: {pattern!r} captures no group")
        out[str(fact)] = [[n, *m.groups()] for n, line in enumerate(lines, 1) if (m := regex.search(line))]
    return out


Extractor = Callable[[str, Any], dict[str, Any]]
#: facts extractors: the option key of a `facts` entry -> the function that reads the file.
EXTRACTORS: dict[str, Extractor] = {
    "lines": extract_lines,
    "line-groups": extract_line_groups,
    "markdown-tables": extract_markdown_tables,
    "systemd-unit": extract_systemd_unit,
    "template-refs": extract_template_refs,
    "go-strings": extract_go_strings,
    "yaml-paths": extract_yaml_paths,
    "minikube-kubeadm-images": extract_minikube_kubeadm_images,
}


def reduce_facts(text: str, options: Mapping[str, Any]) -> dict[str, Any]:
    if not options:
        raise DigestError(f"a facts entry names at least one extractor: {sorted(EXTRACTORS)}")
    out: dict[str, Any] = {"digest": "facts"}
    for name, config in options.items():
        try:
            out[str(name)] = EXTRACTORS[str(name)](text, config)
        except DigestError as error:
            raise DigestError(f"{name}: {error}") from None
    return out


@dataclass(frozen=True)
class Reducer:
    function: Callable[[str, Mapping[str, Any]], dict[str, Any]]
    options: frozenset[str]  # the option keys it takes


REDUCERS: dict[str, Reducer] = {
    "yaml-data": Reducer(reduce_yaml_data, frozenset({"select", "crd", "versions", "prune", "keep"})),
    "go-structs": Reducer(reduce_go_structs, frozenset({"select"})),
    "facts": Reducer(reduce_facts, frozenset(EXTRACTORS)),
}


# --- digests ----------------------------------------------------------------------------------------


def reduce(source: Source, data: bytes) -> dict[str, Any]:
    """The digest data of ``source``'s upstream bytes."""
    if source.digest not in REDUCERS:
        raise DigestError(f"{source.area}/{source.file}: digest {source.digest!r} is not one of {sorted(REDUCERS)}")
    reducer = REDUCERS[source.digest]
    unknown = sorted(set(source.options) - reducer.options)
    if unknown:
        raise DigestError(f"{source.area}/{source.file}: {source.digest} takes no option {unknown} "
                          f"(it takes {sorted(reducer.options)})")
    try:
        return reducer.function(data.decode("utf-8"), source.options)
    except DigestError as error:
        raise DigestError(f"{source.area}/{source.file} ({source.where()}): {error}") from None


def render(source: Source, data: bytes) -> str:
    """The digest file's text: a header naming the upstream file, then the data (YAML or JSON)."""
    digest = reduce(source, data)
    if source.file.endswith(".digest.json"):
        return json.dumps(digest, indent=1, ensure_ascii=False) + "\n"
    if not source.file.endswith(".digest.yaml"):
        raise DigestError(f"{source.area}/{source.file}: a digest's name ends in {' or '.join(DIGEST_SUFFIXES)}")
    body = yaml.dump(digest, Dumper=yaml.SafeDumper, sort_keys=False, allow_unicode=True,
                     default_flow_style=None, width=1 << 16)  # never folds a line of upstream text
    if yaml.load(body, Loader=_Loader) != digest:
        raise DigestError(f"{source.area}/{source.file}: the digest does not read back as written")
    return (
        f"# Digest of {source.where()} (sha256 {sha256(data)}),\n"
        f"# made by tools/upstream_digest.py ({source.digest}; options in SOURCES.yaml). Do not edit: regenerate with\n"
        f"# python -m tools.upstream_digest --area {source.area} --file {source.file} --write\n"
        + body
    )


def load_digest(path: Path) -> dict[str, Any]:
    """A committed digest's data."""
    text = path.read_text(encoding="utf-8")
    data = json.loads(text) if path.name.endswith(".json") else yaml.load(text, Loader=_Loader)
    if not isinstance(data, dict) or data.get("digest") not in REDUCERS:
        raise DigestError(f"{path} is not a digest made by tools/upstream_digest.py")
    return data


@dataclass(frozen=True)
class Outcome:
    source: Source
    status: str  # "ok", "written", "differs", "sha256", "skipped", "error"
    detail: str = ""


def process(source: Source, *, write: bool, explicit: Path | None = None) -> Outcome:
    """Regenerate one digest: compare it with the committed one, or write it (and the sha256)."""
    located = locate(source, explicit)
    if located is None:
        return Outcome(source, "skipped", f"no upstream bytes on this machine (looked at {tried(source)})")
    digest_sha = sha256(located.data)
    try:
        text = render(source, located.data)
    except DigestError as error:
        return Outcome(source, "error", str(error))
    if write:
        changed_sha = set_sha256(source.committed.parent / "SOURCES.yaml", source.file, digest_sha)
        old = source.committed.read_text(encoding="utf-8") if source.committed.is_file() else None
        source.committed.write_text(text, encoding="utf-8")
        if located.kind in ("given", "local"):  # keep the bytes for the next regeneration (outside the repository)
            target = cache_path(source)
            if not target.is_file() or target.read_bytes() != located.data:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(located.data)
        what = ("digest unchanged" if old == text else "digest written") + (", sha256 recorded" if changed_sha else "")
        return Outcome(source, "written" if old != text or changed_sha else "ok", f"{what} (from {located.origin})")
    if source.sha256 != digest_sha:
        return Outcome(source, "sha256", f"{located.origin} has sha256 {digest_sha}, SOURCES.yaml says {source.sha256}")
    committed = source.committed.read_text(encoding="utf-8") if source.committed.is_file() else ""
    if committed != text:
        return Outcome(source, "differs", f"regenerated from {located.origin}, the committed digest differs")
    return Outcome(source, "ok", f"from {located.origin}")


def digest_sources(area: str | None = None, file: str | None = None) -> Iterator[Source]:
    for name in [area] if area else areas():
        for source in load_sources(name).values():
            if source.is_digest and (file is None or source.file == file):
                yield source


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.upstream_digest", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--area", help="one area (tests/upstream/<area>); default: all")
    parser.add_argument("--file", help="one digest of the area (its `file` in SOURCES.yaml)")
    parser.add_argument("--from", dest="explicit", type=Path,
                        help="the upstream file's bytes (for an entry without a snapshot; needs --area and --file)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="write the digests and sha256s")
    mode.add_argument("--check", action="store_true", help="compare with the committed digests (default)")
    args = parser.parse_args(argv)
    if args.explicit is not None and not (args.area and args.file):
        parser.error("--from needs --area and --file")
    selected = list(digest_sources(args.area, args.file))
    if not selected:
        parser.error("no digest entry matches")
    failed = False
    for source in selected:
        outcome = process(source, write=args.write, explicit=args.explicit)
        failed |= outcome.status in ("differs", "sha256", "error")
        print(f"{source.area}/{source.file}: {outcome.status}: {outcome.detail}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
