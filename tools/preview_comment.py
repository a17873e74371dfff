"""The pull-request comment of a ``pulumi preview``: what a reviewer needs first, within GitHub's limit.

    PULUMI_ENABLE_STREAMING_JSON_PREVIEW=true pulumi preview --json --color never \\
        --stack dev --policy-pack policies > events.jsonl
    python -m tools.preview_comment events.jsonl --stack dev --exit-code $? --output comment.md

The input is the engine's event stream, one ``apitype.EngineEvent`` JSON object per line
(pulumi/pulumi sdk/go/common/apitype/events.go): what ``pulumi preview --json`` prints when
``PULUMI_ENABLE_STREAMING_JSON_PREVIEW`` is set (pkg/backend/display/display.go, ShowJSONEvents),
and what ``--event-log`` writes. The plain ``--json`` preview digest is refused: it drops every
policy event ("we don't handle policy events in JSON serialization", ShowPreviewDigest).

The comment, in this order:

1. a marker line (``<!-- kubeadm-cluster preview: <stack> -->``) the workflow finds it by, the
   result, and the note of a preview that skipped the Kubernetes diff;
2. the summary: how many resources are created, updated, replaced, deleted, unchanged;
3. the policy results: mandatory and advisory violations, grouped by policy;
4. the errors of a failed preview;
5. the scripts that changed: each node's copy of the scripts (a CopyToRemote) has a trigger with
   one ``# kc-script <name> sha256:<hash>`` line per script, and a standalone bundle carries the
   same line before each script it holds (components/bootstrap/scripts.py), so each changed
   script is named once with its old and new hash and the number of resources it reaches (a
   node's copy, a standalone step); then the step variables (``export NAME=...`` lines of the
   bundles, which name their scripts after ``# kc-run``) that changed;
6. the warnings, then one line per changed resource.

Parts 1 to 5 are bounded (long lists are cut to a few entries, never their counts), so they are
always there; only part 6 is cut to keep the comment within ``COMMENT_LIMIT``, with a line that
says how many changes are not shown and where the whole list is.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from components.config import SKIP_KUBERNETES_DIFF_ENV

#: pulumi/actions v7 (src/libs/pr.ts, MAX_CHARACTER_COMMENT) cuts a comment at 64,000 characters,
#: below GitHub's own limit for a comment body (65,536 characters, the API's "Body is too long"
#: answer). Counted here in UTF-8 bytes, which are never fewer than the characters.
COMMENT_LIMIT = 64_000
#: GitHub refuses a step summary over 1024k ("$GITHUB_STEP_SUMMARY upload aborted, supports
#: content up to a size of 1024k").
STEP_SUMMARY_LIMIT = 1_000_000

#: The first line of every comment; the workflow updates the comment that starts with it.
MARKER = "<!-- kubeadm-cluster preview: {stack} -->"
#: A line before each script in a node step's bundle (components/bootstrap/scripts.py).
SCRIPT_MARKER = re.compile(r"^# kc-script (?P<name>\S+) sha256:(?P<hash>[0-9a-f]{64})$", re.MULTILINE)
#: The line of a bundle that names the scripts it sources from the node's copy (its exports come first).
RUN_MARKER = re.compile(r"^# kc-run ", re.MULTILINE)
#: What the program warns when it skips the Kubernetes diff (components/config.py).
SKIP_NOTE_PREFIX = f"{SKIP_KUBERNETES_DIFF_ENV} is set"

#: The wire form of a secret (pulumi sdk/go/common/resource/properties.go SecretSig; the event
#: stream blinds the value: apitype.SecretV1 with ciphertext "[secret]").
SECRET_SIG = "4dabf18193072939515e22adb298388d"
#: The signature value that marks a secret under SECRET_SIG (an asset or archive has another).
SECRET_VALUE = "1b47061264138c4ac30d75fd1eb44270"
#: The wire form of a value unknown until the update (pulumi plugin.UnknownStringValue).
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"

#: Operations that change something, in the order a reviewer reads them (apitype.OpType values);
#: "same", reads, refreshes and the halves of a replacement (create-replacement, delete-replaced)
#: are not listed on their own.
CHANGE_OPS = ("replace", "delete", "create", "update", "import", "import-replacement", "read-replacement")
SYMBOLS = {"create": "+", "delete": "-", "update": "~", "replace": "+-", "import": "=", "import-replacement": "=>"}
SUMMARY_OPS = (("create", "to create"), ("update", "to update"), ("replace", "to replace"), ("delete", "to delete"))

MAX_POLICY_GROUPS = 20
MAX_POLICY_RESOURCES = 5
MAX_POLICY_MESSAGES = 3
MAX_MESSAGE = 300
MAX_ERRORS = 10
MAX_ERROR = 2_000
MAX_STDERR_LINES = 40
MAX_SCRIPT_ROWS = 40
MAX_VARIABLES = 30
MAX_WARNINGS = 10

_PULUMI_COLOR = re.compile(r"<\{%[^%]*%\}>")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class PreviewFormatError(ValueError):
    """The input is not the engine's event stream."""


