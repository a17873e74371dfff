#!/usr/bin/python3
"""Stand-ins for kubeadm, kubelet, crictl and the API server, for the rehearsal VMs.

No package registry this workplace reaches has kubeadm, kubelet or an API server, so the
rehearsal mirror packages this one file as ``/usr/bin/kubeadm``, ``/usr/bin/kubelet`` and
``/usr/bin/crictl`` (it acts on the name it was called by). It does what can be done without a
real control plane, on the real node, and records every call (``/var/log/kc-standin/*.jsonl``):

kubeadm
    ``config validate`` reads the config strictly against the v1beta4 field table shipped beside
    it; ``init`` and ``join`` run kubeadm's node preflight for real (root, swap off, CPUs and
    memory, ip_forward, br_netfilter and overlay loaded, bridge sysctls, the CRI socket answering
    with the CRI plugin loaded, ports free, no leftover manifests or kubeconfigs, cgroup v2),
    write what kubeadm writes (pki/ca.crt and keys, admin.conf, super-admin.conf, kubelet.conf,
    /var/lib/kubelet/config.yaml and kubeadm-flags.env, static pod manifests) and restart the
    kubelet; ``join`` discovers the cluster over the network with the bootstrap token, checks the
    token's JWS signature on cluster-info and the pinned CA public-key hash; ``token create``,
    ``init phase upload-certs``, ``reset``, ``version``, ``upgrade`` (plan/apply/node).
kubelet
    refuses to start without its config (systemd restarts it, as with the real one), with swap on
    (failSwapOn), on cgroup v1 or without the CRI answering; then serves /healthz on
    127.0.0.1:10248, runs the static pods it knows (kube-apiserver -> the API stand-in below) and
    registers its Node with the API server named in kubelet.conf. The etcd static pod is a real
    container: the manifest's image (``registry.k8s.io/etcd``, real etcd, pulled by the node's
    real containerd from the rehearsal mirror through the stack's registry mirror) run with
    ``ctr`` with the pod's hostPath mounts, host network and the CRI labels the kubelet sets. It
    outlives kubelet restarts (containerd's shim keeps it, as with the real kubelet); a changed
    manifest replaces it, a removed one stops it, and after a reboot it is started again.
kube-apiserver
    HTTPS on :6443 with the cluster's serving certificate: /readyz, /livez, /version, discovery,
    ConfigMaps, Nodes (get, list, patch, delete), Pods (an empty list), evictions, and the
    bootstrap-token handshake (cluster-info with its JWS signatures; the TLS bootstrap of a
    joining kubelet). Its objects live in /var/lib/kc-standin, not in etcd; /readyz fails while
    a local etcd (a node with an etcd manifest) does not answer on 127.0.0.1:2379, as the real
    one's etcd check does.
crictl
    ``version`` / ``info``: containerd's socket answers (``ctr version``) and its CRI plugin
    loaded (``ctr plugins ls``). ``ps`` (``-a``, ``-q``, ``--name`` regex, ``--label k=v``,
    ``--state``, ``--id``, ``-o json|table``, ``--no-trunc``) lists the kubelet's containers from
    containerd; ``exec ID CMD...`` runs CMD in that container (``ctr tasks exec``: the image's
    etcdctl, with the pod's mounts); ``pull IMAGE`` pulls through containerd's hosts.toml
    mirrors. Other commands and flags fail loudly.

Runs with the node's python3 and python3-yaml (the packages depend on them) and openssl.
"""

from __future__ import annotations

import base64
import datetime
import fcntl
import hashlib
import hmac
import http.server
import json
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, NoReturn

import yaml

#: The package version this copy was built as (replaced when the package is built).
VERSION = "@VERSION@"
KUBE = Path("/etc/kubernetes")
PKI = KUBE / "pki"
MANIFESTS = KUBE / "manifests"
KUBELET_DIR = Path("/var/lib/kubelet")
STATE = Path("/var/lib/kc-standin")
LOGS = Path("/var/log/kc-standin")
TYPES_FILE = Path("/usr/lib/kc-standin/kubeadm-v1beta4.json")
#: The image tags kubeadm names (``{"etcd": "3.6.8-0", "pause": ...}``; the mirror writes it).
IMAGES_FILE = Path("/usr/lib/kc-standin/images.json")
#: kubeadm's defaults: ClusterConfiguration imageRepository and etcd.local.dataDir.
DEFAULT_IMAGE_REPOSITORY = "registry.k8s.io"
ETCD_DATA_DIR = Path("/var/lib/etcd")
#: containerd's namespace of the CRI (and of the kubelet's containers); its hosts.toml directory.
CTR_NAMESPACE = "k8s.io"
HOSTS_DIR = "/etc/containerd/certs.d"
#: The labels the kubelet gives a container (what ``crictl ps --name/--label`` filter on), and the
#: stand-in's own: the hash of the manifest's container spec (a changed manifest replaces it).
POD_NAME_LABEL = "io.kubernetes.pod.name"
POD_NAMESPACE_LABEL = "io.kubernetes.pod.namespace"
CONTAINER_NAME_LABEL = "io.kubernetes.container.name"
SPEC_LABEL = "kc-standin.spec-hash"
#: The static pods the kubelet runs as real containers (the others have no image here).
CONTAINER_PODS = ("etcd",)
ETCD_CLIENT_PORT = 2379
ETCD_METRICS_PORT = 2381
DEFAULT_CRI = "unix:///run/containerd/containerd.sock"
KUBEADM_API = "kubeadm.k8s.io/v1beta4"
API_PORT = 6443
HEALTHZ_PORT = 10248


def kube_version() -> str:
    """``v1.36.4`` from the package version ``1.36.4-1.1``."""
    return "v" + VERSION.split("-", 1)[0]


def minor_of(version: str) -> tuple[int, int]:
    match = re.match(r"^v?(\d+)\.(\d+)", version)
    if not match:
        raise ValueError(f"not a Kubernetes version: {version!r}")
    return int(match.group(1)), int(match.group(2))


def record(program: str, **fields: Any) -> None:
    """One JSON line in /var/log/kc-standin/<program>.jsonl (what the stand-in was asked)."""
    try:
        LOGS.mkdir(parents=True, exist_ok=True)
        entry = {"time": time.time(), "argv": sys.argv, **fields}
        with open(LOGS / f"{program}.jsonl", "a") as out:
            out.write(json.dumps(entry) + "\n")
    except OSError:
        pass


def fail(message: str, code: int = 1) -> NoReturn:
    print(message, file=sys.stderr)
    sys.exit(code)


def run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, text=True, capture_output=True, **kwargs)


def write(path: Path, content: str | bytes, mode: int = 0o600) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    if isinstance(content, str):
        content = content.encode()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(content)
    os.chmod(tmp, mode)
    tmp.replace(path)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


# --- certificates (openssl) ----------------------------------------------------------------
def make_ca(directory: Path, name: str, cn: str) -> None:
    key, crt = directory / f"{name}.key", directory / f"{name}.crt"
    if key.exists() and crt.exists():
        return
    directory.mkdir(parents=True, exist_ok=True)
    result = run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(crt),
                  "-days", "3650", "-subj", f"/CN={cn}", "-addext", "basicConstraints=critical,CA:TRUE",
                  "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"])
    if result.returncode != 0:
        fail(f"error: cannot create the {cn} CA: {result.stderr}")
    os.chmod(key, 0o600)


def sign(ca_dir: Path, ca: str, key: Path, crt: Path, subject: str, usage: str, sans: list[str] | None = None,
         days: int = 365) -> None:
    """A leaf certificate for ``subject`` signed by ``ca_dir/ca`` (usage: serverAuth/clientAuth)."""
    key.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        ext = Path(tmp) / "ext"
        lines = ["basicConstraints=CA:FALSE", "keyUsage=critical,digitalSignature,keyEncipherment",
                 f"extendedKeyUsage={usage}"]
        if sans:
            entries = [f"IP:{s}" if re.match(r"^[0-9.]+$|:", s) else f"DNS:{s}" for s in sans]
            lines.append("subjectAltName=" + ",".join(entries))
        ext.write_text("\n".join(lines) + "\n")
        csr = Path(tmp) / "csr"
        result = run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                      "-keyout", str(key), "-out", str(csr), "-subj", subject])
        if result.returncode == 0:
            result = run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca_dir / f"{ca}.crt"),
                          "-CAkey", str(ca_dir / f"{ca}.key"), "-CAcreateserial", "-out", str(crt),
                          "-days", str(days), "-extfile", str(ext)])
        if result.returncode != 0:
            fail(f"error: cannot sign a certificate for {subject}: {result.stderr}")
    os.chmod(key, 0o600)


def public_key_hash(ca_pem: str) -> str:
    """``sha256:<hex>`` of the CA's SubjectPublicKeyInfo: what --discovery-token-ca-cert-hash pins."""
    with tempfile.NamedTemporaryFile("w", suffix=".crt") as tmp:
        tmp.write(ca_pem)
        tmp.flush()
        pub = run(["openssl", "x509", "-pubkey", "-noout", "-in", tmp.name])
        der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pub.stdout.encode(),
                             capture_output=True)
    if pub.returncode != 0 or der.returncode != 0:
        fail("error: cannot read the public key of the cluster CA")
    return "sha256:" + hashlib.sha256(der.stdout).hexdigest()


def kubeconfig(server: str, ca_pem: bytes, user: str, cert: bytes | None = None, key: bytes | None = None,
               token: str | None = None, cluster: str = "kubernetes") -> str:
    credentials: dict[str, Any] = {}
    if cert is not None and key is not None:
        credentials = {"client-certificate-data": b64(cert), "client-key-data": b64(key)}
    if token:
        credentials = {"token": token}
    document = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": cluster, "cluster": {"server": server, "certificate-authority-data": b64(ca_pem)}}],
        "contexts": [{"name": f"{user}@{cluster}", "context": {"cluster": cluster, "user": user}}],
        "current-context": f"{user}@{cluster}",
        "preferences": {},
        "users": [{"name": user, "user": credentials}],
    }
    return yaml.safe_dump(document, sort_keys=False)


