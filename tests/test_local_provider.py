"""``provider: local`` (issue 15): the cluster's machines are QEMU VMs on the machine running
``pulumi up``, built by ``command.local.Command`` steps that call ``components.machines.localvm``,
the same VM code the rehearsal boots its VMs with.

Under the mock engine: the resources, their parents and dependencies (every node step waits for
its VM), the secrets (the stack's key), the delete commands, the replacement triggers, and the
refusals before any resource. Then the accelerator probe against a fake /sys and /dev, the CLI's
argument handling, and (``KC_LOCAL_VMS=1``, under ``flock /tmp/kc-vm.lock``) the very commands the
program registers, run for real on this machine: image, switch, three VMs, SSH, delete; and the
whole local stack for real as far as the rehearsal goes (``-k live_local_stack``): its own steps
boot its VMs, its node steps run on them through the rehearsal's mirror (kubeadm's stand-in),
both workers join, the kubeconfig output answers from this machine, and its destroy leaves nothing.

Facts used, and where they come from:

* QEMU ``-daemonize`` (the first process exits once the VM is set up; the daemon keeps running)
  and ``-pidfile``: qemu-options.hx of QEMU; ``vde_switch -daemon -pidfile``: vde_switch(1).
* A virtio-blk disk's ``serial`` is what systemd's udev rule 60-persistent-storage names
  ``/dev/disk/by-id/virtio-<serial>`` (the path the Rook add-on is given).
* pulumi-command's local Command: a ``triggers`` change replaces the resource when no ``update``
  command is set, and ``delete`` runs on destroy (the SDK's docstrings, pulumi_command 1.2.1).
* /dev/kvm may be PVM (``/sys/module/kvm_pvm``), under which a stock kernel hangs without output:
  measured here, shared/LOCAL-VMS.md.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from components import hardware
from components.machines import local as local_machines
from components.machines.localvm import __main__ as localvm_cli
from components.machines.localvm import accel, cloudimage, image, vm
from tools import mock_engine
from tools.mock_engine import Plan, Registered, run_program

COMMAND = "command:local:Command"
REMOTE = "command:remote:Command"
FAKE_PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaFAKE"


def local_stack(**keys: Any) -> dict[str, Any]:
    """The committed local stack's shape: 1 control plane + 2 workers with Ceph disks."""
    config: dict[str, Any] = {
        "provider": "local",
        "adminCidrs": ["127.0.0.1/32"],
        "controlPlane": {"count": 1, "machineType": "local-2-4096", "diskSizeGb": 30},
        "workerPools": [{"name": "general", "count": 2, "machineType": "local-2-4096", "diskSizeGb": 30,
                         "storageDiskSizeGb": 20}],
    }
    config.update(keys)
    return config


def run_local(config: dict[str, Any], stack: str = "lab", **kwargs: Any) -> Plan:
    return run_program(config, stack=stack, **kwargs)