@dataclass(frozen=True)
class Step:
    """One resource operation of the preview (a ``resourcePreEvent``)."""

    op: str
    urn: str
    type: str
    diffs: tuple[str, ...] = ()
    replace_keys: tuple[str, ...] = ()
    detailed_diff: Mapping[str, str] = field(default_factory=dict)
    old_inputs: Mapping[str, Any] | None = None
    new_inputs: Mapping[str, Any] | None = None

    @property
    def name(self) -> str:
        return self.urn.rsplit("::", 1)[-1]

    @cached_property
    def bundle_changes(self) -> list[InputChange]:
        """``input_changes(self)``, computed once (the comment and the step summary both need it)."""
        return input_changes(self)

    @cached_property
    def changed_keys(self) -> list[str]:
        """The top-level inputs that differ (the detailed diff's paths, else the diff keys)."""
        paths = self.detailed_diff or dict.fromkeys(self.diffs, "update")
        return sorted({re.split(r"[.\[]", path, maxsplit=1)[0] for path in paths})


@dataclass(frozen=True)
class Violation:
    """One policy violation (a ``policyEvent``)."""

    level: str
    policy: str
    pack: str
    urn: str
    message: str


@dataclass
class Preview:
    """Everything the comment shows, read from the event stream."""

    steps: list[Step] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)
    #: ``summaryEvent.resourceChanges``; None when the preview ended before its summary.
    changes: dict[str, int] | None = None
    policy_packs: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: ``summaryEvent.result`` ("succeeded", "failed", ...), "" without a summary.
    result: str = ""

    @property
    def kubernetes_skipped(self) -> bool:
        return any(w.startswith(SKIP_NOTE_PREFIX) for w in self.warnings)

    def changed_steps(self) -> list[Step]:
        return [s for s in self.steps if s.op in CHANGE_OPS and s.type != "pulumi:pulumi:Stack"]


def clean(text: str) -> str:
    """Text without Pulumi's colour directives and ANSI codes, trailing space trimmed."""
    return _ANSI.sub("", _PULUMI_COLOR.sub("", text)).rstrip()