def client_kubeconfig(path: Path, name: str, subject: str, server: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        key, crt = Path(tmp) / "k", Path(tmp) / "c"
        sign(PKI, "ca", key, crt, subject, "clientAuth")
        write(path, kubeconfig(server, (PKI / "ca.crt").read_bytes(), name, crt.read_bytes(), key.read_bytes()))


def read_kubeconfig(path: Path) -> tuple[str, ssl.SSLContext]:
    """The server URL of a kubeconfig and an SSL context trusting its CA, with its client cert."""
    document = yaml.safe_load(path.read_text())
    cluster = document["clusters"][0]["cluster"]
    context = ssl.create_default_context(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
    user = document["users"][0]["user"]
    if "client-certificate-data" in user:
        with tempfile.TemporaryDirectory() as tmp:
            cert, key = Path(tmp) / "c", Path(tmp) / "k"
            cert.write_bytes(base64.b64decode(user["client-certificate-data"]))
            key.write_bytes(base64.b64decode(user["client-key-data"]))
            context.load_cert_chain(str(cert), str(key))
    return cluster["server"].rstrip("/"), context


def api(server: str, context: ssl.SSLContext, method: str, path: str, body: Any = None, timeout: float = 10) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(server + path, data=data, method=method,
                                     headers={"Content-Type": "application/json", "Accept": "application/json"})
    with urllib.request.urlopen(request, context=context, timeout=timeout) as response:
        text = response.read().decode()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


# --- config files ----------------------------------------------------------------------------
def load_types() -> dict[str, Any]:
    return json.loads(TYPES_FILE.read_text())


def type_problems(types: dict[str, Any], value: Any, type_name: Any, path: str) -> list[str]:
    """Where ``value`` does not fit ``type_name`` of the v1beta4 field table (unknown fields too)."""
    scalars = {"string": str, "int": int, "bool": bool}
    if type_name in ("any", "opaque"):  # a type the table does not spell out: anything goes
        return []
    if isinstance(type_name, list):
        if not isinstance(value, list):
            return [f"{path}: expected a list, got {type(value).__name__}"]
        return [p for i, item in enumerate(value) for p in type_problems(types, item, type_name[0], f"{path}[{i}]")]
    if isinstance(type_name, dict):
        if not isinstance(value, dict):
            return [f"{path}: expected a map, got {type(value).__name__}"]
        ((_, value_type),) = type_name.items()
        return [p for k, v in value.items() for p in type_problems(types, v, value_type, f"{path}.{k}")]
    if type_name in scalars:
        expected = scalars[type_name]
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            return [f"{path}: expected {type_name}, got {value!r}"]
        return []
    fields = types[type_name]
    if not isinstance(value, dict):
        return [f"{path}: expected a {type_name} object"]
    problems = []
    for key, item in value.items():
        if key not in fields:
            problems.append(f'{path}: unknown field "{key}"')
        else:
            problems += type_problems(types, item, fields[key], f"{path}.{key}")
    return problems


def load_config(path: str, strict: bool) -> dict[str, dict[str, Any]]:
    """The documents of a kubeadm config file by kind. ``strict``: unknown fields are errors
    (``config validate``); else warnings (init/join), as kubeadm does."""
    try:
        documents = [d for d in yaml.safe_load_all(Path(path).read_text()) if d is not None]
    except (OSError, yaml.YAMLError) as error:
        fail(f"error: cannot read the config {path}: {error}")
    types = load_types()
    by_kind: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    for document in documents:
        if not isinstance(document, dict):
            fail(f"error: {path}: a document is not a map")
        api_version, kind = document.get("apiVersion", ""), document.get("kind", "")
        if api_version.startswith("kubeadm.k8s.io/"):
            if api_version != KUBEADM_API:
                fail(f'error: {path}: apiVersion "{api_version}" of {kind} is not supported by kubeadm '
                     f"{kube_version()} (use {KUBEADM_API}; `kubeadm config migrate` converts older files)")
            if kind not in ("InitConfiguration", "ClusterConfiguration", "JoinConfiguration",
                            "ResetConfiguration", "UpgradeConfiguration"):
                fail(f'error: {path}: unknown kind "{kind}" for {api_version}')
        elif kind not in ("KubeletConfiguration", "KubeProxyConfiguration"):
            fail(f'error: {path}: unknown kind "{kind}" with apiVersion "{api_version}"')
        if kind in types:
            problems += type_problems(types, document, kind, kind)
        by_kind[kind] = document
    if problems:
        message = "\n".join(f"  {p}" for p in problems)
        if strict:
            fail(f"error: strict decoding error in {path}:\n{message}")
        print(f"W: unknown or mistyped fields in {path} (ignored):\n{message}", file=sys.stderr)
    cluster = by_kind.get("ClusterConfiguration")
    if cluster and cluster.get("kubernetesVersion"):
        wanted = minor_of(str(cluster["kubernetesVersion"]))
        mine = minor_of(kube_version())
        if wanted > mine:
            fail(f"error: this version of kubeadm only supports deploying clusters with the control plane version "
                 f">= v{mine[0]}.{mine[1] - 1}.0. Current version: {cluster['kubernetesVersion']} is newer than "
                 f"kubeadm {kube_version()}")
        if wanted < (mine[0], mine[1] - 1):
            fail(f"error: this version of kubeadm only supports deploying clusters with the control plane version "
                 f">= v{mine[0]}.{mine[1] - 1}.0. Current version: {cluster['kubernetesVersion']}")
    return by_kind


# --- preflight -------------------------------------------------------------------------------
def cri_problem(socket_url: str) -> str | None:
    """Why the container runtime at ``socket_url`` does not answer, or None."""
    path = socket_url.removeprefix("unix://")
    if not Path(path).exists():
        return f"container runtime is not running: the socket {path} does not exist"
    ctr = shutil.which("ctr") or "/usr/local/bin/ctr"
    if not Path(ctr).exists():
        return "ctr is missing: cannot ask containerd (the containerd release installs it)"
    version = run([ctr, "--address", path, "version"], timeout=30)
    if version.returncode != 0:
        return f"container runtime is not running: {version.stderr.strip()}"
    plugins = run([ctr, "--address", path, "plugins", "ls"], timeout=30)
    cri = [line.split() for line in plugins.stdout.splitlines() if re.search(r"\bcri\b", line)]
    if not any(fields[-1] == "ok" for fields in cri if fields):
        return f"containerd answers but its CRI plugin is not loaded (ctr plugins ls):\n{plugins.stdout}"
    return None


def port_in_use(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            return True
    return False


def port_answers(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


def swap_on() -> bool:
    return len(Path("/proc/swaps").read_text().splitlines()) > 1


def preflight(control_plane: bool, cri_socket: str, ignore: set[str]) -> None:
    """kubeadm's node checks. Errors stop the command unless ignored (``all`` ignores every one)."""
    print("[preflight] Running pre-flight checks")
    errors: list[tuple[str, str]] = []
    warnings: list[tuple[str, str]] = []
    if os.geteuid() != 0:
        errors.append(("IsPrivilegedUser", "user is not running as root"))
    if control_plane:
        if (os.cpu_count() or 1) < 2:
            errors.append(("NumCPU", f"the number of available CPUs {os.cpu_count()} is less than the required 2"))
        mem_kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))  # type: ignore[union-attr]
        if mem_kb // 1024 < 1700:
            errors.append(("Mem", f"the system RAM ({mem_kb // 1024} MB) is less than the minimum 1700 MB"))
    if swap_on():
        errors.append(("Swap", "running with swap on is not supported. Please disable swap"))
    for key, label in (("net/ipv4/ip_forward", "FileContent--proc-sys-net-ipv4-ip_forward"),
                       ("net/bridge/bridge-nf-call-iptables", "FileContent--proc-sys-net-bridge-bridge-nf-call-iptables")):
        live = Path("/proc/sys") / key
        if not live.exists():
            errors.append((label, f"/proc/sys/{key} does not exist (is the br_netfilter module loaded?)"))
        elif live.read_text().strip() != "1":
            errors.append((label, f"/proc/sys/{key} contents are not set to 1"))
    for module in ("overlay", "br_netfilter"):
        if not Path("/sys/module", module).exists():
            errors.append((f"KernelModule-{module}", f"the kernel module {module} is not loaded"))
    if not Path("/sys/fs/cgroup/cgroup.controllers").exists():
        errors.append(("SystemVerification", "cgroups v1 support is unsupported: the kubelet needs cgroup v2"))
    problem = cri_problem(cri_socket)
    if problem:
        errors.append(("CRI", problem))
    ports = [6443, 10259, 10257, 10250, 2379, 2380] if control_plane else [10250]
    for port in ports:
        if port_in_use(port):
            errors.append((f"Port-{port}", f"Port {port} is in use"))
    files = ["kubelet.conf", "bootstrap-kubelet.conf"] + (
        ["admin.conf", "super-admin.conf", "controller-manager.conf", "scheduler.conf"] if control_plane else [])
    for name in files:
        if (KUBE / name).exists():
            errors.append((f"FileAvailable--etc-kubernetes-{name.replace('.', '-')}", f"{KUBE / name} already exists"))
    if MANIFESTS.is_dir() and [p for p in MANIFESTS.iterdir() if not p.name.startswith(".")]:
        errors.append(("DirAvailable--etc-kubernetes-manifests", f"{MANIFESTS} is not empty"))
    # A stacked etcd's data directory must be empty (kubeadm's DirAvailableCheck on
    # etcd.local.dataDir; a restore ignores it with --ignore-preflight-errors=DirAvailable--var-lib-etcd).
    if control_plane and ETCD_DATA_DIR.is_dir() and any(ETCD_DATA_DIR.iterdir()):
        errors.append(("DirAvailable--var-lib-etcd", f"{ETCD_DATA_DIR} is not empty"))
    if not (KUBELET_DIR.is_dir() and Path("/usr/bin/kubelet").exists()):
        errors.append(("KubeletVersion", "the kubelet is not installed"))
    else:
        kubelet = run(["kubelet", "--version"])
        if kubelet.returncode != 0 or minor_of(kubelet.stdout.split()[-1]) > minor_of(kube_version()):
            errors.append(("KubeletVersion", f"the kubelet version {kubelet.stdout.strip()} is higher than kubeadm's"))
    enabled = run(["systemctl", "is-enabled", "kubelet.service"])
    if enabled.stdout.strip() != "enabled":
        warnings.append(("Service-Kubelet", "kubelet service is not enabled, please run 'systemctl enable kubelet.service'"))
    for tool in ("ip", "iptables", "mount", "nsenter", "ethtool", "tc", "touch", "conntrack", "socat"):
        if shutil.which(tool) is None:
            warnings.append((f"FileExisting-{tool}", f"{tool} not found in system path"))
    for name, message in warnings:
        print(f"\t[WARNING {name}]: {message}")
    fatal = [(n, m) for n, m in errors if "all" not in ignore and n.lower() not in ignore]
    for name, message in errors:
        if (name, message) not in fatal:
            print(f"\t[WARNING {name}]: {message}")
    record("preflight", errors=errors, warnings=warnings, ignored=sorted(ignore))
    if fatal:
        lines = "\n".join(f"\t[ERROR {n}]: {m}" for n, m in fatal)
        fail(f"[preflight] Some fatal errors occurred:\n{lines}\n[preflight] If you know what you are doing, you can "
             "make a check non-fatal with `--ignore-preflight-errors=...`\n"
             "error: error execution phase preflight: preflight checks failed")
    print("[preflight] Pulling images required for setting up a Kubernetes cluster: skipped (stand-in: no registry)")


def ignored_checks(registration: dict[str, Any], flags: dict[str, str]) -> set[str]:
    names = set(n.lower() for n in registration.get("ignorePreflightErrors") or [])
    names |= set(n.strip().lower() for n in flags.get("ignore-preflight-errors", "").split(",") if n.strip())
    return names


# --- kubelet files ---------------------------------------------------------------------------
def kubelet_config(document: dict[str, Any] | None) -> str:
    config = {"apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
              "cgroupDriver": "systemd", "failSwapOn": True,
              "authentication": {"x509": {"clientCAFile": str(PKI / "ca.crt")}},
              "clusterDNS": ["10.96.0.10"], "clusterDomain": "cluster.local",
              "staticPodPath": str(MANIFESTS), "rotateCertificates": True}
    config.update(document or {})
    return yaml.safe_dump(config, sort_keys=False)


def write_kubelet_files(registration: dict[str, Any], config_text: str) -> None:
    write(KUBELET_DIR / "config.yaml", config_text, 0o644)
    args = [f"--container-runtime-endpoint={registration.get('criSocket') or DEFAULT_CRI}"]
    for arg in registration.get("kubeletExtraArgs") or []:
        args.append(f"--{arg['name']}={arg['value']}")
    if registration.get("name"):
        args.append(f"--hostname-override={registration['name']}")
    write(KUBELET_DIR / "kubeadm-flags.env", f'KUBELET_KUBEADM_ARGS="{" ".join(args)}"\n', 0o644)
    registration_file = STATE / "registration.json"
    write(registration_file, json.dumps({"name": registration.get("name") or socket.gethostname(),
                                         "taints": registration.get("taints")}), 0o644)


def restart_kubelet() -> None:
    print("[kubelet-start] Starting the kubelet")
    run(["systemctl", "restart", "kubelet"])


def wait_healthy_kubelet(timeout: float) -> None:
    print(f"[kubelet-check] Waiting for a healthy kubelet at http://127.0.0.1:{HEALTHZ_PORT}/healthz. "
          f"This can take up to {int(timeout)}s")
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{HEALTHZ_PORT}/healthz", timeout=5) as response:
                if response.read().decode().strip() == "ok":
                    print("[kubelet-check] The kubelet is healthy")
                    return
        except (OSError, urllib.error.URLError) as error:
            last = str(error)
        time.sleep(2)
    status = run(["systemctl", "status", "--no-pager", "-l", "kubelet"]).stdout
    journal = run(["journalctl", "-u", "kubelet", "-n", "20", "--no-pager"]).stdout
    fail(f"[kubelet-check] The kubelet is not healthy after {int(timeout)}s ({last})\n{status}\n{journal}\n"
         "error: error execution phase kubelet-start: timed out waiting for the kubelet")


def parse_timeouts(config: dict[str, Any], key: str, default: float) -> float:
    value = ((config.get("timeouts") or {}).get(key)) or ""
    match = re.match(r"^(\d+)(s|m)$", str(value))
    if not match:
        return default
    return int(match.group(1)) * (60 if match.group(2) == "m" else 1)


# --- kubeadm ---------------------------------------------------------------------------------
def parse_flags(args: list[str]) -> tuple[list[str], dict[str, str]]:
    positional: list[str] = []
    flags: dict[str, str] = {}
    i = 0
    boolean = {"upload-certs", "skip-token-print", "skip-certificate-key-print", "force", "f", "yes", "y",
               "dry-run", "print-join-command", "etcd-upgrade", "certificate-renewal", "allow-experimental-upgrades"}
    while i < len(args):
        arg = args[i]
        if arg.startswith("-"):
            name = arg.lstrip("-")
            if "=" in name:
                name, value = name.split("=", 1)
            elif name in boolean:
                value = "true"
            elif i + 1 < len(args):
                value = args[i + 1]
                i += 1
            else:
                value = ""
            flags[name] = value
        else:
            positional.append(arg)
        i += 1
    return positional, flags


def tokens_file() -> Path:
    return STATE / "tokens.json"


def load_tokens() -> dict[str, dict[str, Any]]:
    try:
        tokens: dict[str, dict[str, Any]] = json.loads(tokens_file().read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    now = time.time()
    return {k: v for k, v in tokens.items() if v.get("expires", 0) > now}


def duration_seconds(text: str) -> float:
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)", text):
        total += float(number) * {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}[unit]
    return total


def add_token(token: str | None, ttl: str, description: str, fail_if_exists: bool = False) -> str:
    """Store a bootstrap token (its Secret ``bootstrap-token-<id>`` in the API stand-in).
    ``fail_if_exists``: refuse a token ID that exists, as ``kubeadm token create`` does
    (phases/bootstraptoken/node: CreateNewTokens -> UpdateOrCreateTokens(failIfExists=true))."""
    token = token or f"{secrets.token_hex(3)}.{secrets.token_hex(8)}"
    if not re.match(r"^[a-z0-9]{6}\.[a-z0-9]{16}$", token):
        fail(f'error: the bootstrap token "{token}" was not of the form "[a-z0-9]{{6}}.[a-z0-9]{{16}}"')
    STATE.mkdir(parents=True, exist_ok=True)
    with open(STATE / ".tokens.lock", "w") as lock:  # tokens are minted for several nodes at once
        fcntl.flock(lock, fcntl.LOCK_EX)
        tokens = load_tokens()
        if fail_if_exists and token.split(".")[0] in tokens:
            fail(f'error: a token with id "{token.split(".")[0]}" already exists')
        tokens[token.split(".")[0]] = {"secret": token.split(".")[1],
                                       "expires": time.time() + (duration_seconds(ttl) or 86400),
                                       "description": description}
        write(tokens_file(), json.dumps(tokens), 0o600)
    return token


def admin_api() -> tuple[str, ssl.SSLContext]:
    path = Path(os.environ.get("KUBECONFIG") or KUBE / "admin.conf")
    if not path.exists():
        fail(f"error: failed to load admin kubeconfig: open {path}: no such file or directory")
    return read_kubeconfig(path)


def wait_api(server: str, context: ssl.SSLContext, timeout: float) -> None:
    print(f"[api-check] Waiting for a healthy API server. This can take up to {int(timeout)}s")
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            if api(server, context, "GET", "/readyz", timeout=5) == "ok":
                print(f"[api-check] The API server is healthy after {int(timeout - (deadline - time.monotonic()))}s")
                return
        except (OSError, urllib.error.URLError) as error:
            last = str(error)
        time.sleep(2)
    fail(f"error: error execution phase wait-control-plane: the API server at {server} is not healthy: {last}")


def static_pod(name: str, command: list[str]) -> str:
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "kube-system", "labels": {"component": name, "tier": "control-plane"}},
        "spec": {"hostNetwork": True, "containers": [{"name": name, "image": f"registry.k8s.io/{name}:{kube_version()}",
                                                      "command": command}]},
    }, sort_keys=False)


