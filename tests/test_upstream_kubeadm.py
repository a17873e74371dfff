"""The program against kubeadm's own source (tests/upstream/kubeadm, digests of upstream's files): every kubeadm document it
generates fits the real v1beta4 types, the pause image follows kubeadm's pin per Kubernetes
minor, the node preflight accepts the kernels kubeadm's system validator accepts, and the HA
certificate key never reaches a command line nor stays on disk."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from components import hardware, versions
from components.bootstrap import node_env, pause_image
from components.config import ClusterConfig
from tests.conftest import stack_config
from tests.kubeadm_v1beta4 import OPAQUE, TYPES, config_problems, document_problems, schema, validate
from tests.test_scripts import STUBS, Sandbox
from tests.upstream_artifacts import facts
from tools.upstream_digest import DigestError, reduce_go_structs
from tools.mock_engine import Plan, Registered, config_from_stack_file, run_program

ROOT = Path(__file__).resolve().parent.parent
COMMAND = "command:remote:Command"
KEY = "00112233445566778899aabbccddeeff" * 2


# --- the schema is the Go source ----------------------------------------------------------------


#: A struct of every shape the Go parser reads (our own text, not upstream's).
GO_SAMPLE = """package v1

// A has every kind of field line.
type A struct {
\tmetav1.TypeMeta `json:",inline"`

\t// Name is documented.
\tName string `json:"name,omitempty"`
\tPorts []*Port `json:"ports"`
\tLabels map[string]string `json:"labels,omitempty"`
\tSecret string `json:"-"`
\tNoTag bool
\tB
}

type Mode string