def _natural(text: str) -> list[Any]:
    """A sort key that puts general-2 before general-10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def read_events(lines: Iterable[str]) -> list[dict[str, Any]]:
    """The JSON objects of an event stream. Lines that are not JSON objects (a message a plugin
    printed, a last line cut short) are skipped. Raises PreviewFormatError for the ``--json``
    preview digest, which carries no policy results."""
    events: list[dict[str, Any]] = []
    for number, line in enumerate(lines, 1):
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            if number == 1 and line.strip() == "{":
                raise PreviewFormatError(
                    "the input is one indented JSON document, not an event stream: the `pulumi preview --json` "
                    "digest, which has no policy results; set PULUMI_ENABLE_STREAMING_JSON_PREVIEW=true"
                ) from None
            continue
        if not isinstance(event, dict):
            continue
        if "steps" in event or "changeSummary" in event:
            raise PreviewFormatError(
                "this is the `pulumi preview --json` digest, which has no policy results: run the preview "
                "with PULUMI_ENABLE_STREAMING_JSON_PREVIEW=true for the event stream"
            )
        events.append(event)
    return events


def _state_inputs(state: Any) -> Mapping[str, Any] | None:
    if not isinstance(state, dict):
        return None
    inputs = state.get("inputs")
    return inputs if isinstance(inputs, dict) else {}


def parse_preview(events: Iterable[Mapping[str, Any]]) -> Preview:
    """The preview an event stream describes."""
    preview = Preview()
    seen: set[tuple[str, str]] = set()
    for event in events:
        if pre := event.get("resourcePreEvent"):
            meta = pre.get("metadata") or {}
            key = (str(meta.get("urn", "")), str(meta.get("op", "")))
            if key in seen:
                continue
            seen.add(key)
            detailed = meta.get("detailedDiff") or {}
            preview.steps.append(
                Step(
                    op=key[1],
                    urn=key[0],
                    type=str(meta.get("type", "")),
                    diffs=tuple(meta.get("diffs") or ()),
                    replace_keys=tuple(meta.get("keys") or ()),
                    detailed_diff={str(k): str((v or {}).get("diffKind", "update")) for k, v in detailed.items()},
                    old_inputs=_state_inputs(meta.get("old")),
                    new_inputs=_state_inputs(meta.get("new")),
                )
            )
        elif policy := event.get("policyEvent"):
            preview.violations.append(
                Violation(
                    level=str(policy.get("enforcementLevel", "")),
                    policy=str(policy.get("policyName", "")),
                    pack=str(policy.get("policyPackName", "")),
                    urn=str(policy.get("resourceUrn", "")),
                    message=clean(str(policy.get("message", ""))),
                )
            )
        elif diagnostic := event.get("diagnosticEvent"):
            if diagnostic.get("ephemeral"):
                continue
            severity = str(diagnostic.get("severity", ""))
            message = clean(str(diagnostic.get("message", "")))
            if severity == "error":
                preview.errors.append(message)
            elif severity == "warning":
                preview.warnings.append(message)
        elif summary := event.get("summaryEvent"):
            preview.changes = {str(k): int(v) for k, v in (summary.get("resourceChanges") or {}).items()}
            preview.policy_packs = {str(k): str(v) for k, v in (summary.get("PolicyPacks") or {}).items()}
            preview.result = str(summary.get("result", ""))
    return preview


# --- what changed inside the node steps' bundles -------------------------------------------------


def _is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SECRET_SIG) == SECRET_VALUE


def _strings(value: Any) -> Iterator[str]:
    """Every visible string in an input value (secrets are blinded in the event stream)."""
    if _is_secret(value):
        return
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _is_bundle(text: str) -> bool:
    return bool(SCRIPT_MARKER.search(text) or RUN_MARKER.search(text))


def bundles_of(key: str, text: str) -> list[str]:
    """The bundles an input carries: ``stdin`` is one (the remote command reads it), as are a
    copy's ``triggers`` (its list of scripts and hashes); a command line carries one as a quoted
    ``bash -c`` argument (the delete command of a leaving node)."""
    if not _is_bundle(text):
        return []
    if key in ("stdin", "triggers"):
        return [text]
    try:
        return [word for word in shlex.split(text) if _is_bundle(word)]
    except ValueError:
        return []


def script_hashes(bundles: Iterable[str]) -> dict[str, str]:
    """Script name -> content hash, from the markers in ``bundles``."""
    return {match["name"]: match["hash"] for text in bundles for match in SCRIPT_MARKER.finditer(text)}


def exported(bundle: str) -> dict[str, str]:
    """The ``export NAME=value`` assignments at the head of a bundle (before its first script)."""
    marks = [m.start() for m in (SCRIPT_MARKER.search(bundle), RUN_MARKER.search(bundle)) if m]
    head = bundle[: min(marks)] if marks else bundle
    try:
        words = shlex.split(head)
    except ValueError:
        return {}
    return {
        name: value
        for keyword, assignment in zip(words, words[1:])
        if keyword == "export" and "=" in assignment
        for name, value in [assignment.split("=", 1)]
    }


@dataclass(frozen=True)
class InputChange:
    """What changed inside the bundle one input (``stdin``, ``delete``...) of a step carries."""

    key: str
    scripts: dict[str, tuple[str | None, str | None]]  # name -> (old hash, new hash)
    variables: list[str]
    #: why the bundle cannot be compared: "secret", "unknown until the update", or "".
    hidden: str = ""


def input_changes(step: Step) -> list[InputChange]:
    """The bundle changes of an updated or replaced step, one per changed input carrying a bundle."""
    if step.op not in ("update", "replace") or step.old_inputs is None or step.new_inputs is None:
        return []
    changes = []
    for key in step.changed_keys:
        old, new = step.old_inputs.get(key), step.new_inputs.get(key)
        # stdin always carries the bundle; one secret input in it makes the whole stdin secret.
        if key == "stdin" and (_is_secret(old) or _is_secret(new)):
            changes.append(InputChange(key, {}, [], "secret"))
            continue
        if key == "stdin" and UNKNOWN in (old, new):
            changes.append(InputChange(key, {}, [], "unknown until the update"))
            continue
        if key == "triggers" and isinstance(old, list) and isinstance(new, list):
            # A copy's triggers: the script list is one of its strings.
            old, new = "\n".join(_strings(old)), "\n".join(_strings(new))
        if not isinstance(old, str) or not isinstance(new, str):
            continue
        before, after = bundles_of(key, old), bundles_of(key, new)
        if not before and not after:
            continue
        old_hashes, new_hashes = script_hashes(before), script_hashes(after)
        scripts = {
            name: (old_hashes.get(name), new_hashes.get(name))
            for name in sorted(set(old_hashes) | set(new_hashes), key=_natural)
            if old_hashes.get(name) != new_hashes.get(name)
        }
        old_vars = exported(before[0]) if before else {}
        new_vars = exported(after[0]) if after else {}
        variables = sorted((n for n in set(old_vars) | set(new_vars) if old_vars.get(n) != new_vars.get(n)), key=_natural)
        changes.append(InputChange(key, scripts, variables))
    return changes


@dataclass(frozen=True)
class StepChange:
    """What changed inside a step's bundles, all inputs together."""

    scripts: dict[str, tuple[str | None, str | None]]
    variables: list[str]
    hidden: str = ""


