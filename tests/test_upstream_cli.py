"""The node scripts' command lines against the programs they run (tests/upstream/cli).

Every kubeadm, kubectl and etcdctl invocation in components/bootstrap/scripts/*.sh is read out of
the scripts (``invocations``: logical lines, command positions outside quotes, the words after
shell quote removal; a function that wraps a tool with ``"$@"`` -- kc_etcdctl, kc_node_get -- is
expanded at each of its calls) and held against upstream:

* ``EXPECTED`` lists them per script and must equal what the scripts contain, so a new command
  line (or flag) fails here until it is listed -- and checked by the tests below.
* Upstream is read from digests (tests/upstream/cli, made by tools/upstream_digest.py from the
  upstream files' bytes): the lines of each file the checks need, with their line numbers.
* kubeadm: each subcommand has a reference page generated from the kubeadm binary, and each flag
  is on that page; with ``--config`` only the flags kubeadm's ValidateMixedArguments allows;
  mint-token.sh names its kubeconfig with kubeadm's own --kubeconfig (kubeadm ignores $KUBECONFIG).
* kubectl: each subcommand and flag is in the ``--help`` of Debian's kubectl 1.36.4 (the digests
  of that output; the real binary must still print it byte for byte), and the real binary parses
  each command line as the script writes it (cobra parses every flag before it honours
  ``--help``: an unknown flag or a bad value fails). The jsonpath expressions the scripts read
  are run by the real kubectl on objects of the kinds they read.
* etcdctl (in kubeadm's etcd 3.6.8 image): each subcommand and flag is defined in etcd v3.6.8's
  etcdctl sources, and remove-control-plane.sh parses the ``-w simple`` output as its printers
  write it (including unstarted members and learners).
* The kubectl lines the program prints for users (the dashboard's access instructions) parse with
  the real kubectl too.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shlex
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tests.test_lifecycle_scripts import CP_IPS, _add_node, _state, _write, box  # noqa: F401  (box: fixture)
from tests.test_scripts import SCRIPTS, Sandbox, _explain, sandbox  # noqa: F401  (sandbox: fixture)
from tests.upstream_artifacts import debian_package_root, facts, sources
from tools import upstream_digest as tool

TOOLS = ("kubeadm", "kubectl", "etcdctl")
AREA = "cli"

# --- reading the command lines out of the scripts ------------------------------------------------


@dataclass(frozen=True)
class Invocation:
    """One command line of a tool in a script: its words after quote removal (``$VAR`` kept)."""

    script: str
    line: int
    words: tuple[str, ...]

    def __str__(self) -> str:
        return " ".join(self.words)

    def where(self) -> str:
        return f"components/bootstrap/scripts/{self.script}:{self.line}"


_HEREDOC = re.compile(r"<<-?\s*(['\"]?)(\w+)\1")  # applied where the masked line has a << operator
# Where a command starts: line start, after ; & | ( ! $( `then`/`do`/`else`, an array literal,
# or the command word of kc_retry ATTEMPTS.
_COMMAND_POSITION = r"(?:^|[;&|(!]|\$\(|\bthen\b|\bdo\b|\belse\b|=\(|\bkc_retry\s+\S+)\s*"
# Where the command ends: a control operator, a redirection, or the ")" closing its $( or (.
_COMMAND_END = re.compile(r"\|\|?|&&|;|(?<!\S)\d*[<>]|\)")


def _logical_lines(script: str) -> Iterator[tuple[int, str]]:
    """(first line number, line) with backslash continuations joined, here-document bodies and
    whole-line comments left out."""
    lines = script.splitlines()
    i = 0
    while i < len(lines):
        start = i
        line = lines[i]
        while line.endswith("\\") and i + 1 < len(lines):
            i += 1
            line = line[:-1] + " " + lines[i].strip()
        i += 1
        operator = re.search(r"(?<!<)<<(?!<)", _mask(line))
        heredoc = _HEREDOC.match(line, operator.start()) if operator else None
        if heredoc:
            while i < len(lines) and lines[i].strip() != heredoc.group(2):
                i += 1
            i += 1
        if not line.lstrip().startswith("#"):
            yield start + 1, line


def _mask(line: str) -> str:
    """``line`` with the inside of every quoted string replaced by ``_`` (positions kept) and a
    trailing comment blanked: what is left is shell syntax."""
    out: list[str] = []
    quote = ""
    i = 0
    while i < len(line):
        c = line[i]
        if quote:
            if c == "\\" and quote == '"' and i + 1 < len(line):
                out += "__"
                i += 2
                continue
            if c == quote:
                quote = ""
                out.append(c)
            else:
                out.append("_")
        elif c in "'\"":
            quote = c
            out.append(c)
        elif c == "\\" and i + 1 < len(line):
            out += "__"
            i += 2
            continue
        elif c == "#" and (i == 0 or line[i - 1] in " \t"):
            out.append(" " * (len(line) - i))
            break
        else:
            out.append(c)
        i += 1
    return "".join(out)


def _words_from(line: str, masked: str, start: int) -> list[str]:
    """The words of the simple command starting at ``start``, up to its control operator, its
    first redirection or the ``)`` that closes the ``$(``/``(`` around it."""
    end = len(line)
    for match in _COMMAND_END.finditer(masked, start):
        inside = masked[start:match.start()]
        if match.group() == ")" and inside.count("(") > inside.count(")"):
            continue
        end = match.start()
        break
    return shlex.split(line[start:end])


def _functions(script: str) -> dict[str, str]:
    """Top-level shell functions: name -> body (the lines up to the closing ``}`` in column 0)."""
    found: dict[str, str] = {}
    for match in re.finditer(r"^(\w+)\(\) \{\n(.*?)^\}", script, re.M | re.S):
        found[match.group(1)] = match.group(2)
    return found


def _raw_invocations(script: str, names: tuple[str, ...]) -> Iterator[tuple[int, list[str]]]:
    position = re.compile(_COMMAND_POSITION + r"(" + "|".join(map(re.escape, names)) + r")(?=\s|$)")
    for number, line in _logical_lines(script):
        masked = _mask(line)
        for match in position.finditer(masked):
            yield number, _words_from(line, masked, match.start(1))


def invocations(path: Path) -> list[Invocation]:
    """Every kubeadm/kubectl/etcdctl command line of one script, in order."""
    return invocations_in(path.name, path.read_text(encoding="utf-8"))


def invocations_in(name: str, script: str) -> list[Invocation]:
    # Wrappers: a function whose body runs a tool with "$@" (its calls are what counts).
    wrappers: dict[str, list[str]] = {}
    for function, body in _functions(script).items():
        for _, words in _raw_invocations(body, TOOLS):
            if "$@" in words:
                wrappers[function] = words[: words.index("$@")]
    found: list[Invocation] = []
    for number, words in _raw_invocations(script, TOOLS + tuple(wrappers)):
        if "$@" in words:
            continue  # a wrapper's template: its calls are listed instead
        if words[0] in wrappers:
            words = wrappers[words[0]] + words[1:]
        found.append(Invocation(name, number, tuple(words)))
        if words[0] == "kubectl" and "--" in words and words[words.index("--") + 1] == "etcdctl":
            found.append(Invocation(name, number, tuple(words[words.index("--") + 1:])))
    return found


def all_invocations() -> list[Invocation]:
    return [inv for path in sorted(SCRIPTS.glob("*.sh")) for inv in invocations(path)]


#: What the scripts run, script by script (shell words after quote removal). Adding a command
#: line or a flag to a script fails test_the_listed_invocations_are_the_scripts_own until it is
#: added here; the tests below then hold it against upstream.
_ETCDCTL = (
    "etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt "
    "--cert=/etc/kubernetes/pki/etcd/server.crt --key=/etc/kubernetes/pki/etcd/server.key"
)
_EXEC = "kubectl -n kube-system exec etcd-$FIRST_NODE_NAME --"
EXPECTED: dict[str, list[str]] = {
    "certs-renew.sh": [
        "kubeadm certs renew all",
        "kubectl --kubeconfig $KC_K8S/admin.conf get --raw=/readyz",
    ],
    # (its etcdctl runs through `crictl exec`: tests/test_etcd_backup.py parses that line.)
    "etcd-restore.sh": [
        "kubeadm config images list --config $KC_RESTORE_CONFIG",
        "kubeadm reset -f",
        "kubeadm init --config $config --ignore-preflight-errors=DirAvailable--var-lib-etcd --skip-token-print",
        "kubectl --kubeconfig $KC_ROOT/etc/kubernetes/admin.conf get --raw=/readyz",
    ],
    "kubeadm-init.sh": [
        "kubeadm config validate --config $config",
        "kubeadm init --config $config --skip-token-print",
        "kubeadm init --config $config --upload-certs --skip-token-print --skip-certificate-key-print",
        "kubeadm reset -f",
        "kubectl --kubeconfig $admin get --raw=/readyz",
    ],
    "kubeadm-join.sh": [
        "kubeadm join --config $1",
        "kubeadm reset -f",
    ],
    "lib.sh": [
        "kubectl --kubeconfig $1 -n kube-system get configmap kubeadm-config -o jsonpath={.data.ClusterConfiguration}",
        "kubectl --kubeconfig $1 --request-timeout=10s -n kube-system get configmap $KC_SETTINGS_CONFIGMAP --ignore-not-found -o jsonpath={.data.drainTimeout}",
    ],
    "mint-token.sh": [
        "kubeadm init phase upload-certs --config $1 --upload-certs --skip-certificate-key-print --kubeconfig $KUBECONFIG",
        'kubectl get node $NODE_NAME --ignore-not-found -o jsonpath={.status.conditions[?(@.type=="Ready")].status}',
        "kubectl -n kube-system delete secret bootstrap-token-${TOKEN%%.*} --ignore-not-found",
        "kubeadm token create --config $1 --kubeconfig $KUBECONFIG",
        "kubeadm token create --kubeconfig $KUBECONFIG --ttl $TOKEN_TTL --description kubeadm-cluster join of $NODE_NAME",
    ],
    "remove-control-plane.sh": [
        f"{_EXEC} {_ETCDCTL} member list -w simple",
        f"{_ETCDCTL} member list -w simple",
        f"{_EXEC} {_ETCDCTL} endpoint health --cluster -w simple",
        f"{_ETCDCTL} endpoint health --cluster -w simple",
        "kubectl get --raw=/readyz",
        "kubectl get node $NODE_NAME --ignore-not-found -o name",
        "kubectl drain $NODE_NAME --ignore-daemonsets --delete-emptydir-data --force --timeout=$DRAIN_TIMEOUT",
        f"{_EXEC} {_ETCDCTL} member remove $REMOVE_MEMBER_ID",
        f"{_ETCDCTL} member remove $REMOVE_MEMBER_ID",
        "kubectl delete node $NODE_NAME --ignore-not-found",
    ],
    "resize-node.sh": [
        "kubectl get node $NODE_NAME -o jsonpath={.metadata.annotations.kubeadm-cluster\\.io/machine-type}",
        "kubectl get node $NODE_NAME -o jsonpath={.status.capacity.cpu} {.status.capacity.memory}",
        "kubectl annotate --overwrite node $NODE_NAME $KC_TYPE_ANNOTATION=$MACHINE_TYPE",
        "kubectl get node $holder --ignore-not-found -o name",
        'kubectl get node $NODE_NAME -o jsonpath={.status.conditions[?(@.type=="Ready")].status}',
        "kubectl get node $NODE_NAME --ignore-not-found -o name",
        "kubectl get node $NODE_NAME -o jsonpath={.spec.unschedulable}",
        "kubectl get node $NODE_NAME -o jsonpath={.metadata.annotations.kubeadm-cluster\\.io/resizing-to}",
        "kubectl annotate --overwrite node $NODE_NAME $KC_RESIZING_ANNOTATION=$MACHINE_TYPE",
        "kubectl drain $NODE_NAME --ignore-daemonsets --delete-emptydir-data --timeout=$DRAIN_TIMEOUT",
        "kubectl get node $NODE_NAME -o jsonpath={.metadata.annotations.kubeadm-cluster\\.io/resizing-to}",
        "kubectl uncordon $NODE_NAME",
        "kubectl annotate node $NODE_NAME $KC_RESIZING_ANNOTATION-",
        "kubectl annotate --overwrite node $NODE_NAME $KC_TYPE_ANNOTATION=$MACHINE_TYPE",
    ],
    "remove-node.sh": [
        "kubectl get --raw=/readyz",
        "kubectl get node $NODE_NAME --ignore-not-found -o name",
        "kubectl drain $NODE_NAME --ignore-daemonsets --delete-emptydir-data --force --timeout=$DRAIN_TIMEOUT",
        "kubectl delete node $NODE_NAME --ignore-not-found --wait=true",
    ],
    "upgrade-drain.sh": [
        "kubectl get node $NODE_NAME -o jsonpath={.status.nodeInfo.kubeletVersion}",
        "kubectl get node $NODE_NAME -o jsonpath={.status.nodeInfo.kubeletVersion}",
        "kubectl get node $NODE_NAME --ignore-not-found -o name",
        "kubectl annotate --overwrite node $NODE_NAME $KC_UPGRADE_ANNOTATION=v$K8S_VERSION",
        "kubectl drain $NODE_NAME --ignore-daemonsets --delete-emptydir-data --timeout=$DRAIN_TIMEOUT",
        "kubectl get node $NODE_NAME -o jsonpath={.metadata.annotations.kubeadm-cluster\\.io/upgrading-to}",
        "kubectl uncordon $NODE_NAME",
        "kubectl annotate node $NODE_NAME $KC_UPGRADE_ANNOTATION-",
    ],
    "upgrade-node.sh": [
        "kubectl --kubeconfig $KC_ADMIN_CONF get node $NODE_NAME -o jsonpath={.status.nodeInfo.kubeletVersion}",
        "kubeadm upgrade apply v$K8S_VERSION --yes",
        "kubeadm upgrade node",
        "kubectl --kubeconfig $KC_ADMIN_CONF drain $NODE_NAME --ignore-daemonsets --delete-emptydir-data --timeout=$DRAIN_TIMEOUT",
        "kubectl --kubeconfig $KC_ADMIN_CONF uncordon $NODE_NAME",
    ],
}


def test_the_invocation_reader_finds_command_positions_only() -> None:
    """The reader itself: commands after kc_retry, in $( ), arrays and wrappers; not the words
    in messages, comments, here-documents or package lists."""
    script = (
        "# kubectl get nodes (a comment)\n"
        'kc_log "kubeadm upgrade apply (in a message)"\n'
        "kc_pkg_version kubeadm; apt-mark hold kubelet kubeadm kubectl\n"
        "w() {\n  kc_retry 5 kubectl get node \"$N\" \"$@\" </dev/null\n}\n"
        'out=$(kc_retry 3 kubeadm token create --ttl "$T" \\\n  --description "for $N") || exit 1\n'
        "init=(kubeadm init --config \"$c\" --skip-token-print)\n"
        "w -o name >&2\n"
        "cat <<EOF\nkubectl delete node x\nEOF\n"
        "if ! kubectl drain \"$N\" --timeout=\"$D\" 2>&1; then :; fi\n"
    )
    found = [str(inv) for inv in invocations_in("check.sh", script)]
    assert found == [
        "kubeadm token create --ttl $T --description for $N",
        "kubeadm init --config $c --skip-token-print",
        "kubectl get node $N -o name",
        "kubectl drain $N --timeout=$D",
    ], found


def test_the_listed_invocations_are_the_scripts_own() -> None:
    found: dict[str, list[str]] = {}
    for inv in all_invocations():
        found.setdefault(inv.script, []).append(str(inv))
    for script in sorted(set(found) | set(EXPECTED)):
        ours, listed = found.get(script, []), EXPECTED.get(script, [])
        new = [c for c in ours if c not in listed]
        gone = [c for c in listed if c not in ours]
        assert ours == listed, (
            f"components/bootstrap/scripts/{script} runs other kubeadm/kubectl/etcdctl command lines than "
            f"EXPECTED in tests/test_upstream_cli.py lists (update the list, in script order; the tests then "
            f"check the new ones against upstream):\n  in the script, not listed: {new}\n  listed, not in the "
            f"script: {gone}" + ("" if new or gone else f"\n  order in the script: {ours}")
        )


# --- the upstream command trees ------------------------------------------------------------------


@dataclass(frozen=True)
class Flag:
    name: str
    short: str | None
    takes_value: bool


@dataclass
class Command:
    """A (sub)command: its own flags (with the inherited ones where the source lists them),
    flags it passes to its subcommands, and its subcommands."""

    path: tuple[str, ...]
    documented: bool = False
    flags: dict[str, Flag] = field(default_factory=dict)
    persistent: dict[str, Flag] = field(default_factory=dict)
    children: dict[str, Command] = field(default_factory=dict)
    source: str = ""

    def child(self, name: str) -> Command:
        if name not in self.children:
            self.children[name] = Command(self.path + (name,))
        return self.children[name]

    def descendants_flags(self) -> Iterator[Flag]:
        yield from self.flags.values()
        yield from self.persistent.values()
        for c in self.children.values():
            yield from c.descendants_flags()


def _add(flags: dict[str, Flag], flag: Flag) -> None:
    flags["--" + flag.name] = flag
    if flag.short:
        flags["-" + flag.short] = flag


def _digest(file: str) -> str:
    """How a message names a digest: its path and the upstream file it was made from."""
    return f"tests/upstream/{AREA}/{file} ({sources(AREA)[file].where()})"


def _lines(file: str, fact: str) -> list[dict[str, Any]]:
    """One ``lines`` fact of a cli digest: the upstream lines (``line``, ``text``, ``groups``)."""
    return list(facts(AREA, file)["lines"][fact])


def _groups(file: str, fact: str) -> list[list[str | None]]:
    return [list(row["groups"]) for row in _lines(file, fact)]


def _digests(pattern: str) -> dict[str, re.Match[str]]:
    """The cli digests whose file name matches ``pattern``."""
    return {name: match for name in sorted(sources(AREA)) if (match := re.fullmatch(pattern, name))}


@cache
def kubeadm_tree() -> Command:
    """kubeadm's commands from its generated reference pages (own and inherited flags): each
    page's usage line and its flag rows (``-s, --name type``)."""
    root = Command(("kubeadm",))
    for name in _digests(r"kubeadm_[\w-]+\.digest\.yaml"):
        usage = _groups(name, "usage")
        assert len(usage) == 1, f"{_digest(name)}: {len(usage)} usage lines, not one: {usage}"
        words = str(usage[0][0]).split()
        assert words[0] == "kubeadm", f"{_digest(name)}: usage {words}"
        node = root
        for word in words[1:]:
            node = node.child(word)
        node.documented, node.source = True, _digest(name)
        rows = _groups(name, "flags")
        assert rows, f"{_digest(name)}: no flag rows"
        for short, flag, value_type in rows:
            _add(node.flags, Flag(str(flag), short, takes_value=value_type is not None))
    return root


def _kubectl_flags(file: str) -> dict[str, Flag]:
    """A --help's flag rows (``-s, --name=default:``): only a true/false default takes no value."""
    flags: dict[str, Flag] = {}
    for short, flag, default in _groups(file, "flags"):
        _add(flags, Flag(str(flag), short, takes_value=default not in ("true", "false")))
    return flags


def _kubectl_usage(file: str) -> str | None:
    """The command a --help's usage line (the line after ``Usage:``) names."""
    (heading,) = _lines(file, "usage_heading")
    usage = [row["groups"][0] for row in _lines(file, "usage") if row["line"] == heading["line"] + 1]
    return usage[0] if usage else None


@cache
def kubectl_tree() -> Command:
    """kubectl's commands from the real binary's --help (global flags: `kubectl options`)."""
    root = Command(("kubectl",), documented=True, source=_digest("kubectl-options.digest.yaml"))
    root.persistent = _kubectl_flags("kubectl-options.digest.yaml")
    _add(root.persistent, Flag("help", "h", takes_value=False))
    for name, match in _digests(r"kubectl-([\w-]+)\.digest\.yaml").items():
        if match.group(1) == "options":
            continue
        usage = _kubectl_usage(name)
        assert usage == match.group(1), f"{_digest(name)}: the usage line names `kubectl {usage}`"
        node = root.child(match.group(1))
        node.documented, node.source = True, _digest(name)
        node.flags = _kubectl_flags(name)
    return root


#: etcdctl's command sources (the commands the scripts run; the others are not kept).
ETCDCTL_COMMANDS = ("etcdctl-member_command.digest.yaml", "etcdctl-ep_command.digest.yaml",
                    "etcdctl-snapshot_command.digest.yaml")


def _etcd_flag(groups: list[str | None]) -> Flag:
    """A flag from a pflag call: XxxVarP(&v, "name", "s", default, usage) or XxxVar(&v, "name",
    default, usage) -- groups (receiver, Persistent, Xxx, P, name, s); only Bool flags take no value."""
    _, _, kind, p, name, short = groups
    return Flag(str(name), (short or None) if p == "P" else None, takes_value=kind != "Bool")


@dataclass
class _GoFunc:
    """What one NewXCommand function of etcdctl's sources holds (from the digests' lines)."""

    where: str
    uses: list[str] = field(default_factory=list)
    flags: list[list[str | None]] = field(default_factory=list)
    children: list[str] = field(default_factory=list)


def _etcd_functions() -> dict[str, _GoFunc]:
    """Each fact line of the command digests, given to the function it is in (the last `func`
    line above it)."""
    funcs: dict[str, _GoFunc] = {}
    for name in ETCDCTL_COMMANDS:
        starts = sorted((row["line"], str(row["groups"][0])) for row in _lines(name, "funcs"))
        for fname in (f for _, f in starts):
            funcs[fname] = _GoFunc(f"etcd {sources(AREA)[name].ref} {fname}")

        def owner(line: int, starts: list[tuple[int, str]] = starts, name: str = name) -> _GoFunc:
            above = [f for start, f in starts if start <= line]
            assert above, f"{_digest(name)}: line {line} is above every func"
            return funcs[above[-1]]

        for row in _lines(name, "uses"):
            owner(row["line"]).uses.append(str(row["groups"][0]))
        for row in _lines(name, "flags"):
            owner(row["line"]).flags.append(list(row["groups"]))
        for row in _lines(name, "subcommands"):
            owner(row["line"]).children.append(str(row["groups"][0]))
    return funcs


@cache
def etcdctl_tree() -> Command:
    """etcdctl's commands from etcd v3.6.8's sources: each NewXCommand function's Use, flags and
    AddCommand children; the root's persistent flags and commands from ctl.go."""
    funcs = _etcd_functions()
    ctl = "etcdctl-ctl.digest.yaml"
    root = Command(("etcdctl",), documented=True, source=_digest(ctl))
    for groups in _groups(ctl, "flags"):
        _add(root.persistent, _etcd_flag(groups))
    _add(root.persistent, Flag("help", "h", takes_value=False))

    def build(parent: Command, fname: str) -> None:
        func = funcs.get(fname)
        if func is None:
            return  # a command whose source file is not kept (not used by the scripts)
        assert len(func.uses) == 1, f"{func.where}: Use {func.uses}"
        node = parent.child(func.uses[0])
        node.documented, node.source = True, func.where
        for groups in func.flags:
            _add(node.persistent if groups[1] else node.flags, _etcd_flag(groups))
        for child in func.children:
            build(node, child)

    (add,) = _lines(ctl, "add_command")
    commands = _lines(ctl, "subcommands")
    assert [row["line"] for row in commands] == list(range(add["line"] + 1, add["line"] + 1 + len(commands))), (
        f"{_digest(ctl)}: the command.NewXCommand() lines are not the rootCmd.AddCommand( block's")
    for row in commands:
        build(root, str(row["groups"][0]))
    return root


def _tree(tool: str) -> Command:
    return {"kubeadm": kubeadm_tree, "kubectl": kubectl_tree, "etcdctl": etcdctl_tree}[tool]()


# --- parsing a command line like cobra does ------------------------------------------------------


@dataclass
class Parsed:
    command: Command
    flags: list[tuple[Flag, str | None]]
    positionals: list[str]
    problems: list[str]


def _visible(chain: list[Command]) -> dict[str, Flag]:
    """The flags a command accepts: its own and every ancestor's persistent flags."""
    flags: dict[str, Flag] = {}
    for node in chain:
        flags.update(node.persistent)
    flags.update(chain[-1].flags)
    return flags


def _flag_name(word: str) -> str:
    return word.split("=", 1)[0] if word.startswith("--") else word[:2]


def parse(words: tuple[str, ...]) -> Parsed:
    """Finds the subcommand (flags may come before it, as cobra allows), then checks every flag
    against the flags that subcommand accepts. Words after ``--`` are the remote command's."""
    chain = [_tree(words[0])]
    args = list(words[1:])
    if "--" in args:
        args = args[: args.index("--")]
    # Pass 1: the subcommand path. A flag without "=" takes the next word when it takes a value
    # for this command or, unknown here, for a command below (as cobra's stripFlags does).
    path_words: set[int] = set()
    positional_seen = False
    i = 0
    while i < len(args):
        word = args[i]
        if word.startswith("-") and len(word) > 1:
            name = _flag_name(word)
            flag = _visible(chain).get(name) or next(
                (f for f in chain[-1].descendants_flags() if name in ("--" + f.name, "-" + (f.short or ""))), None)
            attached = "=" in word or (not word.startswith("--") and len(word) > 2)
            i += 2 if flag and flag.takes_value and not attached else 1
            continue
        if not positional_seen and word in chain[-1].children:
            chain.append(chain[-1].children[word])
            path_words.add(i)
        else:
            positional_seen = True
        i += 1
    # Pass 2: every flag against the command found.
    visible = _visible(chain)
    parsed = Parsed(chain[-1], [], [], [])
    if not chain[-1].documented:
        parsed.problems.append(f"no upstream command `{' '.join(chain[-1].path)}` (no such page, --help or source)")
    i = 0
    while i < len(args):
        word = args[i]
        if not (word.startswith("-") and len(word) > 1):
            if i not in path_words:
                parsed.positionals.append(word)
            i += 1
            continue
        name = _flag_name(word)
        if word.startswith("--"):
            has_value, value = "=" in word, word.partition("=")[2]
        else:
            has_value, value = len(word) > 2, word[2:]
        flag = visible.get(name)
        if flag is None:
            parsed.problems.append(f"unknown flag {name} for `{' '.join(parsed.command.path)}` ({parsed.command.source})")
            i += 1
            continue
        if flag.takes_value and not has_value:
            if i + 1 >= len(args):
                parsed.problems.append(f"flag {name} needs a value")
            else:
                value, has_value = args[i + 1], True
                i += 1
        elif not flag.takes_value and has_value and value not in ("true", "false"):
            parsed.problems.append(f"boolean flag {name} given the value {value!r}")
        parsed.flags.append((flag, value if has_value else None))
        i += 1
    return parsed


def _ids(invs: list[Invocation]) -> list[str]:
    return [f"{inv.script}:{inv.line}:{inv.words[0]}" for inv in invs]


ALL = all_invocations()


@pytest.mark.parametrize("inv", ALL, ids=_ids(ALL))
def test_every_subcommand_and_flag_exists_upstream(inv: Invocation) -> None:
    parsed = parse(inv.words)
    assert not parsed.problems, (
        f"{inv.where()}: `{inv}` does not match upstream {inv.words[0]}:\n  " + "\n  ".join(parsed.problems)
    )


def test_every_tool_and_subcommand_the_scripts_use_is_covered() -> None:
    used = {(inv.words[0], parse(inv.words).command.path) for inv in ALL}
    assert {tool for tool, _ in used} == set(TOOLS), used
    paths = {" ".join(path) for _, path in used}
    for expected in ("kubeadm init", "kubeadm init phase upload-certs", "kubeadm token create", "kubeadm join",
                     "kubeadm reset", "kubeadm upgrade apply", "kubeadm upgrade node", "kubeadm config validate",
                     "kubectl drain", "kubectl uncordon", "kubectl annotate", "kubectl get", "kubectl delete",
                     "kubectl exec", "etcdctl member list", "etcdctl member remove", "etcdctl endpoint health"):
        assert expected in paths, f"{expected} is no longer parsed out of the scripts: {sorted(paths)}"


# --- kubeadm ------------------------------------------------------------------------------------


VALIDATION = "kubeadm-validation.digest.yaml"
CONSTANTS = "kubeadm-options-constant.digest.yaml"
CHANGELOG = "CHANGELOG-1.36.digest.yaml"


@cache
def _mixable_with_config() -> tuple[frozenset[str], str]:
    """The flags kubeadm accepts next to --config (isAllowedFlag: its kubeadmcmdoptions constants,
    one a line, and its string literals) and the prefix it allows."""
    validation = facts(AREA, VALIDATION)
    mixed = [row["text"] for row in validation["lines"]["mixed_arguments"]]
    assert any("isAllowedFlag(f.Name)" in t for t in mixed) and any("can not mix '--config'" in t for t in mixed), (
        f"{_digest(VALIDATION)}: ValidateMixedArguments no longer refuses flags isAllowedFlag refuses: {mixed}")
    constants = {str(name): str(flag) for name, flag in _groups(CONSTANTS, "constants")}
    names: set[str] = set()
    for row in validation["lines"]["allowed_constants"]:
        assert row["text"].count("kubeadmcmdoptions.") == 1, f"{_digest(VALIDATION)}: line {row['line']} names two constants"
        names.add(constants[row["groups"][0]])
    names |= {str(literal["value"]) for literal in validation["go-strings"]["allowed_literals"]}
    prefix = _groups(VALIDATION, "allowed_prefix")
    assert len(prefix) == 1, f"{_digest(VALIDATION)}: isAllowedFlag's prefix rule: {prefix}"
    return frozenset(names), str(prefix[0][0])


def test_the_config_mixing_rule_is_read_from_kubeadm() -> None:
    allowed, prefix = _mixable_with_config()
    assert {"config", "upload-certs", "yes", "dry-run"} <= allowed and prefix == "skip-", (allowed, prefix)
    assert "certificate-key" not in allowed, "kubeadm now lets --certificate-key be mixed with --config"


KUBEADM = [inv for inv in ALL if inv.words[0] == "kubeadm"]


@pytest.mark.parametrize("inv", KUBEADM, ids=_ids(KUBEADM))
def test_kubeadm_with_a_config_file_mixes_in_only_flags_kubeadm_allows(inv: Invocation) -> None:
    parsed = parse(inv.words)
    names = [flag.name for flag, _ in parsed.flags]
    if "config" not in names:
        return
    allowed, prefix = _mixable_with_config()
    refused = [n for n in names if n not in allowed and not n.startswith(prefix)]
    assert not refused, (
        f"{inv.where()}: `{inv}` mixes --config with {refused}: kubeadm refuses it (\"can not mix '--config' "
        f"with arguments {refused}\", ValidateMixedArguments, {_digest(VALIDATION)})"
    )


def test_kubeadm_upgrade_apply_is_given_the_target_version() -> None:
    applies = [inv for inv in KUBEADM if parse(inv.words).command.path == ("kubeadm", "upgrade", "apply")]
    assert applies, "no kubeadm upgrade apply in the scripts"
    for inv in applies:
        parsed = parse(inv.words)
        assert parsed.positionals == ["v$K8S_VERSION"], f"{inv.where()}: `{inv}`: version argument {parsed.positionals}"
        assert any(flag.name == "yes" for flag, _ in parsed.flags), f"{inv.where()}: `{inv}` would prompt for confirmation"


def test_mint_token_names_its_kubeconfig_with_kubeadms_own_flag() -> None:
    """kubeadm reads its own --kubeconfig (default /etc/kubernetes/admin.conf), never $KUBECONFIG:
    mint-token.sh passes ``--kubeconfig "$KUBECONFIG"`` to `kubeadm init phase upload-certs` and
    `kubeadm token create`. Both pages list the flag (token create inherits it from `kubeadm
    token`), and isAllowedFlag lets it stand next to upload-certs' --config."""
    minted = {parse(inv.words).command.path: inv for inv in KUBEADM if inv.script == "mint-token.sh"}
    assert set(minted) == {("kubeadm", "init", "phase", "upload-certs"), ("kubeadm", "token", "create")}, sorted(minted)
    allowed, _ = _mixable_with_config()
    for path, inv in sorted(minted.items()):
        parsed = parse(inv.words)
        assert not parsed.problems, f"{inv.where()}: `{inv}`: {parsed.problems}"
        assert "--kubeconfig" in parsed.command.flags, f"{parsed.command.source} lists no --kubeconfig for `{' '.join(path)}`"
        given = {flag.name: value for flag, value in parsed.flags}
        assert given.get("kubeconfig") == "$KUBECONFIG", (
            f"{inv.where()}: `{inv}` does not name the kubeconfig: kubeadm would read /etc/kubernetes/admin.conf")
        if "config" in given:
            assert "kubeconfig" in allowed, f"kubeadm refuses --kubeconfig next to --config ({_digest(VALIDATION)})"


def _release_of(line: int) -> str:
    """The release (`# v1.36.x` heading of the changelog) a changelog line is under."""
    above = [(row["line"], str(row["groups"][0])) for row in _lines(CHANGELOG, "releases") if row["line"] < line]
    assert above, f"{_digest(CHANGELOG)}: line {line} is above every release heading"
    return max(above)[1]


#: Changelog lines that name a flag the scripts pass without changing it: (flag, pull request).
CHANGELOG_MENTIONS_ONLY = {
    # kubernetes#136273 lengthens the `kubeadm upgrade` CreateJob preflight check and names
    # --ignore-preflight-errors as the way to skip it; the flag is unchanged (etcd-restore.sh
    # passes it to `kubeadm init` for DirAvailable--var-lib-etcd).
    ("ignore-preflight-errors", "136273"),
}


def _pull_request(text: str) -> str:
    """The kubernetes pull request a changelog line links (its number), or ""."""
    match = re.search(r"\[#(\d+)\]", text)
    return match.group(1) if match else ""


def test_the_kubeadm_pages_are_of_the_pinned_minor_or_its_predecessor() -> None:
    """The pages are the newest the index holds; what kubeadm changed in 1.36 (every line of the
    1.36 changelog that names kubeadm, v1.36.0-alpha.1 .. v1.36.3) touches no flag the scripts
    pass, except to add one."""
    releases = [row["groups"][0] for row in _lines(CHANGELOG, "releases")]
    assert "v1.36.0" in releases and "v1.36.3" in releases, f"{_digest(CHANGELOG)}: releases {releases}"
    validate = kubeadm_tree().children["config"].children["validate"]
    added = [row for row in _lines(CHANGELOG, "kubeadm") if "--allow-deprecated-api" in row["text"]]
    assert "--allow-deprecated-api" in validate.flags and added, (
        f"{validate.source} should be the 1.36 page (it has --allow-deprecated-api, new in 1.36.0: {added})")
    gate = _groups("kubeadm_init.digest.yaml", "node_local_cri_socket_gate")
    assert gate == [["BETA"]], f"kubeadm_init.digest.yaml should be the 1.35 page (NodeLocalCRISocket BETA): {gate}"
    used = {flag.name for inv in KUBEADM for flag, _ in parse(inv.words).flags}
    for row in _lines(CHANGELOG, "kubeadm"):
        for mentioned in re.findall(r"--([a-z][\w-]*)", row["text"]):
            if (mentioned, _pull_request(row["text"])) in CHANGELOG_MENTIONS_ONLY:
                continue
            assert mentioned not in used or "Added" in row["text"], (
                f"kubeadm {_release_of(row['line'])} changed --{mentioned}, which a script passes "
                f"({_digest(CHANGELOG)} line {row['line']}): {row['text']}")


# --- etcdctl ------------------------------------------------------------------------------------

ETCDCTL = [inv for inv in ALL if inv.words[0] == "etcdctl"]
ETCD_SOURCES = ("etcdctl-ctl.digest.yaml", *ETCDCTL_COMMANDS, "etcdctl-printer_simple.digest.yaml",
                "etcdctl-printer.digest.yaml", "etcd-Dockerfile.digest.yaml")


def test_etcdctl_is_checked_at_the_etcd_kubeadm_deploys() -> None:
    """kubeadm 1.36 runs etcd 3.6.8 (its changelog; minikube's table of `kubeadm config images
    list` for every 1.36 release in tests/upstream/kubeadm), whose image has etcdctl on PATH."""
    updates = {_release_of(row["line"]): row["groups"][0] for row in _lines(CHANGELOG, "etcd_images")}
    released = {release: version for release, version in updates.items() if re.fullmatch(r"v1\.36\.\d+", release)}
    assert released == {"v1.36.0": "v3.6.8"}, f"etcd image updates in 1.36 releases ({_digest(CHANGELOG)}): {released}"
    releases = facts("kubeadm", "minikube-kubeadm-images.digest.yaml")["minikube-kubeadm-images"]["releases"]
    etcd_136 = {str(row["etcd"]).rsplit("-", 1)[0] for release, row in releases.items()
                if re.fullmatch(r"v1\.36\.\d+", release)}
    assert etcd_136 == {"3.6.8"}, f"kubeadm 1.36 releases deploy etcd {etcd_136}: bump the etcdctl sources"
    for name in ETCD_SOURCES:
        assert sources(AREA)[name].ref == "v3.6.8", name
    # Kubernetes' own etcd image and etcd's release image (which it now publishes) alike.
    copied = [row["text"] for row in _lines("etcd-image-Dockerfile.digest.yaml", "copy")]
    assert "COPY etcd* etcdctl* /usr/local/bin/" in copied, copied
    added = [row["text"] for row in _lines("etcd-Dockerfile.digest.yaml", "copy")]
    assert "ADD etcdctl /usr/local/bin/" in added, added


@pytest.mark.parametrize("inv", ETCDCTL, ids=_ids(ETCDCTL))
def test_etcdctl_output_format_is_one_etcdctl_has(inv: Invocation) -> None:
    formats = _groups("etcdctl-ctl.digest.yaml", "write_out_formats")
    assert len(formats) == 1, f"etcdctl's --write-out help ({_digest('etcdctl-ctl.digest.yaml')}): {formats}"
    allowed = str(formats[0][0]).split(", ")
    for flag, value in parse(inv.words).flags:
        if flag.name == "write-out":
            assert value in allowed, f"{inv.where()}: `{inv}`: -w {value} is not one of {allowed}"


def test_etcdctl_reaches_the_local_member_with_kubeadms_certificates() -> None:
    """The etcd static pod listens on https://127.0.0.1:2379 and mounts /etc/kubernetes/pki/etcd;
    kubeadm's etcd server certificate has the client-auth usage, so it serves as etcdctl's."""
    for inv in ETCDCTL:
        flags = {flag.name: value for flag, value in parse(inv.words).flags}
        assert flags.get("endpoints") == "https://127.0.0.1:2379", f"{inv.where()}: {flags}"
        assert {flags.get("cacert"), flags.get("cert"), flags.get("key")} == {
            "/etc/kubernetes/pki/etcd/ca.crt", "/etc/kubernetes/pki/etcd/server.crt", "/etc/kubernetes/pki/etcd/server.key",
        }, f"{inv.where()}: {flags}"


def _member_line(member_id: int, name: str, peers: list[str], clients: list[str], learner: bool) -> str:
    """A `member list -w simple` line as etcd v3.6.8 prints it (printer.go makeMemberListTable,
    printer_simple.go MemberList), checked against those sources below."""
    status = "unstarted" if not name else "started"
    return ", ".join([f"{member_id:x}", status, name, ",".join(peers), ",".join(clients), "true" if learner else "false"])


def test_the_etcdctl_simple_formats_are_upstreams() -> None:
    """What _member_line and remove-control-plane.sh assume of `-w simple`, line by line in
    etcd's printers: the member list columns in order, "unstarted" for a member without a name,
    rows joined by ", "; the endpoint health lines (unhealthy ones on stderr, exit 1)."""
    printer = facts(AREA, "etcdctl-printer.digest.yaml")
    header = [literal["value"] for literal in printer["go-strings"]["member_list_header"]]
    assert header == ["ID", "Status", "Name", "Peer Addrs", "Client Addrs", "Is Learner"], header
    columns = [row["groups"][0] for row in printer["lines"]["member_list_columns"]]
    assert columns == ['fmt.Sprintf("%x", m.ID)', "status", "m.Name", 'strings.Join(m.PeerURLs, ",")',
                       'strings.Join(m.ClientURLs, ",")', "isLearner"], f"etcd's member list columns changed: {columns}"
    values = [tuple(row["groups"]) for row in printer["lines"]["member_list_values"]]
    assert values == [("status", "started"), ("status", "unstarted"), ("isLearner", "false"), ("isLearner", "true")], values
    conditions = [row["groups"][0] for row in printer["lines"]["member_list_conditions"]]
    assert conditions == ["len(m.Name) == 0", "m.IsLearner"], conditions
    simple = facts(AREA, "etcdctl-printer_simple.digest.yaml")["lines"]
    assert [row["text"] for row in simple["member_list"]] == [
        "_, rows := makeMemberListTable(resp)", 'fmt.Println(strings.Join(row, ", "))'], simple["member_list"]
    assert [row["text"] for row in simple["endpoint_health"]] == [
        'if h.Error == "" {',
        'fmt.Printf("%s is healthy: successfully committed proposal: took = %v\\n", h.Ep, h.Took)',
        'fmt.Fprintf(os.Stderr, "%s is unhealthy: failed to commit proposal: %v\\n", h.Ep, h.Error)',
    ], simple["endpoint_health"]
    exits = [row["text"] for row in _lines("etcdctl-ep_command.digest.yaml", "health_exit")]
    assert 'cobrautl.ExitWithError(cobrautl.ExitError, fmt.Errorf("unhealthy cluster"))' in exits, exits
    assert _groups("etcdctl-member_command.digest.yaml", "remove_id") == [["16"]], "member remove takes the hex ID"


def test_remove_control_plane_reads_etcdctls_real_output(box: Sandbox) -> None:  # noqa: F811
    """remove-control-plane.sh on `member list` / `endpoint health` output in etcd's own format:
    an unstarted member (no name, no client URL) and a learner among five, a member with two
    client URLs; the leaving cp-2 is removed by its hex ID since 3 of the 3 other voters are healthy."""
    ips = dict(CP_IPS)
    ids = {"cp-0": 0x8E9E05C52164694D, "cp-1": 0x91BC3C398FB3C146, "cp-2": 0xFD422379FDA50E48,
           "cp-3": 0x2A3B4C5D6E7F8091, "cp-4": 0x1234ABCD5678EF09}
    lines = [
        _member_line(ids["cp-0"], "cp-0", [f"https://{ips['cp-0']}:2380"], [f"https://{ips['cp-0']}:2379"], False),
        _member_line(ids["cp-1"], "cp-1", [f"https://{ips['cp-1']}:2380"],
                     [f"https://{ips['cp-1']}:2379", "https://10.9.9.9:2379"], False),
        _member_line(ids["cp-2"], "cp-2", [f"https://{ips['cp-2']}:2380"], [f"https://{ips['cp-2']}:2379"], False),
        _member_line(ids["cp-3"], "", [f"https://{ips['cp-3']}:2380"], [], False),
        _member_line(ids["cp-4"], "cp-4", [f"https://{ips['cp-4']}:2380"], [f"https://{ips['cp-4']}:2379"], True),
    ]
    assert lines[3] == f"{ids['cp-3']:x}, unstarted, , https://{ips['cp-3']}:2380, , false", lines[3]
    health = [
        f"https://{ips['cp-0']}:2379 is healthy: successfully committed proposal: took = 1.912ms",
        "https://10.9.9.9:2379 is unhealthy: failed to commit proposal: context deadline exceeded",
        f"https://{ips['cp-1']}:2379 is healthy: successfully committed proposal: took = 2.3ms",
        f"https://{ips['cp-2']}:2379 is healthy: successfully committed proposal: took = 2.1ms",
        f"https://{ips['cp-4']}:2379 is unhealthy: failed to commit proposal: etcdserver: rpc not supported for learner",
    ]
    _write(box, "/etc/kubernetes/admin.conf", "admin\n")
    _state(box, "pods/etcd-cp-0", "running\n")
    _state(box, "etcd-members", "\n".join(lines) + "\n")
    _state(box, "etcd-health", "\n".join(health) + "\n")
    _add_node(box, "cp-2", kubelet="v1.36.4")
    result = box.run("remove-control-plane.sh", {"NODE_NAME": "cp-2", "FIRST_NODE_NAME": "cp-0", "DRAIN_TIMEOUT": "60s"})
    assert result.rc == 0, _explain(result)
    # Voting: cp-0, cp-1, cp-2, cp-3 (unstarted still votes); left 3, quorum 2; healthy: cp-0, cp-1.
    assert "etcd keeps 3 voting members after the removal, 2 of them healthy (quorum 2)" in result.stderr, result.stderr
    removed = [c for c in result.calls if " member remove " in c]
    assert removed and removed[0].endswith(f"member remove {ids['cp-2']:x}"), result.calls


# --- kubectl: the real binary -------------------------------------------------------------------

KUBECTL = [inv for inv in ALL if inv.words[0] == "kubectl"]

#: Values for the scripts' variables when the real kubectl parses their command lines.
SAMPLE = {
    "admin": "/etc/kubernetes/admin.conf", "KC_ADMIN_CONF": "/etc/kubernetes/admin.conf", "1": "/etc/kubernetes/admin.conf",
    "NODE_NAME": "worker-1", "FIRST_NODE_NAME": "cp-0", "DRAIN_TIMEOUT": "300s", "K8S_VERSION": "1.37.0",
    "KC_UPGRADE_ANNOTATION": "kubeadm-cluster.io/upgrading-to", "REMOVE_MEMBER_ID": "8e9e05c52164694d",
    "KC_K8S": "/etc/kubernetes", "KC_ROOT": "",
    "KC_TYPE_ANNOTATION": "kubeadm-cluster.io/machine-type", "KC_RESIZING_ANNOTATION": "kubeadm-cluster.io/resizing-to",
    "MACHINE_TYPE": "e2-standard-4", "holder": "worker-2", "KC_SETTINGS_CONFIGMAP": "kubeadm-cluster-settings",
}


def _substitute(word: str) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        assert name in SAMPLE, f"no sample value for ${name} (add it to SAMPLE in tests/test_upstream_cli.py)"
        return SAMPLE[name]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, word)