type Modes []Mode
"""


def test_the_go_parser_reads_every_field_line_or_refuses() -> None:
    """The type digests are made by tools/upstream_digest.py's Go parser: it reads every field
    line of a struct (embedded, pointer, slice, map, untagged; ``json:"-"`` is not on the wire)
    and refuses a line it cannot read, so a digest never misses a field silently."""
    digest = reduce_go_structs(GO_SAMPLE, {})
    assert digest["structs"]["A"] == {
        "line": 4, "embedded": ["metav1.TypeMeta", "B"],
        "fields": {"name": "string", "ports": "[]*Port", "labels": "map[string]string", "NoTag": "bool"},
    }
    assert digest["named"] == {"Mode": {"line": 16, "type": "string"}}
    with pytest.raises(DigestError, match="cannot read the field line"):
        reduce_go_structs("package v1\n\ntype C struct {\n\tX, Y int\n}\n", {})
    with pytest.raises(DigestError, match="selected types that do not parse"):
        reduce_go_structs("package v1\n\ntype C struct {\n\tX, Y int\n}\n", {"select": ["C"]})
    assert reduce_go_structs(GO_SAMPLE.replace("\tNoTag bool", "\tX, Y int"), {"select": ["Mode"]})["structs"] == {}


def test_the_schema_has_the_v1beta4_shapes() -> None:
    assert TYPES["InitConfiguration"]["certificateKey"] == "string"
    assert TYPES["InitConfiguration"]["apiVersion"] == "string", "metav1.TypeMeta inline gives apiVersion/kind"
    assert TYPES["APIServer"]["extraArgs"] == ["Arg"], "APIServer inlines ControlPlaneComponent"
    assert TYPES["Arg"] == {"name": "string", "value": "string"}
    assert TYPES["NodeRegistrationOptions"]["taints"] == ["Taint"]
    assert TYPES["Taint"] == {"key": "string", "value": "string", "effect": "string", "timeAdded": "string"}
    assert TYPES["APIEndpoint"]["bindPort"] == "int"
    assert TYPES["ClusterConfiguration"]["certificateValidityPeriod"] == "string", "metav1.Duration is a string"
    assert TYPES["ClusterConfiguration"]["featureGates"] == {"string": "bool"}
    assert TYPES["KubeletConfiguration"]["cgroupDriver"] == "string"
    assert TYPES["KubeletConfiguration"]["failSwapOn"] == "bool"
    assert "timeoutForControlPlane" not in TYPES["APIServer"], "a v1beta3 field"
    assert OPAQUE == {
        "bootstraptokenv1.BootstrapToken", "corev1.EnvVarSource", "corev1.NodeConfigSource", "corev1.ResourceList",
        "logsapi.LoggingConfiguration", "tracingapi.TracingConfiguration",
    }, "a new type without an artifact: add its Go file or list it, knowingly, as opaque"


# --- every document the program generates ---------------------------------------------------------

#: Program runs whose kubeadm documents are checked: every shipped stack file, and the shapes the
#: stack files do not cover (single node, tainted pools, a mirror, 1.35, existing servers).
RUNS: dict[str, dict[str, Any]] = {
    **{p.name: config_from_stack_file(p) for p in sorted(ROOT.glob("Pulumi.*.yaml"))},
    "single-node": stack_config(controlPlane={"schedulable": True, "storageDiskSizeGb": 50}, workerPools=[]),
    "ha-pools": stack_config(
        controlPlane={"count": 3},
        workerPools=[{"name": "general", "count": 2, "storageDiskSizeGb": 40},
                     {"name": "batch", "count": 1, "taints": ["dedicated=batch:NoSchedule"]}],
        kubeadm={"apiServerExtraArgs": {"runtime-config": "api/all=true"}},
        imageRepository="registry.example.cn/k8s",
    ),
    "k8s-1.35": stack_config(kubernetesVersion="1.35.2"),
    "existing": {
        "provider": "existing", "adminCidrs": ["203.0.113.7/32"], "workerPools": [{"name": "general", "count": 0}],
        "existingHosts": {"controlPlane": [{"address": "192.0.2.10", "user": "ops"}],
                          "workers": [{"address": "192.0.2.11", "user": "ops", "pool": "general",
                                       "storageDevice": "/dev/disk/by-id/nvme-data"}]},
        "sshPrivateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\nX\n-----END OPENSSH PRIVATE KEY-----\n",
    },
}


@cache
def _plan(run: str) -> Plan:
    secret = ["kubeadm-cluster:sshPrivateKey"] if "sshPrivateKey" in RUNS[run] else []
    plan = run_program(RUNS[run], stack="dev", secret_keys=secret)
    assert plan.error is None, f"{run}: {plan.error}"
    return plan


def _env(command: Registered) -> dict[str, str]:
    """The ``export NAME=value`` lines of a step's bundle."""
    exports = str(command.input("stdin")).split("\n#!/usr/bin/env bash", 1)[0].split("\n# kc-run", 1)[0]
    tokens = shlex.split(exports)
    return {t.split("=", 1)[0]: t.split("=", 1)[1] for i, t in enumerate(tokens) if i and tokens[i - 1] == "export" and "=" in t}


def _kubeadm_configs(plan: Plan) -> dict[str, str]:
    return {c.name: env["KUBEADM_CONFIG"] for c in plan.of_type(COMMAND) if "KUBEADM_CONFIG" in (env := _env(c))}


@pytest.mark.parametrize("run", sorted(RUNS))
def test_every_generated_kubeadm_document_fits_the_upstream_types(run: str) -> None:
    configs = _kubeadm_configs(_plan(run))
    kinds = {d["kind"] for c in configs.values() for d in yaml.safe_load_all(c) if d}
    assert {"InitConfiguration", "ClusterConfiguration", "KubeletConfiguration"} <= kinds, f"{run}: no init config: {kinds}"
    if run != "single-node":
        assert "JoinConfiguration" in kinds, f"{run}: no join config among {sorted(configs)}"
    for step, config in configs.items():
        problems = config_problems(config)
        assert not problems, f"{run}: {step}'s kubeadm config does not fit kubeadm's v1beta4 types:\n" + "\n".join(problems)