@pytest.fixture
def no_kvm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A host without /dev/kvm (what the program's probe sees)."""
    root = tmp_path / "host-nokvm"
    (root / "sys" / "module").mkdir(parents=True)
    (root / "dev").mkdir()
    monkeypatch.setattr(accel, "SYS_ROOT", root / "sys")
    monkeypatch.setattr(accel, "DEV_ROOT", root / "dev")
    return root


def fake_host(root: Path, modules: tuple[str, ...], device: bool = True) -> tuple[Path, Path]:
    """A fake /sys with these kernel modules and a fake /dev (with ``kvm`` when ``device``)."""
    (root / "sys" / "module").mkdir(parents=True, exist_ok=True)
    (root / "dev").mkdir(parents=True, exist_ok=True)
    for module in modules:
        (root / "sys" / "module" / module).mkdir()
    if device:
        (root / "dev" / "kvm").write_text("")
    return root / "sys", root / "dev"


# --- the stack under the mock engine -----------------------------------------------------------
@pytest.fixture(scope="module")
def plan() -> Plan:
    result = run_local(local_stack())
    assert result.error is None, result.error
    return result


def _vm_steps(plan: Plan) -> list[Registered]:
    return [r for r in plan.of_type(COMMAND) if r.name.endswith("-vm")]


def test_the_local_stack_registers_its_vms_under_one_component(plan: Plan) -> None:
    component = plan.of_type("kubeadm-cluster:index:LocalMachines")
    assert len(component) == 1, plan.names()
    urn = component[0].urn
    steps = {r.name: r for r in plan.of_type(COMMAND)}
    assert sorted(steps) == ["lab-cp-0-vm", "lab-general-0-vm", "lab-general-1-vm", "lab-image", "lab-network"], steps
    key = plan.named("lab-ssh-key")
    for resource in [*steps.values(), key]:
        assert resource.parent == urn, f"{resource.name} is not a child of the LocalMachines component"
    assert not plan.of_type("gcp:compute/instance:Instance"), "a local stack creates no cloud VM"


def test_every_node_step_waits_for_its_vm_and_each_vm_for_the_image_and_network(plan: Plan) -> None:
    image_step, network = plan.named("lab-image"), plan.named("lab-network")
    for step in _vm_steps(plan):
        waits = plan.ancestors_depend(step)
        assert image_step.urn in waits and network.urn in waits, f"{step.name} must wait for the image and the switch"
    for node in ("lab-cp-0", "lab-general-0", "lab-general-1"):
        vm_step = plan.named(f"{node}-vm")
        port = shlex.split(vm_step.input("create"))
        port = port[port.index("--ssh-port") + 1]
        # Every step that runs on the node (through its forwarded port), whatever its name.
        remote_steps = [r for r in plan.of_type(REMOTE) if str(int(r.input("connection.port", 0))) == port]
        assert len(remote_steps) >= 2, f"no bootstrap steps on {node}"
        for step in remote_steps:
            assert vm_step.urn in plan.ancestors_depend(step), f"{step.name} does not wait for {vm_step.name}"


def test_each_node_is_reached_on_its_own_loopback_port_and_the_api_through_the_first(plan: Plan) -> None:
    base = local_machines.ssh_port_base(run_config("lab"), "lab")
    for index, node in enumerate(("lab-cp-0", "lab-general-0", "lab-general-1")):
        # The node's own prep (its token, drains and removal run on the first control plane).
        prepare = plan.named(f"{node}-prepare")
        connection = prepare.input("connection")
        assert (connection["host"], int(connection["port"]), connection["user"]) == ("127.0.0.1", base + index, "kubeadm")
        argv = shlex.split(plan.named(f"{node}-vm").input("create"))
        assert f"10.240.0.{10 + index}/24" in argv, argv
        assert ("--forward" in argv) == (index == 0), f"only the control plane forwards the API server: {argv}"
    kubeconfig = plan.outputs["kubeconfig"]
    assert "server: https://127.0.0.1:6443" in kubeconfig, kubeconfig


def run_config(stack: str, **keys: Any) -> Any:
    from components.config import parse_cluster_config

    values = {key: json.dumps(value) if not isinstance(value, str) else value for key, value in local_stack(**keys).items()}
    return parse_cluster_config(values)


def test_the_stacks_key_is_a_secret_everywhere(plan: Plan) -> None:
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\nFAKE"
    assert "sshPrivateKey" in plan.secret_outputs
    for step in _vm_steps(plan):
        assert "environment" in step.secret_inputs, f"{step.name}: the key it logs in with must be a secret input"
        assert key in step.input(f"environment.{localvm_cli.KEY_ENV}")
        assert key not in step.input("create") and key not in step.input("delete"), "the private key is in a command line"
    for step in plan.of_type(REMOTE):
        assert "connection" in step.secret_inputs, f"{step.name}: its connection carries the key"


def test_destroy_stops_every_vm_and_removes_its_disks_and_keeps_the_shared_image(plan: Plan) -> None:
    for step in _vm_steps(plan):
        argv = shlex.split(step.input("delete"))
        assert argv[1:4] == ["-m", "components.machines.localvm", "vm-stop"] and "--remove" in argv, argv
    assert "network-stop" in plan.named("lab-network").input("delete")
    assert plan.named("lab-image").input("delete") is None, (
        "the base image is shared by every local stack of the machine: destroy must keep it"
    )


def _replacement_options(monkeypatch: pytest.MonkeyPatch) -> dict[str, bool]:
    """Record deleteBeforeReplace of each registration (the recording monitor keeps no such field)."""
    seen: dict[str, bool] = {}
    original = mock_engine.RecordingMonitor.RegisterResource

    def register(self: mock_engine.RecordingMonitor, request: Any) -> Any:
        seen[request.name] = bool(request.deleteBeforeReplace)
        return original(self, request)

    monkeypatch.setattr(mock_engine.RecordingMonitor, "RegisterResource", register)
    return seen


@pytest.mark.parametrize(
    "change",
    [
        {"workerPools": [{"name": "general", "count": 2, "machineType": "local-4-8192", "diskSizeGb": 30,
                          "storageDiskSizeGb": 20}]},
        {"workerPools": [{"name": "general", "count": 2, "machineType": "local-2-4096", "diskSizeGb": 40,
                          "storageDiskSizeGb": 20}]},
        {"workerPools": [{"name": "general", "count": 2, "machineType": "local-2-4096", "diskSizeGb": 30,
                          "storageDiskSizeGb": 30}]},
        {"local": {"image": "debian-12"}},
    ],
)
def test_a_shape_or_image_change_replaces_the_vm_stopped_first(change: dict[str, Any], plan: Plan,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    options = _replacement_options(monkeypatch)
    changed = run_local(local_stack(**change))
    assert changed.error is None, changed.error
    before, after = plan.named("lab-general-0-vm"), changed.named("lab-general-0-vm")
    assert before.input("triggers") != after.input("triggers"), f"{change}: the VM's triggers did not change"
    assert options["lab-general-0-vm"], "a replaced VM must be stopped before its successor takes its name and ports"


def test_an_unchanged_stack_keeps_its_vms(plan: Plan) -> None:
    again = run_local(local_stack())
    for step in _vm_steps(plan):
        assert again.named(step.name).input("triggers") == step.input("triggers"), f"{step.name} would be replaced"


def test_rook_gets_the_vms_ceph_disk_path(plan: Plan) -> None:
    text = json.dumps([r.inputs for r in plan.resources])
    assert vm.STORAGE_DEVICE in text, "the Rook add-on does not name the VMs' Ceph disk"
    assert "google-ceph-osd" not in text, "a local stack names the GCE disk path"
    for worker in ("lab-general-0", "lab-general-1"):
        argv = shlex.split(plan.named(f"{worker}-vm").input("create"))
        assert argv[argv.index("--storage-gb") + 1] == "20", argv


def test_the_vm_commands_parse_with_the_cli(plan: Plan) -> None:
    """What the program registers is what the CLI accepts (and means the node's shape)."""
    for step in _vm_steps(plan):
        argv = shlex.split(step.input("create"))
        args = localvm_cli.parser().parse_args(argv[3:])
        assert (args.name, args.vcpus, args.memory_mb, args.disk_gb) == (step.name[: -len("-vm")], 2, 4096, 30)
        assert args.authorized_key == FAKE_PUBLIC_KEY
        stop = localvm_cli.parser().parse_args(shlex.split(step.input("delete"))[3:])
        assert stop.dir == args.dir and stop.remove
    for name in ("lab-image", "lab-network"):
        localvm_cli.parser().parse_args(shlex.split(plan.named(name).input("create"))[3:])


def test_emulation_is_announced(no_kvm: Path) -> None:
    plan = run_local(local_stack())
    assert any("software emulation" in w and "does not exist" in w for w in plan.warnings), plan.warnings


def test_no_emulation_warning_where_kvm_is_real(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sys_root, dev_root = fake_host(tmp_path, ("kvm", "kvm_intel"))
    monkeypatch.setattr(accel, "SYS_ROOT", sys_root)
    monkeypatch.setattr(accel, "DEV_ROOT", dev_root)
    plan = run_local(local_stack(local={"accelerator": "kvm"}))
    assert plan.error is None, plan.error
    assert not [w for w in plan.warnings if "emulation" in w], plan.warnings


def test_the_committed_local_stack_passes() -> None:
    config = mock_engine.config_from_stack_file(mock_engine.stack_file("local"))
    plan = run_program(config, stack="local")
    assert plan.error is None, plan.error
    assert len(_vm_steps(plan)) == 3
    assert sum(1 for step in _vm_steps(plan) if "--storage-gb 20" in step.input("create")) == 2


# --- refusals, before any resource -------------------------------------------------------------
@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ({"controlPlane": {"machineType": "local-1-4096"}}, "controlPlane.machineType: local-1-4096 has 1 vCPU"),
        ({"workerPools": [{"name": "general", "machineType": "local-2-3072", "storageDiskSizeGb": 20}]},
         "workerPools[0].machineType: local-2-3072 has 3 GB of memory; a node needs at least 4 GB"),
        ({"controlPlane": {"machineType": "local-2-4096", "diskSizeGb": 20}},
         "controlPlane.diskSizeGb: boot disk of 20 GB; a node needs at least 30 GB"),
        ({"controlPlane": {"machineType": "e2-small"}}, "controlPlane.machineType: unknown machine type 'e2-small'"),
        ({"local": {"imagee": "debian-13"}}, "local.imagee: unknown key"),
        ({"local": {"accelerator": "hvf"}}, "local.accelerator"),
        ({"local": {"image": "ubuntu-24.04"}}, "local.image: ubuntu-24.04 is not built for local VMs yet"),
        ({"local": {"stateDir": "vms"}}, "local.stateDir: 'vms' is not an absolute path"),
        ({"local": {"sshPortBase": 22}}, "local.sshPortBase: 22 is out of range"),
        ({"controlPlane": {"count": 3, "machineType": "local-2-4096"}}, "controlPlane.count: 3 control planes"),
        ({"network": {"podCidr": "10.0.0.0/14"}}, "network.podCidr: 10.0.0.0/14 overlaps QEMU's user-mode network"),
        ({"sshPrivateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\nX\n-----END OPENSSH PRIVATE KEY-----\n"},
         "sshPrivateKey: is only used with provider 'existing'"),
    ],
)
def test_local_stack_refused_before_any_resource(keys: dict[str, Any], expected: str, no_kvm: Path) -> None:
    plan = run_local(local_stack(**keys))
    assert plan.error is not None and f"kubeadm-cluster:{expected}" in plan.error, plan.error
    assert plan.resources == [], [r.name for r in plan.resources]


def test_kvm_asked_for_on_a_pvm_host_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """/dev/kvm exists and the hardware module is loaded, but the host is PVM: refused, naming why."""
    sys_root, dev_root = fake_host(tmp_path, ("kvm", "kvm_intel", "kvm_pvm"))
    monkeypatch.setattr(accel, "SYS_ROOT", sys_root)
    monkeypatch.setattr(accel, "DEV_ROOT", dev_root)
    plan = run_local(local_stack(local={"accelerator": "kvm"}))
    assert plan.error is not None and "kubeadm-cluster:local.accelerator: kvm cannot boot a stock kernel here" in plan.error
    assert "PVM" in plan.error and plan.resources == [], plan.error


def test_a_local_block_on_a_gcp_stack_is_refused() -> None:
    from tests.conftest import stack_config

    plan = run_program(stack_config(local={"image": "debian-13"}))
    assert plan.error is not None and "kubeadm-cluster:local: is only used with provider 'local'" in plan.error, plan.error


def test_sizes_come_from_the_hardware_truth() -> None:
    """The local minimums are the spec's, from components/hardware.py (one place)."""
    assert hardware.LOCAL_DEFAULT_MACHINE_TYPE == f"local-{hardware.MIN_VCPUS}-{hardware.MIN_MEMORY_MB}"
    assert hardware.local_machine_type_problems(hardware.LOCAL_DEFAULT_MACHINE_TYPE) == []
    spec = hardware.local_machine_spec("e2-standard-2")
    assert spec is not None and (spec.vcpus, spec.memory_mb) == (2, 8192), "a GCE type gives a local VM its shape"
    assert hardware.local_machine_spec("e2-medium") is None, "a shared-core type is no shape for a node"


# --- the accelerator probe ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("modules", "device", "expected", "reason"),
    [
        ((), False, accel.TCG, "does not exist"),
        (("kvm", "kvm_intel", "kvm_pvm"), True, accel.TCG, "PVM"),
        (("kvm", "kvm_pvm"), True, accel.TCG, "PVM"),
        (("kvm",), True, accel.TCG, "neither kvm_intel nor kvm_amd"),
        (("kvm", "kvm_intel"), True, accel.KVM, "kvm_intel"),
        (("kvm", "kvm_amd"), True, accel.KVM, "kvm_amd"),
    ],
)
def test_the_static_probe_never_trusts_dev_kvm_alone(tmp_path: Path, modules: tuple[str, ...], device: bool,
                                                    expected: str, reason: str) -> None:
    sys_root, dev_root = fake_host(tmp_path, modules, device)
    probe = accel.static_probe(sys_root, dev_root)
    assert (probe.accelerator, reason in probe.reason) == (expected, True), probe