def step_change(step: Step) -> StepChange | None:
    """The script and variable changes of an updated or replaced step; None when it carries no
    changed bundle."""
    changes = step.bundle_changes
    if not changes:
        return None
    hidden = next((c.hidden for c in changes if c.hidden), "")
    if hidden:
        return StepChange({}, [], hidden)
    scripts = {name: pair for c in changes for name, pair in c.scripts.items()}
    variables = sorted({v for c in changes for v in c.variables}, key=_natural)
    return StepChange(scripts, variables)


# --- rendering -----------------------------------------------------------------------------------


def _text(value: str, limit: int = MAX_MESSAGE) -> str:
    """Free text for Markdown: one line, HTML and @mentions defused, at most ``limit`` characters."""
    one_line = " ".join(value.split())
    if len(one_line) > limit:
        one_line = one_line[: limit - 1] + "…"
    for raw, safe in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("@", "@\u200b"), ("```", "'''")):
        one_line = one_line.replace(raw, safe)
    return one_line


def _code(value: str) -> str:
    """Text for a fenced code block (a fence inside it would end the block)."""
    return value.replace("```", "'''")


def _short_hash(value: str | None) -> str:
    return f"`{value[:12]}`" if value else "—"


def summary_counts(preview: Preview) -> tuple[dict[str, int], bool]:
    """Counts per operation, and whether they come from the engine's summary (else from the steps)."""
    if preview.changes is not None:
        return dict(preview.changes), True
    counted = Counter(s.op for s in preview.steps if s.type != "pulumi:pulumi:Stack")
    return dict(counted), False


def render_summary(preview: Preview) -> list[str]:
    counts, from_engine = summary_counts(preview)
    parts = [f"**{counts.get(op, 0)}** {label}" for op, label in SUMMARY_OPS]
    parts += [f"**{n}** {op}" for op, n in sorted(counts.items()) if op not in dict(SUMMARY_OPS) and op != "same" and n]
    parts.append(f"{counts.get('same', 0)} unchanged")
    note = "" if from_engine else " _(counted from the steps seen: the preview ended before its summary)_"
    return ["**Summary:** " + " · ".join(parts) + note]


def _resource_name(urn: str) -> str:
    return urn.rsplit("::", 1)[-1] if urn else "the stack"