@pytest.fixture(scope="module")
def kubectl() -> Path:
    """Debian unstable's kubectl 1.36.4 (cached; fetched when not yet)."""
    root = debian_package_root("kubectl")
    binary = root / "usr" / "bin" / "kubectl"
    assert binary.is_file(), f"no kubectl binary in {root}"
    return binary


def _run_kubectl(kubectl: Path, args: list[str], tmp: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/nonexistent", "LC_ALL": "C",
           "KUBECONFIG": str(tmp / "no-kubeconfig"), "KUBECTL_KUBERC": "false"}
    return subprocess.run([str(kubectl), *args], capture_output=True, text=True, timeout=60, env=env)


def _regenerated(source: tool.Source, data: bytes, origin: str) -> None:
    """``data`` (read here, from the package the tests run) is what the digest was made from."""
    assert tool.sha256(data) == source.sha256, (
        f"{origin} has sha256 {tool.sha256(data)}; tests/upstream/{AREA}/SOURCES.yaml records {source.sha256} for "
        f"{source.where()}: regenerate with `python -m tools.upstream_digest --area {AREA} --file {source.file} "
        "--write --from <those bytes>` (then review the diff)")
    assert tool.render(source, data) == source.committed.read_text(encoding="utf-8"), (
        f"tests/upstream/{AREA}/{source.file} is not what tools/upstream_digest.py makes of {origin}")


