"""Stage 3: bootstrap. Node prep, ``kubeadm init``, joins, upgrades and leaving the cluster.

Every step is a ``pulumi_command.remote.Command`` running one of the scripts in
``scripts/`` from the node's copy of them (one ``CopyToRemote`` per node, again only when a
script changed or the machine is new; see ``components.bootstrap.scripts``): a release changes
no step's inputs, so it runs each node's copy and, when its scripts changed, its prep, nothing
else. The dependency graph is what makes ``pulumi up`` fast and safe:

    copy of the scripts, then node prepare (every node, in parallel, as soon as its machine exists)
    first control plane: prepare -> init -> kubeconfig / join-command
    other control planes (HA), one at a time: token + fresh cert upload -> join -> next one
    each worker:         init -> its own token (on the control plane) -> join (on the worker,
                         also after its own prepare), all workers in parallel

Day two, driven by config changes alone:

* a node leaving the stack is drained and deleted (a control plane: its etcd member removed,
  or refused when etcd would lose quorum) by a ``membership`` step on the first control plane,
  before its machine goes;
* ``upgrade.drainTimeout`` is read by each drain when it runs, from a kube-system ConfigMap
  (SETTINGS_CONFIGMAP), and ``upgrade.workerBatchSize`` only orders the worker upgrades: changing
  either runs nothing on the nodes;
* a ``kubernetesVersion`` change runs the kubeadm upgrade: a version check on the first control
  plane (no minor skipped, no downgrade), node prep switches the package repository, then
  ``kubeadm upgrade apply`` on the first control plane, ``kubeadm upgrade node`` on the other
  control planes one at a time, then the workers in batches of ``upgrade.workerBatchSize``
  (drained from the first control plane, upgraded, uncordoned); the stack records the version
  (components/version_gate.py) only once every upgrade step succeeded;
* a replaced machine (a new VM behind a node's name: its GCE id, ``Machine.identity``, changed)
  gets its prep, token and join again, after the old machine's Node object (and etcd member) is
  removed by its ``-identity`` step (delete-before-replace);
* a join retried by a later ``up`` finds its token and the uploaded certificates valid: the token
  step makes the node's own token (and certificates) anew in each TOKEN_REFRESH_MINUTES window.

Every step is bounded in time (STEP_TIMEOUTS, lib.sh's watchdog) and never gets its previous
output back as SSH environment requests.

Every control plane also gets maintenance timers (components/bootstrap/maintenance.py): etcd
snapshots on the stack's schedule (and one before each of its upgrades, and on the first control
plane before another one leaves) and certificate renewal; the admin kubeconfig is re-read once
per refresh window, so the exported one follows the renewed certificate.

The upgrade steps have no create command (they run only when their inputs change), so they
cost nothing when a cluster is created and the longest chain of a new cluster stays five
remote steps with one control plane (copy, prepare, init, token, join), whatever the number of
workers.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import shlex
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, NotRequired, TypedDict

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random
import yaml
from pulumi_command import remote

from components import hardware, versions
from components.bootstrap import kubeadm_config
from components.bootstrap import maintenance as upkeep
from components.bootstrap.scripts import RUN_BUNDLE, bundle, copy_scripts, render_bundle, scripts_hash
from components.config import ClusterConfig
from components.machines import Endpoints, Machine

#: Lifetime of the token minted for one worker's join (used within minutes).
WORKER_TOKEN_TTL = "1h"
#: A node's join token is made anew (same value, fresh lifetime; the control planes' certificates
#: uploaded again) by the first `pulumi up` of each window of this many minutes, half the token's
#: lifetime: a join retried by a later `up` (its token or the 2-hour certificate upload expired)
#: always finds them valid. A node already in the cluster and Ready gets nothing (mint-token.sh).
TOKEN_REFRESH_MINUTES = 30
#: Lifetime of the token behind the exported ``joinCommand``.
EXPORTED_TOKEN_TTL = "24h"
#: What an owned server runs when it leaves the stack (it keeps running; the VM of GCP does not).
RESET_ON_DELETE = "sudo kubeadm reset --force >&2 || true"
#: The kube-system ConfigMap of the settings the node steps read when they run, not as inputs
#: (lib.sh's KC_SETTINGS_CONFIGMAP): ``drainTimeout`` (upgrade.drainTimeout).
SETTINGS_CONFIGMAP = "kubeadm-cluster-settings"
#: The Kubernetes provider's kubeconfig in a preview that skips the Kubernetes diff: a valid
#: document (the provider's DiffConfig parses it) with no cluster, context or user, so client-go
#: refuses it before any connection ("no configuration has been provided").
NO_CLUSTER_KUBECONFIG = 'apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\ncurrent-context: ""\n'
#: The scripts of node prep (preflight, then container runtime + kubeadm).
PREP_SCRIPTS = ("preflight.sh", "prepare-node.sh")
#: The stack settings (top-level keys) whose values each node script's inputs carry. A step's
#: stdin is a secret when one of them was set with ``pulumi config set --secret`` (a mirror URL
#: with credentials): in the state, in previews and in pulumi-command's messages.
SCRIPT_SETTINGS: dict[str, tuple[str, ...]] = {
    "preflight.sh": ("mirrors",),  # the connectivity check reaches the package mirror
    "prepare-node.sh": ("mirrors", "imageRepository", "kubernetesVersion"),
    "kubeadm-init.sh": ("controlPlane", "kubernetesVersion", "imageRepository", "network", "kubeadm"),
    "kubeadm-join.sh": ("controlPlane", "workerPools"),
    "mint-token.sh": (),
    "read-kubeconfig.sh": (),
    "check-version.sh": ("kubernetesVersion",),
    "upgrade-node.sh": ("kubernetesVersion", "upgrade"),
    "upgrade-drain.sh": ("kubernetesVersion", "upgrade"),
    "install-maintenance.sh": ("backup",),
    "etcd-snapshot.sh": (),
    "resize-node.sh": ("controlPlane", "workerPools", "upgrade"),
    "jump-host.sh": (),
    "wait-ssh.sh": (),
}
#: How long a step may run, per script, in seconds (KC_STEP_TIMEOUT: lib.sh stops a bundle that
#: runs longer); a bundle's bound is the sum of its scripts'. Each is the script's own waits at their
#: longest plus room: node prep waits up to 600 s for cloud-init, 900 s for the apt-daily services
#: and 600 s for apt's locks before it downloads and installs; a drain is bounded by
#: upgrade.drainTimeout, at most one hour (components/config.py); a resize waits its turn for up to
#: two hours (resize-node.sh, KC_RESIZE_WAIT).
STEP_TIMEOUTS: dict[str, int] = {
    "preflight.sh": 300,
    "prepare-node.sh": 3600,
    "kubeadm-init.sh": 1800,
    "kubeadm-join.sh": 1800,
    "mint-token.sh": 600,
    "read-kubeconfig.sh": 300,
    "check-version.sh": 600,
    "upgrade-node.sh": 7200,
    "upgrade-drain.sh": 5400,
    "install-maintenance.sh": 600,
    "etcd-snapshot.sh": 900,
    "remove-node.sh": 5400,
    "remove-control-plane.sh": 5400,
    "resize-node.sh": 12600,
    "jump-host.sh": 300,
    "wait-ssh.sh": 1200,
}


class KubeadmClusterArgs(TypedDict):
    config: ClusterConfig
    cluster_name: str
    #: node name -> machine, control planes first (the plan's order).
    machines: Mapping[str, Machine]
    endpoints: Endpoints
    #: A preview from outside adminCidrs: the provider gets NO_CLUSTER_KUBECONFIG (config.SKIP_KUBERNETES_DIFF_ENV).
    skip_kubernetes_diff: NotRequired[bool]
    #: GCP: ``gs://<bucket>`` of the stack's etcd backup bucket (else backup.uploadUrl, if any).
    backup_bucket_url: NotRequired[pulumi.Input[str] | None]


def step_timeout(step: str | Sequence[str]) -> str:
    """KC_STEP_TIMEOUT of a bundle of ``step`` (lib.sh's watchdog): the sum of its scripts' bounds."""
    scripts = [step] if isinstance(step, str) else list(step)
    missing = [script for script in scripts if script not in STEP_TIMEOUTS]
    if missing:  # a new script: say how long it may run, or a hung one holds `pulumi up` forever
        raise KeyError(f"{missing}: add them to STEP_TIMEOUTS with how long they may run")
    return str(sum(STEP_TIMEOUTS[script] for script in scripts))


def token_refresh_window(now: datetime) -> str:
    """The TOKEN_REFRESH_MINUTES window ``now`` falls in (a join token step's trigger)."""
    minutes = now.hour * 60 + now.minute
    start = minutes - minutes % TOKEN_REFRESH_MINUTES
    return f"{now:%Y-%m-%d}T{start // 60:02d}:{start % 60:02d}Z"


def join_token(seed_hex: str, node_name: str) -> str:
    """A node's own bootstrap token, ``[a-z0-9]{6}.[a-z0-9]{16}``: an HMAC of the node's name under
    the stack's secret seed. The node always gets the same token, so making it anew (a retried
    join) changes nothing the join reads. (It is not derived from the machine's identity, which a
    preview does not know yet for a new VM: the join's inputs stay known.)"""
    digest = hmac.new(bytes.fromhex(seed_hex), node_name.encode(), hashlib.sha256).digest()
    number, text = int.from_bytes(digest, "big"), ""
    while len(text) < 22:
        number, digit = divmod(number, 36)
        text += "0123456789abcdefghijklmnopqrstuvwxyz"[digit]
    return f"{text[:6]}.{text[6:22]}"


def node_env(config: ClusterConfig, node_name: str) -> dict[str, str]:
    """Inputs of the preflight and node-prep scripts: the hardware truth, pinned versions, mirrors."""
    mirrors = config.mirrors
    apt_repo = mirrors.kubernetes_packages or versions.KUBERNETES_APT_REPO
    return {
        "NODE_NAME": node_name,
        **hardware.preflight_env(),
        "K8S_VERSION": config.kubernetes_version,
        "K8S_APT_REPO": apt_repo.format(minor=config.kubernetes_minor),
        "CONTAINERD_VERSION": versions.CONTAINERD_VERSION,
        "CONTAINERD_RELEASE_URL": mirrors.containerd_releases or versions.CONTAINERD_RELEASE_URL,
        "RUNC_VERSION": versions.RUNC_VERSION,
        "RUNC_RELEASE_URL": mirrors.runc_releases or versions.RUNC_RELEASE_URL,
        "PAUSE_IMAGE": pause_image(config),
        # One line per registry: "registry=endpoint[,endpoint...]" -> containerd hosts.toml files.
        "REGISTRY_MIRRORS": "\n".join(
            f"{registry}={','.join(endpoints)}" for registry, endpoints in sorted(mirrors.registries.items())
        ),
    }


def pause_image(config: ClusterConfig) -> str:
    """The sandbox image kubeadm of the stack's Kubernetes minor pins, on the stack's registry.

    containerd gets the same one (prepare-node.sh): on an upgrade to a new minor, node prep runs
    again with the new minor's image before `kubeadm upgrade`, so the pin follows the minor.
    """
    minor = int(config.kubernetes_version.split(".")[1])
    tag = versions.PAUSE_VERSIONS.get(minor)
    if tag is None:
        raise ValueError(
            f"no pause image is known for Kubernetes 1.{minor}: add it to versions.PAUSE_VERSIONS "
            f"(kubeadm's constants.PauseVersion of that minor)"
        )
    return f"{config.image_repository}/pause:{tag}"


def endpoint_env(endpoints: Endpoints, final_ip: pulumi.Input[str], bootstrap_ip: pulumi.Input[str] | None = None) -> dict[str, pulumi.Input[str]]:
    """How a node resolves the API endpoint name (/etc/hosts): nothing when there is no name."""
    if endpoints.name is None:
        return {}
    return {
        "API_ENDPOINT_NAME": endpoints.name,
        "API_ENDPOINT_IP": final_ip,
        "API_ENDPOINT_BOOTSTRAP_IP": bootstrap_ip if bootstrap_ip is not None else final_ip,
    }


def manual_join_command(endpoint_name: str | None, endpoint_ip: str, token: str, ca_cert_hash: str) -> str:
    """The exported ``joinCommand``: the hosts entry of the endpoint name (if any), then kubeadm join."""
    join = kubeadm_config.join_command(endpoint_ip, token, ca_cert_hash)
    if endpoint_name is None:
        return join
    return f"echo '{endpoint_ip} {endpoint_name}' | sudo tee -a /etc/hosts >/dev/null && sudo {join}"


def public_kubeconfig(admin_conf: str, public_endpoint: str) -> str:
    """admin.conf with every cluster's server rewritten to the public endpoint."""
    document: dict[str, Any] = yaml.safe_load(admin_conf)
    for cluster in document.get("clusters") or []:
        cluster["cluster"]["server"] = f"https://{public_endpoint}:{kubeadm_config.API_SERVER_PORT}"
    return yaml.safe_dump(document, sort_keys=False)


def parse_token(stdout: str) -> dict[str, str]:
    """The JSON line ``mint-token.sh`` prints: ``{"token": ..., "caCertHash": ...}``."""
    data = json.loads(stdout.strip().splitlines()[-1])
    return {"token": str(data["token"]), "caCertHash": str(data["caCertHash"])}


class KubeadmCluster(pulumi.ComponentResource):
    """A kubeadm cluster on the given machines."""

    kubeconfig: pulumi.Output[str]
    join_command: pulumi.Output[str]
    control_plane_endpoint: pulumi.Output[str]
    nodes: pulumi.Output[dict[str, dict[str, str]]]
    provider: k8s.Provider
    #: node name -> the command after which that Node object exists in the API.
    node_ready: dict[str, pulumi.Resource]
    #: Where the etcd backups are (stack output ``etcdBackups``).
    etcd_backups: pulumi.Output[str]
    #: HA only: the key that encrypts the uploaded control-plane certificates (secret).
    certificate_key: pulumi.Output[str] | None
    #: The version check and every upgrade step: the stack records a kubernetesVersion only once
    #: they all succeeded (components/version_gate.py).
    upgrade_steps: list[pulumi.Resource]
    #: node name -> the copy of the node scripts every step on that node sources.
    scripts: dict[str, pulumi.Resource]
    #: The SETTINGS_CONFIGMAP the drains read upgrade.drainTimeout from.
    settings: k8s.core.v1.ConfigMap

    def __init__(self, name: str, args: KubeadmClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("kubeadm-cluster:index:KubeadmCluster", name, None, opts)
        config, machines, endpoints = args["config"], args["machines"], args["endpoints"]
        first = next(m for m in machines.values() if m.node.is_first_control_plane)
        control_planes = [m for m in machines.values() if m.node.is_control_plane and m is not first]
        workers = [m for m in machines.values() if not m.node.is_control_plane]

        def run(
            resource_name: str,
            machine: Machine,
            step: str | list[str],
            env: Mapping[str, pulumi.Input[str]],
            depends_on: list[pulumi.Resource],
            secret_stdout: bool = False,
            delete: str | None = None,
            on_change_only: bool = False,
            triggers: Sequence[pulumi.Input[str]] | None = None,
        ) -> remote.Command:
            """One step on ``machine``. ``on_change_only``: nothing runs when the resource is
            created; the step runs when its inputs change (the upgrade steps). A change of
            ``triggers`` replaces the step: it runs again. Every step is bounded in time
            (STEP_TIMEOUTS), and no step's previous output is sent back to the node:
            pulumi-command 1.2.1 sends it as SSH environment requests unless
            ``add_previous_output_in_env`` is false (provider/pkg/provider/remote/commandOutputs.go),
            and the output of some steps (tokens, the admin kubeconfig) is a secret."""
            extra = [machine.resource] if machine.resource is not None else []
            extra.append(self.scripts[machine.node.name])
            scripts = [step] if isinstance(step, str) else step
            stdin = bundle(step, {**env, "KC_STEP_TIMEOUT": step_timeout(step)})
            undeclared = [script for script in scripts if script not in SCRIPT_SETTINGS]
            if undeclared:  # a new script: say which settings reach it, or a secret one leaks
                raise KeyError(f"{undeclared}: add them to SCRIPT_SETTINGS with the settings their inputs carry")
            if config.is_secret(*(key for script in scripts for key in SCRIPT_SETTINGS[script])):
                stdin = pulumi.Output.secret(stdin)
            return remote.Command(
                resource_name,
                connection=machine.connection,
                create=None if on_change_only else RUN_BUNDLE,
                update=RUN_BUNDLE if on_change_only else None,
                delete=delete,
                stdin=stdin,
                triggers=list(triggers) if triggers else None,
                add_previous_output_in_env=False,
                logging=remote.Logging.STDERR if secret_stdout else remote.Logging.STDOUT_AND_STDERR,
                opts=pulumi.ResourceOptions(
                    parent=self,
                    depends_on=extra + depends_on,
                    additional_secret_outputs=["stdout"] if secret_stdout else None,
                ),
            )

        def leave(
            resource_name: str,
            script: str | list[str],
            env: Mapping[str, str],
            after: list[pulumi.Resource],
            identity: pulumi.Input[str] | None = None,
        ) -> remote.Command:
            """Runs ``script`` on the first control plane when the resource goes: when the node
            leaves the stack (count lowered, pool removed, destroy), before its machine is deleted
            (it depends on ``after``, which depend on the machine); with ``identity``, also when the
            node's machine is replaced (a new identity replaces the resource, the old one deleted
            first). Nothing runs on create."""
            timed = {**env, "KC_STEP_TIMEOUT": step_timeout(script)}
            return remote.Command(
                resource_name,
                connection=first.connection,
                delete=f"sudo bash -c {shlex.quote(render_bundle(script, timed))}",
                triggers=[identity] if identity is not None else None,
                add_previous_output_in_env=False,
                opts=pulumi.ResourceOptions(
                    parent=self,
                    # The first control plane's scripts: what its delete sources.
                    depends_on=[self.scripts[first.node.name], *after],
                    delete_before_replace=True if identity is not None else None,
                ),
            )

        # The node scripts, copied to each node once its machine is reachable (and again when a
        # script changed or the machine is a new one): every step below sources them there.
        self.scripts: dict[str, pulumi.Resource] = {
            node_name: machine.scripts
            or copy_scripts(
                f"{node_name}-scripts",
                machine.connection,
                machine.identity,
                [machine.resource] if machine.resource is not None else [],
                self,
            )
            for node_name, machine in machines.items()
        }

        # 0. A kubernetesVersion change is checked against the running cluster first: no minor
        #    skipped, no downgrade. Every node's prep (which switches the package repository)
        #    waits for it.
        version_check = run(
            f"{first.node.name}-version-check",
            first,
            "check-version.sh",
            {"K8S_VERSION": config.kubernetes_version},
            [],
            on_change_only=True,
        )
        self.upgrade_steps = [version_check]

        # 1. Every node: preflight against the hardware truth, then container runtime + kubeadm,
        #    and the API endpoint name in /etc/hosts (a joining control plane: the first one's).
        def identity_trigger(machine: Machine) -> list[pulumi.Input[str]] | None:
            """The triggers of a step that must run again on a replaced machine: its identity
            (GCE's instance id, new for each VM). None where there is none (own servers)."""
            return [machine.identity] if machine.identity is not None else None

        def final_ip(machine: Machine) -> pulumi.Input[str]:
            return machine.internal_ip if machine.node.is_control_plane else endpoints.internal

        prepared: dict[str, remote.Command] = {
            node_name: run(
                f"{node_name}-prepare",
                machine,
                list(PREP_SCRIPTS),
                {
                    **node_env(config, node_name),
                    # Prep runs again when what it installs or configures changes: its scripts.
                    "KC_SCRIPTS_SHA256": scripts_hash(PREP_SCRIPTS),
                    **endpoint_env(
                        endpoints,
                        final_ip(machine),
                        first.internal_ip if machine.node.is_control_plane else None,
                    ),
                },
                [version_check],
                # A replaced machine (a new VM behind the same name) is prepared again.
                triggers=identity_trigger(machine),
            )
            for node_name, machine in machines.items()
        }

        # 2. The first control plane: kubeadm init from a generated v1beta4 config. HA: with
        #    --upload-certs under a random certificate key (secret), for the joining peers.
        self.certificate_key = None
        certificate_env: dict[str, pulumi.Input[str]] = {}
        if control_planes:
            key = random.RandomBytes(
                f"{name}-certificate-key",
                length=32,
                opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["hex", "base64"]),
            )
            self.certificate_key = pulumi.Output.secret(key.hex)
            certificate_env = {"CERTIFICATE_KEY": self.certificate_key}
        init_config = pulumi.Output.all(
            first.internal_ip, endpoints.internal, endpoints.public, self.certificate_key or ""
        ).apply(
            lambda values: kubeadm_config.init_configuration(
                config,
                first.node,
                cluster_name=args["cluster_name"],
                node_ip=values[0],
                internal_endpoint=values[1],
                public_endpoint=values[2],
                endpoint_name=endpoints.name,
                certificate_key=values[3] or None,
            )
        )
        init = run(
            f"{first.node.name}-init",
            first,
            "kubeadm-init.sh",
            {"NODE_NAME": first.node.name, "KUBEADM_CONFIG": init_config, **certificate_env},
            [prepared[first.node.name]],
        )

        # 2b. Every control plane's maintenance timers (etcd snapshots, certificate renewal;
        #     components/bootstrap/maintenance.py), installed after its node prep, in parallel with
        #     its init or join (off the critical chain): until the node runs etcd and the API server
        #     their scripts find nothing to do.
        backup_upload = upkeep.upload_target(config, args.get("backup_bucket_url"))
        self.etcd_backups = upkeep.backups_description(backup_upload)

        def maintain(machine: Machine, after: pulumi.Resource) -> remote.Command:
            return run(
                f"{machine.node.name}-maintenance",
                machine,
                "install-maintenance.sh",
                upkeep.install_env(config, machine.node.name, backup_upload),
                [after],
                triggers=identity_trigger(machine),
            )

        maintain(first, prepared[first.node.name])

        # 3. The admin kubeconfig, pointed at the public endpoint (secret, never logged). Read
        #    again in each new refresh window: kubeadm's client certificate in admin.conf lasts a
        #    year and certs-renew.sh renews it on the node 30 days before that. Read again, too,
        #    whenever `kubeadm init` runs anew (`pulumi up --replace` of the init step: a new
        #    cluster with a new CA), in that same run: the provider below is replaced with it and
        #    must not get the old cluster's credentials.
        admin_conf = run(
            f"{first.node.name}-kubeconfig",
            first,
            "read-kubeconfig.sh",
            {},
            [init],
            secret_stdout=True,
            triggers=[upkeep.kubeconfig_refresh_window(), init.id],
        )
        self.kubeconfig = pulumi.Output.secret(
            pulumi.Output.all(admin_conf.stdout, endpoints.public).apply(
                lambda values: public_kubeconfig(values[0], values[1])
            )
        )

        # 4. A join command for the user (a fresh 24h token each time this resource is created).
        exported_token = run(
            f"{first.node.name}-join-command",
            first,
            "mint-token.sh",
            {"NODE_NAME": "manual-join", "TOKEN_TTL": EXPORTED_TOKEN_TTL},
            [init],
            secret_stdout=True,
        )
        self.join_command = pulumi.Output.secret(
            pulumi.Output.all(exported_token.stdout.apply(parse_token), endpoints.internal).apply(
                lambda values: manual_join_command(
                    endpoints.name, values[1], values[0]["token"], values[0]["caCertHash"]
                )
            )
        )

        # The cluster's identity is its `kubeadm init`: the provider (and every add-on with it) is
        # replaced only when the cluster is initialised anew, never because the kubeconfig-reading
        # step runs again (its stdout is unknown during that preview, and without an identifier
        # the provider plans a replacement for an unknown kubeconfig: pulumi-kubernetes'
        # DiffConfig; the pinned SDK's Provider docstring states the rule).
        # A preview that skips the Kubernetes diff gives the provider a kubeconfig naming no
        # cluster (it is unreachable at once, nothing is dialled) and skipUpdateUnreachable (each
        # object keeps its recorded inputs): pulumi-kubernetes' Configure and Check.
        offline = args.get("skip_kubernetes_diff", False)
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=pulumi.Output.secret(NO_CLUSTER_KUBECONFIG) if offline else self.kubeconfig,
            cluster_identifier=init.id,
            delete_unreachable=True,
            skip_update_unreachable=True if offline else None,
            opts=pulumi.ResourceOptions(parent=self),
        )
        # The settings a step reads when it runs instead of as an input: a kube-system ConfigMap,
        # so changing them updates one Kubernetes object and runs nothing on the nodes (lib.sh's
        # kc_drain_timeout reads upgrade.drainTimeout from it right before each drain; 300s when
        # it is missing). The steps that drain on the first control plane wait for it, except
        # those a new node's join waits for (the control planes' upgrades, the -identity steps):
        # the create chain stays prepare -> init -> token -> join.
        self.settings = k8s.core.v1.ConfigMap(
            f"{name}-settings",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=SETTINGS_CONFIGMAP,
                namespace="kube-system",
                labels={"app.kubernetes.io/managed-by": "kubeadm-cluster"},
            ),
            data={"drainTimeout": config.upgrade.drain_timeout},
            opts=pulumi.ResourceOptions(parent=self, provider=self.provider),
        )

        def upgrade_env(machine: Machine, role: str) -> dict[str, pulumi.Input[str]]:
            return {
                "NODE_NAME": machine.node.name,
                "K8S_VERSION": config.kubernetes_version,
                "UPGRADE_ROLE": role,
            }

        def control_plane_upgrade(machine: Machine, role: str) -> tuple[list[str], dict[str, pulumi.Input[str]]]:
            """The scripts and inputs of a control plane's upgrade step: an etcd snapshot first
            unless ``backup.beforeUpgrade`` is false."""
            if not config.backup.before_upgrade:
                return ["upgrade-node.sh"], upgrade_env(machine, role)
            return ["etcd-snapshot.sh", "upgrade-node.sh"], {
                **upgrade_env(machine, role),
                **upkeep.snapshot_env(upkeep.PRE_UPGRADE),
            }

        # 5. Control-plane upgrades, one at a time, each after an etcd snapshot of that control
        #    plane (settings from its maintenance.env when installed, else the defaults; not a
        #    dependency: new workers must not wait for control-plane joins): `kubeadm upgrade
        #    apply` on the first ...
        previous_upgrade = run(
            f"{first.node.name}-upgrade",
            first,
            *control_plane_upgrade(first, "first-control-plane"),
            [init, prepared[first.node.name]],
            on_change_only=True,
        )
        self.node_ready = {first.node.name: init}
        self.upgrade_steps.append(previous_upgrade)
        # Each node's join token is derived from this secret (join_token), so that the token step
        # can make the same token anew whenever a join may need it (TOKEN_REFRESH_MINUTES).
        token_seed = random.RandomBytes(
            f"{name}-join-token-seed",
            length=32,
            opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["hex", "base64"]),
        )
        refresh_window = token_refresh_window(upkeep.utcnow())

        def join_node(
            machine: Machine,
            discovery: pulumi.Input[str],
            after: list[pulumi.Resource],
            token_env: Mapping[str, pulumi.Input[str]],
            join_env: Mapping[str, pulumi.Input[str]],
            removal: tuple[str | list[str], dict[str, str]],
            control_plane_taints: list[dict[str, str]] | None = None,
        ) -> remote.Command:
            """A token minted on the first control plane for this node alone, then its kubeadm
            join with the CA pinned (``discovery``: where it fetches the cluster's info).

            A machine with an identity (a VM) also gets a ``-identity`` step on the first control
            plane whose delete runs ``removal`` (the script and inputs that take a node out of the
            cluster): a new machine behind the node (its identity changed: the VM was recreated)
            replaces it, and the old one is deleted first, so the old machine's Node object (and
            etcd member) is removed before the new machine's token and join, which wait for it.
            (A whole VM replacement in one `up` deletes it even earlier, with the old VM: Pulumi
            deletes what would be replaced by a delete-before-replace resource first.)"""
            node_name = machine.node.name
            # Only a control plane needs the key (to fetch the uploaded certificates).
            key = (self.certificate_key if machine.node.is_control_plane else None) or ""
            before_token = list(after)
            if machine.identity is not None:
                extra = [machine.resource] if machine.resource is not None else []
                before_token.append(
                    leave(f"{node_name}-identity", removal[0], removal[1], [init, *extra], identity=machine.identity)
                )
            own_token = pulumi.Output.secret(token_seed.hex.apply(lambda seed: join_token(seed, node_name)))
            token = run(
                f"{node_name}-join-token",
                first,
                "mint-token.sh",
                {"NODE_NAME": node_name, "TOKEN_TTL": WORKER_TOKEN_TTL, "TOKEN": own_token, **token_env},
                before_token,
                secret_stdout=True,
                triggers=[*(identity_trigger(machine) or []), refresh_window],
            )
            join_config = pulumi.Output.secret(
                pulumi.Output.all(
                    token.stdout.apply(parse_token), machine.internal_ip, discovery, key
                ).apply(
                    lambda values: kubeadm_config.join_configuration(
                        machine.node,
                        node_ip=values[1],
                        internal_endpoint=values[2],
                        token=values[0]["token"],
                        ca_cert_hash=values[0]["caCertHash"],
                        certificate_key=values[3] or None,
                        taints=control_plane_taints,
                    )
                )
            )
            join = run(
                f"{node_name}-join",
                machine,
                "kubeadm-join.sh",
                {"NODE_NAME": node_name, "KUBEADM_CONFIG": join_config, **join_env},
                [prepared[node_name], token],
                # A server you own stays behind when it leaves the stack: reset it. A VM is deleted.
                delete=None if machine.resource is not None else RESET_ON_DELETE,
                # A replaced machine joins again.
                triggers=identity_trigger(machine),
            )
            self.node_ready[node_name] = join
            return join

        # 6. ... and the other control planes join one at a time (etcd grows by one member per
        #    join): a token minted and the certificates re-uploaded (they expire after 2 hours)
        #    right before each join; discovery goes straight to the first control plane.
        previous_join: pulumi.Resource = init
        for machine in control_planes:
            node_name = machine.node.name
            # A snapshot on the first control plane before a control plane leaves; a failed one
            # is a warning (a dead cluster must not keep its machines).
            removal: tuple[str | list[str], dict[str, str]] = (
                ["etcd-snapshot.sh", "remove-control-plane.sh"],
                {
                    "NODE_NAME": node_name,
                    "FIRST_NODE_NAME": first.node.name,
                    **upkeep.snapshot_env(f"{upkeep.PRE_REMOVE}-{node_name}", required=False),
                },
            )
            join = join_node(
                machine,
                first.internal_ip,
                [previous_join, previous_upgrade],
                certificate_env,
                {"CONTROL_PLANE": "1", **endpoint_env(endpoints, machine.internal_ip)},
                removal,
                kubeadm_config.control_plane_taints(config),
            )
            previous_join = join
            maintain(machine, prepared[node_name])
            previous_upgrade = run(
                f"{node_name}-upgrade",
                machine,
                *control_plane_upgrade(machine, "control-plane"),
                [previous_upgrade, prepared[node_name]],
                on_change_only=True,
            )
            self.upgrade_steps.append(previous_upgrade)
            leave(f"{node_name}-membership", *removal, [join, self.settings])

        # 7. Each worker, all in parallel, through the API endpoint. A new worker joins after the
        #    control planes' upgrades (a kubelet never outruns the API server).
        for machine in workers:
            removal = ("remove-node.sh", {"NODE_NAME": machine.node.name})
            join = join_node(
                machine,
                endpoints.internal,
                [init, previous_upgrade],
                {},
                endpoint_env(endpoints, endpoints.internal),
                removal,
            )
            leave(f"{machine.node.name}-membership", *removal, [join, self.settings])

        # 8. Worker upgrades after the control planes', upgrade.workerBatchSize at a time: drained
        #    from the first control plane, upgraded on the worker, uncordoned from the first.
        batch = config.upgrade.worker_batch_size
        done: list[pulumi.Resource] = []
        for index, machine in enumerate(workers):
            node_name = machine.node.name
            # The batch size shapes only this order (depends_on): changing it changes no input.
            after = [previous_upgrade, self.settings] + ([done[index - batch]] if index >= batch else [])
            maintenance = {"NODE_NAME": node_name, "K8S_VERSION": config.kubernetes_version}
            drain = run(
                f"{node_name}-upgrade-drain",
                first,
                "upgrade-drain.sh",
                {"ACTION": "drain", **maintenance},
                after,
                on_change_only=True,
            )
            upgrade = run(
                f"{node_name}-upgrade",
                machine,
                "upgrade-node.sh",
                upgrade_env(machine, "worker"),
                [drain, prepared[node_name]],
                on_change_only=True,
            )
            done.append(
                run(
                    f"{node_name}-upgrade-uncordon",
                    first,
                    "upgrade-drain.sh",
                    {"ACTION": "uncordon", **maintenance},
                    [upgrade],
                    on_change_only=True,
                )
            )
            self.upgrade_steps += [drain, upgrade, done[-1]]

        self.control_plane_endpoint = endpoints.public.apply(
            lambda host: f"https://{host}:{kubeadm_config.API_SERVER_PORT}"
        )
        self.nodes = pulumi.Output.all(*[m.internal_ip for m in machines.values()]).apply(
            lambda ips: {
                m.node.name: {"internalIp": ip, "pool": m.node.pool, "role": m.node.role}
                for m, ip in zip(machines.values(), ips)
            }
        )
        self.register_outputs(
            {
                "kubeconfig": self.kubeconfig,
                "joinCommand": self.join_command,
                "controlPlaneEndpoint": self.control_plane_endpoint,
                "nodes": self.nodes,
            }
        )