def _without(message: str, name: str) -> str:
    return message.replace(name, "<resource>") if name and name != "the stack" else message


def render_policies(preview: Preview) -> list[str]:
    mandatory = [v for v in preview.violations if v.level == "mandatory"]
    advisory = [v for v in preview.violations if v.level != "mandatory"]
    packs = ", ".join(f"`{_text(name, 80)}` {_text(version, 40)}" for name, version in sorted(preview.policy_packs.items()))
    lines = []
    if not preview.policy_packs and not preview.violations:
        lines.append(
            "**Policies:** :warning: **no policy pack ran** in this preview (run it with `--policy-pack policies`)"
        )
        return lines
    verdict = ":x:" if mandatory else (":warning:" if advisory else ":white_check_mark:")
    lines.append(
        f"**Policies** ({packs or 'policy pack'}): {verdict} **{len(mandatory)}** mandatory "
        f"violation{'s' if len(mandatory) != 1 else ''} · **{len(advisory)}** advisory"
    )
    groups: dict[tuple[str, str, str], list[Violation]] = defaultdict(list)
    for violation in mandatory + advisory:
        groups[(violation.level, violation.pack, violation.policy)].append(violation)
    for index, ((level, _pack, policy), members) in enumerate(groups.items()):
        if index == MAX_POLICY_GROUPS:
            rest = sum(len(m) for m in list(groups.values())[MAX_POLICY_GROUPS:])
            lines.append(f"- … {len(groups) - MAX_POLICY_GROUPS} more policies with {rest} violations")
            break
        names = sorted({_resource_name(v.urn) for v in members}, key=_natural)
        shown = ", ".join(f"`{_text(n, 80)}`" for n in names[:MAX_POLICY_RESOURCES])
        more = f" and {len(names) - MAX_POLICY_RESOURCES} more" if len(names) > MAX_POLICY_RESOURCES else ""
        lines.append(f"- **{_text(level, 20)}** `{_text(policy, 80)}` on {len(members)}: {shown}{more}")
        # One message per kind, not per resource: the resource's own name is left out.
        messages = list(dict.fromkeys(_without(v.message, _resource_name(v.urn)) for v in members))
        for message in messages[:MAX_POLICY_MESSAGES]:
            lines.append(f"  - {_text(message)}")
        if len(messages) > MAX_POLICY_MESSAGES:
            lines.append(f"  - … {len(messages) - MAX_POLICY_MESSAGES} more messages")
    return lines


def render_errors(preview: Preview, exit_code: int, stderr: str) -> list[str]:
    texts = [e for e in dict.fromkeys(preview.errors) if e.strip()]
    if not texts and exit_code != 0 and stderr.strip():
        tail = stderr.strip().splitlines()[-MAX_STDERR_LINES:]
        texts = [clean("\n".join(tail))]
    if not texts:
        return []
    lines = ["**Errors:**", "```text"]
    for text in texts[:MAX_ERRORS]:
        lines.append(_code(text if len(text) <= MAX_ERROR else text[: MAX_ERROR - 1] + "…"))
    if len(texts) > MAX_ERRORS:
        lines.append(f"… {len(texts) - MAX_ERRORS} more errors")
    lines.append("```")
    return lines


