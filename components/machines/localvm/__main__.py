"""``python -m components.machines.localvm``: the commands ``provider: local``'s steps run.

    ... image --suite trixie --images DIR             # build (or reuse) the cloud base image
    ... network-start --dir DIR                       # the private link's switch (a daemon)
    ... network-stop --dir DIR                        # stop it; remove DIR (and its stack dir if empty)
    ... vm-start --dir DIR --name N --index I ...     # start one VM (a daemon), wait for SSH
    ... vm-stop --dir DIR --name N [--remove]         # stop it; --remove deletes its disks
    ... resume --dir STATE                            # after a reboot: the stack's switch and VMs again
    ... probe [--accelerator auto]                    # which accelerator VMs would get, and why

Each prints one JSON line on success and exits 0; on failure a message on stderr, exit 1 (2 for
bad arguments). ``vm-start`` reads the SSH private key to log in with from ``KC_SSH_PRIVATE_KEY``
(the stack passes its generated key, a secret, that way); without it, it waits for sshd's banner.
Every command is idempotent: run twice, the second finds the work done.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import shutil
import socket
import sys
import time
from pathlib import Path

from components.machines.localvm import CLOUD_IMAGES, KEY_ENV, accel, cloudimage, image, vm

#: What ``--suite`` takes: a Debian suite (debootstrap) or a cloud image's name (downloaded).
SUITE_CHOICES = (*image.SUITES, *CLOUD_IMAGES)


def _forward(text: str) -> tuple[int, int]:
    host, _, guest = text.partition(":")
    try:
        pair = int(host), int(guest or host)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST_PORT:GUEST_PORT") from None
    if not all(1 <= port <= 65535 for port in pair):
        raise argparse.ArgumentTypeError(f"{text!r}: ports are 1-65535")
    return pair


def _private(text: str) -> ipaddress.IPv4Interface:
    try:
        return ipaddress.IPv4Interface(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an IPv4 ADDRESS/PREFIX") from None


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be at least 1")
    return value


def _size(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} must not be negative")
    return value


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m components.machines.localvm", description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = top.add_subparsers(dest="command", required=True)
    build = sub.add_parser("image", help="build (or reuse) the base image")
    build.add_argument("--suite", required=True, choices=SUITE_CHOICES)
    build.add_argument("--images", required=True, type=Path, help="the image cache directory")
    build.add_argument("--base-url", help="a cloud image's release directory (a mirror of it): image and SHA256SUMS")
    for name in ("network-start", "network-stop"):
        net = sub.add_parser(name)
        net.add_argument("--dir", required=True, type=Path, help="the switch's directory")
    start = sub.add_parser("vm-start", help="start one VM and wait until it answers SSH")
    start.add_argument("--dir", required=True, type=Path, help="the VM's directory (disks, console, pid file)")
    start.add_argument("--name", required=True)
    start.add_argument("--index", required=True, type=int, help="position in the stack (MAC addresses)")
    start.add_argument("--vcpus", required=True, type=_positive)
    start.add_argument("--memory-mb", required=True, type=_positive)
    start.add_argument("--disk-gb", default=0, type=_size)
    start.add_argument("--storage-gb", default=0, type=_size)
    start.add_argument("--ssh-port", required=True, type=int)
    start.add_argument("--forward", action="append", default=[], type=_forward, metavar="HOST:GUEST")
    start.add_argument("--private", required=True, type=_private, help="ADDRESS/PREFIX on the private link")
    start.add_argument("--switch", required=True, type=Path, help="the switch's directory")
    start.add_argument("--suite", required=True, choices=SUITE_CHOICES)
    start.add_argument("--images", required=True, type=Path)
    start.add_argument("--accelerator", default="auto", choices=accel.CHOICES)
    start.add_argument("--authorized-key", required=True, help="the public key the VM lets in")
    start.add_argument("--timeout", default=900, type=float, help="seconds to wait for SSH")
    stop = sub.add_parser("vm-stop", help="stop one VM")
    stop.add_argument("--dir", required=True, type=Path)
    stop.add_argument("--name", required=True)
    stop.add_argument("--remove", action="store_true", help="delete its disks and its directory too")
    again = sub.add_parser("resume", help="start a stack's switch and VMs again after a reboot")
    again.add_argument("--dir", required=True, type=Path, help="the stack's state directory")
    probe = sub.add_parser("probe", help="the accelerator VMs would get")
    probe.add_argument("--accelerator", default="auto", choices=accel.CHOICES)
    return top


def _emit(data: dict[str, object]) -> int:
    print(json.dumps(data, sort_keys=True))
    return 0


def _placeholder_image(directory: Path) -> image.BaseImage:
    """Stopping a VM needs its pid file and monitor only, not its image."""
    return image.BaseImage(suite="", directory=directory, disk=directory, kernel=directory, initrd=directory,
                           build_seconds=0.0)


def _vm(args: argparse.Namespace, base: image.BaseImage, accelerator: str = accel.TCG) -> vm.VM:
    private: ipaddress.IPv4Interface = args.private
    return vm.VM(
        name=args.name, index=args.index, private_ip=str(private.ip), ssh_port=args.ssh_port,
        directory=args.dir, memory_mb=args.memory_mb, vcpus=args.vcpus, image=base,
        accelerator=accelerator, private_prefix_len=private.network.prefixlen, disk_gb=args.disk_gb,
        storage_gb=args.storage_gb, authorized_key=args.authorized_key, forwards=dict(args.forward),
        uuid_seed=str(args.dir.parent), cpu=vm.cpu_model(accelerator),
    )


def _spec(args: argparse.Namespace) -> dict[str, object]:
    """What the VM was started with (as its vm.json holds it): a second start with other settings
    is refused, and ``resume`` starts it again from this."""
    spec = {key: str(value) if isinstance(value, (Path, ipaddress.IPv4Interface)) else value
            for key, value in sorted(vars(args).items()) if key not in ("command", "timeout")}
    return json.loads(json.dumps(spec))


def _argv(spec: dict[str, object]) -> list[str]:
    """``vm-start`` arguments that give back ``spec``."""
    argv = ["vm-start"]
    for key, value in spec.items():
        option = "--" + key.replace("_", "-")
        if key == "forward":
            assert isinstance(value, list)
            for pair in value:
                argv += [option, f"{pair[0]}:{pair[1]}"]
        else:
            argv += [option, str(value)]
    return argv


def resume(args: argparse.Namespace) -> int:
    """Start a stack's switch and VMs again after this machine rebooted (their disks kept):
    the stack's state still lists them, and its next ``pulumi up`` or ``destroy`` reaches them."""
    network_start(argparse.Namespace(dir=args.dir))
    started = []
    for record in sorted((args.dir / "vms").glob("*/vm.json")):
        spec = json.loads(record.read_text())["spec"]
        vm_start(parser().parse_args(_argv(spec)))
        started.append(spec["name"])
    return _emit({"resumed": started})


