"""kubeadm configuration files (``kubeadm.k8s.io/v1beta4``), generated from the stack config.

Pure functions of plain values so they can be checked against the v1beta4 types in tests;
the bootstrap component calls them inside ``Output.apply`` once addresses are known.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from components.config import ClusterConfig
from components.nodes import NodeSpec

KUBEADM_API = "kubeadm.k8s.io/v1beta4"
KUBELET_API = "kubelet.config.k8s.io/v1beta1"
CRI_SOCKET = "unix:///run/containerd/containerd.sock"
API_SERVER_PORT = 6443
CONTROL_PLANE_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}


def extra_args(flags: Mapping[str, str]) -> list[dict[str, str]]:
    """v1beta4 writes every extraArgs as a list of ``{name, value}``, sorted for stable diffs."""
    return [{"name": name, "value": str(value)} for name, value in sorted(flags.items())]


def _node_registration(node: NodeSpec, node_ip: str, taints: list[dict[str, str]] | None) -> dict[str, Any]:
    registration: dict[str, Any] = {
        "name": node.name,
        "criSocket": CRI_SOCKET,
        "imagePullPolicy": "IfNotPresent",
        "kubeletExtraArgs": extra_args({"node-ip": node_ip}),
    }
    if taints is not None:
        registration["taints"] = taints
    return registration


def _kubelet_configuration() -> dict[str, Any]:
    return {
        "apiVersion": KUBELET_API,
        "kind": "KubeletConfiguration",
        "cgroupDriver": "systemd",
        "failSwapOn": True,
    }


def control_plane_taints(config: ClusterConfig) -> list[dict[str, str]]:
    """What a control plane registers with: nothing when ``controlPlane.schedulable``."""
    return [] if config.control_plane.schedulable else [dict(CONTROL_PLANE_TAINT)]


def init_configuration(
    config: ClusterConfig,
    node: NodeSpec,
    *,
    cluster_name: str,
    node_ip: str,
    internal_endpoint: str,
    public_endpoint: str,
    endpoint_name: str | None = None,
    certificate_key: str | None = None,
) -> str:
    """InitConfiguration + ClusterConfiguration + KubeletConfiguration for ``kubeadm init``.

    ``endpoint_name`` (a DNS name every node resolves) becomes the ``controlPlaneEndpoint``
    when given, else ``internal_endpoint`` does. ``certificate_key`` (HA) encrypts the
    control-plane certificates that ``kubeadm init --upload-certs`` stores for joining peers.
    """
    init: dict[str, Any] = {
        "apiVersion": KUBEADM_API,
        "kind": "InitConfiguration",
        "localAPIEndpoint": {"advertiseAddress": node_ip, "bindPort": API_SERVER_PORT},
        "nodeRegistration": _node_registration(node, node_ip, control_plane_taints(config)),
    }
    if certificate_key:
        init["certificateKey"] = certificate_key
    endpoint = endpoint_name or internal_endpoint
    sans = _unique([endpoint, public_endpoint, internal_endpoint, node_ip, node.name, "localhost", "127.0.0.1"])
    cluster: dict[str, Any] = {
        "apiVersion": KUBEADM_API,
        "kind": "ClusterConfiguration",
        "clusterName": cluster_name,
        "kubernetesVersion": f"v{config.kubernetes_version}",
        "controlPlaneEndpoint": f"{endpoint}:{API_SERVER_PORT}",
        "imageRepository": config.image_repository,
        "networking": {
            "podSubnet": config.network.pod_cidr,
            "serviceSubnet": config.network.service_cidr,
            "dnsDomain": "cluster.local",
        },
        "apiServer": {"certSANs": sans, "extraArgs": extra_args(config.kubeadm.api_server_extra_args)},
        "controllerManager": {"extraArgs": extra_args(config.kubeadm.controller_manager_extra_args)},
    }
    return _dump([init, cluster, _kubelet_configuration()])


def join_configuration(
    node: NodeSpec,
    *,
    node_ip: str,
    internal_endpoint: str,
    token: str,
    ca_cert_hash: str,
    certificate_key: str | None = None,
    taints: list[dict[str, str]] | None = None,
) -> str:
    """JoinConfiguration: token discovery against ``internal_endpoint`` with the CA pinned.

    A control plane (``node.is_control_plane``) also gets the ``controlPlane`` section: its own
    advertise address and the ``certificate_key`` that decrypts the uploaded certificates.
    """
    join: dict[str, Any] = {
        "apiVersion": KUBEADM_API,
        "kind": "JoinConfiguration",
        "discovery": {
            "bootstrapToken": {
                "token": token,
                "apiServerEndpoint": f"{internal_endpoint}:{API_SERVER_PORT}",
                "caCertHashes": [ca_cert_hash],
            }
        },
        "nodeRegistration": _node_registration(node, node_ip, taints),
    }
    if node.is_control_plane:
        if not certificate_key:
            raise ValueError(f"control plane {node.name} cannot join without the certificate key")
        join["controlPlane"] = {
            "localAPIEndpoint": {"advertiseAddress": node_ip, "bindPort": API_SERVER_PORT},
            "certificateKey": certificate_key,
        }
    return _dump([join])


def join_command(internal_endpoint: str, token: str, ca_cert_hash: str) -> str:
    """The classic one-line ``kubeadm join`` for a worker (what users paste by hand)."""
    return (
        f"kubeadm join {internal_endpoint}:{API_SERVER_PORT} --token {token} "
        f"--discovery-token-ca-cert-hash {ca_cert_hash}"
    )


def _unique(items: Sequence[str]) -> list[str]:
    seen: list[str] = []
    for item in items:
        if item and item not in seen:
            seen.append(item)
    return seen


def _dump(documents: Sequence[Mapping[str, Any]]) -> str:
    return yaml.safe_dump_all(documents, sort_keys=False, default_flow_style=False, explicit_start=True)