def test_the_kubectl_help_digests_are_the_binarys(kubectl: Path, tmp_path: Path) -> None:
    """The binary the tests run prints, byte for byte, the --help each kubectl digest was made
    from (its sha256), and the digest regenerates from it."""
    version = _run_kubectl(kubectl, ["version", "--client"], tmp_path).stdout
    assert "Client Version: v1.36.4" in version, version
    helps = _digests(r"kubectl-([\w-]+)\.digest\.yaml")
    assert {m.group(1) for m in helps.values()} >= {"options", "drain", "uncordon", "annotate", "get", "delete", "exec"}
    for name, match in helps.items():
        args = ["options"] if match.group(1) == "options" else [match.group(1), "--help"]
        live = _run_kubectl(kubectl, args, tmp_path)
        assert live.returncode == 0, live.stderr
        _regenerated(sources(AREA)[name], live.stdout.encode(), f"`kubectl {' '.join(args)}` of {kubectl}")


def test_the_changelog_digest_is_the_changelog_debians_kubectl_ships(kubectl: Path) -> None:
    source = sources(AREA)[CHANGELOG]
    shipped = kubectl.parents[2] / source.path.split(" ", 1)[0]
    assert shipped.is_file(), f"Debian's kubectl package has no {source.path}"
    _regenerated(source, gzip.decompress(shipped.read_bytes()), f"{shipped} (gunzipped)")


