"""Secrets stay secrets: config set with ``--secret``, URL credentials in node logs, secret step output.

Four promises, each tested where it can break:

* a stack setting set with ``pulumi config set --secret`` (a mirror URL with credentials, the
  ``imageRepository``, kubeadm flags) reaches no resource input, stack output, warning or
  validation message in plain text (the real program under the mock engine, which applies secrecy
  as the engine does);
* ``sshPrivateKey`` is accepted only encrypted and only with ``provider: existing``;
* credentials in a URL never reach a node step's log line (the scripts in the sandbox of
  tests/test_scripts.py, with a real bash), and apt gets them from its auth file, not from the
  world-readable source list;
* a step whose stdout is secret prints it as its very last act: pulumi-command puts a failed
  step's combined stdout and stderr into its error message (pulumi-command v1.2.1,
  provider/pkg/provider/remote/commandOutputs.go line 101, ``fmt.Errorf("%w: running %q:\\n%s",
  ..., stdouterrbuf.String())``), which the engine prints and keeps unmasked. Tested by making
  every command and log line of the step fail in turn.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import shlex
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from components import config as config_module
from components import versions
from components.bootstrap.scripts import render_bundle
from tests.conftest import GCP, expanded, stack_config
from tests.test_scripts import (
    STUB_PRELUDE,
    STUBS,
    Result,
    Sandbox,
    _control_plane,
    _explain,
    _preflight_env,
    _prepare_env,
    fresh_node,
)
from tools import plan_check
from tools.mock_engine import SECRET_SIG, SECRET_VALUE, Plan, run_program

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "Pa55-w0rd-9c1e"
QUERY_TOKEN = "qt-4b7d2e9a"
KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nTHE-KEY-BODY-7f3a\n-----END OPENSSH PRIVATE KEY-----\n"
SSH_SECRET = ["kubeadm-cluster:sshPrivateKey"]

#: Every mirror, each carrying the credential (the registry endpoint too: the program must keep
#: it secret whatever containerd makes of it).
MIRRORS = {
    "kubernetesPackages": f"https://ci:{PASSWORD}@mirror.example.com/k8s/core/stable/{{minor}}/deb/",
    "containerdReleases": f"https://ci:{PASSWORD}@mirror.example.com/containerd",
    "runcReleases": f"https://ci:{PASSWORD}@mirror.example.com/runc",
    "registries": {"docker.io": [f"https://ci:{PASSWORD}@registry-mirror.example.com"]},
    "helmRepositories": {"https://charts.rook.io/release": f"https://ci:{PASSWORD}@charts.example.com/rook"},
}


# --- the program: secret config stays secret -----------------------------------------------


def _is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SECRET_SIG) == SECRET_VALUE


def _plain_paths(value: Any, needle: str, path: str = "") -> list[str]:
    """Paths of the plain (not secret-wrapped) strings in ``value`` that contain ``needle``."""
    if _is_secret(value):
        return []
    if isinstance(value, str):
        return [path or "."] if needle in value else []
    if isinstance(value, dict):
        return [p for key, item in value.items() for p in _plain_paths(item, needle, f"{path}.{key}" if path else key)]
    if isinstance(value, list):
        return [p for i, item in enumerate(value) for p in _plain_paths(item, needle, f"{path}.{i}")]
    return []


def _leaks(plan: Plan, needle: str) -> list[str]:
    """Every place a run shows ``needle`` in plain text: resource inputs, stack outputs, warnings."""
    found = [f"{r.name} ({r.type}): input {p}" for r in plan.resources for p in _plain_paths(r.raw_inputs, needle)]
    found += [f"stack output {name}" for name, value in plan.outputs.items()
              if name not in plan.secret_outputs and needle in json.dumps(value)]
    found += [f"warning: {w}" for w in plan.warnings if needle in w]
    return found


SECRET_SETTINGS = [
    pytest.param("mirrors", MIRRORS, PASSWORD, id="mirrors-with-credentials"),
    pytest.param("imageRepository", "registry.example.com/private-k8s-7c2d", "private-k8s-7c2d", id="imageRepository"),
    pytest.param("kubeadm", {"apiServerExtraArgs": {"oidc-client-id": "client-5e8f1a"}}, "client-5e8f1a", id="kubeadm-flags"),
]


@pytest.mark.parametrize(("key", "value", "needle"), SECRET_SETTINGS)
def test_a_secret_setting_reaches_no_input_output_or_warning_in_plain_text(key: str, value: Any, needle: str) -> None:
    config = stack_config(**{key: value})
    plain = run_program(config)
    assert plain.error is None, plain.error
    # The value does flow into the resources (else the secret run below would prove nothing) ...
    assert _leaks(plain, needle), f"{key}: the value reaches no resource; the test sees nothing"
    # ... and set with --secret it stays a secret wherever it goes.
    secret = run_program(config, secret_keys=[f"kubeadm-cluster:{key}"])
    assert secret.error is None, secret.error
    leaks = _leaks(secret, needle)
    assert not leaks, f"{key} was set with --secret but shows in plain text in:\n  " + "\n  ".join(leaks)
    assert secret.names() == plain.names(), "secrecy changed the plan"


def test_secret_mirrors_reach_every_step_and_chart_that_uses_them() -> None:
    """The secret run above is not vacuous: the node prep and the Helm releases carry the mirrors."""
    plan = run_program(stack_config(mirrors=MIRRORS), secret_keys=["kubeadm-cluster:mirrors"])
    assert plan.error is None, plan.error
    prepares = [r for r in plan.of_type("command:remote:Command") if r.name.endswith("-prepare")]
    assert prepares and all("stdin" in r.secret_inputs and PASSWORD in r.input("stdin") for r in prepares), \
        "node prep does not carry the mirror URLs as a secret"
    rook = [r for r in plan.of_type("kubernetes:helm.sh/v3:Release") if r.input("chart") == "rook-ceph"]
    assert rook and PASSWORD in str(rook[0].input("repositoryOpts.repo")), "the Rook chart does not come from its mirror"
    assert "repositoryOpts" in rook[0].secret_inputs or "repositoryOpts.repo" in rook[0].secret_inputs, \
        "the chart mirror URL (with credentials) is not a secret input of the Helm release"


def test_steps_that_carry_no_secret_setting_stay_readable() -> None:
    """Secrecy is per step: a secret mirror does not hide the upgrade steps' inputs in a diff."""
    plan = run_program(stack_config(mirrors=MIRRORS), secret_keys=["kubeadm-cluster:mirrors"])
    upgrades = [r for r in plan.of_type("command:remote:Command") if r.name.endswith("-upgrade")]
    assert upgrades and all("stdin" not in r.secret_inputs for r in upgrades), \
        [r.name for r in upgrades if "stdin" in r.secret_inputs]