def _init_docs() -> list[dict[str, Any]]:
    init = next(c for name, c in _kubeadm_configs(_plan("ha-pools")).items() if name.endswith("-init"))
    return [d for d in yaml.safe_load_all(init) if d]


def test_the_validator_catches_a_misspelt_field() -> None:
    init, cluster, _ = _init_docs()
    cluster = {**cluster, "networking": {**cluster["networking"], "podSubnets": "10.32.0.0/12"}}
    problems = document_problems(cluster)
    assert any("networking.podSubnets: unknown field of Networking" in p for p in problems), problems
    init = {**init, "nodeRegistration": {**init["nodeRegistration"], "kubeletExtraArg": []}}
    assert any("kubeletExtraArg: unknown field" in p for p in document_problems(init)), "a misspelt field passed"


def test_the_validator_catches_a_v1beta3_extra_args_map_and_wrong_scalars() -> None:
    _, cluster, _ = _init_docs()
    v1beta3 = {**cluster, "apiServer": {**cluster["apiServer"], "extraArgs": {"runtime-config": "api/all=true"}}}
    assert any("apiServer.extraArgs: expected a list" in p for p in document_problems(v1beta3)), "a v1beta3 map passed"
    assert validate({"bindPort": "6443"}, "APIEndpoint") == ["APIEndpoint.bindPort: expected integer, got str '6443'"]
    assert validate({"readOnly": "false"}, "HostPathMount"), "a string where kubeadm wants a bool passed"
    assert validate({"failSwapOn": 1}, "KubeletConfiguration"), "an int where the kubelet wants a bool passed"
    assert document_problems({"apiVersion": "kubeadm.k8s.io/v1beta3", "kind": "ClusterConfiguration"}), "v1beta3 passed"
    assert document_problems({"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "MasterConfiguration"})


# --- the pause image, per Kubernetes minor ------------------------------------------------------


def _kubeadm_pause_tags() -> dict[str, str]:
    """Kubernetes release -> the pause tag its kubeadm pins (minikube's generated table, 1.30 and newer)."""
    releases = facts("kubeadm", "minikube-kubeadm-images.digest.yaml")["minikube-kubeadm-images"]["releases"]
    return {release: row["pause"] for release, row in releases.items()}


def test_the_pause_pin_of_each_supported_minor_is_kubeadms() -> None:
    tags = _kubeadm_pause_tags()
    for minor in versions.KUBERNETES_SUPPORTED_MINORS:
        releases = {v: t for v, t in tags.items() if re.fullmatch(rf"v1\.{minor}\.\d+", v)}
        assert releases, f"the kubeadm image table has no 1.{minor} release"
        assert minor in versions.PAUSE_VERSIONS, f"versions.PAUSE_VERSIONS has no entry for supported minor 1.{minor}"
        assert set(releases.values()) == {versions.PAUSE_VERSIONS[minor]}, (
            f"kubeadm 1.{minor} pins pause {sorted(set(releases.values()))} ({releases}), "
            f"versions.PAUSE_VERSIONS[{minor}] = {versions.PAUSE_VERSIONS[minor]}")
    assert versions.PAUSE_IMAGE == f"registry.k8s.io/pause:{tags['v1.36.3']}", "the default (1.36) pause image"


@pytest.mark.parametrize(("version", "tag"), [("1.35.2", "3.10.1"), ("1.36.4", "3.10.2")])
def test_node_prep_pins_the_pause_image_of_the_stacks_minor_on_its_registry(version: str, tag: str) -> None:
    config = ClusterConfig.model_validate({"adminCidrs": ["203.0.113.7/32"], "kubernetesVersion": version})
    assert node_env(config, "w-0")["PAUSE_IMAGE"] == f"registry.k8s.io/pause:{tag}"
    mirrored = config.model_copy(update={"image_repository": "registry.example.cn/k8s"})
    assert pause_image(mirrored) == f"registry.example.cn/k8s/pause:{tag}", "the mirror must serve kubeadm's pause"


def test_a_minor_upgrade_moves_containerds_sandbox_pin_before_kubeadm_upgrades() -> None:
    """1.35 -> 1.36: node prep runs again with 1.36's pause (containerd is restarted on the
    changed config.toml), and `kubeadm upgrade` on a node waits for that node's prep."""
    before = {c.name: c for c in run_program(stack_config(kubernetesVersion="1.35.2"), stack="dev").of_type(COMMAND)}
    after_plan = run_program(stack_config(kubernetesVersion="1.36.4"), stack="dev")
    after = {c.name: c for c in after_plan.of_type(COMMAND)}
    prepare = next(n for n in after if n.endswith("-prepare"))
    assert _env(before[prepare])["PAUSE_IMAGE"].endswith(":3.10.1")
    assert _env(after[prepare])["PAUSE_IMAGE"].endswith(":3.10.2"), "the upgrade path keeps the old minor's pause"
    node = prepare[: -len("-prepare")]
    upgrade = after[f"{node}-upgrade"]
    assert after[prepare].urn in after_plan.ancestors_depend(upgrade), "kubeadm upgrade must wait for the node's prep"


# --- the kernel minimum -------------------------------------------------------------------------


def _kubeadm_kernel_regexes() -> list[str]:
    """system-validators' KernelSpec.Versions (types_unix.go)."""
    regexes = facts("kubeadm", "system-validators-types_unix.digest.yaml")["go-strings"]["kernel_versions"]
    assert regexes, "no KernelSpec.Versions in system-validators' types_unix.go"
    return [r["value"] for r in regexes]


RELEASES = [
    "4.19.0-26-amd64", "5.3.18", "5.4.0-150-generic", "5.8.0-63-generic", "5.10.0-28-amd64", "5.11.0-49-generic",
    "5.13.0-52-generic", "5.15.0-1060-gcp", "5.19.0-50-generic", "6.1.0-18-amd64", "6.8.0-1015-gcp",
    "6.14.0-1012-aws", "7.0.1-arch1", "10.2.3",
]


def test_the_kernel_constants_are_kubeadms_list() -> None:
    regexes = _kubeadm_kernel_regexes()
    assert regexes[:3] == [r"^5\.4.*$", r"^5\.10.*$", r"^5\.15.*$"] and len(regexes) == 4, regexes
    for major, minor in hardware.KERNEL_LTS_LINES:
        assert any(re.match(r, f"{major}.{minor}.0") for r in regexes), f"kubeadm does not accept {major}.{minor}"
    assert any(re.match(r, f"{hardware.MIN_KERNEL[0]}.{hardware.MIN_KERNEL[1]}.0") for r in regexes)
    assert not any(re.match(r, "5.8.0") for r in regexes), "5.8 (the old minimum) is outside kubeadm's list"


def test_kubeadm_only_warns_about_an_unlisted_kernel() -> None:
    """Why the preflight refuses such kernels itself: kubeadm's SystemVerification reports a
    release that matches none of the regexes as a warning, not an error (kernel_validator.go)."""
    validate = facts("kubeadm", "system-validators-kernel_validator.digest.yaml")["lines"]
    lines = {fact: [m["text"] for m in matches] for fact, matches in validate.items()}
    assert lines["version_check"] == ["if warn := k.validateKernelVersion(spec.KernelSpec); warn != nil {"], lines
    assert "warns = append(warns, warn)" in lines["appended_to"], lines
    assert "return warns, errs" in lines["returns"], lines


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    yield Sandbox(tmp_path)


@pytest.mark.parametrize("release", RELEASES)
def test_the_preflight_accepts_exactly_the_kernels_kubeadm_accepts(sandbox: Sandbox, release: str) -> None:
    kubeadm_accepts = any(re.match(r, release) for r in _kubeadm_kernel_regexes())
    result = sandbox.run("preflight.sh", {"NODE_NAME": "w-0", **hardware.preflight_env(), "STUB_UNAME_R": release})
    kernel_refused = f"kernel {release} (kubeadm supports 5.4, 5.10, 5.15, 6.0 or newer)" in result.stderr
    assert kernel_refused != kubeadm_accepts, (
        f"kernel {release}: kubeadm's validator {'accepts' if kubeadm_accepts else 'rejects'} it, the preflight "
        f"{'refuses' if kernel_refused else 'accepts'} it:\n{result.stderr}")
    assert (result.rc == 0) == kubeadm_accepts, result.stderr


# --- the certificate key ------------------------------------------------------------------------

#: kubeadm's rule (cmd/kubeadm/app/apis/kubeadm/validation: ValidateMixedArguments/isAllowedFlag):
#: with --config, only these flags (and any --skip-*) may be given; the rest is an error.
ALLOWED_WITH_CONFIG = {"config", "ignore-preflight-errors", "dry-run", "kubeconfig", "node-name", "kubeconfig-dir",
                       "upload-certs", "print-join-command", "rootfs", "v", "log-file"}
STRICT_KUBEADM = r"""cfg="" prev=""
for a in "$@"; do [[ $prev == --config ]] && cfg=$a; prev=$a; done
if [[ -n $cfg ]]; then
  for a in "$@"; do
    [[ $a == --* ]] || continue
    f=${a#--}; f=${f%%=*}
    case " ALLOWED " in *" $f "*) ;; *) [[ $f == skip-* ]] || { echo "can not mix '--config' with arguments [$f]" >&2; exit 1; } ;; esac
  done
fi
if [[ "$1 ${2:-} ${3:-}" == "init phase upload-certs" ]]; then
  n=$(count upload)
  stat -c %a "$cfg" >"$STUB_STATE/upload-mode-$n"; cp "$cfg" "$STUB_STATE/upload-config-$n"
  ((n <= ${STUB_UPLOAD_FAILURES:-0})) && { echo "error execution phase upload-certs: timeout" >&2; exit 1; }
  exit 0
fi
""".replace("ALLOWED", " ".join(sorted(ALLOWED_WITH_CONFIG)))


#: kubectl answering the kubeadm-config ConfigMap the way the API server does (mint-token.sh reads
#: the cluster's kubernetesVersion there for the upload config); anything else as the sandbox's stub.
CLUSTER_VERSION = "1.36.4"
CONFIGMAP_KUBECTL = r"""if [[ " $* " == *" get configmap kubeadm-config "* ]]; then
  printf 'apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v%s\n' "VERSION"
  exit 0
fi
""".replace("VERSION", CLUSTER_VERSION)


@pytest.fixture
def node(sandbox: Sandbox) -> Sandbox:
    sandbox._stub("kubeadm", STRICT_KUBEADM + STUBS["kubeadm"])
    sandbox._stub("kubectl", CONFIGMAP_KUBECTL + STUBS["kubectl"])
    return sandbox


def _files_holding(sandbox: Sandbox, secret: str) -> list[str]:
    return [str(p) for p in sandbox.root.rglob("*") if p.is_file() and secret in p.read_text(errors="replace")]


def _ha_init_config() -> str:
    init = next(c for name, c in _kubeadm_configs(_plan("ha-pools")).items() if name.endswith("-init"))
    key = yaml.safe_load_all(init).__next__()["certificateKey"]
    return init.replace(key, KEY)


@pytest.mark.parametrize("fails", [False, True])
def test_init_keeps_no_copy_of_the_certificate_key(node: Sandbox, fails: bool) -> None:
    env = {"NODE_NAME": "cp-0", "KUBEADM_CONFIG": _ha_init_config(), "CERTIFICATE_KEY": KEY}
    result = node.run("kubeadm-init.sh", {**env, **({"STUB_INIT_RC": "1"} if fails else {})})
    assert (result.rc != 0) == fails, result.stderr
    assert [c for c in result.calls if KEY in c] == [], f"the certificate key was on a command line: {result.calls}"
    assert (node.state / "init-mode-1").read_text().strip() == "600", "kubeadm init's config is not mode 0600"
    assert f"certificateKey: {KEY}" in (node.state / "init-config-1").read_text(), "kubeadm init did not get the key"
    assert _files_holding(node, KEY) == [], "the certificate key stayed on the node's disk after kubeadm init"
    kept = node.path("/etc/kubernetes/kubeadm-config.yaml")
    if not fails:
        assert "ClusterConfiguration" in kept.read_text() and "certificateKey" not in kept.read_text()
        assert kept.stat().st_mode & 0o777 == 0o600
    assert KEY not in result.stdout + result.stderr


def test_init_scrubs_the_key_an_older_version_left_in_the_kept_config(node: Sandbox) -> None:
    kept = node.path("/etc/kubernetes/kubeadm-config.yaml")
    kept.parent.mkdir(parents=True)
    kept.write_text(_ha_init_config())
    node.path("/etc/kubernetes/admin.conf").write_text("admin\n")
    result = node.run("kubeadm-init.sh", {"NODE_NAME": "cp-0", "KUBEADM_CONFIG": _ha_init_config(), "CERTIFICATE_KEY": KEY})
    assert result.rc == 0, result.stderr
    assert not result.called("kubeadm"), result.calls
    assert _files_holding(node, KEY) == [], "an initialised node keeps the certificate key in its kubeadm config"
    assert "controlPlaneEndpoint" in kept.read_text(), "the kept config lost more than the key"


@pytest.mark.parametrize("failures", [0, 1, 99])
def test_mint_token_passes_the_key_in_a_config_file_it_removes(node: Sandbox, failures: int) -> None:
    node.path("/etc/kubernetes/pki").mkdir(parents=True)
    node.path("/etc/kubernetes/pki/ca.crt").write_text("CA\n")
    node.path("/etc/kubernetes/admin.conf").write_text("admin\n")
    env = {"NODE_NAME": "cp-1", "TOKEN_TTL": "1h", "CERTIFICATE_KEY": KEY, "STUB_UPLOAD_FAILURES": str(failures)}
    result = node.run("mint-token.sh", env)
    assert (result.rc == 0) == (failures < 5), result.stderr
    uploads = result.called("kubeadm init phase upload-certs")
    assert uploads and all("--config " in u and "--upload-certs" in u for u in uploads), uploads
    assert [c for c in result.calls if KEY in c] == [], f"the certificate key was on a command line: {result.calls}"
    init, cluster = list(yaml.safe_load_all((node.state / "upload-config-1").read_text()))
    assert init == {"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "InitConfiguration", "certificateKey": KEY}
    # Without a ClusterConfiguration kubeadm defaults kubernetesVersion to "stable-1" and asks
    # dl.k8s.io for it (a node on a restricted network waits for that lookup to time out).
    assert cluster == {"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "ClusterConfiguration",
                       "kubernetesVersion": f"v{CLUSTER_VERSION}"}, f"the upload config names no cluster version: {cluster}"
    assert document_problems(init) == [] and document_problems(cluster) == []
    assert all(f"--kubeconfig {node.path('/etc/kubernetes/admin.conf')}" in u for u in uploads), (
        f"kubeadm ignores $KUBECONFIG: the upload must name the kubeconfig: {uploads}")
    assert (node.state / "upload-mode-1").read_text().strip() == "600", "the file holding the key is not mode 0600"
    assert _files_holding(node, KEY) == [], "the file holding the certificate key was left on disk"
    assert KEY not in result.stdout + result.stderr


def test_the_program_puts_the_certificate_key_on_no_command_line() -> None:
    plan = _plan("ha-pools")
    key = str(plan.named("dev-certificate-key").outputs["hex"])
    for command in plan.of_type(COMMAND):
        for field in ("create", "update", "delete"):
            assert key not in str(command.input(field) or ""), f"{command.name}.{field} holds the certificate key"
