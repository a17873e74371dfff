"""Offline plan check: every committed stack, under the mock engine, through the policy pack.

    venv/bin/python -m tools.plan_check                 # every Pulumi.<stack>.yaml
    venv/bin/python -m tools.plan_check dev             # one stack (or its file: Pulumi.dev.yaml, as given)
    venv/bin/python -m tools.plan_check --policy-config prod-policy.json prod

No cloud credentials and no Pulumi CLI: the real program runs under Pulumi's mocks
(``tools.mock_engine``), every resource it registers is sent to the CrossGuard pack in
``policies/`` over the Analyzer gRPC protocol the engine uses (``tools.policy_client``),
and a readable plan summary is printed, the verdict on its last line. Exits 1 when a stack's
config is invalid or any mandatory policy is violated; advisories are printed and do not fail.
A stack file that is not valid YAML and a policy config that is missing, not JSON or weaker
than the pack's minimums fail the same way: one message naming the file, then the verdict.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from tools.mock_engine import (
    InputFileError,
    Plan,
    config_from_stack_file,
    engine_config,
    iter_stack_files,
    read_input_file,
    run_program,
    stack_file,
)
from tools.policy_client import PolicyPackProcess, Violation, analyze_resources

#: Stack config keys that Pulumi keeps encrypted; a committed stack file holds them as ciphertext.
SECRET_PLACEHOLDER = "<secret>"
#: An encrypted part of an object (``pulumi config set --secret --path mirrors.x``): every such
#: field is a mirror URL today; ``kubernetesPackages`` needs its ``{minor}``.
SECRET_URL_PLACEHOLDER = "https://encrypted.invalid/"


def _resources(plan: Plan) -> list[dict[str, Any]]:
    return [
        {
            "type": r.type,
            "name": r.name,
            "urn": r.urn,
            "props": r.raw_inputs,
            "parent": r.parent,
            "dependencies": r.dependencies,
            "additionalSecretOutputs": r.additional_secret_outputs,
            **({"provider": r.provider} if r.provider else {}),
        }
        for r in plan.resources
        if r.custom
    ]


def _is_secure(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"secure"}


def _without_ciphertext(value: Any, field: str = "") -> tuple[Any, bool]:
    """``value`` with each nested ``{secure: ...}`` replaced by a placeholder URL; and whether it had one."""
    if _is_secure(value):
        return SECRET_URL_PLACEHOLDER + ("{minor}/" if field == "kubernetesPackages" else ""), True
    if isinstance(value, dict):
        pairs = {key: _without_ciphertext(item, str(key)) for key, item in value.items()}
        return {key: pair[0] for key, pair in pairs.items()}, any(pair[1] for pair in pairs.values())
    if isinstance(value, list):
        items = [_without_ciphertext(item, field) for item in value]
        return [item[0] for item in items], any(item[1] for item in items)
    return value, False


def _stack_config(path: Path) -> tuple[dict[str, Any], list[str]]:
    """The stack file's config; encrypted values (``{secure: ...}``) become placeholders, and
    their keys are secret keys (as the CLI reports an object holding an encrypted part)."""
    config = config_from_stack_file(path)
    secrets = []
    for key, value in list(config.items()):
        if _is_secure(value):
            config[key] = SECRET_PLACEHOLDER
        else:
            config[key], encrypted = _without_ciphertext(value)
            if not encrypted:
                continue
        secrets.append(key if ":" in key else f"kubeadm-cluster:{key}")
    return config, secrets


def stack_argument(argument: str) -> tuple[str, Path]:
    """A stack named on the command line: ``dev`` (its committed ``Pulumi.dev.yaml``), or a stack
    file ``Pulumi.dev.yaml`` (a path too), used as given: a file that is not there is reported,
    never swapped for the committed stack of the same name."""
    name = Path(argument).name
    if name.startswith("Pulumi.") and name.endswith(".yml") and len(name) > len("Pulumi..yml"):
        # The CLI names a stack's file after the project file's extension (pulumi/pulumi
        # sdk/go/common/workspace/paths.go, ProjectStackPath): Pulumi.yaml here, so it never
        # reads a Pulumi.<stack>.yml, and checking one would prove nothing.
        stack = name[len("Pulumi.") : -len(".yml")]
        raise ValueError(
            f"{argument!r}: Pulumi reads this project's stack settings only from Pulumi.<stack>.yaml "
            f"(the project file is Pulumi.yaml), never .yml: rename it to Pulumi.{stack}.yaml, "
            f"or give the stack name ({stack})"
        )
    if name == "Pulumi.yaml":
        raise ValueError(f"{argument!r} is the project file; give a stack name (dev) or a stack file (Pulumi.dev.yaml)")
    if name.startswith("Pulumi.") and name.endswith(".yaml"):
        return name[len("Pulumi.") : -len(".yaml")], Path(argument)
    if name.endswith((".yaml", ".yml")) or "/" in argument:
        raise ValueError(
            f"{argument!r} is neither a stack name (dev) nor a stack file (Pulumi.dev.yaml)"
        )
    return argument, stack_file(argument)


def _bullet(text: str, indent: str = "  ") -> str:
    """``text`` as one bullet of the report: its further lines (a policy message's details, a
    multi-line warning) indented under the first, so no line starts at column 0."""
    first, *rest = text.strip().splitlines() or [""]
    return "\n".join([indent + first, *(f"{indent}    {line.rstrip()}" for line in rest if line.strip())])


def summarize(stack: str, plan: Plan, violations: list[Violation]) -> str:
    lines = [f"== stack {stack}: {len(plan.resources)} resources =="]
    counts = Counter(r.type for r in plan.resources)
    for type_, count in sorted(counts.items()):
        lines.append(f"  {count:4d}  {type_}")
    nodes = plan.outputs.get("nodes") or {}
    if nodes:
        lines.append("  nodes:")
        for name, info in nodes.items():
            lines.append(f"    {name:<28} {info.get('role', ''):<14} pool={info.get('pool', '')}")
    if plan.secret_outputs:
        lines.append(f"  secret outputs: {', '.join(sorted(plan.secret_outputs))}")
    for warning in plan.warnings:
        lines.append(_bullet(f"warning: {warning}"))
    mandatory = [v for v in violations if v.mandatory]
    advisory = [v for v in violations if not v.mandatory]
    for v in mandatory:
        lines.append(_bullet(f"MANDATORY {v.policy} on {v.resource or v.urn or 'the stack'}: {v.message}"))
    for v in advisory:
        lines.append(_bullet(f"advisory  {v.policy} on {v.resource or v.urn or 'the stack'}: {v.message}"))
    verdict = "FAIL" if mandatory else "ok"
    lines.append(f"  policy pack: {len(mandatory)} mandatory, {len(advisory)} advisory -> {verdict}")
    return "\n".join(lines)


def check_stack(stack: str, path: Path, policy_config: dict[str, Any] | None = None) -> tuple[bool, str]:
    try:
        config, secret_keys = _stack_config(path)
    except InputFileError as error:
        return False, f"== stack {stack}: invalid ==\ninvalid stack file: {error}"
    plan = run_program(config, stack=stack, secret_keys=secret_keys)
    if plan.error is not None:
        return False, f"== stack {stack}: invalid ==\n{plan.error}"
    # The engine hands the pack the stack's config too (secret values stay out of it here).
    pack_config = {k: v for k, v in engine_config(config).items() if k not in secret_keys}
    violations = analyze_resources(_resources(plan), policy_config, dry_run=True, stack=stack, stack_config=pack_config)
    return not any(v.mandatory for v in violations), summarize(stack, plan, violations)


def read_policy_config(path: Path) -> dict[str, Any]:
    """A ``--policy-pack-config`` file, checked as the engine would before any stack runs: JSON, an
    object of policy name -> enforcement level or settings, and no weaker than the pack allows
    (the pack's config schema: its minimums). An :class:`InputFileError` names the file."""
    text = read_input_file(path)
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise InputFileError(f"{path}, line {error.lineno}, column {error.colno}: not valid JSON: {error.msg}") from None
    if not isinstance(config, dict):
        raise InputFileError(f"{path}: a policy pack config is a JSON object (policy name -> settings), found {type(config).__name__}")
    wrong = [name for name, value in config.items() if not isinstance(value, (str, dict))]
    if wrong:
        raise InputFileError(f"{path}: {', '.join(wrong)}: expected an enforcement level (text) or an object of settings")
    try:
        with PolicyPackProcess() as pack:
            pack.engine_config(config)
    except ValueError as error:
        raise InputFileError(f"{path}: {str(error).removeprefix('invalid policy pack config: ')}") from None
    return config


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.plan_check", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--policy-config", type=Path, help="a policy-pack config JSON file (as --policy-pack-config)")
    parser.add_argument("stacks", nargs="*", help="stack names or stack files (default: every committed Pulumi.<stack>.yaml)")
    args = parser.parse_args(argv)
    policy_config = None
    if args.policy_config:
        try:
            policy_config = read_policy_config(args.policy_config)
        except InputFileError as error:
            # stdout, like every report: the verdict stays the last line.
            print(f"invalid policy config: {error}\nplan check: FAILED", flush=True)
            return 1
    try:
        stacks = [stack_argument(name) for name in args.stacks] if args.stacks else list(iter_stack_files())
    except ValueError as error:
        parser.error(str(error))
    if not stacks:
        print("no Pulumi.<stack>.yaml found\nplan check: FAILED", flush=True)
        return 1
    ok = True
    for name, path in stacks:
        if not path.exists():
            # stdout, like every report: the verdict below stays the last line.
            missing = f"no {path.name} (a stack file next to Pulumi.yaml)" if path == stack_file(name) else f"no such file: {path}"
            print(f"== stack {name}: {missing} ==", flush=True)
            ok = False
            continue
        passed, report = check_stack(name, path, policy_config)
        print(report, flush=True)
        ok = ok and passed
    print("plan check:", "passed" if ok else "FAILED", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