def control_plane_files(cluster: dict[str, Any], advertise: str, node_name: str, endpoint: str) -> None:
    """Certificates, kubeconfigs and static pod manifests of a control plane."""
    print("[certs] Using certificateDir folder \"/etc/kubernetes/pki\"")
    make_ca(PKI, "ca", "kubernetes")
    make_ca(PKI, "front-proxy-ca", "front-proxy-ca")
    make_ca(PKI / "etcd", "ca", "etcd-ca")
    sans = ["kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local",
            "10.96.0.1", advertise, node_name, "127.0.0.1"]
    sans += [s for s in (cluster.get("apiServer") or {}).get("certSANs") or [] if s not in sans]
    host = endpoint.rsplit(":", 1)[0]
    if host not in sans:
        sans.append(host)
    sign(PKI, "ca", PKI / "apiserver.key", PKI / "apiserver.crt", "/CN=kube-apiserver", "serverAuth", sans)
    sign(PKI, "ca", PKI / "apiserver-kubelet-client.key", PKI / "apiserver-kubelet-client.crt",
         "/O=kubeadm:cluster-admins/CN=kube-apiserver-kubelet-client", "clientAuth")
    if not (PKI / "sa.key").exists():
        run(["openssl", "genrsa", "-out", str(PKI / "sa.key"), "2048"])
        run(["openssl", "rsa", "-in", str(PKI / "sa.key"), "-pubout", "-out", str(PKI / "sa.pub")])
    server = f"https://{endpoint}"
    print("[kubeconfig] Writing admin.conf, super-admin.conf, controller-manager.conf, scheduler.conf")
    client_kubeconfig(KUBE / "admin.conf", "kubernetes-admin", "/O=kubeadm:cluster-admins/CN=kubernetes-admin", server)
    client_kubeconfig(KUBE / "super-admin.conf", "kubernetes-super-admin", "/O=system:masters/CN=kubernetes-super-admin",
                      server)
    local = f"https://{advertise}:{API_PORT}"
    client_kubeconfig(KUBE / "controller-manager.conf", "system:kube-controller-manager",
                      "/CN=system:kube-controller-manager", local)
    client_kubeconfig(KUBE / "scheduler.conf", "system:kube-scheduler", "/CN=system:kube-scheduler", local)
    print("[control-plane] Creating static Pod manifests for kube-apiserver, kube-controller-manager, kube-scheduler, etcd")
    api_args = [f"--advertise-address={advertise}", f"--secure-port={API_PORT}"]
    for arg in (cluster.get("apiServer") or {}).get("extraArgs") or []:
        api_args.append(f"--{arg['name']}={arg['value']}")
    write(MANIFESTS / "kube-apiserver.yaml", static_pod("kube-apiserver", ["kube-apiserver", *api_args]))
    cm_args = [f"--{a['name']}={a['value']}" for a in (cluster.get("controllerManager") or {}).get("extraArgs") or []]
    write(MANIFESTS / "kube-controller-manager.yaml", static_pod("kube-controller-manager", ["kube-controller-manager", *cm_args]))
    write(MANIFESTS / "kube-scheduler.yaml", static_pod("kube-scheduler", ["kube-scheduler"]))
    etcd_files(cluster, advertise, node_name)


# --- the etcd static pod ---------------------------------------------------------------------
def image_tags() -> dict[str, str]:
    try:
        tags: dict[str, str] = json.loads(IMAGES_FILE.read_text())
    except (OSError, json.JSONDecodeError) as error:
        fail(f"error: the stand-in has no image list ({IMAGES_FILE}: {error})")
    return tags