def test_auto_takes_kvm_only_when_a_stock_kernel_boots_under_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sys_root, dev_root = fake_host(tmp_path, ("kvm", "kvm_intel"))
    kernel = tmp_path / "vmlinuz"
    monkeypatch.setattr(accel, "boot_probe", lambda *_args, **_kw: False)
    probe = accel.choose("auto", kernel, sys_root=sys_root, dev_root=dev_root)
    assert probe.accelerator == accel.TCG and "printed nothing under -accel kvm" in probe.reason, probe
    monkeypatch.setattr(accel, "boot_probe", lambda *_args, **_kw: True)
    assert accel.choose("auto", kernel, sys_root=sys_root, dev_root=dev_root).accelerator == accel.KVM
    assert accel.choose("tcg", kernel, sys_root=sys_root, dev_root=dev_root).accelerator == accel.TCG
    pvm_sys, pvm_dev = fake_host(tmp_path / "pvm", ("kvm", "kvm_pvm"))
    with pytest.raises(ValueError, match="local.accelerator is kvm but .*PVM"):
        accel.choose("kvm", kernel, sys_root=pvm_sys, dev_root=pvm_dev)


# --- the VM code both users share ---------------------------------------------------------------
def test_the_rehearsal_boots_with_the_same_code() -> None:
    from tools.rehearsal import image as rehearsal_image
    from tools.rehearsal import vms as rehearsal_vms

    assert rehearsal_vms.VM is vm.VM and rehearsal_image.BaseImage is image.BaseImage
    assert rehearsal_image.SEED_SCRIPT is image.SEED_SCRIPT and rehearsal_vms.VMError is vm.VMError


def test_keyed_and_cloud_images_are_different_recipes() -> None:
    keyed = image.recipe_key("trixie", "ssh-ed25519 AAAA one")
    assert keyed != image.recipe_key("trixie", "ssh-ed25519 AAAA two"), "a new key must name a new keyed image"
    assert image.recipe_key("trixie", None) not in (keyed,)
    assert image.image_directory(Path("/c"), "trixie", None).name.startswith("trixie-cloud-")


def _machine(tmp_path: Path, **fields: Any) -> vm.VM:
    base = image.BaseImage("trixie", tmp_path, tmp_path / "disk.raw", tmp_path / "vmlinuz", tmp_path / "initrd", 0.0)
    values: dict[str, Any] = {"name": "n0", "index": 2, "private_ip": "10.240.0.12", "ssh_port": 30002,
                              "directory": tmp_path / "n0", "memory_mb": 4096, "vcpus": 2, "image": base}
    values.update(fields)
    return vm.VM(**values)


