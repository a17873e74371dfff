"""The generated kubeadm configs fit the v1beta4 types and carry the stack's settings."""

from __future__ import annotations

import yaml

from components.bootstrap import kubeadm_config
from components.config import ClusterConfig
from components.nodes import plan_nodes
from tests.kubeadm_v1beta4 import validate


def _config(**keys: object) -> ClusterConfig:
    return ClusterConfig.model_validate({"adminCidrs": ["203.0.113.7/32"], **keys})


def _init_docs(config: ClusterConfig) -> dict[str, dict]:
    node = plan_nodes(config, "dev")[0]
    text = kubeadm_config.init_configuration(
        config, node, cluster_name="dev", node_ip="10.240.0.5", internal_endpoint="10.240.0.5",
        public_endpoint="203.0.113.50",
    )
    docs = list(yaml.safe_load_all(text))
    return {doc["kind"]: doc for doc in docs}


def _assert_fits(docs: dict[str, dict]) -> None:
    for kind, doc in docs.items():
        problems = validate(doc, kind, kind)
        assert not problems, f"{kind} does not fit the v1beta4 types:\n" + "\n".join(problems)


def test_init_config_fits_v1beta4_and_carries_the_stack_settings() -> None:
    config = _config(network={"podCidr": "10.32.0.0/12", "serviceCidr": "10.96.0.0/12"})
    docs = _init_docs(config)
    assert set(docs) == {"InitConfiguration", "ClusterConfiguration", "KubeletConfiguration"}
    _assert_fits(docs)
    cluster = docs["ClusterConfiguration"]
    assert cluster["apiVersion"] == "kubeadm.k8s.io/v1beta4"
    assert cluster["kubernetesVersion"] == f"v{config.kubernetes_version}"
    assert cluster["networking"]["podSubnet"] == "10.32.0.0/12"
    assert cluster["networking"]["serviceSubnet"] == "10.96.0.0/12"
    assert cluster["controlPlaneEndpoint"] == "10.240.0.5:6443", "nodes must use the stable internal endpoint"
    assert "203.0.113.50" in cluster["apiServer"]["certSANs"], "the public endpoint must be a certSAN"
    assert cluster["imageRepository"] == "registry.k8s.io"
    assert docs["KubeletConfiguration"]["cgroupDriver"] == "systemd"


def test_extra_args_are_v1beta4_name_value_lists() -> None:
    config = _config(kubeadm={
        "controllerManagerExtraArgs": {"horizontal-pod-autoscaler-sync-period": "10s", "node-monitor-grace-period": "50s"},
        "apiServerExtraArgs": {"runtime-config": "api/all=true"},
    })
    cluster = _init_docs(config)["ClusterConfiguration"]
    assert cluster["controllerManager"]["extraArgs"] == [
        {"name": "horizontal-pod-autoscaler-sync-period", "value": "10s"},
        {"name": "node-monitor-grace-period", "value": "50s"},
    ]
    assert cluster["apiServer"]["extraArgs"] == [{"name": "runtime-config", "value": "api/all=true"}]


def test_default_controller_manager_args_are_the_tutorials_safe_one() -> None:
    cluster = _init_docs(_config())["ClusterConfiguration"]
    names = [arg["name"] for arg in cluster["controllerManager"]["extraArgs"]]
    assert names == ["horizontal-pod-autoscaler-sync-period"]
    assert "horizontal-pod-autoscaler-use-rest-clients" not in names


def test_control_plane_taint_follows_schedulable() -> None:
    tainted = _init_docs(_config())["InitConfiguration"]["nodeRegistration"]
    assert tainted["taints"] == [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]
    free = _init_docs(_config(controlPlane={"schedulable": True}, workerPools=[], rook={"enabled": False}))
    assert free["InitConfiguration"]["nodeRegistration"]["taints"] == [], "schedulable needs `taints: []`"


def test_image_repository_mirror_reaches_kubeadm() -> None:
    cluster = _init_docs(_config(imageRepository="registry.example.cn/k8s"))["ClusterConfiguration"]
    assert cluster["imageRepository"] == "registry.example.cn/k8s"


