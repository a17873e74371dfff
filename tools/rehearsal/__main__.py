"""``python -m tools.rehearsal``: build the image or the mirror, or run the create on VMs by hand.

    venv/bin/python -m tools.rehearsal image [--suite trixie]     # build (or show) the base image
    venv/bin/python -m tools.rehearsal mirror                     # build (or show) the mirror tree
    venv/bin/python -m tools.rehearsal up [--count 3] [--hold]    # boot, run the program's create
    venv/bin/python -m tools.rehearsal up --suites trixie,bookworm,bookworm   # Debian release per VM
    venv/bin/python -m tools.rehearsal up --scripts-from-git REV  # ... with the scripts of REV
    venv/bin/python -m tools.rehearsal local [--hold]             # the local stack, up then destroy

``--hold`` keeps the VMs and the mirror up after the run and prints how to reach them, until
Ctrl-C. ``local`` runs the committed ``provider: local`` stack (Pulumi.local.yaml) with the
mirror's settings: its own steps boot its VMs, its node steps run on them, then its destroy
(``tools/rehearsal/localstack.py``). Needs root, qemu-system-x86, qemu-utils, debootstrap and vde2.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from tools.rehearsal import image, localstack, mirror, program
from tools.rehearsal.session import DEFAULT_SUITES, Rehearsal, default_suites, missing_requirements


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.rehearsal", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("image", help="build (or reuse) the base image")
    build.add_argument("--suite", default="trixie", choices=image.SUITES)
    build.add_argument("--rebuild", action="store_true")
    sub.add_parser("mirror", help="build (or reuse) the mirror tree")
    up = sub.add_parser("up", help="boot VMs and run the program's create steps on them")
    up.add_argument("--count", type=int, default=3)
    up.add_argument("--suites", help="the Debian release of each VM, comma-separated (default: "
                    f"{','.join(DEFAULT_SUITES)}; one name: every VM)")
    up.add_argument("--scripts-from-git", metavar="REV", help="bundle the node scripts of this git revision")
    up.add_argument("--hold", action="store_true", help="keep the VMs up after the run, until Ctrl-C")
    lab = sub.add_parser("local", help="the local stack (provider: local) through the mirror: up, then destroy")
    lab.add_argument("--hold", action="store_true", help="keep the cluster up after the run, until Ctrl-C")
    args = parser.parse_args(argv)

    if args.command == "image":
        built = image.build_image(args.suite, rebuild=args.rebuild)
        print(f"{built.directory} (kernel {built.kernel_version}, built in {built.build_seconds}s)")
        return 0
    if args.command == "mirror":
        content = mirror.build_mirror()
        print(f"{content.root}\n  kubernetes {', '.join(content.kubernetes_versions)}; containerd "
              f"{content.containerd_version}; runc {content.runc_version}; from Debian {content.debian_versions}")
        return 0
    missing = missing_requirements()
    if missing:
        print("missing: " + "; ".join(missing), file=sys.stderr)
        return 2
    if args.command == "local":
        return local(args.hold)
    names = [s.strip() for s in (args.suites or "").split(",") if s.strip()]
    suites = tuple(names * args.count if len(names) == 1 else names) or default_suites(args.count)
    with tempfile.TemporaryDirectory() as tmp, Rehearsal(count=args.count, suites=suites, keep=args.hold) as run:
        scripts = program.scripts_at_revision(args.scripts_from_git, Path(tmp)) if args.scripts_from_git else None
        with run.timed("create"):
            live = program.run_live(run.config(), scripts_dir=scripts)
        print(live.explain())
        for stage, seconds in run.timings.items():
            print(f"{stage:40} {seconds:7.1f} s")
        if args.hold:
            assert run.group is not None and run.server is not None
            key = image.ssh_key()
            for vm in run.vms:
                print(f"{vm.name}: ssh -i {key} -p {vm.ssh_port} {image.USER}@127.0.0.1   (private {vm.private_ip}, "
                      f"console {vm.console})")
            print(f"mirror: {run.server.base_url('127.0.0.1')}   (Ctrl-C stops everything)")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
        return 0 if not live.failed() and live.error is None else 1


def local(hold: bool) -> int:
    """The local stack up (its VMs booted by its own steps), held if asked, then destroyed."""
    with tempfile.TemporaryDirectory(prefix="kc-local-") as tmp, localstack.LocalStack(Path(tmp) / "state") as stack:
        live = stack.up()
        print(live.explain())
        ok = not live.failed() and live.error is None
        if ok and hold:
            key = Path(tmp) / "key"
            key.touch(mode=0o600)
            key.write_text(stack.private_key)
            kubeconfig = Path(tmp) / "kubeconfig.yaml"
            kubeconfig.touch(mode=0o600)
            kubeconfig.write_text(str(live.plan.outputs["kubeconfig"]) if live.plan else "")
            for node, port in stack.ports().items():
                print(f"{node}: ssh -i {key} -p {port} {image.USER}@127.0.0.1")
            print(f"kubeconfig output: {kubeconfig} (https://127.0.0.1:6443)   (Ctrl-C destroys everything)")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
        destroyed = stack.destroy()
        print(destroyed.explain())
        for stage, seconds in stack.timings.items():
            print(f"{stage:40} {seconds:7.1f} s")
        return 0 if ok and destroyed.error is None else 1


if __name__ == "__main__":
    sys.exit(main())
