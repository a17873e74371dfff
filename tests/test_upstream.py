"""The upstream evidence folders (tests/upstream/<area>/): digests only, each with its provenance
and the sha256 of the upstream bytes it was made from; every pin in components/versions.py agrees
with the upstream file it was checked against; and every digest is what tools/upstream_digest.py
makes from those bytes -- checked wherever the bytes are on the machine (a `fetch` snapshot, the
tool's cache, an entry's `local` path), skipped with the reason elsewhere (CI has no snapshots)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from components import versions
from tests.upstream_artifacts import UPSTREAM, areas, crd_problems, sources
from tools import upstream_digest as tool

DIGESTS = [s for area in areas() for s in sources(area).values() if s.is_digest]


def _id(source: tool.Source) -> str:
    return f"{source.area}/{source.file}"


def test_there_are_upstream_artifacts() -> None:
    assert areas(), "tests/upstream/ holds no area folders"
    assert DIGESTS, "tests/upstream/ holds no digest"


@pytest.mark.parametrize("area", areas())
def test_every_file_is_a_recorded_digest(area: str) -> None:
    """No upstream file is committed (third-party files stay out of this repository): an area holds its SOURCES.yaml and
    the digests it lists, nothing else."""
    recorded = sources(area)
    folder = UPSTREAM / area
    on_disk = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.name != "SOURCES.yaml"}
    unlisted = sorted(on_disk - set(recorded))
    missing = sorted(set(recorded) - on_disk)
    assert not unlisted, f"tests/upstream/{area}: files without an entry in SOURCES.yaml: {unlisted}"
    assert not missing, f"tests/upstream/{area}/SOURCES.yaml lists files that are not there: {missing}"
    for source in recorded.values():
        for field in ("repository", "ref", "path"):
            assert getattr(source, field), f"tests/upstream/{area}/SOURCES.yaml: {source.file} has no {field}"
    raw = sorted(s.file for s in recorded.values() if not s.is_digest or not s.file.endswith(tool.DIGEST_SUFFIXES))
    assert not raw, (
        f"tests/upstream/{area} holds upstream files, not digests: {raw}. Commit a digest instead: give the entry "
        f"a `digest` (one of {sorted(tool.REDUCERS)}), name it *.digest.yaml and run "
        f"`python -m tools.upstream_digest --area {area} --write`"
    )


@pytest.mark.parametrize("source", DIGESTS, ids=_id)
def test_every_digest_has_its_provenance(source: tool.Source) -> None:
    where = f"tests/upstream/{source.area}/SOURCES.yaml: {source.file}"
    assert source.sha256 and re.fullmatch(r"[0-9a-f]{64}", source.sha256), f"{where} has no sha256 of the upstream bytes"
    assert source.digest in tool.REDUCERS, f"{where}: digest {source.digest!r} is not one of {sorted(tool.REDUCERS)}"
    unknown = sorted(set(source.options) - tool.REDUCERS[source.digest].options)
    assert not unknown, f"{where}: unknown keys {unknown} (the {source.digest} options: {sorted(tool.REDUCERS[source.digest].options)})"
    data = tool.load_digest(source.committed)
    assert data["digest"] == source.digest, f"{where} is a {data['digest']} digest, SOURCES.yaml says {source.digest}"
    if source.file.endswith(".digest.yaml"):
        header = source.committed.read_text(encoding="utf-8").split("\n", 1)[0]
        assert header == f"# Digest of {source.where()} (sha256 {source.sha256}),", (
            f"{where}: the digest was made from other bytes or another file ({header}): regenerate it")


@pytest.mark.parametrize("area", areas())
def test_pins_match_their_artifacts(area: str) -> None:
    for source in sources(area).values():
        if not source.pin:
            continue
        assert hasattr(versions, source.pin), (
            f"tests/upstream/{area}/SOURCES.yaml: {source.file} names pin {source.pin}, "
            f"which components/versions.py does not define"
        )
        pinned = getattr(versions, source.pin)
        expected = source.pin_value or source.ref
        text = pinned if isinstance(pinned, str) else repr(pinned)
        assert expected in text, (
            f"components/versions.py {source.pin} = {pinned!r}, but the artifact {source.file} was read at "
            f"{source.where()} (expects {expected!r}): bump the artifact with the pin"
        )


@pytest.mark.parametrize("source", DIGESTS, ids=_id)
def test_digest_regenerates_from_the_upstream_bytes(source: tool.Source) -> None:
    located = tool.locate(source)
    if located is None:
        pytest.skip(f"the upstream file of {_id(source)} ({source.where()}) is not on this machine: looked at {tool.tried(source)}")
    digest = tool.sha256(located.data)
    assert digest == source.sha256, (
        f"{located.origin} has sha256 {digest}, tests/upstream/{source.area}/SOURCES.yaml records {source.sha256} "
        f"for {source.where()}"
    )
    assert tool.render(source, located.data) == source.committed.read_text(encoding="utf-8"), (
        f"tests/upstream/{source.area}/{source.file} is not what tools/upstream_digest.py makes of {source.where()}: "
        f"`python -m tools.upstream_digest --area {source.area} --file {source.file} --write` (then review the diff)"
    )


# --- the tool, on inputs of our own --------------------------------------------------------------

CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com, annotations: {controller-gen.kubebuilder.io/version: v0.16.0}}
spec:
  group: example.com
  names: {kind: Widget, plural: widgets}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    additionalPrinterColumns: [{name: Size, type: integer, jsonPath: .spec.size}]
    schema:
      openAPIV3Schema:
        description: A widget.
        type: object
        properties:
          apiVersion: {type: string}
          kind: {type: string}
          metadata: {type: object}
          spec:
            type: object
            description: Its spec.
            example: {size: 1}
            properties:
              description: {type: string, description: a field named description}
              size: {type: integer, minimum: 1, description: how big}
              affinity:
                type: object
                properties: {nodeAffinity: {type: object, properties: {x: {type: string}}}}
              items:
                type: array
                items: {type: object, properties: {name: {type: string}, big: {type: object}}}
            x-kubernetes-validations: [{rule: self.size > 0, message: positive}]
  - name: v1beta1
    served: false
    storage: false
---
apiVersion: v1
kind: ConfigMap
metadata: {name: other}
"""