def control_plane_images(cluster: dict[str, Any], version: str) -> list[str]:
    """What ``kubeadm config images list`` prints for a ClusterConfiguration (kubeadm's order;
    CoreDNS left out: the stand-in has no record of its tag and installs no add-on)."""
    repository = str(cluster.get("imageRepository") or DEFAULT_IMAGE_REPOSITORY).rstrip("/")
    version = version if version.startswith("v") else f"v{version}"
    images = [f"{repository}/{name}:{version}" for name in
              ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy")]
    images.append(f"{repository}/pause:{image_tags()['pause']}")
    if not (cluster.get("etcd") or {}).get("external"):
        images.append(etcd_image(cluster))
    return images


def etcd_image(cluster: dict[str, Any]) -> str:
    """etcd.local.imageRepository/imageTag, else <imageRepository>/etcd:<kubeadm's etcd tag>."""
    local = (cluster.get("etcd") or {}).get("local") or {}
    repository = str(local.get("imageRepository") or cluster.get("imageRepository") or DEFAULT_IMAGE_REPOSITORY)
    return f"{repository.rstrip('/')}/etcd:{local.get('imageTag') or image_tags()['etcd']}"


def etcd_files(cluster: dict[str, Any], advertise: str, node_name: str) -> None:
    """kubeadm's certificates of a stacked etcd member and its static pod manifest: server and
    peer certificates (serving and client auth, for localhost, the node and its address), the
    health-check and API server client certificates, all signed by pki/etcd/ca; the data
    directory (mode 0700, as kubeadm creates it)."""
    etcd_dir = PKI / "etcd"
    sans = ["localhost", node_name, advertise, "127.0.0.1", "::1"]
    for name in ("server", "peer"):
        sign(etcd_dir, "ca", etcd_dir / f"{name}.key", etcd_dir / f"{name}.crt", f"/CN={node_name}",
             "serverAuth,clientAuth", sans)
    sign(etcd_dir, "ca", etcd_dir / "healthcheck-client.key", etcd_dir / "healthcheck-client.crt",
         "/CN=kube-etcd-healthcheck-client", "clientAuth")
    sign(etcd_dir, "ca", PKI / "apiserver-etcd-client.key", PKI / "apiserver-etcd-client.crt",
         "/CN=kube-apiserver-etcd-client", "clientAuth")
    local = (cluster.get("etcd") or {}).get("local") or {}
    data_dir = str(local.get("dataDir") or ETCD_DATA_DIR)
    Path(data_dir).mkdir(mode=0o700, parents=True, exist_ok=True)
    write(MANIFESTS / "etcd.yaml", etcd_manifest(cluster, advertise, node_name), 0o600)


def etcd_manifest(cluster: dict[str, Any], advertise: str, node_name: str) -> str:
    """The static pod kubeadm writes for a stacked etcd member (the flags both etcd 3.5, which
    the rehearsal runs, and 3.6 accept; kubeadm 1.36 adds 3.6's feature gates)."""
    local = (cluster.get("etcd") or {}).get("local") or {}
    data_dir = str(local.get("dataDir") or ETCD_DATA_DIR)
    pki = "/etc/kubernetes/pki/etcd"
    peer = f"https://{advertise}:2380"
    flags = {
        "advertise-client-urls": f"https://{advertise}:{ETCD_CLIENT_PORT}",
        "cert-file": f"{pki}/server.crt", "client-cert-auth": "true", "data-dir": data_dir,
        "initial-advertise-peer-urls": peer, "initial-cluster": f"{node_name}={peer}",
        "key-file": f"{pki}/server.key",
        "listen-client-urls": f"https://127.0.0.1:{ETCD_CLIENT_PORT},https://{advertise}:{ETCD_CLIENT_PORT}",
        "listen-metrics-urls": f"http://127.0.0.1:{ETCD_METRICS_PORT}", "listen-peer-urls": peer,
        "name": node_name, "peer-cert-file": f"{pki}/peer.crt", "peer-client-cert-auth": "true",
        "peer-key-file": f"{pki}/peer.key", "peer-trusted-ca-file": f"{pki}/ca.crt", "snapshot-count": "10000",
        "trusted-ca-file": f"{pki}/ca.crt",
    }
    for arg in local.get("extraArgs") or []:
        flags[str(arg["name"])] = str(arg["value"])
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "etcd", "namespace": "kube-system", "labels": {"component": "etcd", "tier": "control-plane"},
                     "annotations": {"kubeadm.kubernetes.io/etcd.advertise-client-urls": flags["advertise-client-urls"]}},
        "spec": {
            "hostNetwork": True, "priorityClassName": "system-node-critical",
            "containers": [{
                "name": "etcd", "image": etcd_image(cluster), "imagePullPolicy": "IfNotPresent",
                "command": ["etcd", *(f"--{name}={value}" for name, value in sorted(flags.items()))],
                "volumeMounts": [{"mountPath": data_dir, "name": "etcd-data"}, {"mountPath": pki, "name": "etcd-certs"}],
            }],
            "volumes": [{"hostPath": {"path": pki, "type": "DirectoryOrCreate"}, "name": "etcd-certs"},
                        {"hostPath": {"path": data_dir, "type": "DirectoryOrCreate"}, "name": "etcd-data"}],
        },
    }, sort_keys=False)