@pytest.mark.parametrize("inv", KUBECTL, ids=_ids(KUBECTL))
def test_the_real_kubectl_parses_the_command_line(kubectl: Path, tmp_path: Path, inv: Invocation) -> None:
    """cobra parses every flag (and its value: --timeout as a duration) before it honours --help;
    --help goes before a `--` (what follows is the remote command)."""
    args = [_substitute(w) for w in inv.words[1:]]
    cut = args.index("--") if "--" in args else len(args)
    args = args[:cut] + ["--help"] + args[cut:]
    result = _run_kubectl(kubectl, args, tmp_path)
    command = parse(inv.words).command.path[1]
    assert result.returncode == 0 and f"Usage:\n  kubectl {command}" in result.stdout, (
        f"{inv.where()}: the real kubectl 1.36.4 rejects `{inv}` (run as `kubectl {shlex.join(args)}`):\n"
        f"{result.stderr or result.stdout[-800:]}"
    )


#: What each output expression the scripts read must print, on the objects below.
CLUSTER_CONFIGURATION = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.36.4\n"
OBJECTS = {
    "node": {"apiVersion": "v1", "kind": "Node",
             "metadata": {"name": "worker-1", "annotations": {"kubeadm-cluster.io/upgrading-to": "v1.37.0",
                                                              "kubeadm-cluster.io/machine-type": "e2-standard-2",
                                                              "kubeadm-cluster.io/resizing-to": "e2-standard-4"}},
             "spec": {"unschedulable": True},
             "status": {"nodeInfo": {"kubeletVersion": "v1.36.4"},
                        "capacity": {"cpu": "2", "memory": "8131304Ki"},
                        "conditions": [{"type": "MemoryPressure", "status": "False"},
                                       {"type": "Ready", "status": "True"}]}},
    "configmap": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kubeadm-config", "namespace": "kube-system"},
                  "data": {"ClusterConfiguration": CLUSTER_CONFIGURATION, "drainTimeout": "7m"}},
}
OUTPUTS = {
    ("node", "jsonpath={.status.nodeInfo.kubeletVersion}"): "v1.36.4",
    ("node", "jsonpath={.metadata.annotations.kubeadm-cluster\\.io/upgrading-to}"): "v1.37.0",
    ("node", "name"): "node/worker-1\n",
    ("node", "jsonpath={.metadata.annotations.kubeadm-cluster\\.io/machine-type}"): "e2-standard-2",
    ("node", "jsonpath={.metadata.annotations.kubeadm-cluster\\.io/resizing-to}"): "e2-standard-4",
    ("node", "jsonpath={.spec.unschedulable}"): "true",
    ("node", "jsonpath={.status.capacity.cpu} {.status.capacity.memory}"): "2 8131304Ki",
    ("node", 'jsonpath={.status.conditions[?(@.type=="Ready")].status}'): "True",
    ("configmap", "jsonpath={.data.ClusterConfiguration}"): CLUSTER_CONFIGURATION,
    ("configmap", "jsonpath={.data.drainTimeout}"): "7m",
}