def render_scripts(preview: Preview) -> list[str]:
    changes = {id(s): step_change(s) for s in preview.changed_steps()}
    scripts: Counter[tuple[str, str | None, str | None]] = Counter()
    variables: Counter[str] = Counter()
    hidden: Counter[str] = Counter()
    for change in changes.values():
        if change is None:
            continue
        if change.hidden:
            hidden[change.hidden] += 1
            continue
        for name, (old, new) in change.scripts.items():
            scripts[(name, old, new)] += 1
        variables.update(change.variables)
    if not scripts and not variables and not hidden:
        return []
    lines: list[str] = []
    if scripts:
        lines += ["**Scripts changed:**", "", "| script | before | after | steps |", "|---|---|---|---:|"]
        rows = sorted(scripts.items(), key=lambda item: (_natural(item[0][0]), -item[1]))
        for (name, old, new), count in rows[:MAX_SCRIPT_ROWS]:
            lines.append(f"| `{_text(name, 80)}` | {_short_hash(old)} | {_short_hash(new)} | {count} |")
        if len(rows) > MAX_SCRIPT_ROWS:
            lines.append(f"| … {len(rows) - MAX_SCRIPT_ROWS} more | | | |")
        lines.append("")
    else:
        lines += ["**Scripts changed:** none.", ""]
    if variables:
        shown = ", ".join(f"`{_text(n, 60)}` ({c})" for n, c in sorted(variables.items(), key=lambda i: _natural(i[0]))[:MAX_VARIABLES])
        more = f" and {len(variables) - MAX_VARIABLES} more" if len(variables) > MAX_VARIABLES else ""
        lines += [f"**Step variables changed** (steps): {shown}{more}", ""]
    for why, count in sorted(hidden.items()):
        steps = f"{count} more step{'s' if count != 1 else ''}"
        if why == "secret":
            lines += [
                f"{steps} changed a secret stdin (one secret input, such as a join token, keeps the whole "
                "bundle secret): which scripts changed in them cannot be shown.",
                "",
            ]
        else:
            lines += [f"{steps} changed a stdin that is {why}.", ""]
    return lines[:-1] if lines and not lines[-1] else lines


def describe(step: Step) -> str:
    """What changed in one step, compactly: each changed input, with the scripts and variables
    that changed inside the bundle it carries."""
    inner = {c.key: c for c in step.bundle_changes}
    parts: list[str] = []
    for key in step.changed_keys:
        change = inner.get(key)
        if change is not None and change.hidden:
            parts.append(f"~{key} ({change.hidden})")
        elif change is not None:
            named = list(change.scripts) + change.variables
            parts.append(f"~{key}" + (f": {', '.join(named)}" if named else ""))
        else:
            kinds = {k for path, k in step.detailed_diff.items() if re.split(r"[.\[]", path, maxsplit=1)[0] == key}
            added, deleted = kinds and kinds <= {"add", "add-replace"}, kinds and kinds <= {"delete", "delete-replace"}
            parts.append(f"{'+' if added else '-' if deleted else '~'}{key}")
    text = f"[{'; '.join(parts)}]" if parts else ""
    if step.op == "replace" and step.replace_keys:
        text += f" replace on: {', '.join(step.replace_keys)}"
    return text.strip()


def resource_lines(preview: Preview, skipped_provider_note: bool) -> list[tuple[str, str]]:
    """One ``(group, line)`` per changed resource, replacements and deletions first; ``group``
    (operation and type) is printed once above the lines it heads."""
    order = {op: index for index, op in enumerate(CHANGE_OPS)}
    steps = sorted(preview.changed_steps(), key=lambda s: (order[s.op], s.type, _natural(s.name)))
    counts = Counter((s.op, s.type) for s in steps)
    entries = []
    for step in steps:
        detail = describe(step)
        if skipped_provider_note and step.type == "pulumi:providers:kubernetes":
            detail += " (the stand-in of a preview that skips the Kubernetes diff)"
        symbol = SYMBOLS.get(step.op, "?")
        group = f"# {symbol} {step.op} {step.type} ({counts[(step.op, step.type)]})"
        entries.append((_code(group), _code(f"{symbol} {step.name} {detail}".rstrip())))
    return entries


