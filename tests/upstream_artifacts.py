"""Upstream evidence the tests hold the program against (``tests/upstream/``).

Each area folder (``tests/upstream/<area>/``) holds, per upstream file (chart values, CRDs,
kubeadm's Go types, release data ...), a *digest* made by ``tools/upstream_digest.py`` from the
file's exact bytes, and a ``SOURCES.yaml`` entry with its provenance (see that tool's docstring):
the upstream files themselves are not committed (third-party files stay out of this repository)::

    files:
      - file: values.digest.yaml           # the digest, relative to the area folder
        repository: rook/rook              # upstream repository (or a registry: "debian:kubernetes")
        ref: v1.20.6                       # the tag / commit / version it was read at
        path: deploy/charts/rook-ceph/values.yaml   # the path inside that repository
        sha256: ...                        # of the upstream file's bytes
        digest: yaml-data                  # the reducer (yaml-data, go-structs, facts) + its options
        pin: ROOK_CHART_VERSION            # optional: the versions.py constant this ref must match
        pin_value: v1.20.6                 # optional: what the pin must contain (default: ref)
        note: why the file is here          # optional

``tests/test_upstream.py`` checks every folder (provenance, pins, and -- where the upstream bytes
are on the machine -- that each digest regenerates byte for byte). The helpers below are what the
area tests read: :func:`documents` / :func:`document` (yaml-data), :func:`facts`,
:func:`go_structs`, and the comparisons :func:`unknown_value_keys`, :func:`crd_schema`,
:func:`crd_problems`.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

from tools.upstream_digest import PRUNED, UPSTREAM, Source, load_digest, load_sources
from tools.upstream_digest import areas as _areas

__all__ = [
    "UPSTREAM", "Source", "areas", "sources", "artifact", "digest",
    "documents", "document", "facts", "go_structs", "unknown_value_keys", "crd_schema", "crd_problems",
    "debian_package_root",
]


def areas() -> list[str]:
    return _areas()


@cache
def sources(area: str) -> dict[str, Source]:
    """The SOURCES.yaml of one area, by file name."""
    return load_sources(area)


def artifact(area: str, file: str) -> Path:
    """The committed digest, asserting it is recorded in SOURCES.yaml."""
    if file not in sources(area):
        digests = sorted(f"{s.file} ({s.where()})" for s in sources(area).values() if s.is_digest)
        raise AssertionError(
            f"tests/upstream/{area}/{file} has no entry in tests/upstream/{area}/SOURCES.yaml"
            + (f"; the area's upstream files are digests now: {digests}" if digests else "")
        )
    return UPSTREAM / area / file


def digest(area: str, file: str, kind: str | None = None) -> dict[str, Any]:
    """A digest's data (a fresh copy: the tests may change it), checking its reducer."""
    source = sources(area).get(file)
    assert source is not None and source.is_digest, f"tests/upstream/{area}/{file} is not a digest listed in SOURCES.yaml"
    data = load_digest(artifact(area, file))
    assert data["digest"] == source.digest, (
        f"tests/upstream/{area}/{file} is a {data['digest']} digest, SOURCES.yaml says {source.digest}: regenerate it")
    assert kind is None or source.digest == kind, f"tests/upstream/{area}/{file} is a {source.digest} digest, not {kind}"
    return data


def documents(area: str, file: str) -> list[Any]:
    """The YAML documents of a yaml-data digest (descriptions and comments gone)."""
    return list(digest(area, file, "yaml-data")["documents"])


def document(area: str, file: str) -> Any:
    """The one YAML document of a yaml-data digest."""
    docs = documents(area, file)
    assert len(docs) == 1, f"tests/upstream/{area}/{file} holds {len(docs)} documents, not one"
    return docs[0]


def facts(area: str, file: str) -> dict[str, Any]:
    """A facts digest: ``{extractor: {fact: ...}}`` (see tools/upstream_digest.py EXTRACTORS)."""
    return digest(area, file, "facts")


def go_structs(area: str, file: str) -> dict[str, Any]:
    """A go-structs digest: ``{package, imports, named, structs}``."""
    return digest(area, file, "go-structs")


def unknown_value_keys(ours: Any, upstream: Any, path: str = "") -> list[str]:
    """Key paths in Helm ``ours`` values that the chart's default ``upstream`` values.yaml does
    not have (Helm ignores unknown keys silently, so a misspelt or removed key is a no-op).

    Dictionaries are compared key by key; a key whose upstream default is an empty map, ``null``
    or a list is a leaf (its content is free-form in the chart: tolerations, nodeSelector, ...).
    """
    if not isinstance(ours, dict):
        return []
    if not isinstance(upstream, dict) or not upstream:
        return []
    problems: list[str] = []
    for key, value in ours.items():
        where = f"{path}.{key}" if path else str(key)
        if key not in upstream:
            problems.append(where)
            continue
        problems += unknown_value_keys(value, upstream[key], where)
    return problems


def crd_schema(documents: list[Any], kind: str, version: str) -> dict[str, Any]:
    """The openAPIV3Schema of ``kind`` at ``version`` among CRD documents (a crds.yaml or its digest)."""
    for doc in documents:
        if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
            continue
        if doc["spec"]["names"]["kind"] != kind:
            continue
        for ver in doc["spec"]["versions"]:
            if ver["name"] == version:
                return ver["schema"]["openAPIV3Schema"]
    raise AssertionError(f"no CRD for kind {kind} version {version} in the upstream documents")


def crd_problems(obj: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    """Where a custom resource does not validate against its CRD's openAPI schema, including
    fields the schema does not define (the API server prunes those silently, or rejects them
    with ``kubectl --validate=strict``): unknown fields are errors here. A part of the schema the
    digest prunes (``prune`` in SOURCES.yaml) takes no value: setting one is reported as such."""
    import jsonschema

    strict = _strict(schema)
    validator = jsonschema.Draft7Validator(strict)
    problems: list[str] = []
    for error in validator.iter_errors(obj):
        where = ".".join(str(p) for p in error.absolute_path) or "<root>"
        if isinstance(error.schema, dict) and error.schema.get(PRUNED):
            problems.append(f"{where}: set, but the digest prunes this part of the CRD (`prune` in SOURCES.yaml): "
                            "un-prune it and regenerate the digest to check it")
        else:
            problems.append(f"{where}: {error.message}")
    return problems


def _strict(schema: Any) -> Any:
    """A copy of an openAPI v3 schema with ``additionalProperties: false`` wherever an object
    lists its properties and does not preserve unknown fields; Kubernetes-only keywords dropped."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    if schema.get(PRUNED):
        return {PRUNED: True, "not": {}}
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key.startswith("x-kubernetes-"):
            continue
        if key in ("properties", "patternProperties", "definitions"):
            out[key] = {k: _strict(v) for k, v in value.items()}
        else:
            out[key] = _strict(value)
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    return out


def debian_package_root(package: str) -> Path:
    """The unpacked root of Debian unstable's ``package`` for the real-binary tests (cached by
    tools/debian_packages.py; fetched when not yet). A fetch that fails fails the test, never skips:
    .ci/run fetches these packages before the tests."""
    import pytest

    from tools.debian_packages import DebianPackageError, cached_package, fetch_package

    root = cached_package(package)
    if root is None:
        try:
            root = fetch_package(package)
        except DebianPackageError as error:
            pytest.fail(
                f"cannot get Debian's {package} for the real-binary tests: {error}\n"
                f"Fetch it with `venv/bin/python -m tools.debian_packages {package}` (.ci/run does)."
            )
    return root