def etcd_healthy(timeout: float) -> str | None:
    """None once the local etcd answers healthy on its metrics URL (what kubeadm's probe and
    its etcd wait read), else the last problem after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{ETCD_METRICS_PORT}/health", timeout=5) as response:
                answer = json.loads(response.read().decode())
            if str(answer.get("health")) == "true":
                return None
            last = json.dumps(answer)
        except (OSError, ValueError, urllib.error.URLError) as error:
            last = str(error)
        if time.monotonic() > deadline:
            return last
        time.sleep(2)


def store_object(namespace: str, kind: str, name: str, obj: dict[str, Any]) -> None:
    write(STATE / "objects" / kind / namespace / f"{name}.json", json.dumps(obj), 0o600)


def configmap(namespace: str, name: str, data: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace}, "data": data}


def kubeadm_init(args: list[str]) -> None:
    _, flags = parse_flags(args)
    if "config" not in flags:
        fail("error: the stand-in kubeadm only supports init with --config")
    docs = load_config(flags["config"], strict=False)
    init = docs.get("InitConfiguration") or {}
    cluster = docs.get("ClusterConfiguration") or {}
    registration = init.get("nodeRegistration") or {}
    node_name = registration.get("name") or socket.gethostname()
    advertise = (init.get("localAPIEndpoint") or {}).get("advertiseAddress") or ""
    if not advertise:
        fail("error: the stand-in needs localAPIEndpoint.advertiseAddress")
    endpoint = cluster.get("controlPlaneEndpoint") or f"{advertise}:{API_PORT}"
    if ":" not in endpoint:
        endpoint += f":{API_PORT}"
    version = str(cluster.get("kubernetesVersion") or kube_version())
    print(f"[init] Using Kubernetes version: {version}")
    preflight(True, registration.get("criSocket") or DEFAULT_CRI, ignored_checks(registration, flags))
    control_plane_files(cluster, advertise, node_name, endpoint)
    print("[kubelet-start] Writing kubelet environment file and configuration")
    config_text = kubelet_config(docs.get("KubeletConfiguration"))
    write_kubelet_files(registration, config_text)
    client_kubeconfig(KUBE / "kubelet.conf", f"system:node:{node_name}", f"/O=system:nodes/CN=system:node:{node_name}",
                      f"https://{endpoint}")
    ca_pem = (PKI / "ca.crt").read_text()
    full_cluster = {"apiVersion": KUBEADM_API, "kind": "ClusterConfiguration", **cluster, "kubernetesVersion": version}
    store_object("kube-system", "configmaps", "kubeadm-config",
                 configmap("kube-system", "kubeadm-config", {"ClusterConfiguration": yaml.safe_dump(full_cluster, sort_keys=False)}))
    store_object("kube-system", "configmaps", "kubelet-config", configmap("kube-system", "kubelet-config", {"kubelet": config_text}))
    store_object("kube-public", "configmaps", "cluster-info", configmap("kube-public", "cluster-info", {
        "kubeconfig": kubeconfig(f"https://{endpoint}", ca_pem.encode(), "", cluster="")}))
    restart_kubelet()
    wait_healthy_kubelet(parse_timeouts(init, "kubeletHealthCheck", 240))
    server, context = admin_api()
    wait_api(server, context, parse_timeouts(init, "controlPlaneComponentHealthCheck", 240))
    key = init.get("certificateKey") or flags.get("certificate-key", "")
    if flags.get("upload-certs") == "true":
        if not key:
            key = secrets.token_hex(32)
        upload_certs(key)
        if flags.get("skip-certificate-key-print") != "true":
            print(f"[upload-certs] Using certificate key:\n{key}")
    print(f"[mark-control-plane] Marking the node {node_name} as control-plane")
    tokens = init.get("bootstrapTokens") or [{}]
    token = add_token(tokens[0].get("token"), tokens[0].get("ttl", "24h"), "kubeadm init")
    print("[bootstrap-token] Configured RBAC rules and the cluster-info ConfigMap")
    print("[addons] Applied essential addon: CoreDNS (stand-in: recorded only)")
    print("[addons] Applied essential addon: kube-proxy (stand-in: recorded only)")
    record("kubeadm", event="init", node=node_name, endpoint=endpoint, version=version)
    print("\nYour Kubernetes control-plane has initialized successfully!\n")
    if flags.get("skip-token-print") != "true":
        hash_ = public_key_hash(ca_pem)
        print(f"kubeadm join {endpoint} --token {token} \\\n\t--discovery-token-ca-cert-hash {hash_}")


def upload_certs(key: str) -> None:
    if not re.match(r"^[0-9a-fA-F]{64}$", key):
        fail("error: the certificate key must be 64 hex digits")
    print("[upload-certs] Storing the certificates in Secret \"kubeadm-certs\" in the \"kube-system\" Namespace")
    write(STATE / "kubeadm-certs.json", json.dumps({"keyHash": hashlib.sha256(key.lower().encode()).hexdigest(),
                                                    "expires": time.time() + 7200}), 0o600)


def kubeadm_join(args: list[str]) -> None:
    positional, flags = parse_flags(args)
    if "config" not in flags:
        fail("error: the stand-in kubeadm only supports join with --config")
    docs = load_config(flags["config"], strict=False)
    join = docs.get("JoinConfiguration")
    if join is None:
        fail(f"error: no JoinConfiguration in {flags['config']}")
        return
    registration = join.get("nodeRegistration") or {}
    node_name = registration.get("name") or socket.gethostname()
    control_plane = join.get("controlPlane")
    preflight(control_plane is not None, registration.get("criSocket") or DEFAULT_CRI, ignored_checks(registration, flags))
    bootstrap = (join.get("discovery") or {}).get("bootstrapToken") or {}
    token = str(bootstrap.get("token") or "")
    endpoint = str(bootstrap.get("apiServerEndpoint") or "")
    pins = bootstrap.get("caCertHashes") or []
    if not re.match(r"^[a-z0-9]{6}\.[a-z0-9]{16}$", token):
        fail("error: discovery.bootstrapToken.token is not a bootstrap token")
    if not pins and not bootstrap.get("unsafeSkipCAVerification"):
        fail("error: discovery.bootstrapToken.caCertHashes is empty (set unsafeSkipCAVerification to skip the pin)")
    token_id, token_secret = token.split(".")
    print(f"[preflight] Reading configuration from the cluster at {endpoint}")
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE
    deadline = time.monotonic() + parse_timeouts(join, "discovery", 300)
    info: Any = None
    last = ""
    while time.monotonic() < deadline:
        try:
            info = api(f"https://{endpoint}", insecure, "GET", "/api/v1/namespaces/kube-public/configmaps/cluster-info")
            break
        except (OSError, urllib.error.URLError) as error:
            last = str(error)
            time.sleep(3)
    if info is None:
        fail(f"error: couldn't validate the identity of the API Server: Get \"https://{endpoint}/api/v1/namespaces/"
             f"kube-public/configmaps/cluster-info\": {last}")
    data = info.get("data") or {}
    content = data.get("kubeconfig", "")
    signature = data.get(f"jws-kubeconfig-{token_id}")
    if not signature:
        fail(f'error: couldn\'t validate the identity of the API Server: there is no JWS signed token in the '
             f'cluster-info ConfigMap. This token id "{token_id}" is invalid for this cluster, or it has expired.')
    if signature != jws(content, token_id, token_secret):
        fail("error: couldn't validate the identity of the API Server: failed to verify JWS signature of received "
             "cluster info object, can't trust this API Server")
    cluster_kubeconfig = yaml.safe_load(content)
    ca_pem = base64.b64decode(cluster_kubeconfig["clusters"][0]["cluster"]["certificate-authority-data"]).decode()
    actual = public_key_hash(ca_pem)
    if pins and actual not in pins:
        fail(f'error: couldn\'t validate the identity of the API Server: cluster CA found in cluster-info ConfigMap is '
             f'invalid: none of the public keys "{actual}" are pinned')
    server = cluster_kubeconfig["clusters"][0]["cluster"]["server"].rstrip("/")
    print(f"[discovery] Cluster info signature and contents are valid and TLS certificate validates against pinned roots, "
          f"will use API Server \"{endpoint}\"")
    context = ssl.create_default_context(cadata=ca_pem)
    context.check_hostname = False  # kubeadm dials the discovery endpoint, verified by the pinned CA
    base = f"https://{endpoint}"
    if control_plane is not None:
        key = str(control_plane.get("certificateKey") or "")
        try:
            api(base, context, "POST", "/standin/v1/certs", {"token": token, "keyHash": hashlib.sha256(key.lower().encode()).hexdigest()})
        except urllib.error.HTTPError as error:
            fail(f"error: error downloading the secret: {error.read().decode()}")
        fail("error: the stand-in kubeadm does not join extra control planes yet (the certificates were validated)")
    try:
        answer = api(base, context, "POST", "/standin/v1/bootstrap", {"token": token, "node": node_name})
    except urllib.error.HTTPError as error:
        fail(f"error: error execution phase kubelet-start: TLS bootstrap failed: {error.read().decode()}")
        return
    PKI.mkdir(parents=True, exist_ok=True)
    write(PKI / "ca.crt", ca_pem, 0o644)
    write(KUBE / "kubelet.conf", kubeconfig(server, ca_pem.encode(), f"system:node:{node_name}",
                                            answer["cert"].encode(), answer["key"].encode()))
    print("[kubelet-start] Writing kubelet configuration to file \"/var/lib/kubelet/config.yaml\"")
    write_kubelet_files(registration, answer["kubeletConfig"])
    restart_kubelet()
    wait_healthy_kubelet(parse_timeouts(join, "kubeletHealthCheck", 240))
    record("kubeadm", event="join", node=node_name, endpoint=endpoint)
    print("\nThis node has joined the cluster:\n* Certificate signing request was sent to apiserver and a response was "
          "received.\n* The Kubelet was informed of the new secure connection details.\n")


def jws(payload: str, token_id: str, token_secret: str) -> str:
    """The detached JWS (HS256, key = the token secret) bootstrap signers put in cluster-info."""
    header = b64url(json.dumps({"alg": "HS256", "kid": token_id}, separators=(",", ":")).encode())
    signing_input = f"{header}.{b64url(payload.encode())}".encode()
    signature = b64url(hmac.new(token_secret.encode(), signing_input, hashlib.sha256).digest())
    return f"{header}..{signature}"


def kubeadm_reset(args: list[str]) -> None:
    _, flags = parse_flags(args)
    if flags.get("force") != "true" and flags.get("f") != "true":
        fail("error: the stand-in kubeadm only resets with --force")
    removed: list[str] = []
    # The etcd data directory of a stacked member (read from its manifest; none: external etcd
    # or no etcd here), emptied after its container is gone.
    data_dir: Path | None = None
    if (MANIFESTS / "etcd.yaml").exists():
        command = etcd_command(MANIFESTS / "etcd.yaml")
        data_dir = Path(next((a.split("=", 1)[1] for a in command if a.startswith("--data-dir=")), str(ETCD_DATA_DIR)))
    print("[reset] Stopping the kubelet service")
    run(["systemctl", "stop", "kubelet"])
    endpoint = flags.get("cri-socket") or DEFAULT_CRI
    for container in runtime_containers(endpoint):
        if container["labels"].get(POD_NAMESPACE_LABEL):
            remove_container(endpoint, container["id"])
            removed.append(f"container {container['id'][:13]} ({container['labels'].get(CONTAINER_NAME_LABEL)})")
    if data_dir is not None and data_dir.is_dir():
        for child in data_dir.iterdir():
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
        print(f"[reset] Deleted contents of the etcd data directory: {data_dir}")
        removed.append(f"contents of {data_dir}")
    # kubeadm's cleanup list (cmd/kubeadm/app/cmd/phases/reset/cleanupnode.go): the kubeconfig
    # files it wrote; other files in /etc/kubernetes (a kept kubeadm-config.yaml) stay.
    for path in [*[KUBE / n for n in ("admin.conf", "super-admin.conf", "kubelet.conf", "bootstrap-kubelet.conf",
                                      "controller-manager.conf", "scheduler.conf")],
                 PKI, STATE]:
        if path.exists():
            shutil.rmtree(path) if path.is_dir() else path.unlink()
            removed.append(str(path))
    for directory in (MANIFESTS, KUBELET_DIR):
        if directory.is_dir():
            for child in directory.iterdir():
                if child.name.startswith(".kubelet-keep"):
                    continue
                shutil.rmtree(child) if child.is_dir() else child.unlink()
                removed.append(str(child))
    record("kubeadm", event="reset", removed=removed)
    print("[reset] Deleted contents of directories: [/etc/kubernetes/manifests /var/lib/kubelet /etc/kubernetes/pki]")


def kubeadm_token(args: list[str]) -> None:
    positional, flags = parse_flags(args)
    if not positional or positional[0] != "create":
        fail("error: the stand-in kubeadm supports 'token create' only")
    server, context = admin_api()
    try:
        api(server, context, "GET", "/readyz")
    except (OSError, urllib.error.URLError) as error:
        fail(f"error: failed to create or update bootstrap token: the API server at {server} does not answer: {error}")
    if not tokens_file().parent.exists():
        fail("error: the stand-in keeps tokens on the control plane (no /var/lib/kc-standin here)")
    given, ttl, description = positional[1] if len(positional) > 1 else None, flags.get("ttl", "24h"), flags.get("description", "")
    if "config" in flags:
        # The InitConfiguration's bootstrapTokens are created and the first one printed
        # (kubeadm's cmd/token.go RunCreateToken: LoadOrDefaultInitConfiguration, CreateNewTokens).
        mixed = sorted(set(flags) & {"ttl", "description", "usages", "groups"})
        if mixed:
            fail(f"error: can not mix '--config' with arguments {mixed}")
        init = load_config(flags["config"], strict=False).get("InitConfiguration") or {}
        listed = init.get("bootstrapTokens") or [{}]
        first = listed[0]
        given = given or first.get("token")
        ttl, description = str(first.get("ttl") or "24h"), str(first.get("description") or "")
        for extra in listed[1:]:
            add_token(extra.get("token"), str(extra.get("ttl") or "24h"), str(extra.get("description") or ""), True)
    token = add_token(given, ttl, description, fail_if_exists=True)
    record("kubeadm", event="token-create", ttl=ttl, description=description, config="config" in flags)
    if flags.get("print-join-command") == "true":
        endpoint = server.removeprefix("https://")
        print(f"kubeadm join {endpoint} --token {token} --discovery-token-ca-cert-hash "
              f"{public_key_hash((PKI / 'ca.crt').read_text())}")
    else:
        print(token)


def kubeadm_config(args: list[str]) -> None:
    positional, flags = parse_flags(args)
    if positional[:2] == ["images", "list"]:
        unknown = sorted(set(flags) - {"config", "kubernetes-version", "image-repository"})
        if unknown:
            fail(f"error: the stand-in kubeadm does not implement 'config images list' with {unknown}")
        cluster: dict[str, Any] = {}
        if "config" in flags:
            cluster = dict(load_config(flags["config"], strict=False).get("ClusterConfiguration") or {})
        if flags.get("image-repository"):
            cluster["imageRepository"] = flags["image-repository"]
        version = flags.get("kubernetes-version") or str(cluster.get("kubernetesVersion") or kube_version())
        record("kubeadm", event="config-images-list")
        print("\n".join(control_plane_images(cluster, version)))
        return
    if positional[:1] != ["validate"]:
        fail("error: the stand-in kubeadm supports 'config validate' and 'config images list' only")
    if "config" not in flags:
        fail("error: config validate needs --config")
    load_config(flags["config"], strict=True)
    record("kubeadm", event="config-validate", ok=True)
    print("ok")


def kubeadm_upgrade(args: list[str]) -> None:
    positional, flags = parse_flags(args)
    server, context = admin_api() if (KUBE / "admin.conf").exists() else ("", ssl.create_default_context())
    action = positional[0] if positional else ""
    if action in ("plan", "apply"):
        if not server:
            fail("error: no admin.conf: not the first control plane")
        cm = json.loads((STATE / "objects" / "configmaps" / "kube-system" / "kubeadm-config.json").read_text())
        cluster = yaml.safe_load(cm["data"]["ClusterConfiguration"])
        current = str(cluster.get("kubernetesVersion"))
        if action == "plan":
            print(f"[upgrade/versions] Cluster version: {current}\n[upgrade/versions] kubeadm version: {kube_version()}")
            return
        target = positional[1] if len(positional) > 1 else kube_version()
        if minor_of(target) > minor_of(kube_version()) or target.lstrip("v") > kube_version().lstrip("v"):
            fail(f"error: the target version {target} is higher than the kubeadm version {kube_version()}. "
                 "Upgrade kubeadm first")
        if minor_of(target)[1] - minor_of(current)[1] > 1:
            fail(f"error: specified version to upgrade to {target} is at least one minor release higher than "
                 f"the kubeadm minor release {current}")
        cluster["kubernetesVersion"] = target if target.startswith("v") else f"v{target}"
        if (MANIFESTS / "etcd.yaml").exists():
            # The etcd phase: the target's etcd tag is the one running (one kubeadm minor), so the
            # member stays; kubeadm waits for it to be healthy before the other components.
            print("[upgrade/etcd] Waiting for the local etcd to be healthy")
            problem = etcd_healthy(120)
            if problem:
                fail(f"error: [upgrade/etcd] the local etcd is not healthy: {problem}")
            print(f"[upgrade/etcd] etcd is healthy; the desired etcd image {etcd_image(cluster)} is the one running")
        cm["data"]["ClusterConfiguration"] = yaml.safe_dump(cluster, sort_keys=False)
        store_object("kube-system", "configmaps", "kubeadm-config", cm)
        record("kubeadm", event="upgrade-apply", target=target, previous=current)
        print(f"[upgrade] SUCCESS! A control plane node of your cluster was upgraded to \"{target}\".")
    elif action == "node":
        record("kubeadm", event="upgrade-node")
        print("[upgrade] The configuration for this node was successfully upgraded!")
    else:
        fail(f"error: the stand-in kubeadm does not implement 'upgrade {action}'")


def kubeadm_main(args: list[str]) -> None:
    record("kubeadm")
    if not args or args[0] in ("-h", "--help", "help"):
        print("kubeadm stand-in (kubeadm-cluster rehearsal): init, join, token create, config validate, reset, "
              "init phase upload-certs, upgrade plan/apply/node, version")
        return
    command, rest = args[0], args[1:]
    if command == "version":
        _, flags = parse_flags(rest)
        if flags.get("o") == "short" or flags.get("output") == "short":
            print(kube_version())
        else:
            print(f'kubeadm version: &version.Info{{Major:"1", Minor:"{minor_of(kube_version())[1]}", '
                  f'GitVersion:"{kube_version()}", Platform:"linux/amd64", StandIn:"kubeadm-cluster rehearsal"}}')
    elif command == "init" and rest[:2] == ["phase", "upload-certs"]:
        _, flags = parse_flags(rest[2:])
        admin_api()
        upload_certs(flags.get("certificate-key", ""))
        record("kubeadm", event="upload-certs")
    elif command == "init":
        kubeadm_init(rest)
    elif command == "join":
        kubeadm_join(rest)
    elif command == "reset":
        kubeadm_reset(rest)
    elif command == "token":
        kubeadm_token(rest)
    elif command == "config":
        kubeadm_config(rest)
    elif command == "upgrade":
        kubeadm_upgrade(rest)
    else:
        fail(f"error: the stand-in kubeadm does not implement '{command}'")


# --- kubelet ---------------------------------------------------------------------------------
def kubelet_main(args: list[str]) -> None:
    positional, flags = parse_flags(args)
    if "version" in flags:
        print(f"Kubernetes {kube_version()}")
        return
    record("kubelet", flags=flags)
    config_path = Path(flags.get("config", ""))
    if not flags.get("config") or not config_path.exists():
        fail(f'E run.go] "command failed" err="failed to load kubelet config file, path: {config_path}, error: '
             f'failed to load Kubelet config file {config_path}, error failed to read kubelet config file '
             f'"{config_path}", error: open {config_path}: no such file or directory"')
    config = yaml.safe_load(config_path.read_text()) or {}
    if config.get("failSwapOn", True) and swap_on():
        fail('E run.go] "command failed" err="failed to run Kubelet: running with swap on is not supported, please '
             'disable swap or set --fail-swap-on flag to false"')
    if not Path("/sys/fs/cgroup/cgroup.controllers").exists():
        fail('E run.go] "command failed" err="kubelet is configured to not run on a host using cgroup v1"')
    endpoint = flags.get("container-runtime-endpoint", DEFAULT_CRI)
    problem: str | None = None
    for _ in range(30):
        problem = cri_problem(endpoint)
        if problem is None:
            break
        print(f'W remote_runtime.go] "Connect to the CRI failed" err="{problem}"', file=sys.stderr)
        time.sleep(2)
    else:
        fail(f'E run.go] "command failed" err="failed to run Kubelet: validate service connection: {problem}"')
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    healthz = http.server.ThreadingHTTPServer(("127.0.0.1", HEALTHZ_PORT), HealthzHandler)
    threading.Thread(target=healthz.serve_forever, daemon=True).start()
    print(f"I kubelet.go] \"Started kubelet\" version=\"{kube_version()}\" config=\"{config_path}\"", file=sys.stderr)
    apiserver: subprocess.Popen[bytes] | None = None
    node_name = flags.get("hostname-override") or socket.gethostname()
    node_ip = flags.get("node-ip", "")
    registered = False
    pods: dict[str, dict[str, Any]] = {}
    while not stop.is_set():
        if (MANIFESTS / "kube-apiserver.yaml").exists():
            if apiserver is None or apiserver.poll() is not None:
                print('I kubelet.go] "Starting static pod" pod="kube-system/kube-apiserver"', file=sys.stderr)
                apiserver = subprocess.Popen([sys.executable, __file__, "--kc-standin=kube-apiserver"])
        elif apiserver is not None and apiserver.poll() is None:
            apiserver.terminate()
            apiserver = None
        registered = register_node(flags.get("kubeconfig", str(KUBE / "kubelet.conf")), node_name, node_ip,
                                   registered)
        sync_container_pods(endpoint, node_name, pods)
        stop.wait(10)
    if apiserver is not None and apiserver.poll() is None:
        apiserver.terminate()
        apiserver.wait(10)
    healthz.shutdown()


class HealthzHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's names)
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's name)
        pass


def register_node(kubeconfig_path: str, node_name: str, node_ip: str, registered: bool) -> bool:
    """Register this kubelet's Node object (once per process) or update its status; returns
    whether the Node is registered. As the kubelet does (pkg/kubelet/kubelet_node_status.go:
    registerWithAPIServer returns at once when registrationCompleted): a Node deleted while
    its kubelet runs is not created again, its status updates fail until the kubelet restarts."""
    path = Path(kubeconfig_path)
    if not path.exists():
        return registered
    try:
        server, context = read_kubeconfig(path)
        context.check_hostname = False
        registration: dict[str, Any] = {}
        if (STATE / "registration.json").exists():
            registration = json.loads((STATE / "registration.json").read_text())
        body = {"metadata": {"name": node_name}, "nodeIP": node_ip, "kubeletVersion": kube_version(),
                "taints": registration.get("taints"), "register": not registered}
        api(server, context, "POST", "/standin/v1/heartbeat", body, timeout=5)
        return True
    except urllib.error.HTTPError as error:
        if error.code == 404:
            print(f'E kubelet_node_status.go] "Error updating node status, will retry" err="error getting node '
                  f'\\"{node_name}\\": nodes \\"{node_name}\\" not found"', file=sys.stderr)
            return registered
        print(f'E kubelet_node_status.go] "Unable to register node with API server" err="{error}" node="{node_name}"',
              file=sys.stderr)
    except (OSError, urllib.error.URLError, ValueError, KeyError) as error:
        print(f'E kubelet_node_status.go] "Unable to register node with API server" err="{error}" node="{node_name}"',
              file=sys.stderr)
    return registered


# --- kube-apiserver --------------------------------------------------------------------------
API_LOCK = threading.Lock()


def object_path(kind: str, namespace: str, name: str) -> Path:
    return STATE / "objects" / kind / namespace / f"{name}.json"


def load_object(kind: str, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        result: dict[str, Any] = json.loads(object_path(kind, namespace, name).read_text())
        return result
    except (OSError, json.JSONDecodeError):
        return None


def status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}


RESOURCES = [
    ("namespaces", "Namespace", False), ("nodes", "Node", False), ("pods", "Pod", True),
    ("configmaps", "ConfigMap", True), ("secrets", "Secret", True), ("services", "Service", True),
    ("pods/eviction", "Eviction", True),
]


class ApiHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def reply(self, code: int, body: Any) -> None:
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain" if isinstance(body, str) else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            return {}

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        record("kube-apiserver", request=format % args)

    def do_GET(self) -> None:  # noqa: N802
        path, _, query = self.path.partition("?")
        if path == "/readyz" and (MANIFESTS / "etcd.yaml").exists() and not port_answers(ETCD_CLIENT_PORT):
            # The real /readyz includes its etcd check: a stacked control plane is not ready
            # while its local etcd does not answer.
            self.reply(500, f"[-]etcd failed: no answer on 127.0.0.1:{ETCD_CLIENT_PORT}\nreadyz check failed")
        elif path in ("/readyz", "/livez", "/healthz"):
            self.reply(200, "ok")
        elif path == "/version":
            major, minor = minor_of(kube_version())
            self.reply(200, {"major": str(major), "minor": str(minor), "gitVersion": kube_version(),
                             "platform": "linux/amd64"})
        elif path == "/api":
            self.reply(200, {"kind": "APIVersions", "versions": ["v1"],
                             "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}]})
        elif path == "/apis":
            self.reply(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": []})
        elif path == "/api/v1":
            self.reply(200, {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
                {"name": name, "singularName": "" if "/" in name else kind.lower(), "namespaced": namespaced,
                 "kind": kind, "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]}
                for name, kind, namespaced in RESOURCES]})
        else:
            self.resource("GET", path, query)

    def do_DELETE(self) -> None:  # noqa: N802
        path, _, query = self.path.partition("?")
        self.resource("DELETE", path, query)

    def do_PATCH(self) -> None:  # noqa: N802
        path, _, query = self.path.partition("?")
        self.resource("PATCH", path, query)

    def do_PUT(self) -> None:  # noqa: N802
        self.do_PATCH()

    def do_POST(self) -> None:  # noqa: N802
        path = self.path.partition("?")[0]
        if path == "/standin/v1/bootstrap":
            self.bootstrap()
        elif path == "/standin/v1/heartbeat":
            self.heartbeat()
        elif path == "/standin/v1/certs":
            self.certs()
        elif re.match(r"^/api/v1/namespaces/[^/]+/pods/[^/]+/eviction$", path):
            self.reply(201, {"kind": "Status", "status": "Success"})
        else:
            self.reply(404, status(404, "NotFound", f"the server could not find the requested resource ({path})"))

    def resource(self, method: str, path: str, query: str) -> None:
        # Read the request's body first, whatever the method: on a kept-alive HTTP/1.1
        # connection an unread body (kubectl's DeleteOptions of a DELETE) would be parsed as the
        # next request, and the error page answering it would reach kubectl unsolicited.
        payload = self.body() if method != "GET" else {}
        match = re.match(r"^/api/v1/(?:namespaces/(?P<ns>[^/]+)/)?(?P<kind>[a-z]+)(?:/(?P<name>[^/]+))?$", path)
        if not match:
            self.reply(404, status(404, "NotFound", f"the server could not find the requested resource ({path})"))
            return
        namespace, kind, name = match.group("ns") or "", match.group("kind"), match.group("name")
        if kind == "secrets" and namespace == "kube-system" and (name or "").startswith("bootstrap-token-"):
            self.bootstrap_token_secret(method, (name or "").removeprefix("bootstrap-token-"))
            return
        if kind == "namespaces" and name and not namespace:
            self.reply(200, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}, "status": {"phase": "Active"}})
            return
        with API_LOCK:
            if name is None:
                if method != "GET":
                    self.reply(405, status(405, "MethodNotAllowed", "not supported"))
                    return
                items = []
                base = STATE / "objects" / kind
                # Cluster-scoped objects live in base/, namespaced ones in base/<namespace>/.
                pattern = f"{namespace}/*.json" if namespace else ("*.json" if kind in ("nodes", "namespaces") else "*/*.json")
                for file in sorted(base.glob(pattern)) if base.is_dir() else []:
                    items.append(json.loads(file.read_text()))
                items = [item for item in items if matches_field_selector(item, query)]
                if kind == "configmaps" and namespace == "kube-public":
                    items = [self.sign_cluster_info(i) if i["metadata"]["name"] == "cluster-info" else i for i in items]
                kind_name = next((k for n, k, _ in RESOURCES if n == kind), "Object")
                self.reply(200, {"apiVersion": "v1", "kind": f"{kind_name}List", "metadata": {"resourceVersion": "1"},
                                 "items": items})
                return
            obj = load_object(kind, namespace, name)
            if obj is None:
                self.reply(404, status(404, "NotFound", f'{kind} "{name}" not found'))
                return
            if method == "GET":
                if kind == "configmaps" and namespace == "kube-public" and name == "cluster-info":
                    obj = self.sign_cluster_info(obj)
                self.reply(200, obj)
            elif method == "DELETE":
                object_path(kind, namespace, name).unlink()
                self.reply(200, {"kind": "Status", "apiVersion": "v1", "status": "Success",
                                 "details": {"name": name, "kind": kind}})
            else:
                patch = payload
                merge(obj, patch)
                store_object(namespace, kind, name, obj)
                self.reply(200, obj)

    def bootstrap_token_secret(self, method: str, token_id: str) -> None:
        """The Secret ``kube-system/bootstrap-token-<id>`` of a stored token: GET, DELETE."""
        STATE.mkdir(parents=True, exist_ok=True)
        with open(STATE / ".tokens.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                tokens: dict[str, dict[str, Any]] = json.loads(tokens_file().read_text())
            except (OSError, json.JSONDecodeError):
                tokens = {}
            token = tokens.get(token_id)
            name = f"bootstrap-token-{token_id}"
            if token is None:
                self.reply(404, status(404, "NotFound", f'secrets "{name}" not found'))
            elif method == "DELETE":
                del tokens[token_id]
                write(tokens_file(), json.dumps(tokens), 0o600)
                self.reply(200, {"kind": "Status", "apiVersion": "v1", "status": "Success",
                                 "details": {"name": name, "kind": "secrets"}})
            elif method == "GET":
                expiration = datetime.datetime.fromtimestamp(token["expires"], datetime.timezone.utc)
                data = {"token-id": token_id, "token-secret": token["secret"], "description": token.get("description", ""),
                        "expiration": expiration.strftime("%Y-%m-%dT%H:%M:%SZ")}
                self.reply(200, {"apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
                                 "metadata": {"name": name, "namespace": "kube-system"},
                                 "data": {k: b64(v.encode()) for k, v in data.items()}})
            else:
                self.reply(405, status(405, "MethodNotAllowed", f"{method} of {name} is not supported by the stand-in"))

    @staticmethod
    def sign_cluster_info(obj: dict[str, Any]) -> dict[str, Any]:
        obj = json.loads(json.dumps(obj))
        content = obj["data"]["kubeconfig"]
        for token_id, token in load_tokens().items():
            obj["data"][f"jws-kubeconfig-{token_id}"] = jws(content, token_id, token["secret"])
        return obj

    def bootstrap(self) -> None:
        request = self.body()
        token = str(request.get("token", ""))
        node = str(request.get("node", ""))
        tokens = load_tokens()
        token_id, _, token_secret = token.partition(".")
        if token_id not in tokens or tokens[token_id]["secret"] != token_secret:
            self.reply(401, status(401, "Unauthorized", "the bootstrap token is invalid or has expired"))
            return
        if not re.match(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", node):
            self.reply(400, status(400, "BadRequest", f"invalid node name {node!r}"))
            return
        if load_object("nodes", "", node) is not None and (load_object("nodes", "", node) or {}).get("status", {}).get("ready"):
            self.reply(409, status(409, "AlreadyExists", f'a Node with name "{node}" and status "Ready" already exists in '
                                                         'the cluster. You must delete the existing Node or change the name '
                                                         'of this new joining Node'))
            return
        with tempfile.TemporaryDirectory() as tmp:
            key, crt = Path(tmp) / "k", Path(tmp) / "c"
            sign(PKI, "ca", key, crt, f"/O=system:nodes/CN=system:node:{node}", "clientAuth")
            kubelet = load_object("configmaps", "kube-system", "kubelet-config") or {"data": {"kubelet": ""}}
            self.reply(201, {"cert": crt.read_text(), "key": key.read_text(), "kubeletConfig": kubelet["data"]["kubelet"]})
        record("kube-apiserver", event="bootstrap", node=node, token_id=token_id)

    def heartbeat(self) -> None:
        request = self.body()
        name = request["metadata"]["name"]
        with API_LOCK:
            node = load_object("nodes", "", name)
            if node is None and not request.get("register", True):
                self.reply(404, status(404, "NotFound", f'nodes "{name}" not found'))
                return
            node = node or {
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"},
                             "creationTimestamp": now_rfc3339()},
                "spec": {"taints": request.get("taints") or []}}
            node["status"] = {"ready": True,
                              "conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": now_rfc3339()}],
                              "addresses": [{"type": "InternalIP", "address": request.get("nodeIP", "")}],
                              "nodeInfo": {"kubeletVersion": request.get("kubeletVersion", ""),
                                           "containerRuntimeVersion": "containerd://stand-in"}}
            store_object("", "nodes", name, node)
        self.reply(200, {"ok": True})

    def certs(self) -> None:
        request = self.body()
        try:
            uploaded = json.loads((STATE / "kubeadm-certs.json").read_text())
        except (OSError, json.JSONDecodeError):
            self.reply(404, status(404, "NotFound", 'secrets "kubeadm-certs" not found'))
            return
        if uploaded["expires"] < time.time():
            self.reply(404, status(404, "NotFound", 'secrets "kubeadm-certs" not found (the uploaded certificates expired)'))
        elif uploaded["keyHash"] != request.get("keyHash"):
            self.reply(403, status(403, "Forbidden", "error decoding secret data with provided key: cipher: message "
                                                     "authentication failed"))
        else:
            self.reply(200, {"ok": True})


def matches_field_selector(item: dict[str, Any], query: str) -> bool:
    """Whether ``item`` passes the ``fieldSelector`` of a list's query (``a=b,c!=d`` on dotted
    fields: kubectl asks for ``metadata.name=`` to wait for a deletion and ``spec.nodeName=``
    for the pods of a node it drains)."""
    selector = urllib.parse.parse_qs(query).get("fieldSelector", [""])[0]
    for term in filter(None, selector.split(",")):
        negate = "!=" in term
        path, _, wanted = term.partition("!=" if negate else "=")
        value: Any = item
        for part in path.lstrip("=").split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if (str(value if value is not None else "") == wanted.lstrip("=")) == negate:
            return False
    return True


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    """A JSON merge patch (what kubectl cordon sends for spec.unschedulable, enough here)."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = value


