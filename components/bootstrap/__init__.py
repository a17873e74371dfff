"""Stage 3: bootstrap. Node prep, ``kubeadm init``, per-worker tokens and ``kubeadm join``.

Every step is a ``pulumi_command.remote.Command`` running one of the scripts in
``scripts/`` (see ``components.bootstrap.scripts``). The dependency graph is what makes
``pulumi up`` fast and safe:

    node prepare (every node, in parallel, as soon as its machine exists)
    first control plane: prepare -> init -> kubeconfig / join-command
    each worker:         init -> its own token (on the control plane) -> join (on the worker,
                         also after its own prepare)

so the longest chain is four remote steps whatever the number of workers, and adding a
worker later runs only that worker's prepare, token and join.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from typing import Any, TypedDict

import pulumi
import pulumi_kubernetes as k8s
import yaml
from pulumi_command import remote

from components import hardware, versions
from components.bootstrap import kubeadm_config
from components.bootstrap.scripts import RUN_BUNDLE, bundle, render_bundle
from components.config import ClusterConfig
from components.machines import Endpoints, Machine

#: Lifetime of the token minted for one worker's join (used within minutes).
WORKER_TOKEN_TTL = "1h"
#: Lifetime of the token behind the exported ``joinCommand``.
EXPORTED_TOKEN_TTL = "24h"
#: What an owned server runs when it leaves the stack (it keeps running; the VM of GCP does not).
RESET_ON_DELETE = "sudo kubeadm reset --force >&2 || true"


class KubeadmClusterArgs(TypedDict):
    config: ClusterConfig
    cluster_name: str
    #: node name -> machine, control planes first (the plan's order).
    machines: Mapping[str, Machine]
    endpoints: Endpoints


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
        "PAUSE_IMAGE": f"{config.image_repository}/{versions.PAUSE_IMAGE.split('/', 1)[1]}",
        # One line per registry: "registry=endpoint[,endpoint...]" -> containerd hosts.toml files.
        "REGISTRY_MIRRORS": "\n".join(
            f"{registry}={','.join(endpoints)}" for registry, endpoints in sorted(mirrors.registries.items())
        ),
    }


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

    def __init__(self, name: str, args: KubeadmClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("kubeadm-cluster:index:KubeadmCluster", name, None, opts)
        config, machines, endpoints = args["config"], args["machines"], args["endpoints"]
        first = next(m for m in machines.values() if m.node.is_first_control_plane)

        def run(
            resource_name: str,
            machine: Machine,
            step: str | list[str],
            env: Mapping[str, pulumi.Input[str]],
            depends_on: list[pulumi.Resource],
            secret_stdout: bool = False,
            delete: str | None = None,
        ) -> remote.Command:
            extra = [machine.resource] if machine.resource is not None else []
            return remote.Command(
                resource_name,
                connection=machine.connection,
                create=RUN_BUNDLE,
                delete=delete,
                stdin=bundle(step, env),
                logging=remote.Logging.STDERR if secret_stdout else remote.Logging.STDOUT_AND_STDERR,
                opts=pulumi.ResourceOptions(
                    parent=self,
                    depends_on=extra + depends_on,
                    additional_secret_outputs=["stdout"] if secret_stdout else None,
                ),
            )

        # 1. Every node: preflight against the hardware truth, then container runtime + kubeadm.
        prepared: dict[str, remote.Command] = {
            node_name: run(
                f"{node_name}-prepare", machine, ["preflight.sh", "prepare-node.sh"], node_env(config, node_name), []
            )
            for node_name, machine in machines.items()
        }

        # 2. The first control plane: kubeadm init from a generated v1beta4 config.
        init_config = pulumi.Output.all(first.internal_ip, endpoints.internal, endpoints.public).apply(
            lambda values: kubeadm_config.init_configuration(
                config,
                first.node,
                cluster_name=args["cluster_name"],
                node_ip=values[0],
                internal_endpoint=values[1],
                public_endpoint=values[2],
            )
        )
        init = run(
            f"{first.node.name}-init",
            first,
            "kubeadm-init.sh",
            {"NODE_NAME": first.node.name, "KUBEADM_CONFIG": init_config},
            [prepared[first.node.name]],
        )

        # 3. The admin kubeconfig, pointed at the public endpoint (secret, never logged).
        admin_conf = run(
            f"{first.node.name}-kubeconfig", first, "read-kubeconfig.sh", {}, [init], secret_stdout=True
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
                lambda values: kubeadm_config.join_command(values[1], values[0]["token"], values[0]["caCertHash"])
            )
        )

        # 5. Each worker: a token minted for it alone, then kubeadm join with the CA pinned.
        self.node_ready = {first.node.name: init}
        for node_name, machine in machines.items():
            if machine.node.is_control_plane:
                continue
            token = run(
                f"{node_name}-join-token",
                first,
                "mint-token.sh",
                {"NODE_NAME": node_name, "TOKEN_TTL": WORKER_TOKEN_TTL},
                [init],
                secret_stdout=True,
            )
            join_config = pulumi.Output.secret(
                pulumi.Output.all(token.stdout.apply(parse_token), machine.internal_ip, endpoints.internal).apply(
                    lambda values, node=machine.node: kubeadm_config.join_configuration(
                        node,
                        node_ip=values[1],
                        internal_endpoint=values[2],
                        token=values[0]["token"],
                        ca_cert_hash=values[0]["caCertHash"],
                    )
                )
            )
            join = run(
                f"{node_name}-join",
                machine,
                "kubeadm-join.sh",
                {"NODE_NAME": node_name, "KUBEADM_CONFIG": join_config},
                [prepared[node_name], token],
                # A server you own stays behind when it leaves the stack: reset it. A VM is deleted.
                delete=None if machine.resource is not None else RESET_ON_DELETE,
            )
            self.node_ready[node_name] = join
            # Leaving the cluster: when this node goes (count lowered, pool removed, destroy),
            # the control plane drains it and deletes its Node *before* the machine is deleted
            # (this resource depends on the join, which depends on the machine).
            remote.Command(
                f"{node_name}-membership",
                connection=first.connection,
                create="true",
                delete=f"sudo bash -c {shlex.quote(render_bundle('remove-node.sh', {'NODE_NAME': node_name}))}",
                opts=pulumi.ResourceOptions(parent=self, depends_on=[join]),
            )

        self.control_plane_endpoint = endpoints.public.apply(
            lambda host: f"https://{host}:{kubeadm_config.API_SERVER_PORT}"
        )
        self.nodes = pulumi.Output.all(*[m.internal_ip for m in machines.values()]).apply(
            lambda ips: {
                m.node.name: {"internalIp": ip, "pool": m.node.pool, "role": m.node.role}
                for m, ip in zip(machines.values(), ips)
            }
        )
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            delete_unreachable=True,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs(
            {
                "kubeconfig": self.kubeconfig,
                "joinCommand": self.join_command,
                "controlPlaneEndpoint": self.control_plane_endpoint,
                "nodes": self.nodes,
            }
        )