def wait_banner(machine: vm.VM, timeout: float) -> None:
    """Without a key: wait until sshd's banner comes through the forwarded port."""
    deadline = machine.started + timeout
    while time.monotonic() < deadline:
        if not machine.running():
            raise vm.VMError(f"QEMU of {machine.name} exited; console:\n{machine.console_tail()}")
        console = machine.console_text()
        if any(sign in console for sign in vm.BOOT_FAILURES):
            raise vm.VMError(f"{machine.name} failed to boot; console tail:\n{machine.console_tail()}")
        try:
            with socket.create_connection(("127.0.0.1", machine.ssh_port), timeout=5) as conn:
                if conn.recv(64).startswith(b"SSH-"):
                    machine.boot_seconds = round(time.monotonic() - machine.started, 1)
                    return
        except OSError:
            pass
        time.sleep(2)
    raise vm.VMError(f"{machine.name}: no SSH banner within {timeout:.0f}s; console tail:\n{machine.console_tail()}")


def vm_start(args: argparse.Namespace) -> int:
    cloud = args.suite in CLOUD_IMAGES
    base = cloudimage.cached(cloudimage.UBUNTU_2404, args.images) if cloud else image.cached_image(
        args.images, args.suite, None)
    if base is None:
        raise vm.VMError(f"no {args.suite} base image under {args.images}: the stack's image step builds it first")
    missing = vm.missing_tools()
    if missing:
        raise vm.VMError(f"missing host tools: {', '.join(missing)} (apt-get install qemu-system-x86 qemu-utils "
                         "openssh-client)")
    record = args.dir / "vm.json"
    spec = _spec(args)
    # The boot probe needs a kernel to boot directly: a cloud image's is inside its disk.
    probe = accel.choose(args.accelerator, None if cloud else base.kernel, None if cloud else base.initrd)
    machine = _vm(args, base, probe.accelerator)
    if machine.running():
        started = json.loads(record.read_text()) if record.exists() else {}
        if started.get("spec") != spec:
            raise vm.VMError(f"{args.name} already runs (pid {machine.pid()}) with other settings: stop it first "
                             f"(python -m components.machines.localvm vm-stop --dir {args.dir} --name {args.name})")
        machine.accelerator = str(started.get("accelerator", probe.accelerator))
        machine.cpu = vm.cpu_model(machine.accelerator)
        machine.started = time.monotonic()
    else:
        if vm.port_taken(args.ssh_port):
            raise vm.VMError(f"127.0.0.1 port(s) {args.ssh_port} of {args.name} are in use on this host (another stack "
                             "or program): set local.sshPortBase to a free range")
        taken = [port for port in dict(args.forward) if vm.port_taken(port)]
        if taken:
            raise vm.VMError(f"127.0.0.1 port(s) {', '.join(map(str, taken))} that {args.name} forwards (the API server) "
                             "are in use on this host: another local cluster runs (destroy it first) or another program "
                             "listens there")
        if not vm.switch_running(args.switch):
            raise vm.VMError(f"the private link's switch ({args.switch}) is not running: the stack's network step "
                             "starts it")
        if probe.emulated and args.accelerator == "auto":
            print(f"{args.name}: software emulation (TCG): {probe.reason}", file=sys.stderr)
        if cloud:
            private: ipaddress.IPv4Interface = args.private
            machine.seed = cloudimage.write_seed(args.dir / "seed", args.name, args.index, str(private),
                                                 args.authorized_key)
        vm.launch(machine, vm.vde_netdev(args.switch), daemonize=True)
        record.write_text(json.dumps({"spec": spec, "accelerator": probe.accelerator}, sort_keys=True))
    key_text = os.environ.get(KEY_ENV, "")
    try:
        if key_text:
            key = args.dir / ".ssh-key"
            key.touch(mode=0o600)
            key.write_text(key_text if key_text.endswith("\n") else key_text + "\n")
            try:
                vm.wait_ssh(machine, lambda: vm.ssh_command(machine.ssh_port, key), timeout=args.timeout,
                            kernel_timeout=180)
            finally:
                key.unlink(missing_ok=True)
        else:
            wait_banner(machine, args.timeout)
    except vm.VMError:
        vm.stop(machine, grace=5)
        raise
    return _emit({"name": machine.name, "pid": machine.pid(), "sshPort": machine.ssh_port,
                  "privateIp": machine.private_ip, "accelerator": machine.accelerator,
                  "bootSeconds": machine.boot_seconds})