def test_a_local_vm_daemonizes_with_its_key_disk_and_forwards(tmp_path: Path) -> None:
    machine = _machine(tmp_path, storage_gb=20, authorized_key=FAKE_PUBLIC_KEY + "\n", forwards={6443: 6443})
    command = vm.qemu_command(machine, vm.vde_netdev(tmp_path), daemonize=True)
    text = " ".join(command)
    assert "-daemonize" in command and command[command.index("-pidfile") + 1] == str(machine.pidfile)
    assert f"serial={vm.STORAGE_SERIAL}" in text and str(machine.storage) in text
    assert "hostfwd=tcp:127.0.0.1:30002-:22,hostfwd=tcp:127.0.0.1:6443-:6443" in text
    import base64

    append = command[command.index("-append") + 1]
    encoded = next(part for part in append.split() if part.startswith("kc.authkey="))[len("kc.authkey="):]
    assert base64.b64decode(encoded).decode() == FAKE_PUBLIC_KEY, "the key must survive the kernel command line"
    assert "kc.private=10.240.0.12/24" in append
    rehearsal = vm.qemu_command(_machine(tmp_path), vm.vde_netdev(tmp_path))
    assert "-daemonize" not in rehearsal and "kc.authkey" not in " ".join(rehearsal) and "serial=" not in " ".join(rehearsal)