def test_a_validation_message_never_shows_a_secret_value() -> None:
    bad = {**MIRRORS, "containerdReleases": f"ftp://ci:{PASSWORD}@mirror.example.com/containerd?token={QUERY_TOKEN}"}
    shown = run_program(stack_config(mirrors=bad))
    assert shown.error and PASSWORD in shown.error, f"control: a plain value is quoted in its message:\n{shown.error}"
    hidden = run_program(stack_config(mirrors=bad), secret_keys=["kubeadm-cluster:mirrors"])
    assert hidden.error is not None and not hidden.resources, "an invalid secret mirror was accepted"
    assert "kubeadm-cluster:mirrors.containerdReleases" in hidden.error, f"the field is not named:\n{hidden.error}"
    for secret in (PASSWORD, QUERY_TOKEN, "mirror.example.com/containerd"):
        assert secret not in hidden.error, f"the message shows the secret value ({secret}):\n{hidden.error}"
    assert "[secret]" in hidden.error, hidden.error


def test_redaction_hides_the_credentials_of_a_url_however_a_message_quotes_it() -> None:
    url = f"https://ci:{PASSWORD}@mirror.example.com/k8s/{{minor}}/?token={QUERY_TOKEN}"
    hidden = config_module.secret_strings({"mirrors": json.dumps({"kubernetesPackages": url})})
    for message in (f"{url!r} is bad", f"{url.replace('{minor}', 'v1.36')} is bad", f"user ci:{PASSWORD} and {QUERY_TOKEN}"):
        redacted = config_module.redact(message, hidden)
        assert PASSWORD not in redacted and QUERY_TOKEN not in redacted, redacted
    # Field names are never blanked, whatever the secret holds.
    assert config_module.redact("mirrors.kubernetesPackages: x", hidden) == "mirrors.kubernetesPackages: x"


#: Secret values the messages still showed (issue 13, second audit): a credentialed URL written as
#: a map's key (keys were kept as "field names"), and a value the message transformed before
#: quoting it (the lower-cased imageRepository it suggests). The public texts next to them (the
#: stack's chart repositories from versions.py, the example registries) were blanked instead.
SECRETS_IN_MESSAGES = [
    pytest.param("mirrors", {"helmRepositories": {f"https://ci:{PASSWORD}@charts.example.com/rook": versions.ROOK_CHART_REPO}},
                 ["mirrors.helmRepositories", f"repositories are {versions.ROOK_CHART_REPO}"], id="helm-key-and-value-swapped"),
    pytest.param("mirrors", {"registries": {f"https://ci:{PASSWORD}@registry.example.com": ["docker.io"]}},
                 ["mirrors.registries", "(e.g. docker.io, registry.k8s.io)"], id="registry-url-as-a-key"),
    pytest.param("mirrors", {"registries": {f"ci-{PASSWORD}.example.com": "https://registry.example.com"}},
                 ["mirrors.registries", "write it as a list"], id="map-key-in-the-field-path"),
    pytest.param("imageRepository", f"Registry.example.com/k8s-{PASSWORD}", ["imageRepository", "lower case"],
                 id="lower-cased-suggestion"),
    pytest.param("mirrors", {f"https://ci:{PASSWORD}@charts.example.com/rook": "https://m.example.com"},
                 ["kubeadm-cluster:mirrors.[secret]: unknown key"], id="url-one-level-too-high"),
]