def render(
    preview: Preview,
    *,
    stack: str,
    exit_code: int = 0,
    stderr: str = "",
    commit: str = "",
    details_url: str = "",
    limit: int = COMMENT_LIMIT,
) -> str:
    """The comment's Markdown, at most ``limit`` UTF-8 bytes; only the per-resource lines are cut."""
    ok = exit_code == 0 and preview.result in ("", "succeeded")
    status = ":white_check_mark: succeeded" if ok else f":x: failed (exit code {exit_code})"
    about = [f"commit `{_text(commit, 40)}`"] if commit else []
    if details_url:
        about.append(f"[job summary and log]({details_url})")
    head = [MARKER.format(stack=stack), f"### `pulumi preview` of stack `{_text(stack, 60)}`: {status}"]
    if about:
        head.append(" · ".join(about))
    if preview.kubernetes_skipped:
        head += [
            "",
            "> [!NOTE]",
            "> **Kubernetes objects were not compared.** This runner is outside `adminCidrs`, so the API server "
            "is out of reach and the preview skipped the Kubernetes diff "
            f"(`{SKIP_KUBERNETES_DIFF_ENV}`): add-ons show as unchanged and the Kubernetes provider as updated, "
            "in this preview only. Their policies are checked by the offline plan check job; for their diff, "
            "run the preview on a runner inside `adminCidrs` (repository variable `PREVIEW_RUNNER`).",
        ]
    head += ["", *render_summary(preview), "", *render_policies(preview)]
    errors = render_errors(preview, exit_code, stderr)
    if errors:
        head += ["", *errors]
    scripts = render_scripts(preview)
    if scripts:
        head += ["", *scripts]

    tail_head: list[str] = []
    warnings = Counter(w for w in preview.warnings if not w.startswith(SKIP_NOTE_PREFIX))
    if warnings:
        tail_head += ["", f"**Warnings** ({sum(warnings.values())}):"]
        for message, count in warnings.most_common(MAX_WARNINGS):
            tail_head.append(f"- {_text(message)}" + (f" (×{count})" if count > 1 else ""))
        if len(warnings) > MAX_WARNINGS:
            tail_head.append(f"- … {len(warnings) - MAX_WARNINGS} more distinct warnings")
    entries = resource_lines(preview, preview.kubernetes_skipped)
    count = len(entries)
    opener = ["", f"<details><summary>{count} resource change{'s' if count != 1 else ''}</summary>", "", "```diff"]
    closer = ["```", "</details>"]

    def size(parts: Sequence[str]) -> int:
        return len("\n".join(parts).encode("utf-8")) + 1

    body = head + tail_head
    if size(body) > limit:  # the bounded head alone never gets here at COMMENT_LIMIT; a tiny limit might
        body = head
    if not entries:
        return "\n".join(body) + "\n"
    cut_note = (
        "_… {n} more resource changes not shown: the comment limit is {limit:,} bytes"
        + ("; the job summary lists every change._" if details_url else "._")
    )
    kept: list[str] = []
    shown, group = 0, ""
    budget = limit - size(body + opener + closer + ["", cut_note.format(n=count, limit=limit)])
    for header, line in entries:
        new_lines = ([header] if header != group else []) + [line]
        cost = sum(len(text.encode("utf-8")) + 1 for text in new_lines)
        if cost > budget:
            break
        kept += new_lines
        shown, group, budget = shown + 1, header, budget - cost
    result = body + opener + kept + closer
    if shown < count:
        result += ["", cut_note.format(n=count - shown, limit=limit)]
    return "\n".join(result) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.preview_comment", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("events", type=Path, help="the event stream (pulumi preview --json, streaming)")
    parser.add_argument("--stack", required=True)
    parser.add_argument("--exit-code", type=int, default=0, help="pulumi preview's exit code")
    parser.add_argument("--stderr", type=Path, help="pulumi preview's stderr (shown when it failed without an error event)")
    parser.add_argument("--commit", default="", help="the commit previewed")
    parser.add_argument("--details-url", default="", help="where the job summary and log are")
    parser.add_argument("--output", type=Path, help="the comment (default: stdout)")
    parser.add_argument("--step-summary", type=Path, help="append the uncut version here ($GITHUB_STEP_SUMMARY)")
    args = parser.parse_args(argv)
    try:
        events = read_events(args.events.read_text(encoding="utf-8", errors="replace").splitlines())
    except (OSError, PreviewFormatError) as error:
        print(f"preview_comment: {args.events}: {error}", file=sys.stderr)
        return 2
    preview = parse_preview(events)
    stderr = args.stderr.read_text(encoding="utf-8", errors="replace") if args.stderr and args.stderr.exists() else ""
    comment = render(
        preview, stack=args.stack, exit_code=args.exit_code, stderr=stderr, commit=args.commit, details_url=args.details_url
    )
    if args.output:
        args.output.write_text(comment, encoding="utf-8")
    else:
        sys.stdout.write(comment)
    if args.step_summary:
        with args.step_summary.open("a", encoding="utf-8") as summary:
            summary.write(
                render(
                    preview, stack=args.stack, exit_code=args.exit_code, stderr=stderr, commit=args.commit,
                    limit=STEP_SUMMARY_LIMIT,
                )
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