# --- the CLI ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "bad",
    [
        ["--forward", "x:22"],
        ["--forward", "70000:22"],
        ["--private", "10.240.0.300/24"],
        ["--vcpus", "0"],
        ["--storage-gb", "-1"],
        ["--accelerator", "hvf"],
        ["--suite", "sid"],
    ],
)
def test_the_cli_refuses_bad_arguments(bad: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    good = {"--dir": "/tmp/x", "--name": "n", "--index": "0", "--vcpus": "2", "--memory-mb": "4096",
            "--ssh-port": "30000", "--private": "10.240.0.10/24", "--switch": "/tmp/s", "--suite": "trixie",
            "--images": "/tmp/i", "--authorized-key": FAKE_PUBLIC_KEY}
    argv = ["vm-start", *[part for key, value in good.items() if key != bad[0] for part in (key, value)], *bad]
    with pytest.raises(SystemExit) as exit_info:
        localvm_cli.parser().parse_args(argv)
    assert exit_info.value.code == 2
    assert bad[0] in capsys.readouterr().err


def test_stopping_what_is_not_there_is_fine(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Delete commands are idempotent: a destroy after a half-failed up, or run twice, succeeds."""
    assert localvm_cli.main(["vm-stop", "--dir", str(tmp_path / "vms" / "n0"), "--name", "n0", "--remove"]) == 0
    assert json.loads(capsys.readouterr().out) == {"name": "n0", "removed": True, "stopped": False}
    assert localvm_cli.main(["network-stop", "--dir", str(tmp_path / "stack")]) == 0
    assert not (tmp_path / "stack").exists()


def _fake_image(root: Path, suite: str = "trixie") -> None:
    directory = image.image_directory(root, suite, None)
    directory.mkdir(parents=True)
    (directory / "manifest.json").write_text(json.dumps({"kernel": "vmlinuz-x", "initrd": "initrd.img-x"}))


def _start_args(tmp_path: Path, port: int) -> list[str]:
    return ["vm-start", "--dir", str(tmp_path / "vms" / "n0"), "--name", "n0", "--index", "0", "--vcpus", "2",
            "--memory-mb", "4096", "--ssh-port", str(port), "--private", "10.240.0.10/24",
            "--switch", str(tmp_path), "--suite", "trixie", "--images", str(tmp_path / "images"),
            "--accelerator", "tcg", "--authorized-key", FAKE_PUBLIC_KEY]


def test_vm_start_without_the_image_says_which_step_builds_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert localvm_cli.main(_start_args(tmp_path, 30000)) == 1
    assert "the stack's image step builds it first" in capsys.readouterr().err


def test_vm_start_on_a_taken_port_names_the_setting(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _fake_image(tmp_path / "images")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert localvm_cli.main(_start_args(tmp_path, port)) == 1
    err = capsys.readouterr().err
    assert f"port(s) {port}" in err and "local.sshPortBase" in err, err


def test_ssh_port_bases_are_stable_and_in_range() -> None:
    config = run_config("a")
    bases = {local_machines.ssh_port_base(config, f"stack{i}") for i in range(50)}
    assert all(20000 <= base <= 59980 and base % 20 == 0 for base in bases)
    assert local_machines.ssh_port_base(config, "dev") == local_machines.ssh_port_base(config, "dev")
    assert local_machines.ssh_port_base(run_config("a", local={"sshPortBase": 40000}), "dev") == 40000


# --- for real: the program's own commands on this machine -------------------------------------
REAL = os.environ.get("KC_LOCAL_VMS") == "1"


def _run(command: str, env: dict[str, str] | None = None, timeout: float = 1800) -> tuple[float, str]:
    started = time.monotonic()
    done = subprocess.run(command, shell=True, cwd=local_machines.ROOT, env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{command}\nexit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    return round(time.monotonic() - started, 1), done.stdout


@pytest.mark.skipif(not REAL, reason="boots 3 QEMU VMs (a few minutes, and the image build once): KC_LOCAL_VMS=1 "
                                     "flock /tmp/kc-vm.lock venv/bin/python -m pytest tests/test_local_provider.py -k real")
def test_real_the_registered_create_and_delete_commands_on_this_machine(tmp_path: Path) -> None:
    missing = vm.missing_tools(switch=True)
    assert not missing, f"needs {missing}"
    state = tmp_path / "state"
    plan = run_local(local_stack(local={"stateDir": str(state)}), stack="kc15real")
    assert plan.error is None, plan.error
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    public = key.with_suffix(".pub").read_text().strip()
    env = {localvm_cli.KEY_ENV: key.read_text()}
    steps = {r.name: r for r in plan.of_type(COMMAND)}
    vms = [r for r in _vm_steps(plan)]
    timings: dict[str, float] = {}
    timings["image"], _ = _run(steps["kc15real-image"].input("create"))
    timings["network"], _ = _run(steps["kc15real-network"].input("create"))
    started_info: list[dict[str, Any]] = []
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(len(vms)) as pool:
            results = list(pool.map(
                lambda step: _run(step.input("create").replace(shlex.quote(FAKE_PUBLIC_KEY), shlex.quote(public)), env),
                vms,
            ))
        timings["3 VMs, in parallel, to SSH"] = round(time.monotonic() - started, 1)
        started_info = [json.loads(out.strip().splitlines()[-1]) for _, out in results]
        for info in started_info:
            assert vm.pid_alive(int(info["pid"])), f"{info['name']}: QEMU did not outlive its step"
        for index, step in enumerate(vms):
            node = step.name[: -len("-vm")]
            port = next(i["sshPort"] for i in started_info if i["name"] == node)
            ssh = vm.ssh_command(int(port), key, connect_timeout=10)
            others = " ".join(f"10.240.0.{10 + i}" for i in range(3))
            script = (f"hostname; for ip in {others}; do sudo -n ping -c1 -W5 $ip >/dev/null && echo reach $ip; done; "
                      f"df -BG --output=size / | tail -1; ls -l /dev/disk/by-id/ | grep -c virtio-ceph-osd || true; "
                      f"sudo -n true && echo sudo-ok")
            out = subprocess.run([*ssh, script], capture_output=True, text=True, timeout=120)
            assert out.returncode == 0, out.stderr
            lines = out.stdout.split()
            assert lines[0] == node, out.stdout
            assert out.stdout.count("reach ") == 3, f"{node}: the private link does not reach every VM:\n{out.stdout}"
            assert "sudo-ok" in out.stdout
            size = int(next(part for part in lines if part.endswith("G")).rstrip("G"))
            assert size >= 28, f"{node}: root filesystem {size} GB, not grown to the 30 GB disk"
            storage = "20" in step.input("create").split("--storage-gb ")[1][:3]
            assert (" 1\n" in out.stdout or "\n1\n" in out.stdout) == storage, f"{node}: Ceph disk presence:\n{out.stdout}"
        # The API server's port is forwarded from this machine's loopback to the control plane.
        assert vm.port_taken(6443), "127.0.0.1:6443 is not forwarded to the control plane"
        # A second create finds the VM running with the same settings: nothing changes.
        again, _ = _run(vms[0].input("create").replace(shlex.quote(FAKE_PUBLIC_KEY), shlex.quote(public)), env)
        timings["create again (running VM)"] = again
        # After a reboot of this machine: the VM is stopped, its disks kept; resume starts it again.
        first = vms[0].name[: -len("-vm")]
        stop = shlex.split(vms[0].input("delete"))
        _run(shlex.join([part for part in stop if part != "--remove"]))
        resumed, out = _run(shlex.join([*stop[:3], "resume", "--dir", str(state)]))
        timings["resume a stopped VM to SSH"] = resumed
        assert json.loads(out.strip().splitlines()[-1])["resumed"] == sorted(s.name[: -len("-vm")] for s in vms)
        port = next(i["sshPort"] for i in started_info if i["name"] == first)
        back = subprocess.run([*vm.ssh_command(int(port), key, connect_timeout=10), "hostname"], capture_output=True,
                              text=True, timeout=120)
        assert back.stdout.strip() == first, back.stderr
        started_info = [{**info, "pid": vm.read_pid(state / "vms" / info["name"] / f"{info['name']}.pid")}
                        for info in started_info]
    finally:
        started = time.monotonic()
        with ThreadPoolExecutor(len(vms)) as pool:
            list(pool.map(lambda step: _run(step.input("delete")), vms))
        timings["delete 3 VMs"] = round(time.monotonic() - started, 1)
        timings["network delete"], _ = _run(steps["kc15real-network"].input("delete"))
    for info in started_info:
        assert info["pid"] is None or not vm.pid_alive(int(info["pid"])), f"{info['name']} still runs after its delete"
    assert not state.exists(), f"destroy left {sorted(str(p) for p in state.rglob('*'))}"
    print("\nlocal provider, real commands:", json.dumps(timings))


# --- the Ubuntu 24.04 cloud image: download, checksum, NoCloud seed -----------------------------
class _Files:
    """A local HTTP server serving a release directory (the registries are the only internet here)."""

    def __init__(self, files: dict[str, bytes]) -> None:
        import http.server
        import threading

        served = files

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
                body = served.get(self.path.rsplit("/", 1)[-1])
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the stdlib's name)
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/releases/24.04/release/"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _sums(body: bytes, name: str = cloudimage.UBUNTU_2404_FILE, binary: bool = True) -> bytes:
    import hashlib

    other = "0" * 64 + " *ubuntu-24.04-server-cloudimg-arm64.img\n"
    return (other + f"{hashlib.sha256(body).hexdigest()} {'*' if binary else ' '}{name}\n").encode()


def test_the_cloud_image_is_downloaded_checked_and_then_reused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    body = b"QFI\xfb fake qcow2 " * 1000
    server = _Files({cloudimage.UBUNTU_2404_FILE: body, cloudimage.SUMS_FILE: _sums(body)})
    try:
        argv = ["image", "--suite", "ubuntu-24.04", "--images", str(tmp_path), "--base-url", server.url]
        assert localvm_cli.main(argv) == 0, capsys.readouterr().err
    finally:
        server.close()
    printed = json.loads(capsys.readouterr().out)
    assert Path(printed["disk"]).read_bytes() == body and printed["format"] == "qcow2"
    # Cached: no server now, and the same image.
    assert localvm_cli.main(argv) == 0 and json.loads(capsys.readouterr().out)["disk"] == printed["disk"]


@pytest.mark.parametrize("case", ["mismatch", "unlisted", "text-mode-line"])
def test_a_cloud_image_whose_checksum_differs_is_refused(case: str, tmp_path: Path) -> None:
    body = b"the real image"
    sums = {"mismatch": _sums(b"another image"), "unlisted": _sums(body, name="other.img"),
            "text-mode-line": _sums(body, binary=False)}[case]
    server = _Files({cloudimage.UBUNTU_2404_FILE: body, cloudimage.SUMS_FILE: sums})
    try:
        if case == "text-mode-line":  # sha256sum's text mode ('  ') is read as well as binary mode (' *')
            assert cloudimage.fetch(cloudimage.UBUNTU_2404, tmp_path, server.url).disk.read_bytes() == body
            return
        with pytest.raises(image.ImageError, match="SHA-256 .* refused|lists no ubuntu-24.04-server-cloudimg-amd64.img"):
            cloudimage.fetch(cloudimage.UBUNTU_2404, tmp_path, server.url)
    finally:
        server.close()
    leftovers = [p.name for p in tmp_path.rglob("*") if p.is_file()]
    assert leftovers == [], f"a refused download left {leftovers}"
    assert cloudimage.cached(cloudimage.UBUNTU_2404, tmp_path) is None


def test_the_nocloud_seed_makes_the_cloud_user_and_the_private_address(tmp_path: Path) -> None:
    import yaml

    seed = cloudimage.write_seed(tmp_path / "seed", "lab-cp-0", 0, "10.240.0.10/24", FAKE_PUBLIC_KEY + "\n")
    user = yaml.safe_load((seed / "user-data").read_text())
    assert (seed / "user-data").read_text().startswith("#cloud-config\n"), "cloud-init needs the #cloud-config line"
    assert user["users"][0]["name"] == "kubeadm" and user["users"][0]["ssh_authorized_keys"] == [FAKE_PUBLIC_KEY]
    assert user["users"][0]["sudo"] == "ALL=(ALL) NOPASSWD:ALL" and user["ssh_pwauth"] is False
    network = yaml.safe_load((seed / "network-config").read_text())
    assert network["version"] == 2
    assert network["ethernets"]["private"] == {"match": {"macaddress": "52:54:00:77:01:00"}, "dhcp4": False,
                                               "addresses": ["10.240.0.10/24"]}
    assert yaml.safe_load((seed / "meta-data").read_text())["local-hostname"] == "lab-cp-0"
    base = image.BaseImage("ubuntu-24.04", tmp_path, tmp_path / "u.img", Path(), Path(), 0.0, disk_format="qcow2")
    machine = _machine(tmp_path, image=base, seed=seed)
    command = vm.qemu_command(machine, vm.vde_netdev(tmp_path), daemonize=True)
    assert "-kernel" not in command and "-append" not in command, "a cloud image boots through its own boot loader"
    assert f"driver=vvfat,dir={seed},label=cidata,read-only=on,if=none,id=seed" in command


def test_a_cloud_image_overlay_is_backed_by_qcow2(tmp_path: Path) -> None:
    if shutil.which("qemu-img") is None:
        pytest.skip("qemu-img is not installed")
    base_disk = tmp_path / "u.img"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(base_disk), "3G"], check=True)
    base = image.BaseImage("ubuntu-24.04", tmp_path, base_disk, Path(), Path(), 0.0, disk_format="qcow2")
    machine = _machine(tmp_path, image=base, disk_gb=30, storage_gb=20)
    vm.create_disks(machine)
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(machine.overlay)],
                                     capture_output=True, text=True, check=True).stdout)
    assert info["backing-filename-format"] == "qcow2" and info["virtual-size"] == 30 * 1024**3, info
    storage = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(machine.storage)],
                                        capture_output=True, text=True, check=True).stdout)
    assert storage["virtual-size"] == 20 * 1024**3 and "backing-filename" not in storage, storage


def test_ubuntu_is_refused_until_its_boot_is_proven_and_wired_when_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The download and the seed are tested here; a boot needs cloud-images.ubuntu.com, which this
    machine cannot reach: the stack refuses the image (saying so) until LOCAL_IMAGES_BUILT lists it."""
    from components import config as config_module

    refused = run_local(local_stack(local={"image": "ubuntu-24.04"}))
    assert refused.error is not None and "local.image: ubuntu-24.04 is not built" in refused.error
    monkeypatch.setattr(config_module, "LOCAL_IMAGES_BUILT", config_module.LOCAL_IMAGES)
    plan = run_local(local_stack(local={"image": "ubuntu-24.04"}))
    assert plan.error is None, plan.error
    assert "--suite ubuntu-24.04" in plan.named("lab-image").input("create")
    assert "--suite ubuntu-24.04" in plan.named("lab-cp-0-vm").input("create")


def test_local_vms_get_an_x86_64_v2_cpu(tmp_path: Path) -> None:
    """QEMU's default CPU (qemu64) lacks SSE4.2 and POPCNT: images built on CentOS Stream 9 (Ceph's,
    for Rook) exit at once on it. TCG's ``max`` model emulates them; KVM passes the host's through."""
    args = localvm_cli.parser().parse_args(_start_args(tmp_path, 30000))
    base = image.BaseImage("trixie", tmp_path, tmp_path / "d", tmp_path / "k", tmp_path / "i", 0.0)
    command = vm.qemu_command(localvm_cli._vm(args, base, accel.TCG), vm.vde_netdev(tmp_path), daemonize=True)
    assert command[command.index("-cpu") + 1] == "max", command
    assert vm.cpu_model(accel.KVM) == "host"


def test_emulation_asked_for_is_not_warned_about(no_kvm: Path) -> None:
    plan = run_local(local_stack(local={"accelerator": "tcg"}))
    assert plan.error is None and not [w for w in plan.warnings if "emulation" in w], plan.warnings
    assert "--accelerator tcg" in plan.named("lab-cp-0-vm").input("create")


def test_a_vm_record_gives_back_its_start_command(tmp_path: Path) -> None:
    """``resume`` rebuilds each VM's start from its vm.json: the record must round-trip (forwards
    included), or a second create would also see "other settings" in a VM started with the same."""
    args = localvm_cli.parser().parse_args([*_start_args(tmp_path, 30000), "--forward", "6443:6443",
                                            "--storage-gb", "20"])
    spec = localvm_cli._spec(args)
    again = localvm_cli.parser().parse_args(localvm_cli._argv(spec))
    assert localvm_cli._spec(again) == spec == json.loads(json.dumps(spec))
    assert again.forward == [(6443, 6443)] and again.storage_gb == 20


# --- defects the first real run found (each test fails on the code before its fix) -------------
def test_sockets_of_a_deep_state_dir_still_fit(tmp_path: Path) -> None:
    """QEMU exits when its monitor's unix socket path is over 107 bytes ("UNIX socket path ... is
    too long"): two of three VMs of the first real run under pytest's tmp_path never started."""
    deep = tmp_path / ("d" * 60) / "state" / "vms" / "kc15real-general-0"
    machine = _machine(tmp_path, name="kc15real-general-0", directory=deep)
    assert len(str(machine.monitor)) <= vm.SOCKET_PATH_MAX, machine.monitor
    assert len(str(vm.switch_socket(deep.parent.parent))) + 24 <= vm.SOCKET_PATH_MAX
    assert machine.monitor == _machine(tmp_path, name="kc15real-general-0", directory=deep).monitor, "not stable"
    short = _machine(Path("/tmp/kc"), name="n0", directory=Path("/tmp/kc/run"))
    assert short.monitor == Path("/tmp/kc/run/n0.monitor"), "a short path must stay where the rehearsal expects it"


def test_a_disk_smaller_than_the_base_image_is_not_made(tmp_path: Path) -> None:
    """diskSizeGb 30 over the 32 GB base image made a 30 GB overlay: its ext4 ("bad geometry: block
    count exceeds size of device") did not mount and the VM stopped in its initramfs."""
    if shutil.which("qemu-img") is None:
        pytest.skip("qemu-img is not installed")
    base_disk = tmp_path / "disk.raw"
    with base_disk.open("wb") as disk:
        disk.truncate(image.DISK_GB * 1024**3)  # sparse, like the image's
    base = image.BaseImage("trixie", tmp_path, base_disk, tmp_path / "k", tmp_path / "i", 0.0)
    for disk_gb, expected in ((30, image.DISK_GB), (40, 40)):
        machine = _machine(tmp_path, name=f"n{disk_gb}", image=base, disk_gb=disk_gb)
        vm.create_disks(machine)
        info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(machine.overlay)],
                                         capture_output=True, text=True, check=True).stdout)
        assert info["virtual-size"] == expected * 1024**3, f"diskSizeGb {disk_gb}: {info['virtual-size']}"