def vm_stop(args: argparse.Namespace) -> int:
    machine = vm.VM(name=args.name, index=0, private_ip="", ssh_port=0, directory=args.dir, memory_mb=0, vcpus=0,
                    image=_placeholder_image(args.dir))
    was_running = machine.running()
    vm.stop(machine, grace=30)
    if args.remove:
        vm.remove_files(machine)
        (args.dir / "vm.json").unlink(missing_ok=True)
        (args.dir / ".ssh-key").unlink(missing_ok=True)
        shutil.rmtree(args.dir / "seed", ignore_errors=True)
        _remove_empty(args.dir)
    return _emit({"name": args.name, "stopped": was_running, "removed": bool(args.remove)})


def _remove_empty(directory: Path, levels: int = 2) -> None:
    """Remove ``directory`` and up to ``levels - 1`` parents while they are empty."""
    for path in [directory, *list(directory.parents)[: levels - 1]]:
        try:
            path.rmdir()
        except OSError:
            return


def network_start(args: argparse.Namespace) -> int:
    missing = vm.missing_tools(switch=True)
    if missing:
        raise vm.VMError(f"missing host tools: {', '.join(missing)} (apt-get install vde2 qemu-system-x86 qemu-utils)")
    if not vm.switch_running(args.dir):
        shutil.rmtree(vm.switch_socket(args.dir), ignore_errors=True)
        vm.start_switch(args.dir, daemon=True)
    return _emit({"switch": str(vm.switch_socket(args.dir)), "pid": vm.read_pid(args.dir / "switch.pid")})


def network_stop(args: argparse.Namespace) -> int:
    vm.stop_switch(args.dir)
    shutil.rmtree(vm.switch_socket(args.dir), ignore_errors=True)
    for name in ("switch.pid", "switch.log"):
        (args.dir / name).unlink(missing_ok=True)
    # The stack's directory goes with its last piece (the VMs' directories went before).
    _remove_empty(args.dir / "vms", levels=1)
    _remove_empty(args.dir, levels=1)
    return _emit({"switch": str(vm.switch_socket(args.dir)), "stopped": True})


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "image" and args.suite in CLOUD_IMAGES:
            fetched = cloudimage.fetch(cloudimage.UBUNTU_2404, args.images, args.base_url)
            return _emit({**fetched.to_json(), "buildSeconds": 0.0})
        if args.command == "image":
            built = image.build_image(
                args.suite, args.images, None,
                rebuild_hint=f"sudo {sys.executable} -m components.machines.localvm image --suite {args.suite} "
                             f"--images {args.images}",
            )
            return _emit({**built.to_json(), "buildSeconds": built.build_seconds})
        if args.command == "network-start":
            return network_start(args)
        if args.command == "network-stop":
            return network_stop(args)
        if args.command == "vm-start":
            return vm_start(args)
        if args.command == "vm-stop":
            return vm_stop(args)
        if args.command == "resume":
            return resume(args)
        probe = accel.choose(args.accelerator)
        return _emit({"accelerator": probe.accelerator, "reason": probe.reason})
    except (vm.VMError, image.ImageError, ValueError) as error:
        print(f"localvm {args.command}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