@pytest.mark.parametrize(("key", "value", "expected"), SECRETS_IN_MESSAGES)
def test_a_message_shows_no_secret_as_a_map_key_or_transformed(key: str, value: Any, expected: list[str]) -> None:
    shown = run_program(stack_config(**{key: value}))
    assert shown.error and PASSWORD.lower() in shown.error.lower(), f"control: the plain value is quoted:\n{shown.error}"
    hidden = run_program(stack_config(**{key: value}), secret_keys=[f"kubeadm-cluster:{key}"])
    assert hidden.error is not None and not hidden.resources, f"the invalid secret {key} was accepted"
    assert PASSWORD.lower() not in hidden.error.lower(), f"the message shows the secret (in some case):\n{hidden.error}"
    for text in expected:
        assert text in hidden.error, f"the message lost {text!r} (public text blanked, or the field not named):\n{hidden.error}"


def test_a_misspelt_field_name_in_a_secret_object_stays_readable() -> None:
    """Field names are the config's structure, not the user's data: only map keys are hidden."""
    mirrors = {"helmRepository": {versions.ROOK_CHART_REPO: f"https://ci:{PASSWORD}@charts.example.com/rook"}}
    plan = run_program(stack_config(mirrors=mirrors), secret_keys=["kubeadm-cluster:mirrors"])
    assert plan.error is not None and "kubeadm-cluster:mirrors.helmRepository: unknown key" in plan.error, plan.error


@pytest.mark.parametrize("char", ["#", "?", "/"])
@pytest.mark.parametrize("where", ["containerdReleases", "registries", "helmRepositories"])
def test_credentials_with_an_unencoded_delimiter_are_refused(char: str, where: str) -> None:
    """``https://ci:pa#ss@host/`` ends its authority at '#' (RFC 3986, 3.2): every tool would
    connect to host ``ci`` and lib.sh's log redaction missed the password. Refused, naming the fix."""
    url = f"https://ci:{PASSWORD[:4]}{char}{PASSWORD[4:]}@mirror.example.com/containerd"
    mirrors = {
        "containerdReleases": {"containerdReleases": url},
        "registries": {"registries": {"docker.io": [url]}},
        "helmRepositories": {"helmRepositories": {versions.ROOK_CHART_REPO: url}},
    }[where]
    plan = run_program(stack_config(mirrors=mirrors), secret_keys=["kubeadm-cluster:mirrors"])
    assert plan.error is not None and not plan.resources, f"{url} was accepted"
    for text in (f"mirrors.{where}", "percent-encode", "%23"):
        assert text in plan.error, f"the message should mention {text!r}:\n{plan.error}"
    assert PASSWORD[4:] not in plan.error, plan.error
    encoded = f"https://ci:{PASSWORD[:4]}{ {'#': '%23', '?': '%3F', '/': '%2F'}[char]}{PASSWORD[4:]}@mirror.example.com/containerd"
    assert run_program(stack_config(mirrors={"containerdReleases": encoded})).error is None, "the encoded URL is refused"


def test_an_at_sign_in_a_mirror_path_is_no_credential() -> None:
    assert run_program(stack_config(mirrors={"containerdReleases": "https://mirror.example.com/@team/containerd"})).error is None


# --- sshPrivateKey ------------------------------------------------------------------------------


def _existing(**extra: Any) -> dict[str, Any]:
    return {
        "provider": "existing",
        "adminCidrs": ["203.0.113.7/32"],
        "existingHosts": {"controlPlane": [{"address": "192.0.2.10"}], "workers": [{"address": "192.0.2.11"}]},
        "rook": {"enabled": False},
        **extra,
    }


def test_a_plain_text_ssh_key_is_refused_with_the_command_that_encrypts_it() -> None:
    plan = run_program(_existing(sshPrivateKey=KEY), stack="lab")
    assert plan.error is not None and not plan.resources, "a plain-text private key was accepted"
    command = "pulumi config set --stack lab --secret sshPrivateKey < ~/.ssh/id_ed25519"
    assert "kubeadm-cluster:sshPrivateKey" in plan.error and command in plan.error, plan.error
    assert "THE-KEY-BODY" not in plan.error, f"the message shows the key:\n{plan.error}"
    accepted = run_program(_existing(sshPrivateKey=KEY), stack="lab", secret_keys=SSH_SECRET)
    assert accepted.error is None, accepted.error