def test_a_guest_stuck_in_its_initramfs_fails_at_once(tmp_path: Path) -> None:
    """The first real run's control plane sat in its initramfs shell while vm-start waited its whole
    SSH timeout (15 minutes): the console says the boot failed, so the wait stops there."""
    machine = _machine(tmp_path)
    machine.directory.mkdir(parents=True)
    machine.console.write_text("[ 7.5] EXT4-fs (vda): bad geometry\nFailed to mount /dev/vda as root file system.\n"
                               "(initramfs) ")
    machine.process = subprocess.Popen(["sleep", "30"])
    machine.started = time.monotonic()
    try:
        begun = time.monotonic()
        with pytest.raises(vm.VMError, match="failed to boot"):
            vm.wait_ssh(machine, lambda: ["false"], timeout=20, kernel_timeout=60)
        assert time.monotonic() - begun < 5
    finally:
        machine.process.kill()
        machine.process.wait()


def test_the_probe_command_says_what_vms_would_get(no_kvm: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert localvm_cli.main(["probe"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["accelerator"] == accel.TCG and "does not exist" in printed["reason"], printed
    assert localvm_cli.main(["probe", "--accelerator", "kvm"]) == 1
    assert "local.accelerator is kvm but" in capsys.readouterr().err


def test_a_replaced_vm_is_prepared_and_joined_again_and_its_old_node_removed(plan: Plan) -> None:
    """A replaced VM is a new, empty disk behind the same node name: like a recreated GCE VM (its
    instance id), its identity changes, so its prep, token and join run again and the -identity
    step removes the old Node object; the other nodes' steps keep their triggers."""
    bigger = run_local(local_stack(workerPools=[{"name": "general", "count": 2, "machineType": "local-2-4096",
                                                 "diskSizeGb": 40, "storageDiskSizeGb": 20}]))
    assert bigger.error is None, bigger.error
    for worker in ("lab-general-0", "lab-general-1"):
        for step in ("identity", "prepare", "join-token", "join"):
            name = f"{worker}-{step}"
            assert plan.named(name).input("triggers") != bigger.named(name).input("triggers"), (
                f"{name} keeps its triggers: a replaced VM would never be prepared or joined"
            )
    for name in ("lab-cp-0-prepare", "lab-cp-0-init"):
        assert plan.named(name).input("triggers") == bigger.named(name).input("triggers"), f"{name} would re-run"


# --- the local stack for real, through the rehearsal's mirror (issue 15's last item) -----------
def test_the_local_stacks_caches_and_the_rehearsals_do_not_overlap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The local stack's base images and VM directories never land in the VM rehearsal's cache
    (shared, reused by CI), nor its images in theirs: other roots, and other image names for one
    suite (the rehearsal's keyed image, the local stacks' cloud image)."""
    from tools.rehearsal import cache_dir as rehearsal_cache
    from tools.rehearsal import localstack

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KC_LOCAL_CACHE", raising=False)
    monkeypatch.delenv("KC_REHEARSAL_CACHE", raising=False)
    rehearsal = rehearsal_cache()
    assert rehearsal == tmp_path / ".cache" / "kubeadm-cluster" / "rehearsal"
    local_paths = [local_machines.images_dir(), local_machines.state_dir(run_config("local"), "local"),
                   local_machines.state_dir(run_config(localstack.STACK), localstack.STACK)]
    for path in local_paths:
        assert not path.is_relative_to(rehearsal) and not rehearsal.is_relative_to(path), (path, rehearsal)
    keyed = image.image_directory(rehearsal / "images", "trixie", "ssh-ed25519 AAAAC3NzaTEST")
    cloud = image.image_directory(local_machines.images_dir(), "trixie", None)
    assert keyed.name != cloud.name and keyed.parent != cloud.parent
    # The live run's VMs live where the test says, and its ports are not a user's `local` stack's.
    config = localstack.stack_config({}, tmp_path / "state")
    assert config["kubeadm-cluster:local"] == {"image": "debian-13", "accelerator": "auto",
                                               "stateDir": str(tmp_path / "state")}
    assert local_machines.ssh_port_base(run_config("x"), localstack.STACK) != local_machines.ssh_port_base(
        run_config("x"), "local")


def test_the_stack_of_the_live_run_is_the_committed_one_with_the_mirrors_only() -> None:
    """What the live run registers is Pulumi.local.yaml's stack: the same keys and values, plus
    the rehearsal mirror's ``mirrors`` and its own ``local.stateDir`` (accepted by the config
    contract: the program registers the stack without an error)."""
    from tools.rehearsal import localstack, mirror

    committed = mock_engine.config_from_stack_file(mock_engine.stack_file("local"))
    mirrors = {"kubernetesPackages": "http://10.0.2.2:8/kubernetes/core:/stable:/{minor}/deb/",
               "containerdReleases": "http://10.0.2.2:8/containerd", "runcReleases": "http://10.0.2.2:8/runc",
               "registries": {mirror.REGISTRY: ["http://10.0.2.2:8"]}}
    config = localstack.stack_config(mirrors, Path("/tmp/kc-live-state"))
    changed = {key for key in config if config[key] != committed.get(key)}
    assert changed == {"kubeadm-cluster:mirrors", "kubeadm-cluster:local"}, changed
    assert {k: v for k, v in config["kubeadm-cluster:local"].items() if k != "stateDir"} == \
        committed["kubeadm-cluster:local"]
    plan = run_program(config, stack=localstack.STACK)
    assert plan.error is None, plan.error
    prepare = str(plan.named(f"{localstack.STACK}-cp-0-prepare").input("stdin"))
    assert "http://10.0.2.2:8/containerd" in prepare and "http://10.0.2.2:8/kubernetes/core:/stable:/" in prepare


LIVE = ("HOME=/root KC_LOCAL_VMS=1 flock /tmp/kc-vm.lock venv/bin/python -m pytest tests/test_local_provider.py -q "
        "-k live_local_stack -p no:cacheprovider")


def _cache_files(root: Path) -> dict[str, tuple[int, float]]:
    """Every file of the rehearsal's cache with its size and mtime (gnupg/: the mirror's signing
    home, which any mirror build writes; runs/ and timings.json: the rehearsal's own runs)."""
    skip = ("gnupg/", "runs/", "timings.json")
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime) for p in root.rglob("*")
            if p.is_file() and not str(p.relative_to(root)).startswith(skip)}