def test_join_config_pins_the_ca_and_fits_v1beta4() -> None:
    config = _config()
    worker = [n for n in plan_nodes(config, "dev") if n.role == "worker"][0]
    text = kubeadm_config.join_configuration(
        worker, node_ip="10.240.0.9", internal_endpoint="10.240.0.5", token="abcdef.0123456789abcdef",
        ca_cert_hash="sha256:" + "0" * 64,
    )
    (doc,) = list(yaml.safe_load_all(text))
    problems = validate(doc, "JoinConfiguration", "JoinConfiguration")
    assert not problems, "\n".join(problems)
    discovery = doc["discovery"]["bootstrapToken"]
    assert discovery["caCertHashes"] == ["sha256:" + "0" * 64], "discovery must pin the CA"
    assert "unsafeSkipCAVerification" not in discovery
    assert discovery["apiServerEndpoint"] == "10.240.0.5:6443"
    assert doc["nodeRegistration"]["name"] == worker.name


def test_validator_catches_a_v1beta3_shape() -> None:
    """The schema check itself can fail: v1beta3's map-style extraArgs is rejected."""
    problems = validate({"controllerManager": {"extraArgs": {"a": "b"}}}, "ClusterConfiguration", "c")
    assert problems and "expected a list" in problems[0]
    assert validate({"timeoutForControlPlane": "4m"}, "APIServer", "a"), "v1beta3's timeout field must be unknown"


KEY = "0123456789abcdef" * 4


def test_ha_init_config_uploads_certs_under_the_key_and_uses_the_endpoint_name() -> None:
    config = _config(controlPlane={"count": 3})
    node = plan_nodes(config, "dev")[0]
    text = kubeadm_config.init_configuration(
        config, node, cluster_name="dev", node_ip="10.240.0.5", internal_endpoint="10.240.0.100",
        public_endpoint="203.0.113.50", endpoint_name="api.dev.internal", certificate_key=KEY,
    )
    docs = {doc["kind"]: doc for doc in yaml.safe_load_all(text)}
    _assert_fits(docs)
    assert docs["InitConfiguration"]["certificateKey"] == KEY
    cluster = docs["ClusterConfiguration"]
    assert cluster["controlPlaneEndpoint"] == "api.dev.internal:6443"
    assert {"api.dev.internal", "10.240.0.100", "203.0.113.50", "10.240.0.5"} <= set(cluster["apiServer"]["certSANs"])


def test_control_plane_join_config_fits_v1beta4() -> None:
    config = _config(controlPlane={"count": 3})
    cp1 = plan_nodes(config, "dev")[1]
    assert cp1.is_control_plane and not cp1.is_first_control_plane
    text = kubeadm_config.join_configuration(
        cp1, node_ip="10.240.0.6", internal_endpoint="10.240.0.5", token="abcdef.0123456789abcdef",
        ca_cert_hash="sha256:" + "0" * 64, certificate_key=KEY,
        taints=kubeadm_config.control_plane_taints(config),
    )
    (doc,) = list(yaml.safe_load_all(text))
    problems = validate(doc, "JoinConfiguration", "JoinConfiguration")
    assert not problems, "\n".join(problems)
    assert doc["controlPlane"] == {
        "localAPIEndpoint": {"advertiseAddress": "10.240.0.6", "bindPort": 6443},
        "certificateKey": KEY,
    }
    assert doc["nodeRegistration"]["taints"] == [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]


def test_control_plane_join_without_the_certificate_key_is_refused() -> None:
    config = _config(controlPlane={"count": 3})
    cp1 = plan_nodes(config, "dev")[1]
    try:
        kubeadm_config.join_configuration(
            cp1, node_ip="10.240.0.6", internal_endpoint="10.240.0.5", token="abcdef.0123456789abcdef",
            ca_cert_hash="sha256:" + "0" * 64,
        )
    except ValueError as error:
        assert "certificate key" in str(error)
    else:
        raise AssertionError("a control plane join config was generated without a certificate key")