def test_a_plain_text_ssh_key_is_reported_with_the_other_errors() -> None:
    plan = run_program(_existing(sshPrivateKey=KEY, cni="cilium"), stack="lab")
    assert plan.error is not None and "kubeadm-cluster:cni" in plan.error, plan.error
    assert "kubeadm-cluster:sshPrivateKey" in plan.error, f"one message must name every wrong field:\n{plan.error}"


def test_a_missing_ssh_key_is_required_with_existing_hosts() -> None:
    plan = run_program(_existing(), stack="lab")
    assert plan.error is not None and "kubeadm-cluster:sshPrivateKey: is required" in plan.error, plan.error
    assert "pulumi config set --stack lab --secret sshPrivateKey" in plan.error, plan.error


def test_an_ssh_key_with_provider_gcp_is_an_error_not_ignored() -> None:
    plan = run_program(stack_config(sshPrivateKey=KEY), secret_keys=SSH_SECRET)
    assert plan.error is not None and not plan.resources, "provider gcp silently ignored sshPrivateKey"
    assert "kubeadm-cluster:sshPrivateKey" in plan.error and "provider 'existing'" in plan.error, plan.error
    assert "pulumi config rm --stack dev sshPrivateKey" in plan.error, plan.error
    assert "THE-KEY-BODY" not in plan.error, plan.error