def apiserver_main() -> None:
    record("kube-apiserver", event="start")
    server = http.server.ThreadingHTTPServer(("0.0.0.0", API_PORT), ApiHandler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(PKI / "apiserver.crt"), str(PKI / "apiserver.key"))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    server.serve_forever()


# --- containers (the node's real containerd, through ctr) -------------------------------------
def ctr(endpoint: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``ctr`` on containerd's socket, in the CRI's namespace (k8s.io)."""
    binary = shutil.which("ctr") or "/usr/local/bin/ctr"
    command = [binary, "--address", endpoint.removeprefix("unix://"), "--namespace", CTR_NAMESPACE, *args]
    try:
        return run(command, timeout=timeout)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(command, 124, "", f"ctr {' '.join(args[:2])} timed out after {timeout:g}s")
    except OSError as error:
        return subprocess.CompletedProcess(command, 127, "", f"cannot run ctr: {error}")


#: containerd's task status -> the CRI's container state (a container without a task: exited).
CRI_STATES = {"RUNNING": "running", "PAUSED": "running", "PAUSING": "running", "CREATED": "created",
              "STOPPED": "exited", "": "exited"}


def runtime_containers(endpoint: str) -> list[dict[str, Any]]:
    """The containers of containerd's k8s.io namespace: id, labels, image, CRI state
    (created, running, exited, unknown), task pid and creation time."""
    listed = ctr(endpoint, "containers", "list", "--quiet")
    if listed.returncode != 0:
        return []
    tasks: dict[str, tuple[int, str]] = {}
    for line in ctr(endpoint, "tasks", "list").stdout.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 3 and fields[1].isdigit():
            tasks[fields[0]] = (int(fields[1]), fields[2])
    found = []
    for cid in listed.stdout.split():
        try:
            info = json.loads(ctr(endpoint, "containers", "info", cid).stdout)
        except json.JSONDecodeError:
            continue
        pid, task = tasks.get(cid, (0, ""))
        found.append({"id": cid, "labels": info.get("Labels") or {}, "image": info.get("Image", ""),
                      "state": CRI_STATES.get(task, "unknown"), "pid": pid, "created": info.get("CreatedAt", "")})
    return found


def remove_container(endpoint: str, cid: str) -> None:
    """Stop a container (SIGTERM, then SIGKILL after 20 s, as the kubelet's grace period) and delete it."""
    ctr(endpoint, "tasks", "kill", cid)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if not re.search(rf"^{re.escape(cid)}\s+\d+\s+RUNNING", ctr(endpoint, "tasks", "list").stdout, re.M):
            break
        time.sleep(1)
    ctr(endpoint, "tasks", "delete", "--force", cid)
    ctr(endpoint, "containers", "delete", cid)


def pull_image(endpoint: str, image: str) -> subprocess.CompletedProcess[str]:
    """What the CRI does on a pull: through containerd's hosts.toml mirrors (config_path)."""
    return ctr(endpoint, "images", "pull", "--hosts-dir", HOSTS_DIR, image, timeout=900)


def manifest_container(manifest: Path) -> dict[str, Any]:
    document = yaml.safe_load(manifest.read_text())
    container: dict[str, Any] = document["spec"]["containers"][0]
    return container


def etcd_command(manifest: Path) -> list[str]:
    container = manifest_container(manifest)
    return [str(a) for a in (container.get("command") or []) + (container.get("args") or [])]


def pod_spec(manifest: Path, node_name: str) -> dict[str, Any]:
    """The one container of a static pod manifest as the kubelet runs it: pod name (the
    manifest's, suffixed with the node's, as for every static pod), image, command, hostPath
    mounts (host path, container path, read-only, type) and the hash of all that."""
    document = yaml.safe_load(manifest.read_text())
    metadata, spec = document["metadata"], document["spec"]
    container = spec["containers"][0]
    volumes = {v["name"]: v.get("hostPath") or {} for v in spec.get("volumes") or []}
    mounts = []
    for mount in container.get("volumeMounts") or []:
        host = volumes.get(mount["name"])
        if not host or not host.get("path"):
            raise KeyError(f"volume {mount['name']} is not a hostPath volume of the manifest")
        mounts.append((str(host["path"]), str(mount["mountPath"]), bool(mount.get("readOnly")), str(host.get("type") or "")))
    result: dict[str, Any] = {
        "pod": f"{metadata['name']}-{node_name}", "namespace": metadata.get("namespace") or "default",
        "container": str(container["name"]), "image": str(container["image"]),
        "command": [str(a) for a in (container.get("command") or []) + (container.get("args") or [])],
        "mounts": mounts, "host_network": bool(spec.get("hostNetwork")),
    }
    result["hash"] = hashlib.sha256(json.dumps(result, sort_keys=True).encode()).hexdigest()[:16]
    return result


def start_pod_container(endpoint: str, spec: dict[str, Any]) -> str:
    """Pull the image when containerd lacks it, create the hostPath directories, run the
    container (detached: containerd's shim keeps it); returns its id."""
    if spec["image"] not in ctr(endpoint, "images", "list", "--quiet").stdout.split():
        print(f'I kuberuntime_image.go] "Pulling image" image="{spec["image"]}"', file=sys.stderr)
        pulled = pull_image(endpoint, spec["image"])
        if pulled.returncode != 0:
            raise RuntimeError(f"ErrImagePull: {spec['image']}: {(pulled.stderr or pulled.stdout).strip()[-800:]}")
    for host, _, _, kind in spec["mounts"]:
        if kind == "DirectoryOrCreate":
            Path(host).mkdir(mode=0o755, parents=True, exist_ok=True)
        elif not Path(host).exists():
            raise RuntimeError(f"hostPath {host} does not exist (type {kind or 'unset'})")
    cid = secrets.token_hex(32)
    (LOGS / "pods").mkdir(parents=True, exist_ok=True)
    args = ["run", "--detach", "--log-uri", f"file://{LOGS}/pods/{spec['pod']}_{spec['container']}.log"]
    if spec["host_network"]:
        args.append("--net-host")
    labels = {POD_NAME_LABEL: spec["pod"], POD_NAMESPACE_LABEL: spec["namespace"],
              CONTAINER_NAME_LABEL: spec["container"], SPEC_LABEL: spec["hash"]}
    for key, value in labels.items():
        args += ["--label", f"{key}={value}"]
    for host, path, read_only, _ in spec["mounts"]:
        args += ["--mount", f"type=bind,src={host},dst={path},options=rbind:{'ro' if read_only else 'rw'}"]
    started = ctr(endpoint, *args, spec["image"], cid, *spec["command"])
    if started.returncode != 0:
        ctr(endpoint, "containers", "delete", cid)
        raise RuntimeError(f"CreateContainerError: {(started.stderr or started.stdout).strip()[-800:]}")
    return cid


def sync_container_pods(endpoint: str, node_name: str, known: dict[str, dict[str, Any]]) -> None:
    """The kubelet's static pod loop for the pods that run as real containers (CONTAINER_PODS):
    a manifest's container runs (a changed manifest replaces it; an exited one is started
    again), a removed manifest's container is stopped. ``known`` remembers the last container
    seen running, so that a healthy pod costs no ctr call."""
    for name in CONTAINER_PODS:
        manifest = MANIFESTS / f"{name}.yaml"
        state = known.setdefault(name, {})
        spec: dict[str, Any] | None = None
        if manifest.exists():
            try:
                spec = pod_spec(manifest, node_name)
            except (OSError, yaml.YAMLError, KeyError, IndexError, TypeError) as error:
                print(f'E file.go] "Could not process manifest file" err="{error}" path="{manifest}"', file=sys.stderr)
                continue
        if spec is None and not state:
            continue
        if spec is not None and state.get("hash") == spec["hash"] and state.get("pid") and Path(f"/proc/{state['pid']}").exists():
            continue
        keep: dict[str, Any] | None = None
        for container in runtime_containers(endpoint):
            if container["labels"].get(POD_NAME_LABEL) != f"{name}-{node_name}":
                continue
            if spec is not None and keep is None and container["labels"].get(SPEC_LABEL) == spec["hash"] \
                    and container["state"] == "running":
                keep = container
                continue
            print(f'I kuberuntime_container.go] "Killing container" pod="kube-system/{name}-{node_name}" '
                  f'containerID="{container["id"][:13]}" state="{container["state"]}"', file=sys.stderr)
            remove_container(endpoint, container["id"])
        if spec is None:
            state.clear()
            continue
        if keep is None:
            try:
                cid = start_pod_container(endpoint, spec)
            except RuntimeError as error:
                print(f'E pod_workers.go] "Error syncing pod, skipping" err="{error}" pod="{spec["namespace"]}/{spec["pod"]}"',
                      file=sys.stderr)
                state.clear()
                continue
            print(f'I kubelet.go] "Started static pod container" pod="{spec["namespace"]}/{spec["pod"]}" '
                  f'containerID="{cid[:13]}"', file=sys.stderr)
            record("kubelet", event="container-started", pod=spec["pod"], id=cid, image=spec["image"])
            keep = next((c for c in runtime_containers(endpoint) if c["id"] == cid), {"id": cid, "pid": 0})
        state.update(hash=spec["hash"], id=keep["id"], pid=keep["pid"])


# --- crictl ----------------------------------------------------------------------------------
#: crictl's global options (name -> takes a value) and those of the commands the stand-in has.
CRICTL_GLOBAL = {"runtime-endpoint": True, "r": True, "image-endpoint": True, "i": True, "timeout": True, "t": True,
                 "config": True, "c": True, "debug": False, "D": False}
CRICTL_OPTIONS: dict[str, dict[str, bool]] = {
    "version": {}, "info": {"output": True, "o": True},
    "ps": {"all": False, "a": False, "quiet": False, "q": False, "name": True, "label": True, "state": True, "s": True,
           "id": True, "output": True, "o": True, "no-trunc": False},
    "exec": {"interactive": False, "i": False, "tty": False, "t": False, "sync": False, "s": False, "timeout": True},
    "pull": {},
    "images": {"quiet": False, "q": False},
    "pods": {"quiet": False, "q": False},
}


def cli_options(args: list[str], spec: dict[str, bool], what: str) -> tuple[dict[str, list[str]], list[str]]:
    """urfave/cli's parsing (crictl's): options before the first argument, each known to the
    command (an unknown one is an error, as in crictl); everything from the first argument on
    is left as it is (``crictl exec ID etcdctl --endpoints=...``: etcdctl's flags)."""
    options: dict[str, list[str]] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            i += 1
            break
        if not arg.startswith("-") or arg == "-":
            break
        name, eq, value = arg.lstrip("-").partition("=")
        if name not in spec:
            fail(f"Incorrect Usage: flag provided but not defined: -{name} ({what} in the stand-in crictl)")
        if spec[name] and not eq:
            if i + 1 >= len(args):
                fail(f"Incorrect Usage: flag needs an argument: -{name}")
            i += 1
            value = args[i]
        elif not spec[name]:
            value = value if eq else "true"
        options.setdefault(name, []).append(value)
        i += 1
    return options, args[i:]


def crictl_ps(endpoint: str, options: dict[str, list[str]], rest: list[str]) -> None:
    if rest:
        fail(f"Incorrect Usage: crictl ps takes no arguments, got {rest}")
    state = (options.get("state") or options.get("s") or [""])[-1]
    if state and state.lower() not in ("created", "running", "exited", "unknown"):
        # cri-tools cmd/crictl/container.go ListContainers (strings.ToLower of --state).
        fail("--state should be one of created, running, exited or unknown")
    everything = "true" in options.get("all", []) + options.get("a", [])
    wanted = state.lower() or ("" if everything else "running")
    labels = []
    for label in options.get("label", []):
        key, eq, value = label.partition("=")
        if not eq:
            fail(f"incorrectly specified label: {label}")
        labels.append((key, value))
    name = (options.get("name") or [""])[-1]
    try:
        name_pattern = re.compile(name) if name else None
    except re.error as error:
        fail(f"invalid --name regular expression {name!r}: {error}")
    given_id = (options.get("id") or [""])[-1]
    output = (options.get("output") or options.get("o") or ["table"])[-1]
    if output not in ("table", "json"):
        fail(f"the stand-in crictl does not implement ps -o {output} (json, table)")
    found = []
    for container in runtime_containers(endpoint):
        container_labels = container["labels"]
        if CONTAINER_NAME_LABEL not in container_labels:
            continue  # not a container of the kubelet (the CRI lists only its own)
        if wanted and container["state"] != wanted:
            continue
        if given_id and not container["id"].startswith(given_id):
            continue
        if name_pattern and not name_pattern.search(container_labels[CONTAINER_NAME_LABEL]):
            continue
        if any(container_labels.get(k) != v for k, v in labels):
            continue
        found.append(container)
    if "true" in options.get("quiet", []) + options.get("q", []):
        for container in found:
            print(container["id"])
    elif output == "json":
        print(json.dumps({"containers": [{
            "id": c["id"], "metadata": {"name": c["labels"][CONTAINER_NAME_LABEL], "attempt": 0},
            "image": {"image": c["image"]}, "imageRef": c["image"], "state": f"CONTAINER_{c['state'].upper()}",
            "createdAt": c["created"], "labels": c["labels"]} for c in found]}, indent=2))
    else:
        width = 64 if "true" in options.get("no-trunc", []) else 13
        print(f"{'CONTAINER':{width}}  {'IMAGE':32}  {'STATE':8}  {'NAME':24}  POD")
        for c in found:
            print(f"{c['id'][:width]:{width}}  {c['image']:32}  {c['state'].capitalize():8}  "
                  f"{c['labels'][CONTAINER_NAME_LABEL]:24}  {c['labels'].get(POD_NAME_LABEL, '')}")


def crictl_exec(endpoint: str, options: dict[str, list[str]], rest: list[str]) -> None:
    """``crictl exec [-i] [-s] [--timeout N] ID CMD [ARG...]``: CMD in the running container ID (a
    unique prefix, as containerd resolves it), its output and exit code passed through, stdin
    only with -i."""
    if "true" in options.get("tty", []) + options.get("t", []):
        fail("the stand-in crictl does not allocate a TTY (exec -t)")
    if len(rest) < 2:
        fail("Incorrect Usage: crictl exec needs a container ID and a command (crictl exec [options] ID CMD [ARG...])")
    given, command = rest[0], rest[1:]
    if not re.match(r"^[0-9a-f]+$", given):
        fail(f"Incorrect Usage: {given!r} is not a container ID")
    timeout = (options.get("timeout") or ["0"])[-1]
    if not re.match(r"^\d+$", timeout):
        fail(f'invalid value "{timeout}" for flag -timeout: parse error')
    matches = [c for c in runtime_containers(endpoint) if c["id"].startswith(given) and CONTAINER_NAME_LABEL in c["labels"]]
    if len(matches) != 1:
        fail(f'E remote_runtime.go "ExecSync cmd from runtime service failed" err="rpc error: code = NotFound desc = '
             f'an error occurred when try to find container \\"{given}\\": {"not found" if not matches else "ambiguous"}"')
    container = matches[0]
    if container["state"] != "running":
        fail(f'E remote_runtime.go "ExecSync cmd from runtime service failed" err="rpc error: code = Unknown desc = '
             f'container is in CONTAINER_{container["state"].upper()} state"')
    binary = shutil.which("ctr") or "/usr/local/bin/ctr"
    record("crictl", event="exec", container=container["id"], command=command)
    try:
        done = subprocess.run([binary, "--address", endpoint.removeprefix("unix://"), "--namespace", CTR_NAMESPACE,
                               "tasks", "exec", "--exec-id", f"crictl-{secrets.token_hex(8)}", container["id"], *command],
                              # Without -i the CRI attaches no stdin (a script piped to bash keeps its own).
                              stdin=None if "true" in options.get("interactive", []) + options.get("i", []) else subprocess.DEVNULL,
                              timeout=int(timeout) or None)
    except subprocess.TimeoutExpired:
        fail(f"command {command} timed out after {timeout}s", 124)
    sys.exit(done.returncode)


def crictl_main(args: list[str]) -> None:
    record("crictl")
    endpoint = DEFAULT_CRI
    try:
        endpoint = (yaml.safe_load(Path("/etc/crictl.yaml").read_text()) or {}).get("runtime-endpoint") or endpoint
    except OSError:
        pass
    options, rest = cli_options(args, CRICTL_GLOBAL, "a global option")
    endpoint = (options.get("runtime-endpoint") or options.get("r") or [endpoint])[-1]
    command, rest = (rest[0], rest[1:]) if rest else ("", [])
    if command not in CRICTL_OPTIONS:
        fail(f"the stand-in crictl does not implement '{command}'" if command else "crictl: no command given")
    options, rest = cli_options(rest, CRICTL_OPTIONS[command], command)
    if command in ("version", "info"):
        problem = cri_problem(endpoint)
        if problem:
            fail(f'E remote_runtime.go "Version from runtime service failed" err="{problem}"')
        version = run(["ctr", "--address", endpoint.removeprefix("unix://"), "version"]).stdout
        server = re.search(r"Server:\s*\n\s*Version:\s*(\S+)", version)
        print(f"Version:  0.1.0\nRuntimeName:  containerd\nRuntimeVersion:  {server.group(1) if server else '?'}\n"
              "RuntimeApiVersion:  v1")
    elif command == "ps":
        crictl_ps(endpoint, options, rest)
    elif command == "exec":
        crictl_exec(endpoint, options, rest)
    elif command == "pull":
        if len(rest) != 1:
            fail("Incorrect Usage: crictl pull takes one image name")
        pulled = pull_image(endpoint, rest[0])
        if pulled.returncode != 0:
            fail(f'E remote_image.go "PullImage from image service failed" err="{(pulled.stderr or pulled.stdout).strip()[-800:]}" '
                 f'image="{rest[0]}"')
        print(f"Image is up to date for {rest[0]}")
    elif command == "images":
        refs = [r for r in ctr(endpoint, "images", "list", "--quiet").stdout.split() if not r.startswith("sha256:")]
        quiet = "true" in options.get("quiet", []) + options.get("q", [])
        print("\n".join(refs) if quiet else "IMAGE\n" + "\n".join(refs))
    else:  # pods: the stand-in runs its containers without pod sandboxes
        if "true" not in options.get("quiet", []) + options.get("q", []):
            print("POD ID    (stand-in: no pod sandboxes)")


def main() -> None:
    program = Path(sys.argv[0]).name
    args = sys.argv[1:]
    if args[:1] == ["--kc-standin=kube-apiserver"]:
        apiserver_main()
    elif program == "kubelet":
        kubelet_main(args)
    elif program == "crictl":
        crictl_main(args)
    else:
        kubeadm_main(args)


if __name__ == "__main__":
    main()