def _source(digest: str, file: str = "x.digest.yaml", **options: object) -> tool.Source:
    return tool.Source(area="t", file=file, repository="o/n", ref="v1", path="p", digest=digest, options=options)


def test_yaml_data_reduces_a_crd_to_its_structural_schema() -> None:
    options = {"select": ["Widget"], "crd": "structural", "versions": ["v1"],
               "prune": {"Widget": ["spec.affinity.nodeAffinity", "spec.items.*.big"]}}
    docs = tool.reduce_yaml_data(CRD, options)["documents"]
    assert len(docs) == 1 and docs[0]["metadata"] == {"name": "widgets.example.com"}
    (version,) = docs[0]["spec"]["versions"]
    assert "additionalPrinterColumns" not in version
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["properties"]["description"] == {"type": "string"}, "a property named description is a field"
    assert spec["properties"]["size"] == {"type": "integer", "minimum": 1}
    assert "description" not in spec and "example" not in spec and spec["x-kubernetes-validations"]
    assert spec["properties"]["affinity"]["properties"]["nodeAffinity"] == {"type": "object", tool.PRUNED: True}
    schema = version["schema"]["openAPIV3Schema"]
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    assert crd_problems({**widget, "spec": {"size": 2, "items": [{"name": "a"}]}}, schema) == []
    problems = crd_problems({**widget, "spec": {"size": 0, "affinity": {"nodeAffinity": {}}, "items": [{"big": {}}]}}, schema)
    assert len(problems) == 3 and sum("prunes" in p for p in problems) == 2, problems
    with pytest.raises(tool.DigestError, match="no property 'nodeAffinit'"):
        tool.reduce_yaml_data(CRD, {**options, "prune": {"Widget": ["spec.affinity.nodeAffinit"]}})
    with pytest.raises(tool.DigestError, match="no document"):
        tool.reduce_yaml_data(CRD, {"select": ["Gadget"]})
    with pytest.raises(tool.DigestError, match="no version"):
        tool.reduce_yaml_data(CRD, {"crd": "structural", "versions": ["v2"]})


def test_yaml_data_keeps_the_listed_paths_only() -> None:
    values = "a: {b: 1, c: 2}\nlist: [{x: 1, y: 2}, {x: 3, y: 4}]\nd: 5\n"
    assert tool.reduce_yaml_data(values, {"keep": ["a.b", "list.*.x"]})["documents"] == [{"a": {"b": 1}, "list": [{"x": 1}, {"x": 3}]}]
    with pytest.raises(tool.DigestError, match="has no"):
        tool.reduce_yaml_data(values, {"keep": ["a.z"]})