def test_the_cli_s_list_of_secret_keys_is_what_the_program_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under the CLI the language host exports PULUMI_CONFIG and PULUMI_CONFIG_SECRET_KEYS
    (pulumi/pulumi sdk/python/cmd/pulumi-language-python/main.go, pulumiConfigSecretKeysVar) and
    pulumi-language-python-exec passes both to set_all_config: as here."""
    import pulumi

    values = {"kubeadm-cluster:sshPrivateKey": KEY, "kubeadm-cluster:mirrors": "{}", "gcp:project": "p"}
    monkeypatch.setenv("PULUMI_CONFIG", json.dumps(values))
    try:
        for secret_keys, expected in (
            (["kubeadm-cluster:sshPrivateKey", "kubeadm-cluster:mirrors"], {"sshPrivateKey", "mirrors"}),
            ([], set()),
        ):
            monkeypatch.setenv("PULUMI_CONFIG_SECRET_KEYS", json.dumps(secret_keys))
            runtime = pulumi.runtime
            runtime.set_all_config(runtime.get_config_env(), runtime.get_config_secret_keys_env())
            assert config_module.secret_config_keys("kubeadm-cluster") == expected
            # Only the environment list (the set_all_config call of an older exec script missing).
            runtime.set_all_config(runtime.get_config_env(), [])
            assert config_module.secret_config_keys("kubeadm-cluster") == expected
    finally:
        pulumi.runtime.set_all_config({}, [])


def test_plan_check_reads_encrypted_parts_of_a_stack_file(tmp_path: Path) -> None:
    """``pulumi config set --secret --path mirrors.containerdReleases URL`` leaves
    ``{secure: ...}`` inside the object; the offline check cannot decrypt it, keeps the key secret
    and checks the rest."""
    stack = tmp_path / "Pulumi.lab.yaml"
    stack.write_text(
        "config:\n  gcp:project: test-project\n  gcp:zone: europe-west1-b\n  kubeadm-cluster:adminCidrs: [203.0.113.7/32]\n"
        "  kubeadm-cluster:mirrors:\n    containerdReleases: {secure: v1:AAAA}\n"
        "    kubernetesPackages: {secure: v1:BBBB}\n"
    )
    config, secret_keys = plan_check._stack_config(stack)
    assert secret_keys == ["kubeadm-cluster:mirrors"], secret_keys
    plan = run_program(config, stack="lab", secret_keys=secret_keys)
    assert plan.error is None, plan.error
    prepare = plan.named("lab-cp-0-prepare")
    assert "stdin" in prepare.secret_inputs, "an encrypted mirror made the node prep's input plain"


# --- the node scripts: no credentials in a log line -------------------------------------------


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    yield Sandbox(tmp_path)


def _credentialed(env: dict[str, str]) -> dict[str, str]:
    """The prep inputs with every download URL carrying a user, a password and a query token."""
    def add(url: str) -> str:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://ci:{PASSWORD}@{rest}"
    return {
        **env,
        "K8S_APT_REPO": add(env["K8S_APT_REPO"]),
        "CONTAINERD_RELEASE_URL": add(env["CONTAINERD_RELEASE_URL"]),
        "RUNC_RELEASE_URL": add(env["RUNC_RELEASE_URL"]) + f"?token={QUERY_TOKEN}",
    }


def _assert_no_credentials(result: Result, what: str) -> None:
    for secret in (PASSWORD, QUERY_TOKEN):
        for stream, text in (("stderr", result.stderr), ("stdout", result.stdout)):
            assert secret not in text, f"{what}: a credential reached the {stream}:\n{_explain(result)}"


def test_prepare_logs_no_credentials_and_gives_apt_its_own_auth_file(sandbox: Sandbox) -> None:
    node = fresh_node(sandbox)
    env = _credentialed(_prepare_env())
    result = node.run("prepare-node.sh", env)
    assert result.rc == 0, _explain(result)
    _assert_no_credentials(result, "a successful prep")
    assert "downloading https://***@" in result.stderr, f"the downloads are not logged (redacted):\n{result.stderr}"
    # curl does get them (it authenticates with the URL's userinfo), in a config file (curl -K),
    # never as an argument: every local user can read a process's command line in /proc.
    assert any(f"ci:{PASSWORD}@" in call for call in result.called("curl -K read")), result.calls
    assert not [c for c in result.called("curl") if PASSWORD in c and not c.startswith("curl -K read")], (
        f"a URL's credentials reached curl's command line:\n{result.calls}")

    sources = node.path("/etc/apt/sources.list.d/kubernetes.list").read_text()
    assert PASSWORD not in sources and "https://pkgs.k8s.io/core:/stable:/" in sources, sources
    auth = node.path("/etc/apt/auth.conf.d/kubeadm-cluster.conf")
    assert oct(auth.stat().st_mode & 0o777) == "0o600", "apt's auth file is readable by others"
    # apt_auth.conf(5): "machine [scheme://]host[/path] login USER password PASSWORD" (apt 2.7.14
    # apt-pkg/contrib/netrc.cc: without a scheme apt uses the login for https only).
    repo = _prepare_env()["K8S_APT_REPO"]
    assert f"machine {repo} login ci password {PASSWORD}" in auth.read_text().splitlines(), auth.read_text()
    # The repository back to one without credentials: apt's login goes too.
    again = node.run("prepare-node.sh", _prepare_env())
    assert again.rc == 0 and not auth.exists(), f"stale apt credentials kept:\n{_explain(again)}"


def test_apt_credentials_are_percent_decoded_and_every_change_is_updated(sandbox: Sandbox) -> None:
    node = fresh_node(sandbox)
    env = _prepare_env()
    env["K8S_APT_REPO"] = env["K8S_APT_REPO"].replace("https://", "https://ci%2Bbot:p%40ss%3Aw0rd@")
    assert node.run("prepare-node.sh", env).rc == 0
    auth = node.path("/etc/apt/auth.conf.d/kubeadm-cluster.conf").read_text()
    assert "login ci+bot password p@ss:w0rd" in auth, auth
    rotated = dict(env, K8S_APT_REPO=env["K8S_APT_REPO"].replace("w0rd", "n3w"))
    result = node.run("prepare-node.sh", rotated)
    assert result.rc == 0 and "password p@ss:n3w" in node.path("/etc/apt/auth.conf.d/kubeadm-cluster.conf").read_text()
    assert any(c.startswith("apt-get") and " update" in c for c in result.calls), \
        f"a changed apt login was not followed by apt-get update: {result.calls}"


@pytest.mark.parametrize(("script", "env", "why"), [
    ("prepare-node.sh", {"STUB_OFFLINE": "1"}, "downloads failing (retried, then the step dies)"),
    ("preflight.sh", {"STUB_OFFLINE": "1"}, "the connectivity check failing"),
    ("prepare-node.sh", {"REGISTRY_MIRRORS": f'docker.io=https://ci:{PASSWORD}@m.example.com/"x'}, "a bad mirror endpoint"),
])
def test_a_failing_step_logs_no_credentials(sandbox: Sandbox, script: str, env: dict[str, str], why: str) -> None:
    node = fresh_node(sandbox)
    result = node.run(script, {**_credentialed({**_preflight_env(), **_prepare_env()}), **env})
    assert result.rc != 0, f"{why}: the step did not fail:\n{_explain(result)}"
    _assert_no_credentials(result, why)
    assert "***@" in result.stderr, f"{why}: the URL is not named at all:\n{result.stderr}"


def test_every_log_function_redacts(sandbox: Sandbox) -> None:
    url = f"https://ci:{PASSWORD}@mirror.example.com:8443/a/b?token={QUERY_TOKEN}#top"
    code = f"""set -euo pipefail
