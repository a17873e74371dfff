"""The shapes of kubeadm's v1beta4 config types (and the kubelet fields we write).

Written down from kubeadm's ``cmd/kubeadm/app/apis/kubeadm/v1beta4/types.go`` (json tags):
a field the generated config uses that is not here is a typo kubeadm would reject
(``kubeadm config validate`` is strict about unknown fields in v1beta4).
"""

from __future__ import annotations

from typing import Any

STR, INT, BOOL = "string", "int", "bool"
ARGS = ["Arg"]  # every v1beta4 extraArgs is a list of {name, value}

TYPES: dict[str, dict[str, Any]] = {
    "InitConfiguration": {
        "apiVersion": STR, "kind": STR, "bootstrapTokens": ["BootstrapToken"], "dryRun": BOOL,
        "nodeRegistration": "NodeRegistrationOptions", "localAPIEndpoint": "APIEndpoint",
        "certificateKey": STR, "skipPhases": [STR], "patches": "Patches", "timeouts": "Timeouts",
    },
    "ClusterConfiguration": {
        "apiVersion": STR, "kind": STR, "etcd": "Etcd", "networking": "Networking",
        "kubernetesVersion": STR, "controlPlaneEndpoint": STR, "apiServer": "APIServer",
        "controllerManager": "ControlPlaneComponent", "scheduler": "ControlPlaneComponent",
        "dns": "DNS", "proxy": "Proxy", "certificatesDir": STR, "imageRepository": STR,
        "featureGates": {STR: BOOL}, "clusterName": STR, "encryptionAlgorithm": STR,
        "certificateValidityPeriod": STR, "caCertificateValidityPeriod": STR,
    },
    "JoinConfiguration": {
        "apiVersion": STR, "kind": STR, "dryRun": BOOL, "nodeRegistration": "NodeRegistrationOptions",
        "caCertPath": STR, "discovery": "Discovery", "controlPlane": "JoinControlPlane",
        "skipPhases": [STR], "patches": "Patches", "timeouts": "Timeouts",
    },
    "NodeRegistrationOptions": {
        "name": STR, "criSocket": STR, "taints": ["Taint"], "kubeletExtraArgs": ARGS,
        "ignorePreflightErrors": [STR], "imagePullPolicy": STR, "imagePullSerial": BOOL,
    },
    "Arg": {"name": STR, "value": STR},
    "Taint": {"key": STR, "value": STR, "effect": STR, "timeAdded": STR},
    "APIEndpoint": {"advertiseAddress": STR, "bindPort": INT},
    "Networking": {"serviceSubnet": STR, "podSubnet": STR, "dnsDomain": STR},
    "ControlPlaneComponent": {"extraArgs": ARGS, "extraVolumes": ["HostPathMount"], "extraEnvs": ["EnvVar"]},
    "APIServer": {"extraArgs": ARGS, "extraVolumes": ["HostPathMount"], "extraEnvs": ["EnvVar"], "certSANs": [STR]},
    "HostPathMount": {"name": STR, "hostPath": STR, "mountPath": STR, "readOnly": BOOL, "pathType": STR},
    "EnvVar": {"name": STR, "value": STR},
    "DNS": {"imageRepository": STR, "imageTag": STR, "disabled": BOOL},
    "Proxy": {"disabled": BOOL},
    "Etcd": {"local": "LocalEtcd", "external": "ExternalEtcd"},
    "LocalEtcd": {"imageRepository": STR, "imageTag": STR, "dataDir": STR, "extraArgs": ARGS,
                  "extraEnvs": ["EnvVar"], "serverCertSANs": [STR], "peerCertSANs": [STR]},
    "ExternalEtcd": {"endpoints": [STR], "caFile": STR, "certFile": STR, "keyFile": STR},
    "Discovery": {"bootstrapToken": "BootstrapTokenDiscovery", "file": "FileDiscovery", "tlsBootstrapToken": STR},
    "BootstrapTokenDiscovery": {"token": STR, "apiServerEndpoint": STR, "caCertHashes": [STR],
                                "unsafeSkipCAVerification": BOOL},
    "FileDiscovery": {"kubeConfigPath": STR},
    "JoinControlPlane": {"localAPIEndpoint": "APIEndpoint", "certificateKey": STR},
    "Patches": {"directory": STR},
    "Timeouts": {"controlPlaneComponentHealthCheck": STR, "kubeletHealthCheck": STR, "kubernetesAPICall": STR,
                 "etcdAPICall": STR, "tlsBootstrap": STR, "discovery": STR, "upgradeManifests": STR},
    "BootstrapToken": {"token": STR, "description": STR, "ttl": STR, "expires": STR, "usages": [STR], "groups": [STR]},
    # kubelet.config.k8s.io/v1beta1: only the fields this project writes are listed.
    "KubeletConfiguration": {"apiVersion": STR, "kind": STR, "cgroupDriver": STR, "failSwapOn": BOOL},
}

_SCALARS = {STR: str, INT: int, BOOL: bool}


def validate(value: Any, type_name: Any, path: str = "") -> list[str]:
    """Every place where ``value`` does not fit ``type_name``; empty when it fits."""
    if isinstance(type_name, list):
        if not isinstance(value, list):
            return [f"{path}: expected a list, got {type(value).__name__}"]
        return [p for i, item in enumerate(value) for p in validate(item, type_name[0], f"{path}[{i}]")]
    if isinstance(type_name, dict):
        if not isinstance(value, dict):
            return [f"{path}: expected a map, got {type(value).__name__}"]
        (_, value_type), = type_name.items()
        return [p for k, v in value.items() for p in validate(v, value_type, f"{path}.{k}")]
    if type_name in _SCALARS:
        expected = _SCALARS[type_name]
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            return [f"{path}: expected {type_name}, got {value!r}"]
        return []
    fields = TYPES[type_name]
    if not isinstance(value, dict):
        return [f"{path}: expected a {type_name} object, got {type(value).__name__}"]
    problems = []
    for key, item in value.items():
        if key not in fields:
            problems.append(f"{path}.{key}: unknown field of {type_name} (known: {', '.join(sorted(fields))})")
        else:
            problems += validate(item, fields[key], f"{path}.{key}")
    return problems
