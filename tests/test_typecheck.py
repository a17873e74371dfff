"""Type-check the program against the SDKs' own annotations (a wrong argument name is a bug)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_pyright_finds_no_errors() -> None:
    pyright = shutil.which("pyright", path=str(Path(sys.executable).parent)) or shutil.which("pyright")
    assert pyright, "pyright is not installed (pip install -r requirements-dev.txt)"
    result = subprocess.run([pyright, "--outputjson"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    import json

    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"pyright did not run:\n{result.stdout}\n{result.stderr}") from None
    errors = [d for d in report["generalDiagnostics"] if d["severity"] == "error"]
    listing = "\n".join(
        f"{d['file']}:{d['range']['start']['line'] + 1}: {d['message']}" for d in errors
    )
    assert not errors, f"pyright found {len(errors)} type errors:\n{listing}"
    assert report["summary"]["filesAnalyzed"] > 10, report["summary"]