. {ROOT / 'components/bootstrap/scripts/lib.sh'}
KC_STEP=test
kc_log "get {url} and http://x:y-{PASSWORD}@h2/p"
kc_warn "again {url}"
kc_retry 1 flaky "{url}" || true
kc_die "died on {url}"
"""
    result = sandbox.run([], {"STUB_FAIL_TIMES": "9"}, command=code)
    assert result.rc == 1, _explain(result)
    _assert_no_credentials(result, "kc_log/kc_warn/kc_retry/kc_die")
    assert "get https://***@mirror.example.com:8443/a/b?***#top and http://***@h2/p" in result.stderr, result.stderr
    assert result.stderr.count("***@mirror.example.com") == 4, result.stderr


@pytest.mark.parametrize("char", ["#", "?", "/"])
def test_kc_redact_hides_a_password_with_an_unencoded_delimiter(sandbox: Sandbox, char: str) -> None:
    """Defence in depth behind the config's refusal: the userinfo regex stopped at '#', '?' and
    '/', so ``https://ci:pa#ss@host/`` was logged as it is."""
    url = f"https://ci:{PASSWORD[:4]}{char}{PASSWORD[4:]}@mirror.example.com/containerd"
    code = f"""set -euo pipefail
. {ROOT / 'components/bootstrap/scripts/lib.sh'}
kc_redact {shlex.quote(f"get {url} now")}
"""
    result = sandbox.run([], {}, command=code)
    assert result.rc == 0, _explain(result)
    assert result.stdout.strip() == "get https://***@mirror.example.com/containerd now", result.stdout


def test_kc_download_gives_the_real_curl_its_url_in_a_private_config_file_not_its_arguments(tmp_path: Path) -> None:
    """The real curl (not the sandbox's stub) fetches a URL with credentials from a local HTTP
    server that demands them, through kc_download's config file (curl's own -K syntax), into a file
    whose name has a double quote and a backslash; a wrapper in front of curl records the arguments
    any local user could read in /proc/<pid>/cmdline."""
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed")
    expected = "Basic " + base64.b64encode(f"ci:{PASSWORD}".encode()).decode()

    class Mirror(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
            ok = self.headers.get("Authorization") == expected and self.path == "/runc.amd64"
            body = b"runc bytes\n" if ok else b"no"
            self.send_response(200 if ok else 401)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the stdlib's name)
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Mirror)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    wrapper = tmp_path / "bin" / "curl"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/bash\nprintf "%s\\n" "$*" >>{tmp_path}/argv\n'
                       f'for a; do [[ $a == -K ]] && stat -c %a "${{@: -1}}" >>{tmp_path}/mode; done\n'
                       f'exec {curl} "$@"\n')
    wrapper.chmod(0o755)
    (tmp_path / "tmp").mkdir()
    dest = tmp_path / 'out "x\\y"'
    url = f"http://ci:{PASSWORD}@127.0.0.1:{server.server_port}/runc.amd64"
    code = f"""set -euo pipefail
. {ROOT / 'components/bootstrap/scripts/lib.sh'}
KC_STEP=test
kc_download {shlex.quote(url)} {shlex.quote(str(dest))}
ls "$TMPDIR" >{tmp_path}/left
"""
    env = {"PATH": f"{wrapper.parent}:/usr/bin:/bin", "TMPDIR": str(tmp_path / "tmp"), "KC_RETRY_DELAY": "0"}
    try:
        result = subprocess.run(["bash", "-c", code], env=env, capture_output=True, text=True, timeout=60)
    finally:
        server.shutdown()
    assert result.returncode == 0, f"kc_download failed with the real curl:\n{result.stderr}"
    assert dest.read_bytes() == b"runc bytes\n", "the real curl did not fetch the URL (with its login) into DEST"
    argv = (tmp_path / "argv").read_text()
    assert "-K" in argv and PASSWORD not in argv and "runc.amd64" not in argv, (
        f"curl's command line carries the URL (readable by every local user in /proc):\n{argv}")
    assert (tmp_path / "mode").read_text().split() == ["600"], "curl's config file is not mode 0600"
    assert PASSWORD not in result.stderr, result.stderr
    assert (tmp_path / "left").read_text() == "", "kc_download left its config file (the URL) behind"


# --- secret step output: printed last, never in a failure's output ----------------------------

#: A fault point of the sandbox (bash builtins only): each call records itself; the call numbered
#: KC_FAULT_AT fails. KC_FAULT_MODE "before": it fails instead of running; "after": it runs, then
#: fails (a command that wrote its output, then exited non-zero).
FAULT_POINT = r"""
kc_fault() {
  [[ -n ${KC_FAULT_LOG:-} && -z ${KC_FAULT_INSIDE:-} ]] || return 0
  KC_FAULT_SEQ=$((${KC_FAULT_SEQ:-0} + 1))
  local me="$BASHPID.$KC_FAULT_SEQ $1" i
  printf '%s\n' "$me" >>"$KC_FAULT_LOG"
  local -a seen
  mapfile -t seen <"$KC_FAULT_LOG"
  for i in "${!seen[@]}"; do
    if [[ ${seen[i]} == "$me" ]]; then
      ((i + 1 != ${KC_FAULT_AT:-0}))
      return
    fi
  done
}
"""