def _qemu_of(state: Path) -> list[int]:
    """The pids of QEMU (and vde_switch) processes whose command line names ``state``."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if proc.name.isdigit() and str(state) in cmdline and ("qemu" in cmdline or "vde_switch" in cmdline):
            pids.append(int(proc.name))
    return pids


@pytest.mark.skipif(not REAL, reason=f"boots the local stack's 3 VMs with its own steps and runs its node steps through "
                                     f"the rehearsal mirror, then destroys it (about 10 min, root): {LIVE}")
def test_live_local_stack_up_through_the_mirror_joins_both_workers_and_destroy_leaves_nothing(tmp_path: Path) -> None:
    """``provider: local`` as far as the rehearsal goes: the committed local stack with the
    rehearsal mirror's ``mirrors`` under the live engine. Its command.local steps build (or reuse)
    the image, start the switch and boot the VMs; its remote steps prepare the nodes, run kubeadm
    init (the stand-in), mint the tokens and join both workers; the kubeconfig output works from
    this machine (real kubectl through the forwarded 127.0.0.1:6443); a second ``up`` runs nothing;
    ``destroy`` leaves no QEMU process, no disk, no switch. The rehearsal's cache is only read."""
    from tools import debian_packages
    from tools.rehearsal import cache_dir as rehearsal_cache
    from tools.rehearsal import localstack
    from tools.rehearsal.session import missing_requirements

    missing = missing_requirements()
    assert not missing, f"needs {missing}"
    shared = rehearsal_cache()
    before = _cache_files(shared)
    state = tmp_path / "state"
    stack_name = localstack.STACK
    nodes = ("cp-0", "general-0", "general-1")
    pids: dict[str, int | None] = {}
    timings: dict[str, float] = {}
    with localstack.LocalStack(state) as stack:
        try:
            created = stack.up("up: image, switch, VMs, then the node steps")
            print(created.explain())
            assert created.error is None, created.explain()
            for step in created.steps:
                timings[f"  {step.name.removeprefix(stack_name + '-')}"] = step.seconds
            assert {s.name for s in created.steps if s.target == "localhost"} == {
                f"{stack_name}-image", f"{stack_name}-network", *(f"{stack_name}-{n}-vm" for n in nodes)}
            pids = {n: vm.read_pid(state / "vms" / f"{stack_name}-{n}" / f"{stack_name}-{n}.pid") for n in nodes}
            assert all(pid is not None and vm.pid_alive(pid) for pid in pids.values()), pids

            # kubeadm init ran (the stand-in) on the control plane, kubeadm join on each worker.
            for node in nodes:
                calls = stack.sh(node, "cat /var/log/kc-standin/kubeadm.jsonl; echo; hostname")
                assert calls.ok, calls.explain()
                *lines, hostname = calls.stdout.strip().splitlines()
                events = [json.loads(line).get("event") for line in lines if line.strip()]
                assert hostname == f"{stack_name}-{node}", hostname
                assert ("init" in events) == (node == "cp-0") and ("join" in events) == (node != "cp-0"), (node, events)
                kubelet = stack.sh(node, "test -s /etc/kubernetes/kubelet.conf && grep -h server: /etc/kubernetes/kubelet.conf")
                # Every kubelet talks to the control plane on the private link (its first address).
                assert kubelet.ok and "server: https://10.240.0.10:6443" in kubelet.stdout, kubelet.explain()

            # The admin kubeconfig output parses and reaches the cluster from this machine.
            assert created.plan is not None
            admin = created.plan.outputs["kubeconfig"]
            assert "kubeconfig" in created.plan.secret_outputs
            document = yaml_load(admin)
            cluster = document["clusters"][0]["cluster"]
            assert cluster["server"] == "https://127.0.0.1:6443", cluster["server"]
            ca = stack.sh("cp-0", "cat /etc/kubernetes/pki/ca.crt")
            assert ca.ok and base64_decode(cluster["certificate-authority-data"]) == ca.stdout, "not the cluster's CA"
            kubeconfig = tmp_path / "kubeconfig.yaml"
            kubeconfig.write_text(admin)
            kubeconfig.chmod(0o600)
            root = debian_packages.cached_package("kubectl")
            assert root is not None, "the mirror build fetches Debian's kubectl"
            started = time.monotonic()
            listed = subprocess.run([str(root / "usr/bin/kubectl"), "--kubeconfig", str(kubeconfig), "--cache-dir",
                                     str(tmp_path / "kube-cache"), "get", "nodes", "-o", "name"], capture_output=True, text=True, timeout=120)
            timings["kubectl get nodes from this machine"] = round(time.monotonic() - started, 1)
            assert listed.returncode == 0, listed.stderr
            assert sorted(listed.stdout.split()) == [f"node/{stack_name}-{n}" for n in nodes], listed.stdout

            again = stack.up("second up (nothing may change)")
            assert again.error is None and again.steps == [], f"a second up ran steps:\n{again.explain()}"
        finally:
            destroyed = stack.destroy("destroy")
            print(destroyed.explain())
    timings.update(stack.timings)
    print("\nlocal stack through the mirror:", json.dumps(timings, indent=1))
    assert destroyed.error is None and destroyed.state == {}, destroyed.explain()
    assert {s.name for s in destroyed.steps} >= {f"{stack_name}-{n}-vm" for n in nodes} | {f"{stack_name}-network"}
    alive = [pid for pid in pids.values() if pid is not None and vm.pid_alive(pid)] + _qemu_of(state)
    assert not alive, f"destroy left QEMU or the switch running: {alive}"
    assert not state.exists(), f"destroy left {sorted(str(p) for p in state.rglob('*'))}"
    assert not vm.port_taken(local_machines.API_SERVER_PORT), "127.0.0.1:6443 is still forwarded"
    after = _cache_files(shared)
    changed = sorted(name for name, seen in before.items() if after.get(name) != seen)
    added = sorted(name for name in after if name not in before and not name.startswith("mirror/"))
    assert not changed, f"the live local stack changed or removed files of the rehearsal's cache: {changed}"
    assert not added, f"the live local stack left files in the rehearsal's cache: {added}"


def yaml_load(text: str) -> Any:
    import yaml

    return yaml.safe_load(text)


def base64_decode(text: str) -> str:
    import base64

    return base64.b64decode(text).decode()