def _outputs() -> set[tuple[str, str]]:
    used: set[tuple[str, str]] = set()
    for inv in KUBECTL:
        parsed = parse(inv.words)
        if parsed.command.path != ("kubectl", "get") or not parsed.positionals:
            continue
        for flag, value in parsed.flags:
            if flag.name == "output" and value is not None:
                used.add((parsed.positionals[0], value))
    return used


def test_every_output_expression_the_scripts_read_is_checked() -> None:
    assert _outputs() == set(OUTPUTS), f"kubectl -o expressions in the scripts: {sorted(_outputs())}; checked: {sorted(OUTPUTS)}"


@pytest.mark.parametrize(("kind", "output"), sorted(OUTPUTS))
def test_the_real_kubectl_prints_what_the_scripts_read(kubectl: Path, tmp_path: Path, kind: str, output: str) -> None:
    """Offline: `kubectl annotate --local -f OBJECT -o OUTPUT` prints OBJECT with the same
    printer `kubectl get -o OUTPUT` uses (jsonpath escaping of the dotted annotation key included)."""
    obj = tmp_path / f"{kind}.json"
    obj.write_text(json.dumps(OBJECTS[kind]))
    result = _run_kubectl(kubectl, ["annotate", "--local", "-f", str(obj), "kc-check=1", "-o", output], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == OUTPUTS[(kind, output)], f"kubectl -o {output} printed {result.stdout!r} for the {kind}"
    bare = dict(OBJECTS[kind], metadata={"name": "bare"})
    obj.write_text(json.dumps(bare))
    missing = _run_kubectl(kubectl, ["annotate", "--local", "-f", str(obj), "kc-check=1", "-o", output], tmp_path)
    assert missing.returncode == 0, f"kubectl -o {output} fails on a {kind} without the field: {missing.stderr}"


# --- the kubectl lines the program prints -------------------------------------------------------


@pytest.mark.parametrize("kind", ["kubernetes-dashboard", "headlamp"])
@pytest.mark.parametrize("admin", [True, False])
def test_the_dashboard_access_commands_parse_with_the_real_kubectl(
    kubectl: Path, tmp_path: Path, kind: str, admin: bool
) -> None:
    """The `dashboardAccess` output tells users to run kubectl: each of those lines parses."""
    from types import SimpleNamespace

    from components.addons.dashboard import access_instructions

    config = SimpleNamespace(dashboard=SimpleNamespace(enabled=True, kind=kind, admin_service_account=admin))
    lines = [line.split("#", 1)[0].strip() for line in access_instructions(config).splitlines()]  # type: ignore[arg-type]
    commands = [shlex.split(line) for line in lines if line.startswith("kubectl ")]
    assert commands, f"no kubectl line in the {kind} access instructions"
    for words in commands:
        result = _run_kubectl(kubectl, [*words[1:], "--help"], tmp_path)
        assert result.returncode == 0 and "Usage:\n  kubectl " in result.stdout, (
            f"the {kind} access instructions say `{shlex.join(words)}`, which kubectl 1.36.4 rejects:\n{result.stderr}"
        )