#: Every command of the sandbox behind a fault point.
TOOL_WRAPPER = """#!{bash}
{fault}
if [[ ${{KC_FAULT_MODE:-}} == before ]] && ! kc_fault {name}; then exit 1; fi
KC_FAULT_INSIDE=1 {real} "$@"
rc=$?
if [[ ${{KC_FAULT_MODE:-}} == after ]] && ! kc_fault {name}; then exit 1; fi
exit $rc
"""

#: Every log line of the step behind a fault point (after lib.sh, before the step script).
LOG_WRAPPERS = FAULT_POINT + r"""
for kc_name in kc_log kc_warn; do
  kc_def=$(declare -f "$kc_name")
  eval "${kc_name}_unfaulted${kc_def#"$kc_name"}"
  eval "$kc_name() {
    if [[ \${KC_FAULT_MODE:-} == before ]] && ! kc_fault $kc_name; then return 1; fi
    ${kc_name}_unfaulted \"\$@\"
    if [[ \${KC_FAULT_MODE:-} == after ]] && ! kc_fault $kc_name; then return 1; fi
  }"
done
"""

#: kubeadm as upstream prints: `init` shows the join command with the token and the certificate
#: key unless --skip-token-print / --skip-certificate-key-print (kubeadm's init flags).
KUBEADM_PRINTS = r"""if [[ ${1:-} == init ]]; then
  [[ " $* " == *" --skip-token-print "* ]] && t="<value withheld>" || t=bootst.rapt0ken5ecret
  echo "kubeadm join api:6443 --token $t --discovery-token-ca-cert-hash sha256:abc"
  if [[ " $* " == *" --upload-certs "* && " $* " != *" --skip-certificate-key-print "* ]]; then
    echo "Using certificate key: $(awk '/certificateKey/ { gsub(/"/, "", $2); print $2 }' "$KC_ROOT/etc/kubernetes/kubeadm-config.yaml")"
  fi
fi
"""


def _faulty(sandbox: Sandbox) -> Sandbox:
    """The sandbox with every command behind a fault point (the real one, or the stub, runs behind)."""
    real = sandbox.bin / ".real"
    real.mkdir()
    bash = os.path.realpath(shutil.which("bash") or "/bin/bash")
    (sandbox.bin / "kubeadm").write_text(STUB_PRELUDE + KUBEADM_PRINTS + STUBS["kubeadm"] + "\n")
    for tool in sorted(sandbox.bin.iterdir()):
        if tool.name in ("bash", ".real"):
            continue
        target = real / tool.name
        tool.rename(target)
        tool.write_text(TOOL_WRAPPER.format(bash=bash, fault=FAULT_POINT, name=tool.name, real=target))
        tool.chmod(0o755)
    return sandbox


def _run_step(sandbox: Sandbox, script: str, env: dict[str, str], fault: dict[str, str]) -> Result:
    """``script`` as the program's bundle on ``bash -s`` (as pulumi-command runs it), with the log
    functions behind fault points (inserted right after lib.sh)."""
    text, lib = render_bundle(script, env), '. "$KC_SCRIPTS_DIR/lib.sh"\n'
    end = text.index(lib) + len(lib)
    return sandbox.run([], fault, bundle=text[:end] + LOG_WRAPPERS + text[end:])


def _every_fault(
    sandbox: Sandbox, script: str, env: dict[str, str], modes: tuple[str, ...] = ("before", "after")
) -> Iterator[tuple[str, int, Result]]:
    """The step run once clean, then once per fault point of each mode: (mode, point, result)."""
    log = sandbox.base / "faults.log"
    for mode in modes:
        log.write_text("")
        clean = _run_step(sandbox, script, env, {"KC_FAULT_LOG": str(log), "KC_FAULT_MODE": mode, "KC_FAULT_AT": "0"})
        yield mode, 0, clean
        points = len(log.read_text().splitlines())
        assert points, f"{script}: no fault point; the harness is not wired in"
        for at in range(1, points + 1):
            log.write_text("")
            fault = {"KC_FAULT_LOG": str(log), "KC_FAULT_MODE": mode, "KC_FAULT_AT": str(at)}
            yield mode, at, _run_step(sandbox, script, env, fault)


def _check_secret_output(
    sandbox: Sandbox, script: str, env: dict[str, str], secrets: list[str], never: list[str],
    modes: tuple[str, ...] = ("before", "after"),
) -> None:
    failures = 0
    for mode, at, result in _every_fault(sandbox, script, env, modes):
        output = result.stdout + result.stderr
        for secret in never:
            assert secret not in output, f"{script}: a secret that is never printed shows ({mode} fault {at}):\n{_explain(result)}"
        if at == 0:
            assert result.rc == 0 and all(s in result.stdout for s in secrets), f"{script} clean run:\n{_explain(result)}"
            continue
        if result.rc != 0:
            failures += 1
            for secret in secrets:
                assert secret not in output, (
                    f"{script} failed ({mode} fault point {at}) with its secret output in its output, "
                    f"which pulumi-command puts into the error message:\n{_explain(result)}"
                )
    assert failures, f"{script}: no injected fault made the step fail; the test proves nothing"