def test_facts_extractors_record_their_lines() -> None:
    source = "int f()\n{\n  lock(Timeout);\n}\nint g()\n{\n  lock(0);\n}\n"
    assert tool.extract_lines(source, {"in_g": {"regex": r"lock\((\w+)\)", "within": "int g("}, "all": "lock"}) == {
        "in_g": [{"line": 7, "text": "lock(0);", "groups": ["0"]}],
        "all": [{"line": 3, "text": "lock(Timeout);"}, {"line": 7, "text": "lock(0);"}],
    }
    markdown = "# T\n\n### Support\n\ntext\n\n| A | B |\n|---|---|\n| 1 | x, y |\n| 2 | z |\n\nafter\n"
    assert tool.extract_markdown_tables(markdown, {"t": "### Support"}) == {"t": {
        "heading_line": 3, "header": ["A", "B"],
        "rows": [{"line": 9, "cells": ["1", "x, y"]}, {"line": 10, "cells": ["2", "z"]}]}}
    unit = "# License\n#\n\n[Unit]\nDescription=x\n\n[Service]\n# why\nType=oneshot\n"
    facts = tool.extract_systemd_unit(unit, {})
    assert facts["directives"] == [{"line": 5, "section": "Unit", "key": "Description", "value": "x"},
                                   {"line": 9, "section": "Service", "key": "Type", "value": "oneshot"}]
    assert facts["body_sha256"] == tool.sha256(b"[Unit]\nDescription=x\n\n[Service]\n# why\nType=oneshot\n")
    template = "{{- range $d := .Values.drivers }}\n{{ $d.a.b }} {{ $d.c }}\n{{ $d.a.b }}{{ $other.x }}\n"
    assert tool.extract_template_refs(template, {"d": "d"}) == {"d": {
        "variable": "$d", "bound_to": ".Values.drivers", "range": True, "line": 1, "refs": {"a.b": [2, 3], "c": [2]}}}
    go = 'var S = Spec{\n\tVersions: []string{`^5\\.4.*$`,\n\t\t"a\\"b"},\n}\n'
    assert tool.extract_go_strings(go, {"v": r"Versions:\s*\[\]string\{"}) == {
        "v": [{"line": 2, "value": "^5\\.4.*$"}, {"line": 3, "value": 'a"b'}]}
    assert tool.extract_yaml_paths("spec:\n  # note\n  image: x:1\n  mods:\n  - {name: a, description: d}\n",
                                   {"i": "spec.image", "m": "spec.mods"}) == {
        "i": {"line": 3, "value": "x:1"}, "m": {"line": 5, "value": [{"name": "a"}]}}


def test_a_digest_is_deterministic_and_names_its_upstream_file() -> None:
    source = _source("yaml-data", select=["Widget"], crd="structural")
    text = tool.render(source, CRD.encode())
    assert text == tool.render(source, CRD.encode())
    assert text.startswith(f"# Digest of o/n@v1:p (sha256 {tool.sha256(CRD.encode())}),\n")
    assert yaml.safe_load(text)["documents"][0]["kind"] == "CustomResourceDefinition"
    with pytest.raises(tool.DigestError, match="takes no option"):
        tool.render(_source("yaml-data", selct=["Widget"]), CRD.encode())
    with pytest.raises(tool.DigestError, match="ends in"):
        tool.render(_source("yaml-data", file="x.yaml"), CRD.encode())


def test_write_records_the_sha256_in_sources_yaml(tmp_path: Path) -> None:
    sources_file = tmp_path / "SOURCES.yaml"
    sources_file.write_text("# header\nfiles:\n  - file: a.digest.yaml  \n    repository: o/n\n    ref: v1\n    path: p\n"
                            "    digest: facts\n  - file: b.digest.yaml\n    path: q\n    sha256: old\n")
    assert tool.set_sha256(sources_file, "a.digest.yaml", "1" * 64)
    assert tool.set_sha256(sources_file, "b.digest.yaml", "2" * 64)
    assert not tool.set_sha256(sources_file, "b.digest.yaml", "2" * 64)
    assert sources_file.read_text() == (
        "# header\nfiles:\n  - file: a.digest.yaml  \n    repository: o/n\n    ref: v1\n    path: p\n"
        f"    sha256: {'1' * 64}\n    digest: facts\n  - file: b.digest.yaml\n    path: q\n    sha256: {'2' * 64}\n")


def test_upstream_bytes_are_found_where_the_tool_looks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBEADM_CLUSTER_MIRRORS", str(tmp_path / "mirrors"))
    monkeypatch.setenv("KUBEADM_CLUSTER_UPSTREAM_CACHE", str(tmp_path / "cache"))
    source = tool.Source(area="a", file="f.digest.yaml", repository="debian:pkg", ref="1.0", path="usr/x",
                         digest="facts", local=str(tmp_path / "local" / "x"))
    assert tool.locate(source) is None
    cached = tool.cache_path(source)
    assert cached == tmp_path / "cache" / "a" / "debian+pkg" / "1.0" / "usr" / "x"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"cache")
    assert tool.locate(source) == tool.Located(b"cache", str(cached), "cache")
    (tmp_path / "local").mkdir()
    (tmp_path / "local" / "x").write_bytes(b"local")
    assert tool.locate(source) == tool.Located(b"local", str(tmp_path / "local" / "x"), "local")
    explicit = tmp_path / "given"
    explicit.write_bytes(b"given")
    assert tool.locate(source, explicit) == tool.Located(b"given", str(explicit))