def test_mint_token_never_fails_after_printing_the_token(sandbox: Sandbox) -> None:
    _control_plane(_faulty(sandbox))
    env = {"NODE_NAME": "w-3", "TOKEN_TTL": "1h"}
    _check_secret_output(sandbox, "mint-token.sh", env, ["abcdef.0123456789abcdef"], [])


def test_mint_token_for_a_control_plane_never_shows_the_certificate_key(sandbox: Sandbox) -> None:
    _control_plane(_faulty(sandbox))
    (sandbox.bin / ".real" / "kubectl").write_text(
        STUB_PRELUDE + "echo 'kubernetesVersion: v1.36.4'\n")  # the kubeadm-config ConfigMap
    key = "c0ffee" * 10 + "c0de"
    env = {"NODE_NAME": "cp-1", "TOKEN_TTL": "1h", "CERTIFICATE_KEY": key}
    # Faults after each command (what it printed is out, then it fails): the upload's output too.
    _check_secret_output(sandbox, "mint-token.sh", env, ["abcdef.0123456789abcdef"], [key], modes=("after",))


def test_read_kubeconfig_never_fails_after_printing_it(sandbox: Sandbox) -> None:
    admin = _faulty(sandbox).path("/etc/kubernetes/admin.conf")
    admin.parent.mkdir(parents=True)
    admin.write_text("apiVersion: v1\nkind: Config\nusers:\n- user: {client-key-data: S0VZLXNlY3JldA==}\n")
    _check_secret_output(sandbox, "read-kubeconfig.sh", {"NODE_NAME": "cp-0"}, ["S0VZLXNlY3JldA=="], [])


@pytest.mark.parametrize(("fault", "why"), [
    ({}, "a successful init"),
    ({"STUB_INIT_RC": "1"}, "kubeadm init failing after its output"),
    ({"STUB_READYZ_FAILURES": "9"}, "the API server never ready"),
    ({"STUB_VALIDATE_RC": "1"}, "the configuration refused"),
])
def test_kubeadm_init_never_prints_the_join_token_or_the_certificate_key(
    sandbox: Sandbox, fault: dict[str, str], why: str
) -> None:
    """init's stdout is not secret and its output is logged: kubeadm must be told to withhold both."""
    _faulty(sandbox)
    key = "5ec7e7" * 10 + "beef"
    config = f'apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\ncertificateKey: "{key}"\n'
    env = {"NODE_NAME": "cp-0", "KUBEADM_CONFIG": config, "CERTIFICATE_KEY": key, "KC_READY_ATTEMPTS": "1", **fault}
    result = _run_step(sandbox, "kubeadm-init.sh", env, {})
    assert (result.rc == 0) == (not fault), f"{why}:\n{_explain(result)}"
    assert "kubeadm join api:6443" in result.stderr or fault.get("STUB_VALIDATE_RC"), f"stub not reached:\n{_explain(result)}"
    output = result.stdout + result.stderr
    assert key not in output and "bootst.rapt0ken5ecret" not in output, \
        f"{why}: kubeadm init's output shows a secret:\n{_explain(result)}"


def test_nothing_after_a_secret_output_can_fail_the_step(sandbox: Sandbox) -> None:
    """The secret is the bundle's last act: a command after the step (a later step of the same
    bundle) never runs, and an exit hook that fails (even through kc_die) cannot fail it."""
    admin = sandbox.path("/etc/kubernetes/admin.conf")
    admin.parent.mkdir(parents=True)
    admin.write_text("apiVersion: v1\nkind: Config\n")
    bundle = render_bundle("read-kubeconfig.sh", {}) + 'kc_die "a later step failed"\n'
    result = sandbox.run([], bundle=bundle)
    assert result.rc == 0 and "a later step failed" not in result.stderr, _explain(result)
    hooked = expanded(render_bundle("read-kubeconfig.sh", {})).replace(
        "kc_read_kubeconfig_main </dev/null", "kc_on_exit 'kc_die cleanup-broke'\nkc_read_kubeconfig_main </dev/null")
    result = sandbox.run([], bundle=hooked)
    assert result.rc == 0 and "apiVersion: v1" in result.stdout, _explain(result)
    assert "cleanup" in result.stderr, f"the failed cleanup is not even warned about:\n{result.stderr}"


def test_the_gcp_example_stack_is_unaffected() -> None:
    """Control: the committed stacks set no secret, so nothing changes for them."""
    plan = run_program({**GCP, "adminCidrs": ["203.0.113.7/32"]})
    assert plan.error is None, plan.error
    assert not any("stdin" in r.secret_inputs for r in plan.of_type("command:remote:Command") if r.name.endswith("-prepare"))
